// Package cold is tierd's cold tier: sealed segments as zstd-compressed
// Parquet objects (cold/pqfile) in an object store (cold/objstore). It
// converts and uploads segments, verifies what it uploaded, and serves reads
// through ranged GETs and a bounded block cache, fetching only the row groups
// a query needs.
package cold

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"os"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/cold/colproj"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/cold/pqfile"
	"github.com/tierd/tierd/internal/failpoint"
	"github.com/tierd/tierd/tiers"
)

// DefaultCacheBytes is the default of Options.CacheBytes (policy.Default
// takes cold.cache_bytes' from it).
const DefaultCacheBytes = 64 << 20

// Options configures a Tier. Zero fields take defaults.
type Options struct {
	Bucket        objstore.Bucket // required; any key prefix is the bucket's business
	Level         int             // zstd level (default pqfile.DefaultLevel, 3)
	RowGroupRows  int             // default pqfile's
	RowGroupBytes int64           // default pqfile's
	CacheBytes    int64           // read cache (default DefaultCacheBytes, 64 MiB)
	SpoolDir      string          // local directory for files being uploaded (default os.TempDir())
	// Columns returns the typed columns of a stream's cold files
	// (policy.Config.ColumnsFor), asked at each upload; nil means none.
	Columns    func(stream string) []colproj.Column
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Tier is the cold tier over one bucket.
type Tier struct {
	opts    Options
	cache   *blockCache
	fetched atomic.Int64
	misses  *prometheus.CounterVec // tierd_cold_column_misses_total
}

// FetchedBytes is how many bytes reads have fetched from the store since
// the Tier was created (cache hits cost nothing): what pruning saves shows
// here.
func (t *Tier) FetchedBytes() int64 { return t.fetched.Load() }

// ErrStoreUnavailable wraps a failure of the object store itself (not a
// missing object): the operation may succeed when the store is back.
var ErrStoreUnavailable = errors.New("cold: object store unavailable")

// storeErr classifies an object store error: not-found stays as it is, and
// so does the caller's own cancellation (a client gone, a shutdown: the
// store did not fail); anything else, a timeout included, is the store
// failing.
func storeErr(op, key string, err error) error {
	if errors.Is(err, objstore.ErrNotFound) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("cold: %s %s: %w", op, key, err)
	}
	return fmt.Errorf("%w: %s %s: %w", ErrStoreUnavailable, op, key, err)
}

// ErrDigestMismatch reports a converted or uploaded segment whose recomputed
// digest differs from the catalog's: the upload is not committed.
var ErrDigestMismatch = errors.New("cold: digest mismatch")

// New returns a Tier over opts.Bucket.
func New(opts Options) (*Tier, error) {
	if opts.Bucket == nil {
		return nil, errors.New("cold: Options.Bucket is nil")
	}
	if opts.Level == 0 {
		opts.Level = pqfile.DefaultLevel
	}
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = DefaultCacheBytes
	}
	if opts.SpoolDir == "" {
		opts.SpoolDir = os.TempDir()
	}
	if err := os.MkdirAll(opts.SpoolDir, 0o755); err != nil {
		return nil, fmt.Errorf("cold: spool dir: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Tier{opts: opts, cache: newBlockCache(opts.CacheBytes, opts.Registerer), misses: newColumnMisses(opts.Registerer)}, nil
}

// Close closes the bucket.
func (t *Tier) Close() error { return t.opts.Bucket.Close() }

// Health reports whether the store answers (objstore.WithBreaker): after a
// call times out it is unavailable, and every call fails fast, until a
// probe is answered. A bucket without a breaker is always available.
func (t *Tier) Health() objstore.Health {
	h, ok := objstore.HealthOf(t.opts.Bucket)
	if !ok {
		return objstore.Health{Available: true}
	}
	return h
}

// CheckStore asks the store whether tierd can use it (objstore.Check): an
// error wraps objstore.ErrBucketNotFound, objstore.ErrAccessDenied or
// ErrStoreUnavailable (with objstore.ErrTimeout when it did not answer). A
// timeout also makes the store unavailable (Health).
func (t *Tier) CheckStore(ctx context.Context) error {
	if err := objstore.Check(ctx, t.opts.Bucket); err != nil {
		return storeErr("check", "the store", err)
	}
	return nil
}

func (t *Tier) pqOptions() pqfile.Options {
	return pqfile.Options{Level: t.opts.Level, RowGroupRows: t.opts.RowGroupRows, RowGroupBytes: t.opts.RowGroupBytes}
}

// Upload converts a segment's records to Parquet, uploads it under
// ObjectKey(m) and verifies it: the digest recomputed while writing and
// again by decoding the written file must equal m.Digest, and the stored
// object must have the written size and metadata. It is idempotent: an
// object already there with the right metadata is kept, and re-running an
// interrupted upload ends in exactly one object (the key is deterministic
// and a Put is atomic). It returns the object's size. It does not touch the
// catalog: committing the placement is the caller's step.
//
// The stream's typed columns (Options.Columns, asked at each upload) are
// projected from each JSON value into the file (cold/colproj); once the
// upload succeeded, the values each column got NULL for although they were
// not JSON null count in tierd_cold_column_misses_total{column}.
func (t *Tier) Upload(ctx context.Context, m tiers.SegmentMeta, records iter.Seq2[tiers.Record, error]) (int64, error) {
	key := ObjectKey(m)
	size, err := t.checkObject(ctx, key, m)
	switch {
	case err == nil:
		t.opts.Logger.Info("cold object already uploaded", "key", key)
		return size, nil
	case errors.Is(err, objstore.ErrNotFound):
		if key != LegacyObjectKey(m) {
			// Uploaded by a release that wrote the name raw: keep it.
			if size, err := t.checkObject(ctx, LegacyObjectKey(m), m); err == nil {
				t.opts.Logger.Info("cold object already uploaded at its legacy key", "key", LegacyObjectKey(m))
				return size, nil
			}
		}
	case errors.Is(err, ErrStoreUnavailable), ctx.Err() != nil:
		// The store did not answer (a timeout, a refused call): nothing is
		// known of the object, so it is neither kept nor replaced now.
		return 0, err
	default:
		t.opts.Logger.Warn("replacing cold object that does not match the catalog", "key", key, "err", err)
	}
	return t.put(ctx, key, m, records)
}

// put converts records into a Parquet object of the current format in the
// spool, verifies it there, puts it at key (replacing what is there) and
// verifies the stored object against m.
func (t *Tier) put(ctx context.Context, key string, m tiers.SegmentMeta, records iter.Seq2[tiers.Record, error]) (int64, error) {
	f, err := os.CreateTemp(t.opts.SpoolDir, "upload-*.parquet")
	if err != nil {
		return 0, fmt.Errorf("cold: spool: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	popts := t.pqOptions()
	popts.SealedAt = m.SealedAt
	var proj *projection
	if t.opts.Columns != nil {
		if proj, err = newProjection(m.Stream, t.opts.Columns(m.Stream)); err != nil {
			return 0, err
		}
		if proj != nil {
			proj.options(&popts)
		}
	}
	info, err := pqfile.Write(ctx, f, m.Stream, records, popts)
	if err != nil {
		return 0, fmt.Errorf("cold: convert %s: %w", key, err)
	}
	if err := sameSegment(info.Meta, m); err != nil {
		return 0, fmt.Errorf("cold: convert %s: %w", key, err)
	}
	size := info.Meta.Bytes
	// Verify what was written by decoding it again, before anything leaves
	// the machine.
	r, err := pqfile.Open(ctx, f, size, f.Name())
	if err == nil {
		err = r.Verify(ctx)
	}
	if err != nil {
		return 0, fmt.Errorf("cold: verify %s before upload: %w", key, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("cold: spool: %w", err)
	}
	if err := t.opts.Bucket.Put(ctx, key, f, size); err != nil {
		return 0, storeErr("upload", key, err)
	}
	t.cache.drop(key)
	if err := failpoint.Inject(failpoint.MoveAfterWrite); err != nil {
		return 0, err
	}
	got, err := t.checkObject(ctx, key, m)
	if err != nil {
		return 0, fmt.Errorf("cold: verify %s after upload: %w", key, err)
	}
	if got != size {
		return 0, fmt.Errorf("cold: verify %s after upload: stored %d bytes, wrote %d", key, got, size)
	}
	if proj != nil {
		proj.count(t.misses, info.Meta.Count)
	}
	return size, nil
}

// sameSegment checks that a file's metadata (what was written, or what an
// object's footer says) is the catalogued segment: the same stream, offset
// range, count, ts range and digest.
func sameSegment(got, want tiers.SegmentMeta) error {
	if got.Stream != want.Stream || got.Base != want.Base || got.Last != want.Last || got.Count != want.Count ||
		got.MinTS != want.MinTS || got.MaxTS != want.MaxTS || got.Digest != want.Digest {
		return fmt.Errorf("%w: file holds %s [%d, %d] ×%d ts %d..%d %s, catalog has %s [%d, %d] ×%d ts %d..%d %s",
			ErrDigestMismatch, got.Stream, got.Base, got.Last, got.Count, got.MinTS, got.MaxTS, got.Digest,
			want.Stream, want.Base, want.Last, want.Count, want.MinTS, want.MaxTS, want.Digest)
	}
	return nil
}

// openSegment opens the segment's object for a read or a verify and checks
// its footer against the catalog's m: an object that holds anything else is
// damaged (or misplaced), never served.
func (t *Tier) openSegment(ctx context.Context, m tiers.SegmentMeta) (*pqfile.Reader, error) {
	r, _, key, err := t.openObject(ctx, m)
	if err != nil {
		return nil, err
	}
	if err := sameSegment(r.Meta(), m); err != nil {
		return nil, fmt.Errorf("cold: %w", &tiers.CorruptionError{Path: key, Offset: -1, Err: err})
	}
	return r, nil
}

// Check reports whether the segment's object is in the store (at
// ObjectKey, or at LegacyObjectKey when ObjectKey has none) and is the
// catalogued segment (by its footer metadata), returning its size.
// Recovery uses it to finish an upload a crash interrupted after the Put.
func (t *Tier) Check(ctx context.Context, m tiers.SegmentMeta) (int64, error) {
	r, size, _, err := t.openObject(ctx, m)
	if err != nil {
		return 0, err
	}
	if err := sameSegment(r.Meta(), m); err != nil {
		return 0, err
	}
	return size, nil
}

// openObject opens the segment's object at ObjectKey(m) or, when there is
// none there and the key differs, at LegacyObjectKey(m) (written before
// stream names were encoded), and says which key it opened. When neither
// exists the error is ObjectKey's not-found.
func (t *Tier) openObject(ctx context.Context, m tiers.SegmentMeta) (*pqfile.Reader, int64, string, error) {
	key := ObjectKey(m)
	r, size, err := t.open(ctx, key)
	if legacy := LegacyObjectKey(m); errors.Is(err, objstore.ErrNotFound) && legacy != key {
		lr, lsize, lerr := t.open(ctx, legacy)
		if !errors.Is(lerr, objstore.ErrNotFound) {
			return lr, lsize, legacy, lerr
		}
	}
	return r, size, key, err
}

// checkObject stats the object and reads its footer metadata through the
// cache, returning its size when it is the catalogued segment.
func (t *Tier) checkObject(ctx context.Context, key string, m tiers.SegmentMeta) (int64, error) {
	r, size, err := t.open(ctx, key)
	if err != nil {
		return 0, err
	}
	if err := sameSegment(r.Meta(), m); err != nil {
		return 0, err
	}
	return size, nil
}

func (t *Tier) open(ctx context.Context, key string) (*pqfile.Reader, int64, error) {
	attrs, err := t.opts.Bucket.Stat(ctx, key)
	if err != nil {
		return nil, 0, storeErr("stat", key, err)
	}
	ra := &cachedReaderAt{ctx: ctx, b: t.opts.Bucket, key: key, size: attrs.Size, cache: t.cache, fetched: &t.fetched}
	r, err := pqfile.Open(ctx, ra, attrs.Size, key)
	if err != nil {
		return nil, 0, err
	}
	return r, attrs.Size, nil
}

// Scan yields the segment's records matching q in offset order, fetching
// only the row groups the query needs. The object's footer must describe
// the catalogued segment m (stream, offsets, count, ts range, digest), and
// pqfile checks every row against it before yielding it (see
// docs/format/parquet.md); damage is a *tiers.CorruptionError.
func (t *Tier) Scan(ctx context.Context, m tiers.SegmentMeta, q tiers.Query) iter.Seq2[tiers.Record, error] {
	return func(yield func(tiers.Record, error) bool) {
		r, err := t.openSegment(ctx, m)
		if err != nil {
			yield(tiers.Record{}, err)
			return
		}
		defer func() {
			// A damaged bloom filter costs a read nothing but time (the row
			// group is read instead); say so, as verify will.
			if errs := r.IgnoredBloomFilters(); len(errs) > 0 {
				t.opts.Logger.Warn("cold object has damaged key bloom filters; reads skip them, verify reports them",
					"key", ObjectKey(m), "err", errors.Join(errs...))
			}
		}()
		for rec, err := range r.Scan(ctx, q) {
			if !yield(rec, err) || err != nil {
				return
			}
		}
	}
}

// Verify reads the whole object back and checks it against m: its footer,
// every row and the digest, the offset indexes and the key bloom filters
// (pqfile.Reader.Verify).
func (t *Tier) Verify(ctx context.Context, m tiers.SegmentMeta) error {
	r, err := t.openSegment(ctx, m)
	if err != nil {
		return err
	}
	return r.Verify(ctx)
}

// Delete removes the segment's object, at ObjectKey(m) and at
// LegacyObjectKey(m) when that differs (a missing object is no error).
func (t *Tier) Delete(ctx context.Context, m tiers.SegmentMeta) error {
	keys := []string{ObjectKey(m)}
	if legacy := LegacyObjectKey(m); legacy != keys[0] {
		keys = append(keys, legacy)
	}
	for _, key := range keys {
		t.cache.drop(key)
		if err := t.opts.Bucket.Delete(ctx, key); err != nil {
			return storeErr("delete", key, err)
		}
	}
	return nil
}
