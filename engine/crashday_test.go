package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/tierd/tierd/internal/vfs"
	"github.com/tierd/tierd/tiers"
)

// crashDayTS puts a stream's records on two UTC days, switching every 5
// records: batches (1 to 3 records) straddle midnight forward and back.
func crashDayTS(i int) int64 {
	mid := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	if (i/5)%2 == 0 {
		return mid - 1e9 + int64(i)
	}
	return mid + int64(i)
}

// TestCrashAcrossMidnight is TestCrashEngine's workload, on fewer crash
// points, with records whose ts goes back and forth across midnight:
// whatever the crash took (unsynced WAL tails, warm files, directory
// entries), the reopened engine, replaying its WAL, serves every
// acknowledged record exactly once, and every segment it holds — in
// memory, warm or cold — is on one UTC day.
func TestCrashAcrossMidnight(t *testing.T) {
	const points = 200
	m := vfs.NewCrashableMem()
	dir := t.TempDir()
	durableDir(t, m, dir)
	setup := m.MutatingOps()
	full := crashWorkloadTS(t, m, dir, crashDayTS)
	total := m.MutatingOps() - setup
	if full.err != nil || full.moves == 0 {
		t.Fatalf("the workload without a crash stopped after %d moves: %v", full.moves, full.err)
	}
	crashCheck(t, m.CrashClone(vfs.CrashOptions{}), dir, full)
	checkOneDay(t, m.CrashClone(vfs.CrashOptions{}), dir)
	for k := range points {
		n := int64(k) * total / points
		t.Run(fmt.Sprintf("after-%d", n), func(t *testing.T) {
			m := vfs.NewCrashableMem()
			dir := t.TempDir()
			durableDir(t, m, dir)
			m.FailAfter(m.MutatingOps()+n, syscall.EIO)
			run := crashWorkloadTS(t, m, dir, crashDayTS)
			opts := vfs.CrashOptions{}
			if n%2 == 1 {
				opts = vfs.CrashOptions{Rand: rand.New(rand.NewPCG(uint64(n), 11)), TornProb: 0.5, DirProb: 0.3}
			}
			crashed := m.CrashClone(opts)
			checkOneDay(t, crashed, dir)
			crashCheck(t, crashed, dir, run)
		})
	}
}

// checkOneDay reopens the engine on fsys and checks every segment of the
// crash streams is on one UTC day.
func checkOneDay(t *testing.T, fsys vfs.FS, dataDir string) {
	t.Helper()
	ctx := context.Background()
	ct := crashCold(t, fsys, dataDir)
	if ct == nil {
		t.Fatal("cold store does not open after the crash")
	}
	e, err := Open(ctx, crashOptions(dataDir, fsys, ct))
	if err != nil {
		t.Fatalf("reopen after the crash: %v", err)
	}
	defer e.Close(ctx)
	for _, s := range crashStreams {
		segs, err := e.Segments(ctx, s)
		if err != nil {
			continue // a stream the crash left unborn
		}
		for _, sg := range segs {
			if sg.Count > 0 && tiers.UTCDay(sg.MinTS) != tiers.UTCDay(sg.MaxTS) {
				t.Errorf("%s: segment [%d, %d] %v holds ts %d..%d: two UTC days", s, sg.Base, sg.Last, sg.Placements, sg.MinTS, sg.MaxTS)
			}
		}
	}
}
