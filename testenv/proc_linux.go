package testenv

import "syscall"

// procAttr makes the kernel kill MinIO when the test binary dies, however
// it dies.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
