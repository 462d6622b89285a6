//go:build !race

package client_test

// slowdown scales the tests' time bounds (10 under the race detector).
const slowdown = 1
