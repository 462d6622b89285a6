package testenv

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// procAttr makes the kernel kill MinIO when the test binary dies, however
// it dies.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// stopped reports whether the process is stopped (SIGSTOP took effect),
// from the state field of /proc/PID/stat; ok is false when it cannot tell.
func stopped(pid int) (isStopped, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false, false
	}
	// pid (comm) state …; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false, false
	}
	return b[i+2] == 'T', true
}
