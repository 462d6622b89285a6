package engine

// The damage harness: a closed archive is damaged one bit at a time and
// opened again, and for every flip:
//
//   - no read answers a record that was not appended (each answer is, record
//     for record, a prefix of what the query must answer);
//   - no record is silently missing: an answer that ends without an error is
//     all of it (the one exception a target may declare is the WAL's
//     documented torn tail);
//   - an error is typed: a *tiers.CorruptionError (what the server maps to
//     5xx "corruption"), or a refused start-up the target accepts;
//   - nothing is deleted: the damaged file is still there and the catalog
//     still places the segment where it was;
//   - verify reports every damage that changed an answer (a finding on the
//     damaged segment);
//   - no panic (it would end the test) and no hang (each flip is bounded).
//
// A target names the file and the bit positions (a dense, seeded sample of
// every region of the format), and how the engine is opened around it. To
// damage another file (catalog.db), build a fixture with build, make a
// target whose file is "data/catalog.db", fresh (start-up reads it), with
// openErr accepting the refusals the format allows, and check for a flip
// what this file cannot know (a migrator pass deleting nothing, verify's
// findings) in the target's check hook.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/tiers"
)

// bitFlip is one damage: bit Bit of byte Pos of the target file.
type bitFlip struct {
	Pos    int64
	Bit    uint8
	Region string // the part of the format it hits, for messages and counts
}

func (f bitFlip) String() string {
	return fmt.Sprintf("bit %d of byte %d (%s)", f.Bit, f.Pos, f.Region)
}

// damageQuery is one read every flip runs.
type damageQuery struct {
	name string
	q    tiers.Query
}

// damageFixture is a closed archive under root: the engine's data directory
// root/data and a file:// cold store root/cold.
type damageFixture struct {
	root   string
	stream string
	// want is every acknowledged record, in offset order.
	want    []tiers.Record
	queries []damageQuery
	// seg is the segment whose copy the target damages (cold, warm), or
	// nil when no segment is (the WAL).
	seg *tiers.SegmentMeta
	// rowGroupRows is the cold tier's row group cap (uploads only).
	rowGroupRows int
	// spool is the cold tier's spool directory.
	spool string
	// opts adjusts the engine options.
	opts func(o *Options)
}

func (f *damageFixture) dataDir(root string) string { return filepath.Join(root, "data") }

func (f *damageFixture) storeURL(root string) string {
	return (&url.URL{Scheme: "file", Path: filepath.Join(root, "cold")}).String()
}

// newDamageFixture returns an empty fixture in a fresh directory.
func newDamageFixture(t *testing.T, stream string) *damageFixture {
	dir := t.TempDir()
	return &damageFixture{root: filepath.Join(dir, "archive"), spool: filepath.Join(dir, "spool"), stream: stream}
}

// coldTier opens an uncached cold tier on root's store: each read goes to
// the store, so a file damaged in place is seen by the next read.
func (f *damageFixture) coldTier(root string) (*cold.Tier, error) {
	b, err := objstore.Open(context.Background(), f.storeURL(root), objstore.Options{})
	if err != nil {
		return nil, err
	}
	return cold.New(cold.Options{Bucket: b, SpoolDir: f.spool, RowGroupRows: f.rowGroupRows, CacheBytes: 1})
}

// open opens an engine on root, as a restarted daemon would; Open's error
// is returned. It may run outside the test's goroutine.
func (f *damageFixture) open(root string) (*Engine, error) {
	ct, err := f.coldTier(root)
	if err != nil {
		return nil, err
	}
	o := Options{DataDir: f.dataDir(root), SegmentMaxBytes: 64 << 20, SegmentMaxAge: forever, HotResidency: forever, Cold: ct}
	if f.opts != nil {
		f.opts(&o)
	}
	e, err := Open(context.Background(), o)
	if err != nil {
		ct.Close()
	}
	return e, err
}

// build opens an engine on the fixture's root, lets fill make the archive
// (and return the acknowledged records), closes it and records them.
func (f *damageFixture) build(t *testing.T, fill func(e *Engine) []tiers.Record) {
	t.Helper()
	e, err := f.open(f.root)
	if err != nil {
		t.Fatal(err)
	}
	f.want = fill(e)
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// damageTarget is one file of a fixture to damage, and what its format
// allows.
type damageTarget struct {
	name  string
	file  string // relative to the fixture's root
	flips []bitFlip
	// fresh: each flip gets a fresh copy of the archive and a fresh engine
	// (start-up reads and may repair the file: the WAL). Otherwise the file
	// is damaged in place and restored after each flip.
	fresh bool
	// keepOpen: one engine serves every flip (the file is read anew by
	// each read: the uncached cold tier). Otherwise an engine is opened
	// per flip (the warm store keeps readers it mapped).
	keepOpen bool
	// openErr checks an Open that failed on a flip; nil means Open must
	// succeed.
	openErr func(fl bitFlip, err error) error
	// mustReport says verify must report this flip even when no answer
	// changed (damage only other engines would see, such as a bloom
	// filter tierd does not trust).
	mustReport func(fl bitFlip) bool
	// check, when set, runs after the reads and verify of every flip whose
	// start-up succeeded, for the target's own properties.
	check func(ctx context.Context, e *Engine, root string, fl bitFlip) error
	// loseFrom is the first offset whose record the flip may drop without
	// an error (the WAL's torn tail); nil or math.MaxUint64: none.
	loseFrom func(fl bitFlip) uint64
}

// damageStats counts what the flips did.
type damageStats struct {
	flips, refused, changed, reported, harmless int
	byRegion                                    map[string][3]int // region → refused, changed, harmless
	timeIn                                      map[string]time.Duration
	slowest                                     time.Duration
	slowestFlip                                 bitFlip
}

// flipTimeout bounds one flip's open, reads, verify and close: a hang is
// minutes, a flip takes milliseconds.
const flipTimeout = 2 * time.Minute

// runDamage applies every flip of tg to a copy of the fixture and checks
// the properties in this file's comment.
func runDamage(t *testing.T, f *damageFixture, tg damageTarget) damageStats {
	t.Helper()
	start := time.Now()
	scratch := filepath.Join(t.TempDir(), "archive")
	copyTree(t, f.root, scratch)
	orig, err := os.ReadFile(filepath.Join(f.root, tg.file))
	if err != nil {
		t.Fatal(err)
	}
	st := damageStats{byRegion: map[string][3]int{}, timeIn: map[string]time.Duration{}}
	var shared *Engine
	if tg.keepOpen {
		if shared, err = f.open(scratch); err != nil {
			t.Fatal(err)
		}
		defer shared.Close(context.Background())
	}
	// dirty is set once an engine opened on the scratch copy: it may have
	// changed files (a WAL truncated, a new WAL file), so a fresh target
	// copies the archive again. A refused start-up changes nothing (the
	// session checks it), so after one only the damaged file is restored.
	dirty := false
	for _, fl := range tg.flips {
		if fl.Pos < 0 || fl.Pos >= int64(len(orig)) {
			t.Fatalf("%s is outside the %d-byte file", fl, len(orig))
		}
		if tg.fresh && dirty {
			if err := os.RemoveAll(scratch); err != nil {
				t.Fatal(err)
			}
			copyTree(t, f.root, scratch)
			dirty = false
		}
		damaged := slices.Clone(orig)
		damaged[fl.Pos] ^= 1 << fl.Bit
		path := filepath.Join(scratch, tg.file)
		if err := os.WriteFile(path, damaged, 0o644); err != nil {
			t.Fatal(err)
		}
		done := make(chan flipOutcome, 1)
		began := time.Now()
		go func() { done <- f.flipSession(t, tg, fl, scratch, shared) }()
		var out flipOutcome
		select {
		case out = <-done:
		case <-time.After(flipTimeout):
			t.Fatalf("%s: %s: open, reads, verify and close did not finish in %v", tg.name, fl, flipTimeout)
		}
		if out.err != nil {
			t.Fatalf("%s: %s: %v", tg.name, fl, out.err)
		}
		took := time.Since(began)
		st.timeIn[fl.Region] += took
		if took > st.slowest {
			st.slowest, st.slowestFlip = took, fl
		}
		st.flips++
		dirty = dirty || !out.refused
		r := st.byRegion[fl.Region]
		switch {
		case out.refused:
			st.refused++
			r[0]++
		case out.changed:
			st.changed++
			r[1]++
		default:
			st.harmless++
			r[2]++
		}
		st.byRegion[fl.Region] = r
		if out.reported {
			st.reported++
		}
		if err := os.WriteFile(path, orig, 0o644); err != nil {
			t.Fatal(err)
		}
		if !tg.fresh && !tg.keepOpen && !out.refused {
			// Every open starts a WAL file; put the log back as it was, or
			// each flip would replay all the files before it.
			wal := filepath.Join("data", "wal")
			if err := os.RemoveAll(filepath.Join(scratch, wal)); err != nil {
				t.Fatal(err)
			}
			copyTree(t, filepath.Join(f.root, wal), filepath.Join(scratch, wal))
		}
	}
	regions := make([]string, 0, len(st.byRegion))
	for r := range st.byRegion {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	var b strings.Builder
	for _, r := range regions {
		c := st.byRegion[r]
		fmt.Fprintf(&b, "\n  %-14s start-up refused %4d, answer changed %4d, harmless %4d (%v)", r, c[0], c[1], c[2], st.timeIn[r].Round(time.Millisecond))
	}
	t.Logf("%s: %d flips of a %d-byte file in %v (slowest %v: %s): start-up refused %d, answer changed %d (verify reported %d), harmless %d%s",
		tg.name, st.flips, len(orig), time.Since(start).Round(time.Millisecond), st.slowest.Round(time.Millisecond), st.slowestFlip,
		st.refused, st.changed, st.reported, st.harmless, b.String())
	return st
}

// flipOutcome is what one flip's session found; err is a broken property.
type flipOutcome struct {
	refused, changed, reported bool
	err                        error
}

// flipSession opens the damaged archive at root (or uses e), runs every
// query and verify, and checks the properties.
func (f *damageFixture) flipSession(t *testing.T, tg damageTarget, fl bitFlip, root string, e *Engine) (out flipOutcome) {
	ctx, cancel := context.WithTimeout(context.Background(), flipTimeout)
	defer cancel()
	if e == nil {
		var before map[string]int64
		if tg.openErr != nil {
			before = treeSizes(root)
		}
		var err error
		e, err = f.open(root)
		if err != nil {
			out.refused = true
			if tg.openErr == nil {
				out.err = fmt.Errorf("start-up refused: %w", err)
			} else if out.err = tg.openErr(fl, err); out.err == nil {
				// A refused start-up changes nothing: every file as it was.
				if after := treeSizes(root); !mapsEqual(before, after) {
					out.err = fmt.Errorf("start-up refused (%v) but changed the files: %v, were %v", err, after, before)
				}
			}
			return out
		}
		defer func() {
			if err := e.Close(context.Background()); err != nil && out.err == nil {
				out.err = fmt.Errorf("close: %w", err)
			}
		}()
	}
	loseFrom := uint64(math.MaxUint64)
	if tg.loseFrom != nil {
		loseFrom = tg.loseFrom(fl)
	}
	for _, dq := range f.queries {
		want := matchingRecords(f.want, dq.q)
		got, err := readUpTo(ctx, e, f.stream, dq.q)
		for i := range got {
			if i >= len(want) || !got[i].Equal(&want[i]) {
				out.err = fmt.Errorf("%s: record %d of the answer is %+v, which was not appended there", dq.name, i, got[i])
				return out
			}
		}
		if err != nil {
			var ce *tiers.CorruptionError
			if !errors.As(err, &ce) {
				out.err = fmt.Errorf("%s: error %v is not a *tiers.CorruptionError", dq.name, err)
				return out
			}
			out.changed = true
			continue
		}
		if len(got) < len(want) {
			if want[len(got)].Offset < loseFrom {
				out.err = fmt.Errorf("%s: %d of %d records and no error: offset %d silently missing", dq.name, len(got), len(want), want[len(got)].Offset)
				return out
			}
			out.changed = true // the torn tail the target allows
		}
	}
	if f.seg != nil {
		// Verify runs where it must find something: after an answer
		// changed. (On a harmless flip it may or may not find the
		// damage; skipping it there halves the test's time.)
		must := out.changed || (tg.mustReport != nil && tg.mustReport(fl))
		if must {
			rep, err := e.Verify(ctx, f.stream, nil)
			if err != nil {
				out.err = fmt.Errorf("verify: %w", err)
				return out
			}
			for _, fd := range rep.Findings {
				if fd.Base == f.seg.Base {
					out.reported = true
				}
			}
			if !out.reported {
				out.err = fmt.Errorf("verify reports nothing on segment %d (answer changed: %t): %+v", f.seg.Base, out.changed, rep.Findings)
				return out
			}
		}
		// Nothing deleted: the segment is live and placed as it was, and
		// its file is there.
		m, err := e.catalog.Segment(ctx, f.stream, f.seg.Base)
		if err != nil || !m.Tombstoned.IsZero() || m.Placements != f.seg.Placements {
			out.err = fmt.Errorf("segment %d after the flip: %+v, %v; was placed %s", f.seg.Base, m, err, f.seg.Placements)
			return out
		}
		if _, err := os.Stat(filepath.Join(root, tg.file)); err != nil {
			out.err = fmt.Errorf("the damaged file is gone: %w", err)
			return out
		}
	}
	if tg.check != nil {
		out.err = tg.check(ctx, e, root, fl)
	}
	return out
}

// readUpTo reads q's answer until its end or its first error.
func readUpTo(ctx context.Context, e *Engine, stream string, q tiers.Query) ([]tiers.Record, error) {
	var out []tiers.Record
	for it, err := range e.Read(ctx, stream, q) {
		if err != nil {
			return out, err
		}
		out = append(out, it.Record)
	}
	return out, nil
}

// matchingRecords is what q must answer from recs.
func matchingRecords(recs []tiers.Record, q tiers.Query) []tiers.Record {
	var out []tiers.Record
	for i := range recs {
		if q.Match(&recs[i]) && (q.Limit <= 0 || len(out) < q.Limit) {
			out = append(out, recs[i])
		}
	}
	return out
}

// standardQueries are the reads every flip runs over recs (one stream, in
// offset order): all of it, a time range, a key present and one absent,
// and a range that starts in the middle of seg.
func standardQueries(recs []tiers.Record, seg tiers.SegmentMeta) []damageQuery {
	all := tiers.AllRecords()
	tsRange := all
	tsRange.Since, tsRange.Until = recs[len(recs)/3].TS, recs[2*len(recs)/3].TS
	key := all
	key.HasKey, key.Key = true, recs[len(recs)/2].Key
	absent := all
	absent.HasKey, absent.Key = true, "no-such-key"
	mid := all
	mid.From, mid.To = seg.Base+(seg.Last-seg.Base)*2/3, seg.Last
	return []damageQuery{{"all", all}, {"time range", tsRange}, {"key " + key.Key, key}, {"absent key", absent}, {"from the middle", mid}}
}

// sampleFlips picks n distinct bit positions in [lo, hi) with rng, or every
// bit when the range holds at most n.
func sampleFlips(rng *rand.Rand, region string, lo, hi int64, n int) []bitFlip {
	bits := (hi - lo) * 8
	var out []bitFlip
	if bits <= int64(n) {
		for p := lo; p < hi; p++ {
			for b := range uint8(8) {
				out = append(out, bitFlip{Pos: p, Bit: b, Region: region})
			}
		}
		return out
	}
	seen := map[int64]bool{}
	for len(out) < n {
		x := rng.Int64N(bits)
		if seen[x] {
			continue
		}
		seen[x] = true
		out = append(out, bitFlip{Pos: lo + x/8, Bit: uint8(x % 8), Region: region})
	}
	return out
}

// byteRanges is a set of byte ranges [lo, hi) of one region of a file.
type byteRanges [][2]int64

// sample picks n distinct bits over the byteRanges, or all of them.
func (s byteRanges) sample(rng *rand.Rand, region string, n int) []bitFlip {
	var total int64
	for _, sp := range s {
		total += sp[1] - sp[0]
	}
	var out []bitFlip
	if total*8 <= int64(n) {
		for _, sp := range s {
			out = append(out, sampleFlips(rng, region, sp[0], sp[1], math.MaxInt)...)
		}
		return out
	}
	seen := map[int64]bool{}
	for len(out) < n {
		x := rng.Int64N(total * 8)
		if seen[x] {
			continue
		}
		seen[x] = true
		pos := x / 8
		for _, sp := range s {
			if pos < sp[1]-sp[0] {
				out = append(out, bitFlip{Pos: sp[0] + pos, Bit: uint8(x % 8), Region: region})
				break
			}
			pos -= sp[1] - sp[0]
		}
	}
	return out
}

// copyTree copies the directory tree from into to.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// treeSizes maps every file under root to its size.
func treeSizes(root string) map[string]int64 {
	out := map[string]int64{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				out[p] = fi.Size()
			}
		}
		return nil
	})
	return out
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
