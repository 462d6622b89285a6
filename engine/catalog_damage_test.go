package engine

import (
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

	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
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
)

var damageStreamNames = []string{dsWarm, dsBoth, dsCold, dsRet, dsIntent}

// damageArchive is the archive every flip starts from.
type damageArchive struct {
	dir     string // the pristine data directory (catalog.db, wal/, warm/)
	coldDir string // the pristine file:// cold store
	now     time.Time
	// records are the records appended to each stream, with offsets.
	records map[string][]tiers.Record
	// first is each stream's first retained offset.
	first map[string]uint64
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

// damageOptions are the engine options of the archive and of every flip.
func damageOptions(dir, coldDir string, now func() time.Time, t *testing.T) (Options, error) {
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
		DataDir: dir, Now: now, Cold: ct,
		SegmentMaxBytes: 6 << 10, SegmentMaxAge: forever, HotResidency: forever,
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
	opts, err := damageOptions(a.dir, a.coldDir, clk.Now, t)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range damageStreamNames {
		for i := 0; i < 160; i += 20 {
			recs := damageRecords(s, i, 20)
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
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return a
}

// damageRead is one read every flip repeats.
type damageRead struct {
	name   string
	stream string
	q      tiers.Query
}

func (a *damageArchive) reads() []damageRead {
	var out []damageRead
	for _, s := range damageStreamNames {
		q := tiers.AllRecords()
		q.From = a.first[s]
		out = append(out, damageRead{"all " + s, s, q})
	}
	q := tiers.AllRecords()
	out = append(out, damageRead{"expired " + dsRet, dsRet, q})
	for _, s := range []string{dsBoth, dsCold, dsIntent} {
		rs := a.records[s]
		q := tiers.AllRecords()
		q.Since, q.Until = rs[30].TS, rs[130].TS
		out = append(out, damageRead{"time " + s, s, q})
	}
	for _, s := range []string{dsWarm, dsCold} {
		q := tiers.AllRecords()
		q.Key, q.HasKey = "k1", true
		out = append(out, damageRead{"key " + s, s, q})
	}
	return out
}

// expected returns the records r must answer when it answers without error.
func (a *damageArchive) expected(r damageRead) []tiers.Record {
	var out []tiers.Record
	for _, rec := range a.records[r.stream] {
		if rec.Offset >= a.first[r.stream] && r.q.Match(&rec) {
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

// copyArchive copies the archive into dst, flipping bit of catalog.db when
// bit >= 0. Immutable files (warm segments, cold objects) are hard links.
func (a *damageArchive) copyTo(t *testing.T, dst string, bit int64) (dir, coldDir string) {
	t.Helper()
	dir, coldDir = filepath.Join(dst, "data"), filepath.Join(dst, "cold")
	link := func(from, to string) {
		err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(from, p)
			out := filepath.Join(to, rel)
			if d.IsDir() {
				return os.MkdirAll(out, 0o755)
			}
			if strings.HasSuffix(p, ".seg") || strings.HasSuffix(p, ".parquet") {
				return os.Link(p, out)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if rel == "catalog.db" && bit >= 0 {
				b[bit/8] ^= 1 << (bit % 8)
			}
			return os.WriteFile(out, b, 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	link(a.dir, dir)
	link(a.coldDir, coldDir)
	return dir, coldDir
}

// listing returns the warm files and cold objects under a copy.
func listing(t *testing.T, dir, coldDir string) []string {
	t.Helper()
	var out []string
	for _, root := range []string{filepath.Join(dir, "warm"), coldDir} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".seg") || strings.HasSuffix(p, ".parquet")) {
				rel, _ := filepath.Rel(filepath.Dir(root), p)
				out = append(out, rel)
			}
			return nil
		})
	}
	sort.Strings(out)
	return out
}

// run opens a copy with bit flipped (-1: none) and puts it through the
// reads, a keep-forever migrator run and verify.
func (a *damageArchive) run(t *testing.T, bit int64) flipResult {
	t.Helper()
	var res flipResult
	tmp, err := os.MkdirTemp(t.TempDir(), "flip")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	dir, coldDir := a.copyTo(t, tmp, bit)
	now := func() time.Time { return a.now }
	opts, err := damageOptions(dir, coldDir, now, t)
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
	for _, r := range a.reads() {
		var o readOutcome
		_, p := guarded("read "+r.name, hangLimit, func() error {
			for it, err := range e.Read(ctx, r.stream, r.q) {
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
		want := a.expected(r)
		n := min(len(o.recs), len(want))
		for i := 0; i < n; i++ {
			if !o.recs[i].Equal(&want[i]) {
				res.problems = append(res.problems, fmt.Sprintf("read %s: record %d is %+v, want %+v", r.name, i, o.recs[i], want[i]))
				break
			}
		}
		if len(o.recs) > len(want) {
			res.problems = append(res.problems, fmt.Sprintf("read %s: %d records, only %d were appended", r.name, len(o.recs), len(want)))
		}
		if o.err == nil && len(o.recs) < len(want) {
			res.problems = append(res.problems, fmt.Sprintf("read %s: %d records and no error, want %d", r.name, len(o.recs), len(want)))
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
	_, p = guarded("verify", hangLimit, func() error {
		res.verify, res.verr = e.Verify(ctx, "", nil)
		return nil
	})
	if p != "" {
		res.problems = append(res.problems, p)
	}
	return res
}

// flipSample returns the bit positions of catalog.db to flip: one bit of
// every byte bbolt reads (meta pages, the freelist, page headers, element
// arrays, keys and values), and a sparse sample of the bytes it does not
// (free pages and the slack at the end of pages).
func flipSample(t *testing.T, path string) (bits []int64, kinds map[string]int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	live := boltLiveBytes(t, b)
	kinds = map[string]int{}
	for i := range b {
		kind, ok := live[i]
		if !ok {
			if i%61 != 0 {
				continue
			}
			kind = "unused"
		}
		kinds[kind]++
		bits = append(bits, int64(i)*8+int64((i*5+3)%8))
	}
	return bits, kinds
}

// boltLiveBytes maps every byte of a bbolt file that the active meta page
// reaches to its kind. It reads only a pristine file, so it trusts it.
func boltLiveBytes(t *testing.T, b []byte) map[int]string {
	t.Helper()
	le := binary.LittleEndian
	const hdr = 16
	pageSize := int(le.Uint32(b[hdr+8:]))
	live := map[int]string{}
	mark := func(from, to int, kind string) {
		for i := from; i < to; i++ {
			live[i] = kind
		}
	}
	// The meta page with the higher txid is the active one; both are read.
	var meta int
	if le.Uint64(b[pageSize+hdr+48:]) > le.Uint64(b[hdr+48:]) {
		meta = pageSize
	}
	mark(0, hdr+64, "meta")
	mark(pageSize, pageSize+hdr+64, "meta")
	freelist := int(le.Uint64(b[meta+hdr+32:]))
	fp := freelist * pageSize
	count := int(le.Uint16(b[fp+10:]))
	mark(fp, fp+hdr+count*8, "freelist")
	var walk func(base, limit int, kindPrefix string)
	page := func(id int) int { return id * pageSize }
	walk = func(p, limit int, prefix string) {
		flags := le.Uint16(b[p+8:])
		count := int(le.Uint16(b[p+10:]))
		mark(p, p+hdr, prefix+"page header")
		for i := 0; i < count; i++ {
			e := p + hdr + i*16
			if flags == 0x01 { // branch
				mark(e, e+16, prefix+"branch element")
				pos, ksize := int(le.Uint32(b[e:])), int(le.Uint32(b[e+4:]))
				mark(e+pos, e+pos+ksize, prefix+"branch key")
				walk(page(int(le.Uint64(b[e+8:]))), 0, "")
				continue
			}
			mark(e, e+16, prefix+"leaf element")
			eflags, pos := le.Uint32(b[e:]), int(le.Uint32(b[e+4:]))
			ksize, vsize := int(le.Uint32(b[e+8:])), int(le.Uint32(b[e+12:]))
			mark(e+pos, e+pos+ksize, prefix+"key")
			v := e + pos + ksize
			if eflags&1 == 0 {
				mark(v, v+vsize, prefix+"value")
				continue
			}
			mark(v, v+16, prefix+"bucket header")
			if root := int(le.Uint64(b[v:])); root != 0 {
				walk(page(root), 0, "")
			} else {
				walk(v+16, v+vsize, "inline ")
			}
		}
	}
	walk(page(int(le.Uint64(b[meta+hdr+16:]))), 0, "")
	return live
}

func TestCatalogDamage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the catalog damage test opens the archive a few thousand times")
	}
	start := time.Now()
	a := buildDamageArchive(t)
	base := a.run(t, -1)
	if base.refused != nil || len(base.problems) > 0 || base.verr != nil {
		t.Fatalf("the pristine archive: refused %v, problems %v, verify %v", base.refused, base.problems, base.verr)
	}
	if len(base.verify.Findings) != 0 {
		t.Fatalf("the pristine archive does not verify clean: %+v", base.verify.Findings)
	}
	bits, kinds := flipSample(t, filepath.Join(a.dir, "catalog.db"))
	t.Logf("archive built in %v; flipping %d bits of catalog.db: %v", time.Since(start).Round(time.Millisecond), len(bits), kinds)
	refused, opened, changed := 0, 0, 0
	var failures []string
	for _, bit := range bits {
		res := a.run(t, bit)
		if res.refused != nil {
			refused++
		} else {
			opened++
		}
		problems := res.problems
		if res.refused == nil && len(res.problems) == 0 {
			diff := ""
			for i, o := range res.outcomes {
				if !o.same(base.outcomes[i]) {
					diff = fmt.Sprintf("read %s answered %v, the pristine archive %v", a.reads()[i].name, o, base.outcomes[i])
					break
				}
			}
			if diff == "" && !slices.Equal(res.listing, base.listing) {
				diff = fmt.Sprintf("files after the run %v, the pristine archive's %v", res.listing, base.listing)
			}
			if diff != "" {
				changed++
				if res.verr == nil && len(res.verify.Findings) == 0 {
					problems = append(problems, diff+", and verify found nothing")
				}
			}
		}
		for _, p := range problems {
			failures = append(failures, fmt.Sprintf("bit %d (byte %d): %s", bit, bit/8, p))
		}
	}
	t.Logf("%d flips: %d refused at open, %d opened (%d changed an answer, each reported by verify); %v", len(bits), refused, opened, changed, time.Since(start).Round(time.Millisecond))
	if len(failures) > 0 {
		n := min(len(failures), 40)
		t.Fatalf("%d of %d flips broke a rule; the first %d:\n%s", len(failures), len(bits), n, strings.Join(failures[:n], "\n"))
	}
}
