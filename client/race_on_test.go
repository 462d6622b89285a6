//go:build race

package client_test

// slowdown scales the tests' time bounds: the race detector makes every
// memory access several times slower, and a stall of the whole process
// (its collector, a loaded machine) longer still.
const slowdown = 10
