package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/testenv"
	"github.com/tierd/tierd/tiers"
)

// coldStore is one backend the cold-tier tests run against.
type coldStore struct {
	name string
	url  func(t *testing.T) string
}

// creds holds the credentials of each test MinIO URL handed out, so every
// store opened on it can use them.
var creds sync.Map // store URL → objstore.Options

func minioURL(driver string) func(t *testing.T) string {
	return func(t *testing.T) string {
		m := testenv.StartMinIO(t)
		u := m.URL(driver)
		creds.Store(u, objstore.Options{AccessKey: m.AccessKey, SecretKey: m.SecretKey})
		return u
	}
}

func storeOptions(storeURL string) objstore.Options {
	if o, ok := creds.Load(storeURL); ok {
		return o.(objstore.Options)
	}
	return objstore.Options{}
}

// coldStores are the file store and both S3 drivers against a real MinIO.
var coldStores = []coldStore{
	{"file", func(t *testing.T) string {
		return (&url.URL{Scheme: "file", Path: filepath.Join(t.TempDir(), "cold")}).String()
	}},
	{"s3-minio", minioURL("minio")},
	{"s3-aws", minioURL("aws")},
}

func openCold(t *testing.T, storeURL string) *cold.Tier {
	t.Helper()
	b, err := objstore.Open(context.Background(), storeURL, storeOptions(storeURL))
	if err != nil {
		t.Fatal(err)
	}
	ct, err := cold.New(cold.Options{Bucket: b, SpoolDir: t.TempDir(), RowGroupRows: 64})
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

// openWithCold opens an engine whose cold tier is on storeURL; each call
// opens a fresh cold.Tier, as a restarted daemon would.
func openWithCold(t *testing.T, dir, storeURL string) *Engine {
	t.Helper()
	return open(t, dir, func(o *Options) { o.Cold = openCold(t, storeURL) })
}

// listObjects returns every key in the store.
func listObjects(t *testing.T, storeURL string) []string {
	t.Helper()
	b, err := objstore.Open(context.Background(), storeURL, storeOptions(storeURL))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var keys []string
	for a, err := range b.List(context.Background(), "") {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, a.Key)
	}
	return keys
}

func sealedSegments(t *testing.T, e *Engine, stream string) []SegmentInfo {
	t.Helper()
	segs, err := e.Segments(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	var out []SegmentInfo
	for _, s := range segs {
		if !s.Active {
			out = append(out, s)
		}
	}
	return out
}

// TestOffloadRoundTrip: records written, flushed warm, offloaded, and after
// a restart (nothing resident) read back from cold identical — offset, ts to
// the nanosecond, key, tags and value bytes — on every backend.
func TestOffloadRoundTrip(t *testing.T) {
	for _, cs := range coldStores {
		t.Run(cs.name, func(t *testing.T) {
			dir, storeURL := t.TempDir(), cs.url(t)
			e := openWithCold(t, dir, storeURL)
			want := fill(t, e, "IF2406", 1500)
			// Binary values and odd timestamps too.
			odd := []tiers.Record{
				{TS: -1, Key: "", Value: []byte{0, 1, 2, 0xff, '\n'}},
				{TS: 1<<62 + 7, Key: "ключ", Tags: []string{"", "t"}, Value: nil},
			}
			if _, err := e.Append(context.Background(), "IF2406", odd); err != nil {
				t.Fatal(err)
			}
			want = append(want, odd...)
			if err := e.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			segs := sealedSegments(t, e, "IF2406")
			if len(segs) < 3 {
				t.Fatalf("want several segments, got %d", len(segs))
			}
			for _, s := range segs {
				m, err := e.Offload(context.Background(), "IF2406", s.Base, false)
				if err != nil {
					t.Fatalf("offload %d: %v", s.Base, err)
				}
				if m.Placements != tiers.Of(tiers.Cold) {
					t.Fatalf("after offload %d placements %v, want cold only", s.Base, m.Placements)
				}
			}
			if err := e.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := countFiles(t, filepath.Join(dir, "warm")); n != 0 {
				t.Fatalf("%d warm files left after moving every segment", n)
			}
			if keys := listObjects(t, storeURL); len(keys) != len(segs) {
				t.Fatalf("%d objects for %d segments: %v", len(keys), len(segs), keys)
			}

			e = openWithCold(t, dir, storeURL)
			defer e.Close(context.Background())
			got := readAll(t, e, "IF2406", tiers.AllRecords())
			if len(got) != len(want) {
				t.Fatalf("read %d records, want %d", len(got), len(want))
			}
			for i := range got {
				if !got[i].Record.Equal(&want[i]) || got[i].Tier != tiers.Cold {
					t.Fatalf("record %d: %+v from %v, want %+v from cold", i, got[i].Record, got[i].Tier, want[i])
				}
			}
			// Filters and limits work on cold segments as on the others.
			q := tiers.Query{From: 300, To: 1200, Since: -1 << 63, Until: 1<<63 - 1, Key: "k2", HasKey: true, Limit: 50}
			var exp []tiers.Record
			for i := range want {
				if q.Match(&want[i]) && len(exp) < q.Limit {
					exp = append(exp, want[i])
				}
			}
			got = readAll(t, e, "IF2406", q)
			if len(got) != len(exp) {
				t.Fatalf("filtered read: %d records, want %d", len(got), len(exp))
			}
			for i := range got {
				if !got[i].Record.Equal(&exp[i]) {
					t.Fatalf("filtered record %d differs", i)
				}
			}
			var coldBytes int64
			for _, s := range sealedSegments(t, e, "IF2406") {
				if s.Placements != tiers.Of(tiers.Cold) || s.ColdBytes <= 0 {
					t.Fatalf("segment %d listed as %v with %d cold bytes", s.Base, s.Placements, s.ColdBytes)
				}
				coldBytes += s.ColdBytes
			}
			st, err := e.Streams(context.Background())
			if err != nil || st[0].Tiers[tiers.Cold].Bytes != coldBytes {
				t.Fatalf("streams report %+v, want %d cold bytes (%v)", st, coldBytes, err)
			}
		})
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// TestOffloadIsIdempotent: an offload interrupted after the upload (the
// object exists, the catalog was never told) or repeated ends in exactly one
// object and the same catalog state; keep_warm copies instead of moving.
func TestOffloadIsIdempotent(t *testing.T) {
	dir, storeURL := t.TempDir(), coldStores[0].url(t)
	e := openWithCold(t, dir, storeURL)
	defer e.Close(context.Background())
	fill(t, e, "s", 300)
	if err := e.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	segs := sealedSegments(t, e, "s")
	first := segs[0]
	// Crash after the upload, before the catalog commit: run the upload alone.
	r, err := e.warm.Acquire("s", first.Base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.cold.Upload(context.Background(), first.SegmentMeta, r.Scan(tiers.AllRecords())); err != nil {
		t.Fatal(err)
	}
	r.Release()
	m, err := e.Offload(context.Background(), "s", first.Base, true)
	if err != nil || m.Placements != tiers.Of(tiers.Warm, tiers.Cold) {
		t.Fatalf("keep_warm offload: %v %v", m.Placements, err)
	}
	m, err = e.Offload(context.Background(), "s", first.Base, false)
	if err != nil || m.Placements != tiers.Of(tiers.Cold) {
		t.Fatalf("second offload: %v %v", m.Placements, err)
	}
	if m, err = e.Offload(context.Background(), "s", first.Base, false); err != nil || m.Placements != tiers.Of(tiers.Cold) {
		t.Fatalf("third offload: %v %v", m.Placements, err)
	}
	if keys := listObjects(t, storeURL); len(keys) != 1 || !strings.HasSuffix(keys[0], cold.ObjectKey(first.SegmentMeta)) {
		t.Fatalf("objects %v, want exactly %s", keys, cold.ObjectKey(first.SegmentMeta))
	}
	if _, err := os.Stat(e.warm.Path("s", first.Base)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("warm file still there after the move: %v", err)
	}
}

func TestOffloadErrors(t *testing.T) {
	e := openWithCold(t, t.TempDir(), coldStores[0].url(t))
	defer e.Close(context.Background())
	fill(t, e, "s", 30)
	ctx := context.Background()
	if _, err := e.Offload(ctx, "s", 0, false); !errors.Is(err, ErrNotPersisted) {
		t.Fatalf("offload of the active segment: %v, want ErrNotPersisted", err)
	}
	if _, err := e.Offload(ctx, "s", 7, false); !errors.Is(err, tiers.ErrSegmentNotFound) {
		t.Fatalf("offload of a base that starts no segment: %v", err)
	}
	if _, err := e.Offload(ctx, "nope", 0, false); !errors.Is(err, tiers.ErrStreamNotFound) {
		t.Fatalf("offload on an unknown stream: %v", err)
	}
	if _, err := e.Offload(ctx, "../x", 0, false); !errors.Is(err, tiers.ErrInvalidStreamName) {
		t.Fatalf("offload with a bad name: %v", err)
	}
	e2 := open(t, t.TempDir(), nil)
	defer e2.Close(ctx)
	if _, err := e2.Offload(ctx, "s", 0, false); !errors.Is(err, ErrNoColdTier) {
		t.Fatalf("offload without a cold tier: %v", err)
	}
}

// TestRestartRemovesWarmCopyOfMovedSegment: a crash after the catalog
// commit but before the warm file is removed leaves a file start-up removes.
func TestRestartRemovesWarmCopyOfMovedSegment(t *testing.T) {
	dir, storeURL := t.TempDir(), coldStores[0].url(t)
	e := openWithCold(t, dir, storeURL)
	want := fill(t, e, "s", 200)
	if err := e.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := sealedSegments(t, e, "s")[0]
	path := e.warm.Path("s", first.Base)
	saved, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Offload(context.Background(), "s", first.Base, false); err != nil {
		t.Fatal(err)
	}
	e.Close(context.Background())
	if err := os.WriteFile(path, saved, 0o644); err != nil { // the file the crash left
		t.Fatal(err)
	}
	e = openWithCold(t, dir, storeURL)
	defer e.Close(context.Background())
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("warm copy of a moved segment survived the restart: %v", err)
	}
	wantRecords(t, readAll(t, e, "s", tiers.AllRecords()), want)
}

// TestDamagedColdObject: a truncated or bit-flipped object never yields
// wrong records or a panic: a read either returns exactly the records that
// were written (the damage hit bytes the query does not need, such as the
// key bloom filter) or a *tiers.CorruptionError. Damage to data pages and to
// the footer must be reported.
func TestDamagedColdObject(t *testing.T) {
	coldDir := filepath.Join(t.TempDir(), "cold")
	storeURL := (&url.URL{Scheme: "file", Path: coldDir}).String()
	dir := t.TempDir()
	e := openWithCold(t, dir, storeURL)
	want := fill(t, e, "s", 200)
	e.Flush(context.Background())
	segs := sealedSegments(t, e, "s")
	for _, s := range segs {
		if _, err := e.Offload(context.Background(), "s", s.Base, false); err != nil {
			t.Fatal(err)
		}
	}
	e.Close(context.Background())
	first := segs[0]
	obj := filepath.Join(coldDir, filepath.FromSlash(cold.ObjectKey(first.SegmentMeta)))
	orig, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	n := len(orig)
	type damage struct {
		name     string
		fn       func([]byte) []byte
		mustFail bool
	}
	damages := []damage{
		{"truncated to half", func(b []byte) []byte { return b[:n/2] }, true},
		{"truncated by one byte", func(b []byte) []byte { return b[:n-1] }, true},
		{"footer length flipped", func(b []byte) []byte { b[n-6] ^= 0x40; return b }, true},
		{"magic gone", func(b []byte) []byte { copy(b[n-4:], "XXXX"); return b }, true},
	}
	for i := 1; i < 16; i++ { // bit flips spread over the whole object
		pos := n * i / 16
		damages = append(damages, damage{fmt.Sprintf("bit flip at %d/16", i), func(b []byte) []byte { b[pos] ^= 0x10; return b }, false})
	}
	reported := 0
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			if err := os.WriteFile(obj, d.fn(append([]byte(nil), orig...)), 0o644); err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(obj, orig, 0o644)
			e := openWithCold(t, dir, storeURL)
			defer e.Close(context.Background())
			var got []tiers.Record
			var readErr error
			for it, err := range e.Read(context.Background(), "s", tiers.AllRecords()) {
				if err != nil {
					readErr = err
					break
				}
				got = append(got, it.Record)
			}
			var ce *tiers.CorruptionError
			switch {
			case errors.As(readErr, &ce):
				reported++
			case readErr != nil:
				t.Fatalf("read failed with %v, want a *tiers.CorruptionError", readErr)
			case d.mustFail:
				t.Fatal("damage went unreported")
			default:
				if len(got) != len(want) {
					t.Fatalf("read %d records of %d without an error", len(got), len(want))
				}
				for i := range got {
					if !got[i].Equal(&want[i]) {
						t.Fatalf("record %d silently wrong: %+v, want %+v", i, got[i], want[i])
					}
				}
			}
		})
	}
	if reported < len(damages)/2 {
		t.Fatalf("only %d of %d damages reported", reported, len(damages))
	}
}

var _ = time.Second

// TestOffloadWhileMinIOIsDown: with the store stopped an offload fails
// promptly with cold.ErrStoreUnavailable, the warm segment stays placed and
// readable, ingest goes on, and once the store is back a retry succeeds with
// exactly one object.
func TestOffloadWhileMinIOIsDown(t *testing.T) {
	for _, driver := range []string{"minio", "aws"} {
		t.Run(driver, func(t *testing.T) {
			m := testenv.StartDedicatedMinIO(t)
			storeURL := m.URL(driver)
			creds.Store(storeURL, objstore.Options{AccessKey: m.AccessKey, SecretKey: m.SecretKey})
			dir := t.TempDir()
			e := openWithCold(t, dir, storeURL)
			defer e.Close(context.Background())
			want := fill(t, e, "s", 300)
			if err := e.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			first := sealedSegments(t, e, "s")[0]

			m.Stop()
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_, err := e.Offload(ctx, "s", first.Base, false)
			cancel()
			if !errors.Is(err, cold.ErrStoreUnavailable) {
				t.Fatalf("offload with the store down: %v, want ErrStoreUnavailable", err)
			}
			t.Logf("failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
			seg, err := e.catalog.Segment(context.Background(), "s", first.Base)
			if err != nil || seg.Placements != tiers.Of(tiers.Warm) {
				t.Fatalf("after a failed offload: %v %v, want warm only", seg.Placements, err)
			}
			if _, err := os.Stat(e.warm.Path("s", first.Base)); err != nil {
				t.Fatalf("warm file touched: %v", err)
			}
			more := fill(t, e, "s", 20) // ingest goes on; Append set the offsets
			want = append(want, more...)
			wantRecords(t, readAll(t, e, "s", tiers.AllRecords()), want)

			m.Restart()
			if seg, err = e.Offload(context.Background(), "s", first.Base, false); err != nil || seg.Placements != tiers.Of(tiers.Cold) {
				t.Fatalf("offload after restart: %v %v", seg.Placements, err)
			}
			if keys := listObjects(t, storeURL); len(keys) != 1 {
				t.Fatalf("objects after the retry: %v, want exactly one", keys)
			}
		})
	}
}

// TestReadsDuringMoves: readers that read the whole stream while its
// segments move to cold (their warm files removed under them) always get
// every record, identical, in order.
func TestReadsDuringMoves(t *testing.T) {
	dir, storeURL := t.TempDir(), coldStores[0].url(t)
	// Nothing resident, so reads go to warm and cold.
	e := open(t, dir, func(o *Options) { o.Cold = openCold(t, storeURL); o.HotResidency = time.Millisecond })
	defer e.Close(context.Background())
	want := fill(t, e, "s", 1000)
	if err := e.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	e.Flush(context.Background()) // evicts by residency
	segs := sealedSegments(t, e, "s")
	for _, s := range segs {
		if s.Placements.Has(tiers.Hot) {
			t.Fatalf("segment %d still resident; the test needs reads from warm and cold", s.Base)
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	reads := 0
	var mu sync.Mutex
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				var got []tiers.Record
				for it, err := range e.Read(context.Background(), "s", tiers.AllRecords()) {
					if err != nil {
						t.Errorf("read during moves: %v", err)
						return
					}
					got = append(got, it.Record)
				}
				if len(got) != len(want) {
					t.Errorf("read %d records during moves, want %d", len(got), len(want))
					return
				}
				for i := range got {
					if !got[i].Equal(&want[i]) {
						t.Errorf("record %d differs during moves", i)
						return
					}
				}
				mu.Lock()
				reads++
				mu.Unlock()
			}
		}()
	}
	for _, s := range segs {
		if _, err := e.Offload(context.Background(), "s", s.Base, false); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	if reads == 0 {
		t.Fatal("no read completed while segments moved")
	}
}

// TestOpenSettlesInterruptedUploads: a crash after the upload intent was
// recorded is settled at start-up: with the object written, the move is
// committed (cold added, warm kept, one object); without it, rolled back.
func TestOpenSettlesInterruptedUploads(t *testing.T) {
	dir, storeURL := t.TempDir(), coldStores[0].url(t)
	e := openWithCold(t, dir, storeURL)
	want := fill(t, e, "s", 300)
	if err := e.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	segs := sealedSegments(t, e, "s")
	ctx := context.Background()
	written, notWritten := segs[0], segs[1]
	for _, s := range []SegmentInfo{written, notWritten} {
		if err := e.catalog.PutIntent(ctx, catalog.Intent{Stream: "s", Base: s.Base, Kind: catalog.IntentUpload, Key: cold.ObjectKey(s.SegmentMeta)}); err != nil {
			t.Fatal(err)
		}
	}
	r, err := e.warm.Acquire("s", written.Base)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.cold.Upload(ctx, written.SegmentMeta, r.Scan(tiers.AllRecords()))
	r.Release()
	if err != nil { // then the crash
		t.Fatal(err)
	}
	e.Close(ctx)

	e = openWithCold(t, dir, storeURL)
	defer e.Close(ctx)
	if in, err := e.catalog.Intents(ctx); err != nil || len(in) != 0 {
		t.Fatalf("intents left after start-up: %+v %v", in, err)
	}
	m, _ := e.catalog.Segment(ctx, "s", written.Base)
	if m.Placements != tiers.Of(tiers.Warm, tiers.Cold) || m.ColdBytes <= 0 {
		t.Fatalf("interrupted upload with its object: %v, %d cold bytes; want warm+cold", m.Placements, m.ColdBytes)
	}
	m, _ = e.catalog.Segment(ctx, "s", notWritten.Base)
	if m.Placements != tiers.Of(tiers.Warm) {
		t.Fatalf("interrupted upload without its object: %v, want warm", m.Placements)
	}
	if keys := listObjects(t, storeURL); len(keys) != 1 {
		t.Fatalf("objects %v, want exactly one", keys)
	}
	got := readAll(t, e, "s", tiers.AllRecords())
	if len(got) != len(want) {
		t.Fatalf("read %d, want %d", len(got), len(want))
	}
}

func TestFailedOffloadRecordsItsError(t *testing.T) {
	m := testenv.StartDedicatedMinIO(t)
	storeURL := m.URL("minio")
	creds.Store(storeURL, objstore.Options{AccessKey: m.AccessKey, SecretKey: m.SecretKey})
	e := openWithCold(t, t.TempDir(), storeURL)
	defer e.Close(context.Background())
	fill(t, e, "s", 100)
	e.Flush(context.Background())
	base := sealedSegments(t, e, "s")[0].Base
	ctx := context.Background()
	m.Stop()
	if _, err := e.Offload(ctx, "s", base, false); err == nil {
		t.Fatal("offload with the store down succeeded")
	}
	f, ok, err := e.catalog.LastError(ctx, "s", base)
	if err != nil || !ok || !strings.Contains(f.Err, "unavailable") {
		t.Fatalf("last error after a failed offload: %+v %v %v", f, ok, err)
	}
	m.Restart()
	if _, err := e.Offload(ctx, "s", base, false); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := e.catalog.LastError(ctx, "s", base); ok {
		t.Fatal("the last error survived a successful offload")
	}
}
