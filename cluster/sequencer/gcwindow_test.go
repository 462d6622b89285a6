package sequencer_test

import (
	"errors"
	"testing"
	"time"

	"github.com/tierd/tierd/cluster/sequencer"
	"github.com/tierd/tierd/tiers"
)

// TestNoCommitAfterTheGCWindow: garbage collection deletes a journal object
// that no row references once it is older than cluster.gc_delay. A commit
// that would land later than CommitBy after its object's PUT (here: stuck
// behind another transaction's lock on the stream) must not happen: it
// would reference an object GC may already have deleted, an acknowledged
// record with no bytes. The append fails as nothing written, and no row
// points at the object.
func TestNoCommitAfterTheGCWindow(t *testing.T) {
	e := newEnv(t, envOpts{})
	s := e.seq(e.join("n"), sequencer.Options{CommitBy: time.Second})
	if _, err := s.Append(e.ctx, "s", tiers.Producer{}, recs("first", 1)); err != nil {
		t.Fatal(err)
	}
	tx, err := e.pool.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(e.ctx, `SELECT next_offset FROM cluster_streams WHERE stream = 's' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	release := time.AfterFunc(3*time.Second, func() { tx.Rollback(e.ctx) })
	defer release.Stop()
	_, err = s.Append(e.ctx, "s", tiers.Producer{}, recs("late", 2))
	if !errors.Is(err, tiers.ErrStorageUnavailable) {
		t.Fatalf("append whose commit would outlive CommitBy: %v; want ErrStorageUnavailable (nothing written)", err)
	}
	time.Sleep(3 * time.Second) // the lock goes; nothing may commit late
	if n := e.count(`SELECT count(*) FROM journal_ranges`); n != 1 {
		t.Fatalf("%d journal ranges; want only the first append's", n)
	}
	res, err := s.Append(e.ctx, "s", tiers.Producer{}, recs("next", 1))
	if err != nil || res.First != 1 {
		t.Fatalf("next append: %+v %v; want offset 1", res, err)
	}
}
