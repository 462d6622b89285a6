package tiers

import "fmt"

// SyncMode is wal.sync: when an append is acknowledged relative to fsync.
// It is spelled as the configuration spells it, so the configuration, the
// engine's options, the WAL and the status answer all carry the same
// value with no conversion between them. The zero SyncMode is the WAL's
// default, SyncAlways.
type SyncMode string

// The sync modes.
const (
	SyncAlways   SyncMode = "always"   // ack after fsync; nothing acknowledged is lost
	SyncInterval SyncMode = "interval" // ack after write; fsync every wal.sync_interval
	SyncNone     SyncMode = "none"     // ack after write; never fsync on the append path
)

// SyncModes lists the valid modes in the order error messages give them.
func SyncModes() []SyncMode { return []SyncMode{SyncAlways, SyncInterval, SyncNone} }

// Valid reports whether m is one of SyncModes (the zero SyncMode is not:
// only the WAL's options default it).
func (m SyncMode) Valid() bool {
	return m == SyncAlways || m == SyncInterval || m == SyncNone
}

// ParseSyncMode reads a mode as the configuration spells it.
func ParseSyncMode(s string) (SyncMode, error) {
	if m := SyncMode(s); m.Valid() {
		return m, nil
	}
	return "", fmt.Errorf("unknown sync mode %q (want always, interval or none)", s)
}

// String returns the configuration spelling: "always", "interval" or
// "none".
func (m SyncMode) String() string { return string(m) }
