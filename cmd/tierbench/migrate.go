package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/spf13/cobra"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/cold/pqfile"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/migrator"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tiers"
	"github.com/tierd/tierd/warm"
)

type migrateFlags struct {
	endpoint    string
	bucket      string
	dir         string
	mib         int
	streams     int
	segmentMiB  int
	concurrency string
	level       int
	runs        int
	sample      int
	output      string
}

func newMigrateCmd() *cobra.Command {
	var f migrateFlags
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Migrator throughput (warm → cold upload, then drop-warm) vs. plain zstd and a raw PUT",
		Long: `migrate appends --mib MiB of trading-like records across --streams streams
into an engine (wal.sync always, --segment-mib segments), flushes so every
segment is warm, and keeps that data directory as a template. Each run then,
for every --concurrency, opens an engine on a copy of the template (warm
files hard-linked) with a cold tier on a fresh prefix and times:
  upload     a migrator run (policy warm.max_age 1s, the clock a year ahead) that
             converts, verifies, uploads and commits every segment (warm kept)
  drop-warm  a second migrator run, which drops every warm copy
beside baselines taken in the same run:
  zstd       klauspost zstd EncodeAll of the same warm segment files, same level,
             over the same number of goroutines
  raw PUT    one objstore Put of a file of random bytes as large as all the warm
             segment files together, through the same bucket API
and, on every --sample'th segment, single-threaded: pqfile.Write to a spool file
(conversion) and pqfile.Open+Verify of it (local verify-read), to split the
upload run's time. The cold store is the MinIO/S3 at --endpoint (credentials
from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or a file store in the
scratch directory without --endpoint. Medians over --runs; ratios are medians
of per-run ratios.`,
		Example: "  tierbench migrate                      # file store\n" +
			"  AWS_ACCESS_KEY_ID=tierd AWS_SECRET_ACCESS_KEY=tierd-secret tierbench migrate --endpoint http://127.0.0.1:9000",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMigrate(cmd.Context(), cmd.OutOrStdout(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.endpoint, "endpoint", "", "MinIO/S3 endpoint, e.g. http://127.0.0.1:9000 (default: a file store in the scratch directory)")
	fl.StringVar(&f.bucket, "bucket", "tierbench", "bucket to use with --endpoint (created if missing)")
	fl.StringVar(&f.dir, "dir", "", "scratch directory on the disk to measure (default: a temp dir)")
	fl.IntVar(&f.mib, "mib", 256, "MiB of records to append (encoded size, about the warm bytes)")
	fl.IntVar(&f.streams, "streams", 4, "streams the records are spread over")
	fl.IntVar(&f.segmentMiB, "segment-mib", 4, "segment.max_bytes in MiB")
	fl.StringVar(&f.concurrency, "concurrency", "1,2,4", "migrator concurrencies to measure")
	fl.IntVar(&f.level, "level", 3, "zstd level for Parquet and the baseline")
	fl.IntVar(&f.runs, "runs", 5, "repetitions; medians are reported")
	fl.IntVar(&f.sample, "sample", 8, "time conversion and local verify on every n-th segment (0: skip)")
	fl.StringVarP(&f.output, "output", "o", "table", "table or json")
	return cmd
}

// recordGen streams trading-like records (50 instruments as keys, rising
// ts with jitter, a tag, a ~100-byte JSON value) without holding them all
// in memory; offsets are left for the engine to assign.
type recordGen struct {
	rng *mrand.Rand
	ts  int64
	n   int
}

func newRecordGen(seed uint64) *recordGen {
	return &recordGen{rng: mrand.New(mrand.NewPCG(seed, 11)), ts: time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC).UnixNano()}
}

var (
	benchSides = []string{"B", "S"}
	benchTags  = [][]string{{"order"}, {"fill"}, {"cancel"}}
)

func (g *recordGen) batch(n int) []tiers.Record {
	out := make([]tiers.Record, n)
	for i := range out {
		g.ts += int64(g.rng.IntN(20_000))
		inst := fmt.Sprintf("IF24%02d", g.rng.IntN(50))
		v := fmt.Sprintf(`{"px":%.1f,"qty":%d,"side":%q,"order_id":%d,"acct":"A%05d","venue":"CFFEX"}`,
			3500+g.rng.Float64()*50, 1+g.rng.IntN(20), benchSides[g.rng.IntN(2)], 1_000_000+g.n, g.rng.IntN(3000))
		out[i] = tiers.Record{TS: g.ts, Key: inst, Tags: benchTags[g.rng.IntN(3)], Value: []byte(v)}
		g.n++
	}
	return out
}

// timedBucket adds up the time spent in each kind of store call, so the
// upload run can be split into upload (Put) and the checks around it (Stat
// and the footer reads of the stored object).
type timedBucket struct {
	objstore.Bucket
	put, stat, get atomic.Int64 // nanoseconds
}

func (b *timedBucket) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	t0 := time.Now()
	defer func() { b.put.Add(int64(time.Since(t0))) }()
	return b.Bucket.Put(ctx, key, r, size)
}

func (b *timedBucket) Stat(ctx context.Context, key string) (objstore.Attrs, error) {
	t0 := time.Now()
	defer func() { b.stat.Add(int64(time.Since(t0))) }()
	return b.Bucket.Stat(ctx, key)
}

// timedBody counts a ranged read until its body is closed.
type timedBody struct {
	io.ReadCloser
	b  *timedBucket
	t0 time.Time
}

func (t *timedBody) Close() error {
	err := t.ReadCloser.Close()
	t.b.get.Add(int64(time.Since(t.t0)))
	return err
}

func (b *timedBucket) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	t0 := time.Now()
	rc, err := b.Bucket.GetRange(ctx, key, off, length)
	if err != nil {
		b.get.Add(int64(time.Since(t0)))
		return nil, err
	}
	return &timedBody{ReadCloser: rc, b: b, t0: t0}, nil
}

func (b *timedBucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	t0 := time.Now()
	rc, err := b.Bucket.Get(ctx, key)
	if err != nil {
		b.get.Add(int64(time.Since(t0)))
		return nil, err
	}
	return &timedBody{ReadCloser: rc, b: b, t0: t0}, nil
}

// migMeasure is one migrator measurement at one concurrency.
type migMeasure struct {
	c                  int
	upload, drop       time.Duration
	put, stat, get     time.Duration // summed over workers
	coldBytes          int64
	zstd               time.Duration // baseline, same concurrency
	zstdBytes          int64
	uploaded, dropped  int
	uploadErr, dropErr int
}

// migRun is one repetition: a raw PUT, the sampled breakdown and a
// measurement per concurrency.
type migRun struct {
	rawPut     time.Duration
	convert    time.Duration // on the sampled segments
	verify     time.Duration
	sampleWarm int64
	sampleCold int64
	ms         map[int]*migMeasure
}

// migTemplate is the data directory every measurement starts from.
type migTemplate struct {
	dir       string
	segs      []tiers.SegmentMeta
	warmBytes int64
	records   int64
	ingest    time.Duration
}

func parseInts(s, flag string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("--%s: bad value %q", flag, p)
		}
		out = append(out, n)
	}
	return out, nil
}

func runMigrate(ctx context.Context, out io.Writer, f migrateFlags) error {
	concs, err := parseInts(f.concurrency, "concurrency")
	if err != nil {
		return err
	}
	if f.runs <= 0 || f.mib <= 0 || f.streams <= 0 || f.segmentMiB <= 0 {
		return errors.New("--runs, --mib, --streams and --segment-mib must be positive")
	}
	dir := f.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "tierbench-migrate-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return err
	}

	// storeURL names a fresh prefix (a directory for the file store) per
	// measurement, so no upload finds an object already there.
	storeURL := func(prefix string) string {
		return (&url.URL{Scheme: "file", Path: filepath.Join(dir, "cold", prefix)}).String()
	}
	storeName := "file store (" + filepath.Join(dir, "cold") + ")"
	if f.endpoint != "" {
		if err := ensureBucket(ctx, f.endpoint, f.bucket); err != nil {
			return err
		}
		storeURL = func(prefix string) string {
			return fmt.Sprintf("s3://%s/migrate/%s?endpoint=%s&region=us-east-1&driver=minio", f.bucket, prefix, url.QueryEscape(f.endpoint))
		}
		storeName = "MinIO " + f.endpoint
	}

	tpl, err := buildTemplate(ctx, filepath.Join(dir, "template"), f)
	if err != nil {
		return fmt.Errorf("template: %w", err)
	}
	// The baselines' input: the warm files themselves, read once.
	var files [][]byte
	for _, m := range tpl.segs {
		b, err := os.ReadFile(filepath.Join(tpl.dir, "warm", m.Stream, fmt.Sprintf("%020d.seg", m.Base)))
		if err != nil {
			return err
		}
		files = append(files, b)
	}
	rawPath := filepath.Join(dir, "raw-put.bin")
	if err := writeRandomFile(rawPath, tpl.warmBytes); err != nil {
		return err
	}
	defer os.Remove(rawPath)
	ws, err := warm.Open(filepath.Join(tpl.dir, "warm"), warm.Options{})
	if err != nil {
		return err
	}
	defer ws.Close()

	var runs []migRun
	for run := 0; run < f.runs; run++ {
		r := migRun{ms: map[int]*migMeasure{}}
		if r.rawPut, err = rawPut(ctx, storeURL(fmt.Sprintf("raw-r%d", run)), rawPath, tpl.warmBytes); err != nil {
			return fmt.Errorf("raw PUT: %w", err)
		}
		if f.sample > 0 {
			if err := sampleBreakdown(ctx, ws, tpl.segs, f, filepath.Join(dir, "spool"), &r); err != nil {
				return fmt.Errorf("breakdown: %w", err)
			}
		}
		// Rotate the order of the concurrencies from run to run, so a
		// drift of the machine does not always favour the same one.
		order := slices.Clone(concs)
		k := run % len(order)
		order = append(order[k:], order[:k]...)
		for _, c := range order {
			m := &migMeasure{c: c}
			m.zstd, m.zstdBytes, err = zstdBaseline(files, c, f.level)
			if err != nil {
				return err
			}
			if err := migrateOnce(ctx, tpl, f, c, filepath.Join(dir, fmt.Sprintf("r%d-c%d", run, c)), storeURL(fmt.Sprintf("r%d-c%d", run, c)), m); err != nil {
				return fmt.Errorf("run %d, concurrency %d: %w", run+1, c, err)
			}
			r.ms[c] = m
		}
		runs = append(runs, r)
	}
	return reportMigrate(out, f, storeName, tpl, concs, runs)
}

func ensureBucket(ctx context.Context, endpoint, bucket string) error {
	raw, err := minio.New(trimScheme(endpoint), &minio.Options{Creds: credentials.NewEnvAWS(), Secure: isHTTPS(endpoint)})
	if err != nil {
		return err
	}
	ok, err := raw.BucketExists(ctx, bucket)
	if err != nil {
		return fmt.Errorf("bucket %s at %s: %w (are AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set?)", bucket, endpoint, err)
	}
	if !ok {
		return raw.MakeBucket(ctx, bucket, minio.MakeBucketOptions{})
	}
	return nil
}

// buildTemplate appends the records, flushes every segment warm and closes
// the engine, leaving a data directory to copy.
func buildTemplate(ctx context.Context, dir string, f migrateFlags) (migTemplate, error) {
	tpl := migTemplate{dir: dir}
	eng, err := engine.Open(ctx, engine.Options{
		DataDir:         dir,
		WALSync:         tiers.SyncAlways,
		WALSegmentBytes: 8 << 20,
		SegmentMaxBytes: int64(f.segmentMiB) << 20,
		SegmentMaxAge:   time.Hour,
	})
	if err != nil {
		return tpl, err
	}
	defer func() {
		if eng != nil {
			eng.Close(ctx)
		}
	}()
	per := (int64(f.mib) << 20) / int64(f.streams)
	var (
		wg      sync.WaitGroup
		errs    = make([]error, f.streams)
		records atomic.Int64
	)
	t0 := time.Now()
	for s := 0; s < f.streams; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gen := newRecordGen(uint64(7 + s))
			stream := fmt.Sprintf("trades-%d", s)
			for n := int64(0); n < per; {
				b := gen.batch(1000)
				for i := range b {
					n += int64(tiers.EncodedLen(&b[i]))
				}
				for {
					_, err := eng.Append(ctx, stream, b)
					if errors.Is(err, tiers.ErrBackpressure) {
						time.Sleep(10 * time.Millisecond)
						continue
					}
					if err != nil {
						errs[s] = err
						return
					}
					break
				}
				records.Add(int64(len(b)))
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return tpl, err
	}
	if err := eng.Flush(ctx); err != nil {
		return tpl, err
	}
	tpl.ingest = time.Since(t0)
	tpl.records = records.Load()
	segs, err := eng.PlanInput(ctx, "")
	if err != nil {
		return tpl, err
	}
	for _, s := range segs {
		if !s.Placements.Has(tiers.Warm) {
			return tpl, fmt.Errorf("segment %s/%d is not warm after flush", s.Stream, s.Base)
		}
		tpl.segs = append(tpl.segs, s.SegmentMeta)
		tpl.warmBytes += s.Bytes
	}
	err = eng.Close(ctx)
	eng = nil
	return tpl, err
}

// copyTemplate makes dst a copy of the template: warm files hard-linked
// (they are immutable; a drop unlinks only dst's name), the rest copied.
func copyTemplate(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if strings.HasSuffix(p, ".seg") {
			return os.Link(p, to)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
}

// migrateOnce times an upload run and a drop-warm run of every segment of a
// fresh copy of the template at concurrency c.
func migrateOnce(ctx context.Context, tpl migTemplate, f migrateFlags, c int, dir, store string, m *migMeasure) error {
	defer os.RemoveAll(dir)
	if err := copyTemplate(tpl.dir, dir); err != nil {
		return err
	}
	b, err := objstore.Open(ctx, store, objstore.Options{})
	if err != nil {
		return err
	}
	tb := &timedBucket{Bucket: b}
	tier, err := cold.New(cold.Options{Bucket: tb, Level: f.level, SpoolDir: filepath.Join(dir, "cold-spool")})
	if err != nil {
		b.Close()
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "cold-spool"), 0o755); err != nil {
		tier.Close()
		return err
	}
	eng, err := engine.Open(ctx, engine.Options{
		DataDir:         dir,
		WALSync:         tiers.SyncAlways,
		WALSegmentBytes: 8 << 20,
		SegmentMaxBytes: int64(f.segmentMiB) << 20,
		SegmentMaxAge:   time.Hour,
		Cold:            tier,
	})
	if err != nil {
		tier.Close()
		return err
	}
	defer eng.Close(ctx)
	defer cleanStore(ctx, store)

	cfg := policy.Default()
	cfg.DataDir = dir
	cfg.Cold.Store = store
	cfg.Cold.Compression.Level = f.level
	cfg.Policies = []policy.Policy{{Name: "bench", Streams: []string{"*"}, WarmMaxAge: time.Second}}
	future := 365 * 24 * time.Hour
	mig, err := migrator.New(eng, migrator.Options{
		Config:      cfg,
		Concurrency: c,
		Now:         func() time.Time { return time.Now().Add(future) },
	})
	if err != nil {
		return err
	}
	count := func(rep migrator.Report, kind policy.ActionKind) (ok, failed int, first string) {
		for _, r := range rep.Results {
			switch {
			case r.Action.Kind != kind:
				failed++
				first = firstOf(first, "unexpected "+r.Action.String())
			case r.Err != "":
				failed++
				first = firstOf(first, r.Err)
			default:
				ok++
			}
		}
		return ok, failed, first
	}

	t0 := time.Now()
	rep, err := mig.Run(ctx, "", false)
	m.upload = time.Since(t0)
	if err != nil {
		return err
	}
	var first string
	m.uploaded, m.uploadErr, first = count(rep, policy.Upload)
	if m.uploaded != len(tpl.segs) {
		return fmt.Errorf("upload run: %d of %d segments uploaded, %d failed (%s)", m.uploaded, len(tpl.segs), m.uploadErr, first)
	}
	m.put, m.stat, m.get = time.Duration(tb.put.Load()), time.Duration(tb.stat.Load()), time.Duration(tb.get.Load())

	segs, err := eng.PlanInput(ctx, "")
	if err != nil {
		return err
	}
	for _, s := range segs {
		if !s.Placements.Has(tiers.Cold) || s.ColdBytes <= 0 {
			return fmt.Errorf("segment %s/%d not cold after the upload run (%s)", s.Stream, s.Base, s.Placements)
		}
		m.coldBytes += s.ColdBytes
	}

	t0 = time.Now()
	rep, err = mig.Run(ctx, "", false)
	m.drop = time.Since(t0)
	if err != nil {
		return err
	}
	m.dropped, m.dropErr, first = count(rep, policy.DropWarm)
	if m.dropped != len(tpl.segs) {
		return fmt.Errorf("drop-warm run: %d of %d warm copies dropped, %d failed (%s)", m.dropped, len(tpl.segs), m.dropErr, first)
	}
	return nil
}

func firstOf(first, s string) string {
	if first == "" {
		return s
	}
	return first
}

// cleanStore removes every object of a measurement's prefix.
func cleanStore(ctx context.Context, store string) {
	if u, err := url.Parse(store); err == nil && u.Scheme == "file" {
		os.RemoveAll(u.Path)
		return
	}
	b, err := objstore.Open(ctx, store, objstore.Options{})
	if err != nil {
		return
	}
	defer b.Close()
	var keys []string
	for a, err := range b.List(ctx, "") {
		if err != nil {
			break
		}
		keys = append(keys, a.Key)
	}
	for _, k := range keys {
		b.Delete(ctx, k)
	}
}

// zstdBaseline compresses every warm file with EncodeAll over c goroutines,
// each with its own single-threaded encoder.
func zstdBaseline(files [][]byte, c, level int) (time.Duration, int64, error) {
	encs := make([]*zstd.Encoder, c)
	for i := range encs {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)), zstd.WithEncoderConcurrency(1))
		if err != nil {
			return 0, 0, err
		}
		defer e.Close()
		encs[i] = e
	}
	var (
		next  atomic.Int64
		total atomic.Int64
		wg    sync.WaitGroup
	)
	t0 := time.Now()
	for i := range encs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var dst []byte
			for {
				j := int(next.Add(1) - 1)
				if j >= len(files) {
					return
				}
				dst = encs[i].EncodeAll(files[j], dst[:0])
				total.Add(int64(len(dst)))
			}
		}()
	}
	wg.Wait()
	return time.Since(t0), total.Load(), nil
}

func writeRandomFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := min(left, int64(len(buf)))
		rand.Read(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		left -= n
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// rawPut puts the random file as one object through the objstore API.
func rawPut(ctx context.Context, store, path string, size int64) (time.Duration, error) {
	b, err := objstore.Open(ctx, store, objstore.Options{})
	if err != nil {
		return 0, err
	}
	defer b.Close()
	defer cleanStore(ctx, store)
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	t0 := time.Now()
	if err := b.Put(ctx, "raw.bin", f, size); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// sampleBreakdown converts every f.sample'th template segment to a spool
// file as cold.Tier.Upload does, and verifies it by decoding it again,
// timing the two steps apart.
func sampleBreakdown(ctx context.Context, ws *warm.Store, segs []tiers.SegmentMeta, f migrateFlags, spool string, r *migRun) error {
	if err := os.MkdirAll(spool, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(spool)
	for i := 0; i < len(segs); i += f.sample {
		m := segs[i]
		rd, err := ws.Acquire(m.Stream, m.Base)
		if err != nil {
			return err
		}
		sf, err := os.CreateTemp(spool, "sample-*.parquet")
		if err != nil {
			rd.Release()
			return err
		}
		t0 := time.Now()
		info, err := pqfile.Write(ctx, sf, m.Stream, rd.Scan(tiers.AllRecords()), pqfile.Options{Level: f.level, SealedAt: m.SealedAt})
		r.convert += time.Since(t0)
		rd.Release()
		if err == nil && info.Meta.Digest != m.Digest {
			err = fmt.Errorf("sample %s/%d: digest mismatch", m.Stream, m.Base)
		}
		if err == nil {
			t0 = time.Now()
			var pr *pqfile.Reader
			if pr, err = pqfile.Open(ctx, sf, info.Meta.Bytes, sf.Name()); err == nil {
				err = pr.Verify(ctx)
			}
			r.verify += time.Since(t0)
		}
		sf.Close()
		os.Remove(sf.Name())
		if err != nil {
			return err
		}
		r.sampleWarm += m.Bytes
		r.sampleCold += info.Meta.Bytes
	}
	return nil
}

// stat is the median, min and max of one figure over the runs.
type stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}
