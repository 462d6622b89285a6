package compactor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/tiers"
)

// midnightTS puts a stream's records on both sides of a midnight: 0-9 on
// the day before, 10-19 after, 20-22 late records of the day before, 23-29
// after again.
func midnightTS(n int) int64 {
	mid := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	step := int64(100 * time.Millisecond)
	switch {
	case n < 10:
		return mid - int64(10-n)*step
	case n < 20:
		return mid + int64(n-10)*step
	case n < 23:
		return mid - 1 - int64(n-20) // the last nanoseconds of the day before
	default:
		return mid + int64(n)*step
	}
}

// midnightWant are the segments the records of midnightTS make in one job.
var midnightWant = [][2]uint64{{0, 9}, {10, 19}, {20, 22}, {23, 29}}

// writeMidnight writes 30 records of stream "s" in two batches of 15: the
// first block straddles midnight, the second goes back to the day before
// and forward again.
func writeMidnight(e *env) {
	e.ts = midnightTS
	e.write(batch{"s", 15})
	e.write(batch{"s", 15})
}

// checkMidnight checks the committed segments are midnightWant, each under
// the date partition of its one UTC day.
func checkMidnight(t *testing.T, e *env) {
	t.Helper()
	var got [][2]uint64
	for _, s := range e.segments() {
		got = append(got, [2]uint64{s.Base, s.Last})
		day := time.Unix(0, s.MinTS).UTC().Format("2006-01-02")
		if want := fmt.Sprintf("stream=s/date=%s/%020d-%020d.parquet", day, s.Base, s.Last); cold.ObjectKey(s) != want {
			t.Errorf("segment [%d, %d] at %s, want %s", s.Base, s.Last, cold.ObjectKey(s), want)
		}
		if tiers.UTCDay(s.MinTS) != tiers.UTCDay(s.MaxTS) {
			t.Errorf("segment [%d, %d] spans two days", s.Base, s.Last)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(midnightWant) {
		t.Fatalf("segments %v, want %v", got, midnightWant)
	}
	e.checkConverged()
}

// TestJobAcrossMidnight: one job whose records cross midnight, forward
// inside a block and back and forth across blocks, commits one segment per
// same-day run, in the job's one transaction, every record once.
func TestJobAcrossMidnight(t *testing.T) {
	dir := t.TempDir()
	b, err := objstore.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvOn(t, b)
	writeMidnight(e)
	c := e.compactor("node-a", 1<<20, nil)
	res, err := c.RunOnce(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Planned != 1 || res.Committed != 1 {
		t.Fatalf("RunOnce %+v: want the one job planned and committed", res)
	}
	e.runUntilDrained(c)
	checkMidnight(t, e)

	// DuckDB over the compacted files: date = D and ts::date = D agree.
	glob := "'" + filepath.Join(dir, "stream=*", "**", "*.parquet") + "'"
	rows := duckdb(t, `SELECT d::VARCHAR AS d,
		(SELECT count(*) FROM read_parquet(`+glob+`, hive_partitioning = true) WHERE date = d)::INTEGER AS by_date,
		(SELECT count(*) FROM read_parquet(`+glob+`, hive_partitioning = true) WHERE ts::date = d)::INTEGER AS by_ts
		FROM (SELECT DISTINCT ts::date AS d FROM read_parquet(`+glob+`, hive_partitioning = true)) ORDER BY d`)
	if fmt.Sprint(rows) != "[map[by_date:13 by_ts:13 d:2026-11-30] map[by_date:17 by_ts:17 d:2026-12-01]]" {
		t.Fatalf("DuckDB counts by date and by ts::date: %v", rows)
	}
}

// duckdb runs one query with testenv/duckdb/read.mjs (DuckDB from npm,
// installed into .cache/duckdb on first use) and returns its rows.
func duckdb(t *testing.T, sql string) []map[string]any {
	t.Helper()
	bin, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed for the DuckDB interop check (install Node.js ≥ 20): %v", err)
	}
	cmd := exec.Command(bin, filepath.Join("..", "..", "testenv", "duckdb", "read.mjs"), "--sql", sql)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("duckdb: %v\nstderr:\n%s", err, stderr.String())
	}
	var rows []map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &rows); err != nil {
		t.Fatalf("duckdb: bad JSON %q: %v", stdout.String(), err)
	}
	return rows
}

// TestJobAcrossMidnightKilled: the job across midnight dies at each step
// and another node finishes it: its segments commit together or not at
// all (none after a death before COMMIT), and the retaken job writes the
// same keys, so no object is left over.
func TestJobAcrossMidnightKilled(t *testing.T) {
	for _, step := range []string{StepAfterClaim, StepAfterUpload, StepBeforeCommit, StepAfterCommit} {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t)
			writeMidnight(e)
			ctxA, cancelA := context.WithCancel(e.ctx)
			defer cancelA()
			var hits atomic.Int32
			a := e.compactor("node-a", 1<<20, func(o *Options) { o.Failpoint = killAt(step, cancelA, &hits) })
			if _, err := a.RunOnce(ctxA); err != nil && ctxA.Err() == nil {
				t.Fatalf("node-a: %v", err)
			}
			if hits.Load() != 1 {
				t.Fatalf("failpoint hit %d times", hits.Load())
			}
			objects := 0
			for o, err := range e.cold.Objects(e.ctx, "s") {
				if err != nil {
					t.Fatal(err)
				}
				if o.Segment {
					objects++
				}
			}
			switch n := len(e.segments()); step {
			case StepBeforeCommit, StepAfterUpload:
				if n != 0 || objects != len(midnightWant) {
					t.Fatalf("died at %s: %d segments committed, %d objects; want 0 and %d", step, n, objects, len(midnightWant))
				}
			case StepAfterCommit:
				if n != len(midnightWant) {
					t.Fatalf("died after the commit: %d segments, want %d", n, len(midnightWant))
				}
			}
			b := e.compactor("node-b", 1<<20, nil)
			if step == StepAfterUpload {
				// The open job's objects are not orphans, though none of
				// them spans the whole job: garbage collection keeps them.
				time.Sleep(5 * time.Millisecond) // past gc_delay
				if n, err := b.CollectOrphans(e.ctx); err != nil || n != 0 {
					t.Fatalf("garbage collection during the open job deleted %d objects (%v)", n, err)
				}
			}
			e.runUntilDrained(b)
			checkMidnight(t, e)
		})
	}
}
