package tiers

import (
	"errors"
	"syscall"
)

// ErrStorageUnavailable refuses a write that storage could not take now
// (the disk is full, the process is out of file descriptors, a file could
// not be created) when nothing of it was written: unlike ErrStorageFailed
// it is not sticky, and the same write succeeds once the condition clears.
// StorageCause says which condition it was.
var ErrStorageUnavailable = errors.New("tiers: storage unavailable, nothing written")

// The causes StorageCause names: what keeps writes from storage.
const (
	CauseDiskFull    = "disk_full"          // ENOSPC, EDQUOT
	CauseDescriptors = "out_of_descriptors" // EMFILE, ENFILE
	CauseStorage     = "storage_unavailable"
	// CauseWALFailed is a write-ahead log stopped by a failed fsync or an
	// unexplained write failure: sticky until restart (ErrStorageFailed).
	CauseWALFailed = "wal_failed"
)

// StorageCause names why err kept a write from storage: CauseWALFailed
// for ErrStorageFailed, CauseDiskFull, CauseDescriptors, or CauseStorage
// for any other error; "" for nil.
func StorageCause(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrStorageFailed):
		return CauseWALFailed
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return CauseDiskFull
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return CauseDescriptors
	}
	return CauseStorage
}
