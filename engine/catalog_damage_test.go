package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/hot"
	"github.com/tierd/tierd/internal/bolttest"
	"github.com/tierd/tierd/internal/failpoint"
	"github.com/tierd/tierd/migrator"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tiers"
)

// The catalog damage test: a small archive that has every kind of segment
// the catalog describes is built once through the engine; then for each of a
// dense sample of bit positions of catalog.db, spread over every page kind,
// a copy of the data directory with that one bit flipped is opened, read,
// migrated under a keep-forever policy and verified. Each flip must end in
// one of two ways: Open refuses with a corruption error that names the
// rebuild command, or every read answers exactly the records appended (or
// an error, never a record too many or too few), the migrator deletes
// nothing, and verify reports a finding whenever an answer changed. Nothing
// may panic or hang.

// damageStreams are the archive's streams, each exercising one shape.
const (
	dsWarm   = "warm" // warm only, plus an active segment in memory and the WAL
	dsBoth   = "both" // warm and cold
	dsCold   = "coldonly"
	dsRet    = "ret"    // one segment deleted by retention, one tombstoned, the rest cold
	dsIntent = "intent" // a segment whose upload left its intent (object written, not committed)
	dsMany   = "many"   // enough one-record segments that the catalog needs branch pages
)

var damageStreamNames = []string{dsWarm, dsBoth, dsCold, dsRet, dsIntent, dsMany}

// damageArchive is the archive every flip starts from.
type damageArchive struct {
	dir     string // the pristine data directory (catalog.db, wal/, warm/)
	coldDir string // the pristine file:// cold store
	now     time.Time
	// records are the records appended to each stream, with offsets.
	records map[string][]tiers.Record
	// first is each stream's first retained offset.
	first map[string]uint64
	// files holds the bytes of every file of the archive that is written
	// in place (catalog.db, the WAL, retention markers), by path.
	files map[string][]byte
	// segs are each stream's sealed segments as catalogued at the end.
	segs map[string][]SegmentInfo
}

// damageRecords returns n records for stream starting at offset from, with
// values that name their stream and offset, so a record served under the
// wrong stream or offset cannot pass for the right one.
func damageRecords(stream string, from, n int) []tiers.Record {
	out := make([]tiers.Record, n)
	for i := range out {
		k := from + i
		out[i] = tiers.Record{
			TS:    int64(1_700_000_000_000_000_000 + k*1_000_000 + len(stream)),
			Key:   fmt.Sprintf("k%d", k%4),
			Tags:  []string{fmt.Sprintf("t%d", k%3)},
			Value: []byte(fmt.Sprintf(`{"stream":%q,"n":%d,"pad":"%080d"}`, stream, k, k)),
		}
	}
	return out
}

// retentionConfig is the archive's policy while it is built: ret* streams
// keep cold segments 7 days, every other stream forever.
func retentionConfig(storeURL string) policy.Config {
	cfg := testConfig(storeURL, 0, 0, 0)
	cfg.Policies = append([]policy.Policy{{Name: "ret", Streams: []string{dsRet + "*"}, ColdMaxAge: 7 * 24 * time.Hour}}, cfg.Policies...)
	return cfg
}

// keepForever is the policy the test's migrator runs under: nothing is
// ever old enough to move or delete.
func keepForever(storeURL string) policy.Config { return testConfig(storeURL, 0, 0, 0) }

// damageOptions are the engine options of the archive and of every flip,
// with cfg the configuration deletions are justified against.
func damageOptions(dir, coldDir string, now func() time.Time, cfg policy.Config) (Options, error) {
	storeURL := "file://" + coldDir
	b, err := objstore.Open(context.Background(), storeURL, objstore.Options{})
	if err != nil {
		return Options{}, err
	}
	spool := filepath.Join(filepath.Dir(dir), "spool")
	ct, err := cold.New(cold.Options{Bucket: b, SpoolDir: spool, RowGroupRows: 16})
	if err != nil {
		b.Close()
		return Options{}, err
	}
	return Options{
		DataDir: dir, Now: now, Cold: ct, Config: &cfg,
		SegmentMaxBytes: 6 << 10, SegmentMaxAge: forever, HotResidency: forever,
		StreamPolicy: func(stream string) hot.StreamPolicy {
			if stream == dsMany {
				return hot.StreamPolicy{SegmentMaxBytes: 1} // every record seals its segment
			}
			return hot.StreamPolicy{}
		},
		WALSegmentBytes: 64 << 10,
	}, nil
}

func buildDamageArchive(t *testing.T) *damageArchive {
	t.Helper()
	ctx := context.Background()
	root := t.TempDir()
	a := &damageArchive{
		dir: filepath.Join(root, "data"), coldDir: filepath.Join(root, "cold"),
		records: map[string][]tiers.Record{}, first: map[string]uint64{},
	}
	clk := newClock(t0)
	opts, err := damageOptions(a.dir, a.coldDir, clk.Now, retentionConfig("file://"+a.coldDir))
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range damageStreamNames {
		n, per := 160, 20
		if s == dsMany {
			n, per = 60, 1
		}
		for i := 0; i < n; i += per {
			recs := damageRecords(s, i, per)
			if _, err := e.Append(ctx, s, recs); err != nil {
				t.Fatal(err)
			}
			a.records[s] = append(a.records[s], recs...)
		}
	}
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	segs := map[string][]SegmentInfo{}
	for _, s := range damageStreamNames {
		segs[s] = sealedSegments(t, e, s)
		if len(segs[s]) < 3 {
			t.Fatalf("%s: %d segments, want at least 3", s, len(segs[s]))
		}
	}
	if len(segs[dsMany]) != 60 {
		t.Fatalf("%s: %d segments, want 60", dsMany, len(segs[dsMany]))
	}
	for _, sg := range segs[dsBoth] {
		mustExecute(t, e, policy.Upload, dsBoth, sg.Base)
	}
	for _, sg := range segs[dsCold] {
		mustExecute(t, e, policy.Upload, dsCold, sg.Base)
		mustExecute(t, e, policy.DropWarm, dsCold, sg.Base)
	}
	for _, sg := range segs[dsRet] {
		mustExecute(t, e, policy.Upload, dsRet, sg.Base)
		mustExecute(t, e, policy.DropWarm, dsRet, sg.Base)
	}
	// The intent stream's second segment: uploaded, then the move stops
	// before its commit.
	if err := failpoint.Enable(failpoint.MoveAfterVerify, "error"); err != nil {
		t.Fatal(err)
	}
	err = execute(e, policy.Upload, dsIntent, segs[dsIntent][1].Base)
	failpoint.Disable(failpoint.MoveAfterVerify)
	if !errors.Is(err, failpoint.ErrInjected) {
		t.Fatalf("upload with an armed failpoint: %v", err)
	}
	// Retention: the first ret segment is tombstoned and deleted, the
	// second tombstoned 8 days after the seal, half an hour before a.now.
	cfg := retentionConfig("file://" + a.coldDir)
	clk.Set(t0.Add(8 * 24 * time.Hour))
	ret := segs[dsRet]
	settleOne := func(kind policy.ActionKind, base uint64) {
		segsNow, err := e.PlanInput(ctx, dsRet)
		if err != nil {
			t.Fatal(err)
		}
		for _, act := range policy.Plan(clk.Now(), segsNow, cfg) {
			if act.Kind == kind && act.Base == base {
				if err := e.Execute(ctx, act); err != nil {
					t.Fatalf("%v: %v", act, err)
				}
				return
			}
		}
		t.Fatalf("no %v planned for %s@%d", kind, dsRet, base)
	}
	mustExecute(t, e, policy.Tombstone, dsRet, ret[0].Base)
	clk.Advance(2 * time.Hour)
	settleOne(policy.DeleteCold, ret[0].Base)
	mustExecute(t, e, policy.Tombstone, dsRet, ret[1].Base)
	clk.Advance(30 * time.Minute) // within cold.delete_delay: its copies stay
	a.now = clk.Now()
	// More records in the warm stream stay in its active segment: in
	// memory and the WAL only.
	recs := damageRecords(dsWarm, 160, 7)
	if _, err := e.Append(ctx, dsWarm, recs); err != nil {
		t.Fatal(err)
	}
	a.records[dsWarm] = append(a.records[dsWarm], recs...)
	for _, s := range damageStreamNames {
		for i := range a.records[s] {
			a.records[s][i].Offset = uint64(i)
		}
	}
	a.first[dsRet] = ret[2].Base
	a.segs = map[string][]SegmentInfo{}
	for _, s := range damageStreamNames {
		a.segs[s] = sealedSegments(t, e, s)
	}
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	a.files = map[string][]byte{}
	for _, root := range []string{a.dir, a.coldDir} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || immutable(p) {
				return err
			}
			a.files[p], err = os.ReadFile(p)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// damageRead is one read every flip repeats.
type damageRead struct {
	name   string
	stream string
	q      tiers.Query
	// fromRetention starts the read where Retention says the stream's
	// retained records start, as the HTTP API does for a read without
	// from: a damaged catalog must not make records vanish that way.
	fromRetention bool
}

func (a *damageArchive) reads() []damageRead {
	var out []damageRead
	for _, s := range damageStreamNames {
		q := tiers.AllRecords()
		q.From = a.first[s]
		out = append(out, damageRead{name: "all " + s, stream: s, q: q})
		out = append(out, damageRead{name: "retained " + s, stream: s, q: tiers.AllRecords(), fromRetention: true})
	}
	out = append(out, damageRead{name: "expired " + dsRet, stream: dsRet, q: tiers.AllRecords()})
	for _, s := range []string{dsBoth, dsCold} {
		rs := a.records[s]
		q := tiers.AllRecords()
		q.Since, q.Until = rs[30].TS, rs[130].TS
		out = append(out, damageRead{name: "time " + s, stream: s, q: q})
	}
	q := tiers.AllRecords()
	q.Key, q.HasKey = "k1", true
	out = append(out, damageRead{name: "key " + dsCold, stream: dsCold, q: q})
	return out
}

// expected returns the records r must answer when it answers without
// error, reading from offset from.
func (a *damageArchive) expected(r damageRead, from uint64) []tiers.Record {
	var out []tiers.Record
	for _, rec := range a.records[r.stream] {
		if rec.Offset >= max(from, a.first[r.stream]) && r.q.Match(&rec) {
			out = append(out, rec)
		}
	}
	return out
}

// readOutcome is what one read answered.
type readOutcome struct {
	recs []tiers.Record
	err  error
}

func (o readOutcome) String() string {
	if o.err != nil {
		return fmt.Sprintf("%d records then %v", len(o.recs), o.err)
	}
	return fmt.Sprintf("%d records", len(o.recs))
}

// same reports whether two outcomes are the same answer: the same records,
// and both failing the same way or both succeeding.
func (o readOutcome) same(p readOutcome) bool {
	if (o.err == nil) != (p.err == nil) || len(o.recs) != len(p.recs) {
		return false
	}
	if o.err != nil && errors.Is(o.err, tiers.ErrExpired) != errors.Is(p.err, tiers.ErrExpired) {
		return false
	}
	for i := range o.recs {
		if !o.recs[i].Equal(&p.recs[i]) {
			return false
		}
	}
	return true
}

// flipResult is what one flip did.
type flipResult struct {
	refused  error // Open's error, if it refused
	outcomes []readOutcome
	listing  []string // warm files and cold objects after the migrator run
	changed  string   // how an answer differed from the pristine archive's
	verify   VerifyReport
	verr     error
	problems []string // broken rules
}

// guarded runs fn with a time bound, turning a panic into a problem.
func guarded(what string, limit time.Duration, fn func() error) (err error, problem string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				problem = fmt.Sprintf("%s panicked: %v\n%s", what, r, debug.Stack())
			}
		}()
		err = fn()
	}()
	select {
	case <-done:
		return err, problem
	case <-time.After(limit):
		return nil, fmt.Sprintf("%s hung: no answer in %v", what, limit)
	}
}

// hangLimit is how long one step of a flip may take: a pass takes
// milliseconds, a hang forever.
const hangLimit = 60 * time.Second

// immutable reports whether a file of the archive is never written in
// place (warm segments and cold objects are written to a temp file and
// renamed), so that a flip's copy can share it by a hard link.
func immutable(path string) bool {
	return strings.HasSuffix(path, ".seg") || strings.HasSuffix(path, ".parquet")
}

// reset makes work (data/ and cold/) a copy of the archive with catalog.db
// damaged by damage (nil: none). It reuses what an earlier flip left: a
// refused open touches nothing but catalog.db, so most flips rewrite one
// file; files a run added are removed, and files it removed or replaced
// are linked or written again.
func (a *damageArchive) reset(t *testing.T, work string, damage func([]byte) []byte) (dir, coldDir string) {
	t.Helper()
	dir, coldDir = filepath.Join(work, "data"), filepath.Join(work, "cold")
	sync := func(from, to string) {
		want := map[string]bool{}
		err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(from, p)
			out := filepath.Join(to, rel)
			want[rel] = true
			if d.IsDir() {
				return os.MkdirAll(out, 0o755)
			}
			if immutable(p) {
				fi, ferr := os.Stat(p)
				if oi, err := os.Stat(out); err == nil && ferr == nil && os.SameFile(fi, oi) {
					return nil
				}
				os.Remove(out)
				return os.Link(p, out)
			}
			b := a.files[p]
			if rel == "catalog.db" && damage != nil {
				b = damage(slices.Clone(b))
			}
			os.Remove(out) // a fresh inode: the last run may still map the old one
			return os.WriteFile(out, b, 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
		var extra []string
		filepath.WalkDir(to, func(p string, d fs.DirEntry, err error) error {
			if rel, _ := filepath.Rel(to, p); err == nil && !want[rel] {
				extra = append(extra, p)
				if d.IsDir() {
					return filepath.SkipDir
				}
			}
			return nil
		})
		for _, p := range extra {
			if err := os.RemoveAll(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	sync(a.dir, dir)
	sync(a.coldDir, coldDir)
	return dir, coldDir
}

// listing returns the warm files and cold objects under a copy.
func listing(t *testing.T, dir, coldDir string) []string {
	t.Helper()
	var out []string
	for _, root := range []string{filepath.Join(dir, "warm"), coldDir} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && immutable(p) {
				rel, _ := filepath.Rel(filepath.Dir(root), p)
				out = append(out, rel)
			}
			return nil
		})
	}
	sort.Strings(out)
	return out
}

// flip returns the damage of flipping one bit.
func flip(bit int64) func([]byte) []byte {
	return func(b []byte) []byte {
		b[bit/8] ^= 1 << (bit % 8)
		return b
	}
}

// run opens a copy damaged by damage (nil: none) in work and puts it
// through the reads and a keep-forever migrator run; base is the pristine
// archive's result (nil: this is it). Verify runs when an answer differs
// from base's, or for base itself.
func (a *damageArchive) run(t *testing.T, work string, damage func([]byte) []byte, base *flipResult) flipResult {
	t.Helper()
	var res flipResult
	dir, coldDir := a.reset(t, work, damage)
	now := func() time.Time { return a.now }
	opts, err := damageOptions(dir, coldDir, now, keepForever("file://"+coldDir))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var e *Engine
	err, p := guarded("open", hangLimit, func() (err error) {
		e, err = Open(ctx, opts)
		return err
	})
	if p != "" {
		res.problems = append(res.problems, p)
		return res
	}
	if err != nil {
		opts.Cold.Close()
		res.refused = err
		var ce *tiers.CorruptionError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "tierctl catalog rebuild") {
			res.problems = append(res.problems, fmt.Sprintf("open refused without a corruption error naming the rebuild command: %v", err))
		}
		return res
	}
	defer func() {
		if _, p := guarded("close", hangLimit, func() error { return e.Close(ctx) }); p != "" {
			res.problems = append(res.problems, p)
		}
	}()
	for i, r := range a.reads() {
		var o readOutcome
		from := r.q.From
		_, p := guarded("read "+r.name, hangLimit, func() error {
			q := r.q
			if r.fromRetention {
				ret, err := e.Retention(ctx, r.stream)
				if err != nil {
					o.err = err
					return nil
				}
				if ret.First > a.first[r.stream] {
					res.problems = append(res.problems, fmt.Sprintf("read %s: Retention says the stream starts at %d, but records from %d were appended and not deleted", r.name, ret.First, a.first[r.stream]))
				}
				q.From, from = ret.First, ret.First
			}
			for it, err := range e.Read(ctx, r.stream, q) {
				if err != nil {
					o.err = err
					break
				}
				o.recs = append(o.recs, it.Record)
			}
			return nil
		})
		if p != "" {
			res.problems = append(res.problems, p)
			return res
		}
		res.outcomes = append(res.outcomes, o)
		want := a.expected(r, from)
		if r.name == "expired "+dsRet {
			want = nil // it must fail before its first record
		}
		n := min(len(o.recs), len(want))
		for i := 0; i < n; i++ {
			if !o.recs[i].Equal(&want[i]) {
				res.problems = append(res.problems, fmt.Sprintf("read %s: record %d is %+v, want %+v", r.name, i, o.recs[i], want[i]))
				break
			}
		}
		if len(o.recs) > len(want) {
			res.problems = append(res.problems, fmt.Sprintf("read %s: %d records, only %d were appended and retained", r.name, len(o.recs), len(want)))
		}
		if o.err == nil && len(o.recs) < len(want) {
			res.problems = append(res.problems, fmt.Sprintf("read %s: %d records and no error, want %d", r.name, len(o.recs), len(want)))
		}
		if base != nil && res.changed == "" && !o.same(base.outcomes[i]) {
			res.changed = fmt.Sprintf("read %s answered %v, the pristine archive %v", r.name, o, base.outcomes[i])
		}
	}
	before := listing(t, dir, coldDir)
	_, p = guarded("migrator run", hangLimit, func() error {
		m, err := migrator.New(e, migrator.Options{Config: keepForever("file://" + coldDir), Now: now})
		if err != nil {
			return err
		}
		_, err = m.Run(ctx, "", false)
		return err
	})
	if p != "" {
		res.problems = append(res.problems, p)
		return res
	}
	res.listing = listing(t, dir, coldDir)
	for _, f := range before {
		if !slices.Contains(res.listing, f) {
			res.problems = append(res.problems, fmt.Sprintf("the keep-forever migrator run deleted %s", f))
		}
	}
	if base != nil && res.changed == "" && !slices.Equal(res.listing, base.listing) {
		res.changed = fmt.Sprintf("files after the run %v, the pristine archive's %v", res.listing, base.listing)
	}
	if base == nil || res.changed != "" {
		_, p = guarded("verify", hangLimit, func() error {
			res.verify, res.verr = e.Verify(ctx, "", nil)
			return nil
		})
		if p != "" {
			res.problems = append(res.problems, p)
		}
	}
	return res
}

// sampleEvery says how densely flipSample samples each kind of byte: every
// byte of the structure bbolt walks (meta pages, freelist, page headers,
// branch elements and keys), every second or third of the bucket headers,
// leaf elements and keys, every sixth value byte, and a sparse sample of
// the bytes bbolt never reads. TIERD_CATALOG_DAMAGE=all flips every bit of every
// byte bbolt reads instead (minutes, not seconds).
var sampleEvery = map[string]int{
	bolttest.LeafElement: 3, bolttest.InlinePrefix + bolttest.LeafElement: 3,
	bolttest.Key: 2, bolttest.InlinePrefix + bolttest.Key: 2,
	bolttest.Value: 6, bolttest.InlinePrefix + bolttest.Value: 6,
	bolttest.BucketHeader: 2, // half of it is the bucket's sequence, which tierd never uses
	"unused":              1021,
}

// flipSample returns the bit positions of catalog.db to flip, spread over
// every kind of byte (sampleEvery), with the bit of each byte chosen in
// turn.
func flipSample(t *testing.T, path string) (bits []int64, kinds map[string]int, l *bolttest.Layout) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if l, err = bolttest.Read(b); err != nil {
		t.Fatal(err)
	}
	all := os.Getenv("TIERD_CATALOG_DAMAGE") == "all"
	kinds = map[string]int{}
	seen := map[string]int{}
	for i := range b {
		kind, ok := l.Kind[i]
		if !ok {
			kind = "unused"
			if all {
				continue
			}
		}
		seen[kind]++
		if all {
			kinds[kind] += 8
			for bit := range 8 {
				bits = append(bits, int64(i)*8+int64(bit))
			}
			continue
		}
		if n := sampleEvery[kind]; n > 1 && seen[kind]%n != 1 {
			continue
		}
		kinds[kind]++
		bits = append(bits, int64(i)*8+int64((i*5+3)%8))
	}
	return bits, kinds, l
}

// findingKey identifies a finding across runs.
func findingKey(f Finding) string {
	return fmt.Sprintf("%s %s %d %d %d %s %s", f.Kind, f.Stream, f.Base, f.From, f.To, f.Tier, f.Path)
}

func TestCatalogDamage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the catalog damage test opens the archive a few thousand times")
	}
	start := time.Now()
	a := buildDamageArchive(t)
	work := t.TempDir()
	base := a.run(t, work, nil, nil)
	if base.refused != nil || len(base.problems) > 0 || base.verr != nil {
		t.Fatalf("the pristine archive: refused %v, problems %v, verify %v", base.refused, base.problems, base.verr)
	}
	// Under keep-forever the one tombstoned segment is a deletion the
	// policy no longer calls for; verify says so, and that is all it says.
	if f := base.verify.Findings; len(f) != 1 || f[0].Kind != api.FindingRetention || f[0].Stream != dsRet {
		t.Fatalf("the pristine archive: verify found %+v, want one retention finding for %s", f, dsRet)
	}
	known := map[string]bool{}
	for _, f := range base.verify.Findings {
		known[findingKey(f)] = true
	}
	bits, kinds, layout := flipSample(t, filepath.Join(a.dir, "catalog.db"))
	if len(layout.BranchChildren) == 0 {
		t.Fatal("the archive's catalog has no branch page: the damage test would not reach them")
	}
	t.Logf("archive built in %v; flipping %d bits of catalog.db (%d pages): %v", time.Since(start).Round(time.Millisecond), len(bits), len(layout.Pages), kinds)
	refused, opened, changed := 0, 0, 0
	var failures []string
	for _, bit := range bits {
		res := a.run(t, work, flip(bit), &base)
		if res.refused != nil {
			refused++
		} else {
			opened++
		}
		problems := res.problems
		if res.refused == nil && res.changed != "" {
			changed++
			news := 0
			for _, f := range res.verify.Findings {
				if !known[findingKey(f)] {
					news++
				}
			}
			if res.verr == nil && news == 0 {
				problems = append(problems, res.changed+", and verify found nothing new")
			}
		}
		for _, p := range problems {
			failures = append(failures, fmt.Sprintf("bit %d (byte %d, %s): %s", bit, bit/8, layout.Kind[int(bit/8)], p))
		}
	}
	t.Logf("%d flips: %d refused at open, %d opened (%d changed an answer, each reported by verify); %v in all",
		len(bits), refused, opened, changed, time.Since(start).Round(time.Millisecond))
	if len(failures) > 0 {
		n := min(len(failures), 40)
		t.Fatalf("%d of %d flips broke a rule; the first %d:\n%s", len(failures), len(bits), n, strings.Join(failures[:n], "\n"))
	}
}

// valueOf returns the offsets of the max_ts and tombstoned fields of
// segment m's value in a catalog file, found by its digest in a page bbolt
// reads (free pages hold older copies) and the field lengths of segment
// value version 3 (docs/format/catalog.md).
func valueOf(t *testing.T, b []byte, l *bolttest.Layout, m tiers.SegmentMeta) (maxTS, tombstoned int) {
	t.Helper()
	d := -1
	for from := 0; ; {
		i := bytes.Index(b[from:], m.Digest[:])
		if i < 0 {
			break
		}
		if strings.HasSuffix(l.Kind[from+i], bolttest.Value) {
			if d >= 0 {
				t.Fatalf("segment %s/%d: its digest is in two live values", m.Stream, m.Base)
			}
			d = from + i
		}
		from += i + 1
	}
	if d < 0 {
		t.Fatalf("segment %s/%d: digest not found in a live value", m.Stream, m.Base)
	}
	var buf [binary.MaxVarintLen64]byte
	sealed := binary.PutVarint(buf[:], m.SealedAt.Unix()) + binary.PutUvarint(buf[:], uint64(m.SealedAt.Nanosecond()))
	maxTS = d - sealed - binary.PutVarint(buf[:], m.MaxTS)
	cold := m.ColdBytes
	if cold == 0 && m.Placements.Has(tiers.Cold) {
		cold = -1
	}
	tombstoned = d + len(m.Digest) + 1 + binary.PutVarint(buf[:], cold)
	return maxTS, tombstoned
}

// TestCatalogDamageIssueCases reproduces, on the damage test's archive,
// each kind of harm issue 10 saw single bit flips in catalog.db do, and
// checks that each is now refused at open, before anything is served or
// deleted: (a) a live segment's zero tombstone turned into year 0000 made
// the migrator delete the only copy under keep-forever; (c) a segment's
// max ts changed made a time-range read lose records with verify clean;
// (d) damaged pages made bbolt assert at start; (e) one made start-up loop
// and allocate gigabytes. (b), records vanishing from reads with 200 OK and
// verify naming only an orphan, is the catalog losing a segment: reads then
// fail with a corruption error and verify reports the gap and the object
// that holds it as a lost segment.
func TestCatalogDamageIssueCases(t *testing.T) {
	a := buildDamageArchive(t)
	work := t.TempDir()
	base := a.run(t, work, nil, nil)
	cat := a.files[filepath.Join(a.dir, "catalog.db")]
	layout, err := bolttest.Read(cat)
	if err != nil {
		t.Fatal(err)
	}
	live := a.segs[dsCold][0]
	maxTS, tomb := valueOf(t, cat, layout, live.SegmentMeta)
	le := binary.LittleEndian
	ps := layout.PageSize
	var leaf uint64
	for id, kind := range layout.Pages {
		if kind == "leaf" && (leaf == 0 || id < leaf) {
			leaf = id
		}
	}
	if len(layout.BranchChildren) == 0 || leaf == 0 {
		t.Fatal("the archive's catalog has no branch or leaf page")
	}
	freelist := int(le.Uint64(cat[ps+16+32:]))
	if le.Uint64(cat[16+48:]) > le.Uint64(cat[ps+16+48:]) {
		freelist = int(le.Uint64(cat[16+32:]))
	}
	cases := []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"(a) a live segment's zero tombstone flipped", flip(int64(tomb)*8 + 6)},
		{"(c) a segment's max ts flipped", flip(int64(maxTS)*8 + 3)},
		{"(d) a leaf page naming another page", func(b []byte) []byte { b[int(leaf)*ps] ^= 1; return b }},
		{"(d) a leaf page of an unknown type", func(b []byte) []byte { b[int(leaf)*ps+8] ^= 0x40; return b }},
		{"(e) a branch page that is its own child", func(b []byte) []byte {
			c := layout.BranchChildren[0]
			le.PutUint64(b[c.Off:], c.Parent)
			return b
		}},
		{"(e) a freelist of 2^40 pages", func(b []byte) []byte {
			p := freelist * ps
			le.PutUint16(b[p+10:], 0xFFFF)
			le.PutUint64(b[p+16:], 1<<40)
			return b
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			res := a.run(t, work, tc.damage, &base)
			if len(res.problems) > 0 {
				t.Fatalf("%v", res.problems)
			}
			if res.refused == nil {
				t.Fatalf("the damaged catalog opened (answers changed: %q)", res.changed)
			}
			if !errors.Is(res.refused, catalog.ErrDamaged) {
				t.Fatalf("refused with %v, want catalog.ErrDamaged", res.refused)
			}
			t.Logf("refused in %v: %v", time.Since(start).Round(time.Millisecond), res.refused)
		})
	}

	t.Run("(b) a segment the catalog lost", func(t *testing.T) {
		ctx := context.Background()
		dir, coldDir := a.reset(t, work, nil)
		opts, err := damageOptions(dir, coldDir, func() time.Time { return a.now }, keepForever("file://"+coldDir))
		if err != nil {
			t.Fatal(err)
		}
		e, err := Open(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close(ctx)
		lost := a.segs[dsCold][1]
		if err := e.catalog.(*catalog.Catalog).DeleteSegment(ctx, dsCold, lost.Base); err != nil {
			t.Fatal(err)
		}
		ret, err := e.Retention(ctx, dsCold)
		if err != nil || ret.First != 0 {
			t.Fatalf("Retention %+v %v: the first retained offset must stay 0", ret, err)
		}
		n := 0
		var rerr error
		for _, err := range e.Read(ctx, dsCold, tiers.AllRecords()) {
			if err != nil {
				rerr = err
				break
			}
			n++
		}
		var ce *tiers.CorruptionError
		if !errors.As(rerr, &ce) || !errors.Is(rerr, catalog.ErrRetainedGap) || n != int(lost.Base) {
			t.Fatalf("read: %d records then %v; want the %d before the lost segment, then a corruption error", n, rerr, lost.Base)
		}
		rep, err := e.Verify(ctx, dsCold, nil)
		if err != nil {
			t.Fatal(err)
		}
		var gap, holder bool
		for _, f := range rep.Findings {
			gap = gap || f.Kind == api.FindingGap && f.From == lost.Base && f.To == lost.Last+1
			holder = holder || f.Kind == api.FindingLostSegment && f.Tier == "cold" && f.From == lost.Base && f.To == lost.Last+1 && strings.Contains(f.Message, "do not delete")
			if f.Kind == api.FindingOrphanCold {
				t.Fatalf("the only copy of the lost segment is reported as a plain orphan: %+v", f)
			}
		}
		if !gap || !holder {
			t.Fatalf("verify: %+v; want the gap and the object that holds it as a lost segment", rep.Findings)
		}
	})
}
