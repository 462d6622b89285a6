// Package failpoint stops tierd between the steps of a move (or between an
// append and its answer), so that tests can prove that a crash or a failure
// at any step loses and doubles nothing.
// A failpoint is a named place in the code (Inject("move/after-commit"));
// unarmed, it costs one atomic load. Tests arm failpoints in-process with
// Enable, or in a real tierd process with the TIERD_FAILPOINTS environment
// variable:
//
//	TIERD_FAILPOINTS="move/after-write=crash,delete/after-remove=error"
//
// Actions:
//   - crash: the process kills itself with SIGKILL on the spot (what kill -9
//     does: no deferred calls, no flushes);
//   - error: Inject returns an error wrapping ErrInjected;
//   - crash@N, error@N: the action fires on the Nth hit only (1-based).
//
// The names are listed in Names; docs/operations.md explains their use.
package failpoint

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// The failpoints of the move and delete protocols (docs/architecture.md,
// "Moving without losing or doubling"; mover/).
const (
	// MoveAfterWrite: the destination object is written, not yet verified.
	MoveAfterWrite = "move/after-write"
	// MoveAfterVerify: the destination is verified, not yet committed.
	MoveAfterVerify = "move/after-verify"
	// MoveAfterCommit: the placement is committed, the source not removed.
	MoveAfterCommit = "move/after-commit"
	// MoveAfterRemove: the source is removed, the intent not yet cleared.
	MoveAfterRemove = "move/after-remove-source"
	// DeleteAfterTombstone: a segment is tombstoned, nothing removed yet.
	DeleteAfterTombstone = "delete/after-tombstone"
	// DeleteAfterTableRemove: a deleted segment left its stream's Iceberg
	// table (a new snapshot), its copies not removed yet.
	DeleteAfterTableRemove = "delete/after-table-remove"
	// DeleteAfterRemove: a deleted segment's copies are removed, its catalog
	// entry not yet forgotten.
	DeleteAfterRemove = "delete/after-remove"
	// AppendAfterDurable: an append is durable, its answer not yet sent
	// (the client sees a broken connection and retries).
	AppendAfterDurable = "append/after-durable"
	// SealAfterSeal: a stream's active segment is sealed on request (POST
	// …/seal), not yet persisted warm: the WAL alone holds its records.
	SealAfterSeal = "seal/after-seal"
	// SequencerAfterPut: a cluster node's journal object is stored, its
	// commit not yet begun (a crash leaves an unreferenced object).
	SequencerAfterPut = "sequencer/after-put"
	// SequencerAfterCommit: the journal object's batches are committed in
	// PostgreSQL, the appends not yet answered.
	SequencerAfterCommit = "sequencer/after-commit"
	// TablesBeforeSync: the publishing loop is about to bring a stream's
	// Iceberg table up to date after cold placements were committed (a
	// crash here leaves committed segments missing from the table until
	// the next start's sync).
	TablesBeforeSync = "tables/before-sync"
)

// The failpoints of cluster compaction (cluster/compactor): a job's steps
// and garbage collection's two-step delete.
const (
	// CompactAfterClaim: a job is claimed (leased), nothing read yet.
	CompactAfterClaim = "compact/after-claim"
	// CompactAfterUpload: the segment's Parquet object is uploaded and
	// verified, not yet committed.
	CompactAfterUpload = "compact/after-upload"
	// CompactBeforeCommit: inside the commit transaction, every statement
	// done, COMMIT not yet sent (the transaction rolls back).
	CompactBeforeCommit = "compact/before-commit"
	// CompactAfterCommit: the segment is committed and its journal ranges
	// released.
	CompactAfterCommit = "compact/after-commit"
	// GCAfterDeleteObject: a released journal object is deleted from the
	// bucket, its row not yet.
	GCAfterDeleteObject = "gc/after-delete-object"
)

// Names lists every failpoint, for validation and documentation.
var Names = []string{MoveAfterWrite, MoveAfterVerify, MoveAfterCommit, MoveAfterRemove, DeleteAfterTombstone, DeleteAfterTableRemove, DeleteAfterRemove, AppendAfterDurable, SealAfterSeal,
	SequencerAfterPut, SequencerAfterCommit, TablesBeforeSync,
	CompactAfterClaim, CompactAfterUpload, CompactBeforeCommit, CompactAfterCommit, GCAfterDeleteObject}

// EnvVar is the environment variable a process reads its failpoints from.
const EnvVar = "TIERD_FAILPOINTS"

// ErrInjected is what an armed "error" failpoint returns.
var ErrInjected = errors.New("failpoint: injected failure")

type action struct {
	crash bool
	nth   int64 // 0 = every hit
	hits  atomic.Int64
}

var (
	armed  atomic.Bool // any failpoint armed: the fast path checks only this
	mu     sync.Mutex
	points = map[string]*action{}
)

func init() {
	if spec := os.Getenv(EnvVar); spec != "" {
		if err := Parse(spec); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", EnvVar, err)
			os.Exit(2)
		}
	}
}

// Parse arms the failpoints of spec ("name=action[,name=action]").
func Parse(spec string) error {
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, act, ok := strings.Cut(item, "=")
		if !ok {
			return fmt.Errorf("failpoint %q: want name=action", item)
		}
		if err := Enable(name, act); err != nil {
			return err
		}
	}
	return nil
}

// Enable arms failpoint name with action (crash, error, crash@N, error@N).
func Enable(name, act string) error {
	known := false
	for _, n := range Names {
		known = known || n == name
	}
	if !known {
		return fmt.Errorf("failpoint: unknown name %q (known: %s)", name, strings.Join(Names, ", "))
	}
	kind, nth, hasN := strings.Cut(act, "@")
	a := &action{}
	switch kind {
	case "crash":
		a.crash = true
	case "error":
	default:
		return fmt.Errorf("failpoint %s: unknown action %q (crash, error, crash@N, error@N)", name, act)
	}
	if hasN {
		n, err := strconv.ParseInt(nth, 10, 64)
		if err != nil || n < 1 {
			return fmt.Errorf("failpoint %s: bad hit number %q", name, nth)
		}
		a.nth = n
	}
	mu.Lock()
	defer mu.Unlock()
	points[name] = a
	armed.Store(true)
	return nil
}

// Disable disarms failpoint name.
func Disable(name string) {
	mu.Lock()
	defer mu.Unlock()
	delete(points, name)
	armed.Store(len(points) > 0)
}

// Inject is a failpoint: nil unless name is armed, in which case it crashes
// the process or returns an error wrapping ErrInjected.
func Inject(name string) error {
	if !armed.Load() {
		return nil
	}
	mu.Lock()
	a := points[name]
	mu.Unlock()
	if a == nil {
		return nil
	}
	if n := a.hits.Add(1); a.nth != 0 && n != a.nth {
		return nil
	}
	if a.crash {
		fmt.Fprintf(os.Stderr, "failpoint %s: crashing\n", name)
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL is not deliverable late; never return
	}
	return fmt.Errorf("%w at %s", ErrInjected, name)
}
