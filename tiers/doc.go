// Package tiers is the shared vocabulary of tierd: records, streams,
// segments, placements and the errors every tier reports. Tiers talk to each
// other only through these types, so this package imports nothing of tierd.
package tiers
