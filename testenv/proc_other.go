//go:build !linux

package testenv

import "syscall"

// procAttr has no parent-death signal outside Linux; Main and test
// cleanups still stop the server.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }

// stopped cannot tell outside Linux.
func stopped(pid int) (isStopped, ok bool) { return false, false }
