//go:build unix

package objstore

import "syscall"

// errNotDir is what opening "a/b" reports when "a" is a file: for a store
// that is simply "not found".
var errNotDir error = syscall.ENOTDIR
