package compactor

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tierd/tierd/cold/objstore"
)

// TestOrphanCollectionNeverRacesACommit: an object without a row may be
// one whose commit is still running (slow PostgreSQL, clocks apart), not
// only a crashed one. Collection must not depend on timing: it claims the
// key in journal_objects before deleting, so a commit in flight keeps its
// object (the claim waits for it and finds its row), and a commit that
// comes after the claim fails on the key (nothing written) instead of
// referencing a deleted object.
func TestOrphanCollectionNeverRacesACommit(t *testing.T) {
	e := newEnv(t)
	c := e.compactor("node-gc", 1<<20, func(o *Options) { o.GCDelay = time.Millisecond })
	put := func(key string) {
		t.Helper()
		if err := e.bucket.Put(e.ctx, key, bytes.NewReader([]byte("journal")), 7); err != nil {
			t.Fatal(err)
		}
	}
	insertRow := `INSERT INTO journal_objects (key, node_id, epoch, size, live_ranges) VALUES ($1, 'n', 1, 7, 1)`

	// A commit in flight: its row is inserted, not yet committed.
	inFlight := JournalPrefix + "n/00000000000000000001/00000000000000000001"
	put(inFlight)
	time.Sleep(1100 * time.Millisecond) // older than gc_delay, to the second
	tx, err := e.pool.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(e.ctx, insertRow, inFlight); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := c.CollectOrphans(e.ctx); done <- err }()
	time.Sleep(500 * time.Millisecond) // the collection waits on the row
	if err := tx.Commit(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := e.bucket.Stat(e.ctx, inFlight); err != nil {
		t.Fatalf("the object of a commit in flight was collected: %v", err)
	}

	// A commit after the collection claimed the key: refused.
	late := JournalPrefix + "n/00000000000000000001/00000000000000000002"
	put(late)
	time.Sleep(1100 * time.Millisecond)
	if _, err := c.CollectOrphans(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.bucket.Stat(e.ctx, late); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("an orphan was not collected: %v", err)
	}
	_, err = e.pool.Exec(e.ctx, insertRow, late)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" {
		t.Fatalf("a commit referencing a collected object: %v; want a unique violation (nothing written)", err)
	}
}

// TestOrphansBehindReferencedObjects: old objects that rows still
// reference (a long max_age, compaction behind) must not fill the pass's
// bound and hide the orphans listed after them.
func TestOrphansBehindReferencedObjects(t *testing.T) {
	defer func(b, m int) { gcBatch, maxOrphanCandidates = b, m }(gcBatch, maxOrphanCandidates)
	gcBatch, maxOrphanCandidates = 2, 2
	e := newEnv(t)
	c := e.compactor("node-gc", 1<<20, func(o *Options) { o.GCDelay = time.Millisecond })
	for i := range 4 { // referenced, listed first
		key := JournalPrefix + "a/00000000000000000001/" + string(rune('0'+i))
		if err := e.bucket.Put(e.ctx, key, bytes.NewReader([]byte("j")), 1); err != nil {
			t.Fatal(err)
		}
		if _, err := e.pool.Exec(e.ctx, `INSERT INTO journal_objects (key, node_id, epoch, size, live_ranges) VALUES ($1, 'a', 1, 1, 1)`, key); err != nil {
			t.Fatal(err)
		}
	}
	orphan := JournalPrefix + "z/00000000000000000001/0"
	if err := e.bucket.Put(e.ctx, orphan, bytes.NewReader([]byte("j")), 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if _, err := c.CollectOrphans(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.bucket.Stat(e.ctx, orphan); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("the orphan listed after referenced objects was not collected: %v", err)
	}
}
