package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/hot/wal"
	"github.com/tierd/tierd/tiers"
)

// walFaults is a WAL file seam: while fail holds an errno, new WAL files
// cannot be created (opening fails with it, or, for ENOSPC, writing their
// head); syncErr makes every fsync fail.
type walFaults struct {
	fail    atomic.Pointer[syscall.Errno]
	syncErr atomic.Bool
}

func (f *walFaults) set(e syscall.Errno) { f.fail.Store(&e) }
func (f *walFaults) clear()              { f.fail.Store(nil) }

func (f *walFaults) open(path string, flag int, perm os.FileMode) (wal.SegmentFile, error) {
	if e := f.fail.Load(); e != nil && *e != syscall.ENOSPC && strings.HasSuffix(path, ".tmp") {
		return nil, &os.PathError{Op: "open", Path: path, Err: *e}
	}
	file, err := os.OpenFile(path, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultyFile{File: file, f: f, tmp: strings.HasSuffix(path, ".tmp")}, nil
}

type faultyFile struct {
	*os.File
	f   *walFaults
	tmp bool
}

func (ff *faultyFile) Write(p []byte) (int, error) {
	if e := ff.f.fail.Load(); e != nil && *e == syscall.ENOSPC && ff.tmp {
		return 0, &os.PathError{Op: "write", Path: ff.Name(), Err: syscall.ENOSPC}
	}
	return ff.File.Write(p)
}

func (ff *faultyFile) Sync() error {
	if ff.f.syncErr.Load() {
		return &os.PathError{Op: "sync", Path: ff.Name(), Err: syscall.EIO}
	}
	return ff.File.Sync()
}

// health is /healthz's answer as a checker reads it.
type health struct {
	Status string      `json:"status"`
	Cause  string      `json:"cause"`
	Since  string      `json:"since"`
	Sticky bool        `json:"sticky"`
	Error  errorDetail `json:"error"`
}

func (e *testEnv) health() (int, health, http.Header) {
	e.t.Helper()
	r := e.do("GET", "/healthz", nil)
	var h health
	if err := json.Unmarshal(r.body, &h); err != nil {
		e.t.Fatalf("healthz body %q: %v", r.body, err)
	}
	return r.status, h, r.header
}

func (e *testEnv) status() map[string]any {
	e.t.Helper()
	r := e.do("GET", "/v1/status", nil)
	var st map[string]any
	if err := json.Unmarshal(r.body, &st); err != nil || r.status != 200 {
		e.t.Fatalf("status: %d %s", r.status, r.body)
	}
	return st
}

// A storage condition that keeps the WAL from creating its next file
// refuses appends with an honest 503 and Retry-After, makes /healthz
// not-ready naming the cause, shows in status with its start; once it
// clears, everything is back without a restart and offsets go on densely.
func TestStorageConditionRefusesAndRecovers(t *testing.T) {
	for _, tc := range []struct {
		errno syscall.Errno
		cause string
		code  string
	}{
		{syscall.EMFILE, tiers.CauseDescriptors, "storage_unavailable"},
		{syscall.ENOSPC, tiers.CauseDiskFull, "storage_full"},
	} {
		t.Run(tc.cause, func(t *testing.T) {
			f := &walFaults{}
			e := newEnv(t, engine.Options{WALOpenFile: f.open, WALSegmentBytes: 1, WALRetryInterval: 50 * time.Millisecond}, Options{})
			if out := e.mustAppend("s", `{"value":1}`); out.FirstOffset != 0 {
				t.Fatalf("first append at %d", out.FirstOffset)
			}
			if code, h, _ := e.health(); code != 200 || h.Status != "ok" {
				t.Fatalf("healthz before: %d %+v", code, h)
			}
			if st := e.status(); st["writes"] != "ok" || st["writes_since"] != nil {
				t.Fatalf("status before: writes %v since %v", st["writes"], st["writes_since"])
			}

			f.set(tc.errno)
			r := e.appendBody("s", `{"value":2}`)
			wantError(t, r, http.StatusServiceUnavailable, tc.code)
			if r.header.Get("Retry-After") == "" {
				t.Error("refused append has no Retry-After")
			}
			if strings.Contains(string(r.body), "until restart") {
				t.Errorf("a retryable refusal says restart: %s", r.body)
			}
			code, h, hdr := e.health()
			if code != http.StatusServiceUnavailable || h.Status != "unavailable" || h.Cause != tc.cause || h.Sticky ||
				h.Error.Code != tc.code || h.Since == "" || hdr.Get("Retry-After") == "" {
				t.Fatalf("healthz while refused: %d %+v (Retry-After %q)", code, h, hdr.Get("Retry-After"))
			}
			st := e.status()
			if st["writes"] != tc.cause || st["writes_since"] == nil || !strings.Contains(fmt.Sprint(st["writes_error"]), tc.errno.Error()) || st["wal_failed"] != "" {
				t.Fatalf("status while refused: writes %v since %v error %v wal_failed %v", st["writes"], st["writes_since"], st["writes_error"], st["wal_failed"])
			}

			f.clear()
			// No append needed: the WAL retries by itself. The bound only
			// keeps a bug from hanging the run.
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if code, _, _ := e.health(); code == 200 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("healthz did not recover after the condition cleared")
				}
			}
			if out := e.mustAppend("s", `{"value":2}`); out.FirstOffset != 1 {
				t.Fatalf("append after recovery at %d, want 1 (the refused batch took no offset)", out.FirstOffset)
			}
			if got := e.read("s", ""); len(got) != 2 || string(got[0].Value) != "1" || string(got[1].Value) != "2" {
				t.Fatalf("read after recovery: %+v", got)
			}
			if st := e.status(); st["writes"] != "ok" {
				t.Fatalf("status after recovery: %v", st["writes"])
			}
		})
	}
}

// A failed fsync of written frames stops the WAL until restart: appends
// answer storage_failed without Retry-After, /healthz says sticky.
func TestStickyWALFailure(t *testing.T) {
	f := &walFaults{}
	e := newEnv(t, engine.Options{WALOpenFile: f.open}, Options{})
	e.mustAppend("s", `{"value":1}`)
	f.syncErr.Store(true)
	r := e.appendBody("s", `{"value":2}`)
	wantError(t, r, http.StatusServiceUnavailable, "storage_failed")
	if r.header.Get("Retry-After") != "" {
		t.Errorf("a sticky failure asks to retry after %s", r.header.Get("Retry-After"))
	}
	f.syncErr.Store(false)
	code, h, _ := e.health()
	if code != http.StatusServiceUnavailable || h.Cause != tiers.CauseWALFailed || !h.Sticky || h.Error.Code != "storage_failed" {
		t.Fatalf("healthz after a failed fsync: %d %+v", code, h)
	}
	if st := e.status(); st["writes"] != tiers.CauseWALFailed || st["wal_failed"] == "" {
		t.Fatalf("status: writes %v wal_failed %v", st["writes"], st["wal_failed"])
	}
}

func TestClassifyStorage(t *testing.T) {
	full := fmt.Errorf("wal: %w: %w", tiers.ErrStorageUnavailable, &os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC})
	fds := fmt.Errorf("wal: %w: %w", tiers.ErrStorageUnavailable, &os.PathError{Op: "open", Path: "x", Err: syscall.EMFILE})
	for _, tc := range []struct {
		err  error
		code string
	}{
		{full, "storage_full"},
		{fds, "storage_unavailable"},
		{fmt.Errorf("%w: %w", tiers.ErrBackpressure, full), "storage_full"},
		{tiers.ErrBackpressure, "backpressure"},
		{fmt.Errorf("sequencer: commit: %w: conn closed", tiers.ErrOutcomeUnknown), "outcome_unknown"},
		{fmt.Errorf("wal: %w: fsync: %w", tiers.ErrStorageFailed, syscall.EIO), "storage_failed"},
		{errors.New("other"), "internal"},
	} {
		if _, code := classify(tc.err); code != tc.code {
			t.Errorf("classify(%v) = %s, want %s", tc.err, code, tc.code)
		}
	}
}
