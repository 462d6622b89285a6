package catalogtest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/catalog/catalogtest"
	"github.com/tierd/tierd/tiers"
)

// A suite that every Store passes proves nothing. Each broken Store below
// wraps the bbolt Catalog and breaks one promise the move protocol stakes
// "nothing lost, nothing doubled" on; TestBrokenStoresFailTheSuite runs the
// suite against each of them in a child test process (so that their
// failures do not fail this test) and checks that the suite fails, and in
// the parts it must.

// broken is the bbolt Catalog with some of its calls replaced.
type broken struct {
	catalog.Store
	kind string
}

// breakages name each broken Store and the parts of the suite that must
// catch it. "none" is the control: the wrapper alone passes the suite.
var breakages = map[string][]string{
	"none":                    nil,
	"put-intent-noop":         {"Intents", "ClearIntent", "CommitMove", "SurvivesReopen"},
	"intents-drops-one":       {"Intents", "ClearIntent", "CommitMove", "SurvivesReopen"},
	"commit-move-no-clear":    {"CommitMove", "SurvivesReopen", "ConcurrentReadersWithWriter"},
	"commit-move-no-change":   {"CommitMove", "HotIsNeverStored", "SurvivesReopen"},
	"commit-delete-no-forget": {"CommitDelete", "PutSegmentRefusals"},
	"segments-out-of-order":   {"SegmentsInOffsetOrder"},
	"locate-out-of-order":     {"SegmentsInOffsetOrder", "Locate"},
}

// PutIntent of put-intent-noop answers success and records nothing: a
// crash during the move leaves a copy nobody knows about.
func (b *broken) PutIntent(ctx context.Context, in catalog.Intent) error {
	if b.kind == "put-intent-noop" {
		return nil
	}
	return b.Store.PutIntent(ctx, in)
}

// Intents of intents-drops-one loses the first intent: recovery at
// start-up would never finish or roll back that move.
func (b *broken) Intents(ctx context.Context) ([]catalog.Intent, error) {
	ins, err := b.Store.Intents(ctx)
	if b.kind == "intents-drops-one" && len(ins) > 0 {
		ins = ins[1:]
	}
	return ins, err
}

// CommitMove of commit-move-no-clear changes the placement but leaves the
// intent (recovery would roll back a committed move); that of
// commit-move-no-change clears the intent but keeps the old placement (the
// new copy is forgotten, the old one about to be dropped).
func (b *broken) CommitMove(ctx context.Context, stream string, base uint64, fn func(*tiers.SegmentMeta) error) (tiers.SegmentMeta, error) {
	switch b.kind {
	case "commit-move-no-clear":
		return b.Store.UpdateSegment(ctx, stream, base, fn)
	case "commit-move-no-change":
		if _, ok, err := b.Store.Intent(ctx, stream, base); err != nil || !ok {
			return b.Store.CommitMove(ctx, stream, base, fn) // its refusal as is
		}
		m, err := b.Store.Segment(ctx, stream, base)
		if err != nil {
			return m, err
		}
		if err := b.Store.ClearIntent(ctx, stream, base); err != nil {
			return m, err
		}
		return m, b.Store.ClearFailure(ctx, stream, base)
	}
	return b.Store.CommitMove(ctx, stream, base, fn)
}

// CommitDelete of commit-delete-no-forget clears the intent and the
// failure of a tombstoned segment but keeps the segment: a deletion half
// done, whose objects nobody will remove.
func (b *broken) CommitDelete(ctx context.Context, stream string, base uint64) error {
	if b.kind == "commit-delete-no-forget" {
		m, err := b.Store.Segment(ctx, stream, base)
		if err == nil && !m.Tombstoned.IsZero() {
			if err := b.Store.ClearIntent(ctx, stream, base); err != nil {
				return err
			}
			return b.Store.ClearFailure(ctx, stream, base)
		}
	}
	return b.Store.CommitDelete(ctx, stream, base)
}

// swapFirst swaps the first two segments, the smallest disorder there is.
func swapFirst(ms []tiers.SegmentMeta) []tiers.SegmentMeta {
	if len(ms) > 1 {
		ms[0], ms[1] = ms[1], ms[0]
	}
	return ms
}

func (b *broken) Segments(ctx context.Context, stream string) ([]tiers.SegmentMeta, error) {
	ms, err := b.Store.Segments(ctx, stream)
	if b.kind == "segments-out-of-order" {
		ms = swapFirst(ms)
	}
	return ms, err
}

func (b *broken) Locate(ctx context.Context, stream string, from, to uint64) ([]tiers.SegmentMeta, uint64, error) {
	ms, retained, err := b.Store.Locate(ctx, stream, from, to)
	if b.kind == "locate-out-of-order" {
		ms = swapFirst(ms)
	}
	return ms, retained, err
}

// brokenFactory opens bbolt Catalogs wrapped as kind.
func brokenFactory(kind string) catalogtest.Factory {
	var dirs sync.Map // *broken -> its directory
	open := func(t *testing.T, dir string) catalog.Store {
		c, err := catalog.Open(filepath.Join(dir, "catalog.db"), catalog.Options{})
		if err != nil {
			t.Fatalf("catalog.Open: %v", err)
		}
		b := &broken{Store: c, kind: kind}
		dirs.Store(b, dir)
		return b
	}
	return catalogtest.Factory{
		Open: func(t *testing.T) catalog.Store { return open(t, t.TempDir()) },
		Reopen: func(t *testing.T, s catalog.Store) catalog.Store {
			dir, ok := dirs.LoadAndDelete(s)
			if !ok {
				t.Fatal("Reopen of a Store this factory did not open")
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, dir.(string))
		},
	}
}

// envBroken names the broken Store TestBrokenChild runs the suite against.
const envBroken = "CATALOGTEST_BROKEN"

// TestBrokenChild runs the suite against the broken Store named by
// $CATALOGTEST_BROKEN; it is TestBrokenStoresFailTheSuite's child process
// and skips otherwise.
func TestBrokenChild(t *testing.T) {
	kind := os.Getenv(envBroken)
	if kind == "" {
		t.Skip("runs only as the child process of TestBrokenStoresFailTheSuite ($" + envBroken + " unset)")
	}
	if _, ok := breakages[kind]; !ok {
		t.Fatalf("unknown broken Store %q", kind)
	}
	catalogtest.Run(t, brokenFactory(kind))
}

// failedPart and passedPart match the suite's parts in the child's output.
var (
	failedPart = regexp.MustCompile(`(?m)^    --- FAIL: TestBrokenChild/(\w+) `)
	passedPart = regexp.MustCompile(`(?m)^    --- PASS: TestBrokenChild/(\w+) `)
)

// TestBrokenStoresFailTheSuite: the suite fails a Store that loses an
// intent, commits a move or a deletion partially or lists segments out of
// order, in the parts that check those promises, and passes the unbroken
// wrapper.
func TestBrokenStoresFailTheSuite(t *testing.T) {
	if os.Getenv(envBroken) != "" {
		t.Skip("this is the child process")
	}
	kinds := make([]string, 0, len(breakages))
	for k := range breakages {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, kind := range kinds {
		must := breakages[kind]
		t.Run(kind, func(t *testing.T) {
			t.Parallel() // each child mostly waits for fsync
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestBrokenChild$", "-test.count=1", "-test.v", "-test.timeout=5m")
			cmd.Env = append(os.Environ(), envBroken+"="+kind)
			out, err := cmd.CombinedOutput()
			var failed []string
			for _, m := range failedPart.FindAllStringSubmatch(string(out), -1) {
				failed = append(failed, m[1])
			}
			if must == nil {
				if err != nil || len(failed) > 0 {
					t.Fatalf("the suite fails the unbroken wrapper (%v), parts %v:\n%s", err, failed, out)
				}
				// Every part the broken Stores fail ran and passed here.
				passed := passedPart.FindAllStringSubmatch(string(out), -1)
				for _, parts := range breakages {
					for _, part := range parts {
						if !slices.ContainsFunc(passed, func(m []string) bool { return m[1] == part }) {
							t.Fatalf("the suite's part %s did not pass the unbroken wrapper:\n%s", part, out)
						}
					}
				}
				t.Logf("the unbroken wrapper passes all %d parts of the suite", len(passed))
				return
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("the child ended with %v, want exit status 1 (failed tests):\n%s", err, out)
			}
			for _, part := range must {
				if !slices.Contains(failed, part) {
					t.Errorf("the suite's part %s passes a Store broken as %s", part, kind)
				}
			}
			if t.Failed() {
				t.Logf("child output:\n%s", out)
			}
			t.Logf("%s fails the suite's parts %v", kind, failed)
		})
	}
}
