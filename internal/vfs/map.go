package vfs

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Mapping is the contents of a file held for reading: a shared read-only
// mmap of an operating-system file, or, for a file of any other FS, a copy
// of its bytes on the heap. Data must not be written.
type Mapping struct {
	Data []byte
	// Mapped is set when Data is an mmap: its pages can be given back
	// (Advise) and it costs address space, not heap.
	Mapped bool
}

// Map returns the first size bytes of f (size > 0). The mapping outlives f:
// f may be closed once Map returns. Unmap releases it.
func Map(f File, size int) (Mapping, error) {
	if size <= 0 {
		return Mapping{}, fmt.Errorf("vfs: map %s: size %d", f.Name(), size)
	}
	if of, ok := f.(*os.File); ok {
		data, err := unix.Mmap(int(of.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return Mapping{}, fmt.Errorf("mmap: %w", err)
		}
		return Mapping{Data: data, Mapped: true}, nil
	}
	data := make([]byte, size)
	if _, err := f.ReadAt(data, 0); err != nil && err != io.EOF {
		return Mapping{}, fmt.Errorf("read %s: %w", f.Name(), err)
	} else if err == io.EOF {
		return Mapping{}, fmt.Errorf("read %s: %w", f.Name(), io.ErrUnexpectedEOF)
	}
	return Mapping{Data: data}, nil
}

// Unmap releases m; a heap copy is left to the garbage collector.
func (m Mapping) Unmap() error {
	if !m.Mapped || m.Data == nil {
		return nil
	}
	return unix.Munmap(m.Data)
}

// DontNeed gives back the resident pages of Data[lo:hi] of an mmap
// (madvise MADV_DONTNEED: the page cache keeps the bytes, a later read
// faults them back in). It does nothing for a heap copy, whose bytes it
// would zero. The advice only saves memory, so errors are ignored.
func (m Mapping) DontNeed(lo, hi int) {
	if !m.Mapped || hi <= lo {
		return
	}
	_ = unix.Madvise(m.Data[lo:hi], unix.MADV_DONTNEED)
}

// StartWriteback asks the kernel to start writing n bytes of f from off to
// disk without waiting (sync_file_range), so that a later fsync does not
// send a file's whole contents in one burst. Only a hint: it does nothing
// for a file that is not an operating-system file, and errors are ignored.
func StartWriteback(f File, off, n int64) {
	if of, ok := f.(*os.File); ok {
		_ = unix.SyncFileRange(int(of.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
	}
}
