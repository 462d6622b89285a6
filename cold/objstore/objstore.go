// Package objstore is tierd's object store: one small Bucket interface with
// three providers (a local directory, S3 through minio-go, S3 through
// aws-sdk-go-v2) and features layered on top as wrappers (WithPrefix,
// WithDeadlines, WithBreaker, WithMetrics) rather than inside each provider,
// after thanos-io/objstore and pebble's remote.Storage. Callers above this
// package never see which provider they talk to: not-found is always
// ErrNotFound, a store that does not answer in time is always ErrTimeout
// (then ErrUnavailable until it answers again), ranges behave the same, and
// one acceptance suite holds every provider to that.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// Sentinel errors. Every provider maps its own flavour of each to these, so
// callers check them with errors.Is and never with provider-specific codes.
var (
	// ErrNotFound reports a key with no object (Get, GetRange, Stat).
	ErrNotFound = errors.New("objstore: object not found")
	// ErrInvalidKey reports a key no provider may store: empty, absolute,
	// with empty, "." or ".." segments, not UTF-8, or too long. Rejecting
	// them everywhere keeps the file provider inside its root and keeps the
	// providers interchangeable.
	ErrInvalidKey = errors.New("objstore: invalid key")
	// ErrInvalidRange reports a GetRange that starts past the end of the
	// object or has a negative offset.
	ErrInvalidRange = errors.New("objstore: invalid range")
	// ErrSizeMismatch reports a Put whose reader did not yield exactly size
	// bytes; nothing is stored.
	ErrSizeMismatch = errors.New("objstore: size mismatch")
	// ErrInvalidURL reports a store URL Open cannot use.
	ErrInvalidURL = errors.New("objstore: invalid store URL")
	// ErrClosed reports a call on a closed bucket.
	ErrClosed = errors.New("objstore: bucket closed")
	// ErrBucketNotFound reports an S3 bucket that does not exist (never
	// ErrNotFound: a missing bucket is a configuration error, not a
	// missing object).
	ErrBucketNotFound = errors.New("objstore: bucket does not exist")
	// ErrAccessDenied reports credentials the store refused, or a request
	// they do not allow.
	ErrAccessDenied = errors.New("objstore: access denied")
)

// MaxKeyLen is the longest key accepted, the S3 limit.
const MaxKeyLen = 1024

// Attrs describes one stored object.
type Attrs struct {
	Key     string    // the key as the caller named it (relative to any prefix)
	Size    int64     // bytes
	ModTime time.Time // when the object was last written, as the store reports it
}

// Bucket is the object store every provider implements. Keys are
// slash-separated paths (see ValidateKey). Every method that does I/O takes a
// ctx and returns promptly when it is cancelled. Errors name the operation,
// the key and the provider, and wrap the cause with %w.
type Bucket interface {
	// Put stores exactly size bytes read from r under key. It is atomic:
	// concurrent readers see the old object or the whole new one, never a
	// mix, and a failed Put (including a short reader, ErrSizeMismatch)
	// leaves the previous object, if any, in place.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Get streams the whole object. The caller closes the reader.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// GetRange streams length bytes from off; length < 0 means to the end.
	// A range running past the end is cut at the end; a range starting
	// past the end is ErrInvalidRange (off == size gives an empty body).
	GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error)
	// Stat returns the object's attributes.
	Stat(ctx context.Context, key string) (Attrs, error)
	// List yields every object whose key starts with prefix (a plain string
	// prefix, not only a directory), recursively, in byte-wise lexical key
	// order. It stops at the first error, which it yields with zero Attrs.
	List(ctx context.Context, prefix string) iter.Seq2[Attrs, error]
	// Delete removes the object. A missing key is not an error, so deletes
	// can be retried.
	Delete(ctx context.Context, key string) error
	// Close releases the provider's resources.
	Close() error
}

// Options configures Open. The zero value is usable.
type Options struct {
	// Logger receives a line when the store is opened; nil discards it.
	// Failures are returned, not logged: the caller knows their context.
	// Credentials are never logged.
	Logger *slog.Logger
	// Registerer, when set, exports the store metrics (WithMetrics).
	Registerer prometheus.Registerer
	// AccessKey and SecretKey override the environment and the AWS
	// credential chain; meant for tests. Empty means: use the environment.
	AccessKey string
	SecretKey string
	// MaxRetries bounds the attempts of one request against S3, so a store
	// that is down fails within seconds instead of backing off for minutes.
	// 0 means DefaultMaxRetries.
	MaxRetries int
	// Deadlines bound every call (WithDeadlines); zero fields take the
	// defaults (DefaultReadTimeout, DefaultMinBytesPerSecond).
	Deadlines Deadlines
	// ProbeInterval is how often a store that stopped answering is probed
	// (WithBreaker); 0 means DefaultProbeInterval.
	ProbeInterval time.Duration
}

// DefaultMaxRetries is the number of attempts per S3 request when
// Options.MaxRetries is 0.
const DefaultMaxRetries = 3

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

func (o Options) maxRetries() int {
	if o.MaxRetries <= 0 {
		return DefaultMaxRetries
	}
	return o.MaxRetries
}

// Open opens the store a URL names:
//
//	s3://BUCKET/PREFIX?endpoint=http://127.0.0.1:9000&region=us-east-1&driver=minio
//	file:///abs/path
//
// See ParseURL for the rules. PREFIX, when present, is applied with
// WithPrefix; every call gets a deadline (WithDeadlines) and a store that
// stops answering fails fast until it answers again (WithBreaker); a
// non-nil opts.Registerer adds WithMetrics on top, so that the metrics count
// timeouts and fast failures too.
func Open(ctx context.Context, rawURL string, opts Options) (Bucket, error) {
	cfg, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	var b Bucket
	switch {
	case cfg.Scheme == "file":
		b, err = NewFile(cfg.Path)
	case cfg.Driver == DriverAWS:
		b, err = newAWS(ctx, cfg, opts)
	default:
		b, err = newMinio(cfg, opts)
	}
	if err != nil {
		return nil, err
	}
	if cfg.Prefix != "" {
		b = WithPrefix(b, cfg.Prefix)
	}
	b = WithDeadlines(b, opts.Deadlines)
	b = WithBreaker(b, BreakerOptions{ProbeInterval: opts.ProbeInterval, Logger: opts.Logger, Registerer: opts.Registerer})
	if opts.Registerer != nil {
		b = WithMetrics(b, opts.Registerer)
	}
	opts.logger().Info("cold store opened", "store", cfg.String())
	return b, nil
}

// ValidateKey reports whether key is storable by every provider: non-empty,
// at most MaxKeyLen bytes of UTF-8 without NUL or backslash, no leading or
// trailing slash, and no empty, "." or ".." segments. Keys like
// "tierd/stream=IF2406/date=2026-11-22/00000000000000000000-00000000000000000099.parquet"
// are fine.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	case len(key) > MaxKeyLen:
		return fmt.Errorf("%w: %d bytes, max %d", ErrInvalidKey, len(key), MaxKeyLen)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: %q is not UTF-8", ErrInvalidKey, key)
	case strings.ContainsAny(key, "\x00\\"):
		return fmt.Errorf("%w: %q contains NUL or backslash", ErrInvalidKey, key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("%w: %q has an empty segment (leading, trailing or double slash)", ErrInvalidKey, key)
		case seg == "." || seg == "..":
			return fmt.Errorf("%w: %q has a %q segment", ErrInvalidKey, key, seg)
		case strings.HasPrefix(seg, tmpPrefix):
			return fmt.Errorf("%w: %q: segments starting with %q are reserved", ErrInvalidKey, key, tmpPrefix)
		}
	}
	return nil
}

// opError wraps err with what failed: the operation, the key and the
// provider, so an operator reading a log line from the offload path knows
// which store to look at.
func opError(backend, op, key string, err error) error {
	if key == "" {
		return fmt.Errorf("objstore: %s %s: %w", op, backend, err)
	}
	return fmt.Errorf("objstore: %s %q (%s): %w", op, key, backend, err)
}

// listable reports whether any valid key can start with prefix, so List
// answers an impossible prefix (say "../") with nothing on every provider
// instead of a provider-specific error.
func listable(prefix string) bool {
	i := strings.LastIndex(prefix, "/")
	return i < 0 || ValidateKey(prefix[:i]) == nil
}

// checkRange validates GetRange arguments against a known size and returns
// the length to read: cut at the end, an empty read at off == size.
func checkRange(off, length, size int64) (int64, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrInvalidRange, off)
	}
	if off > size {
		return 0, fmt.Errorf("%w: offset %d past the end of a %d-byte object", ErrInvalidRange, off, size)
	}
	if length < 0 || length > size-off {
		length = size - off
	}
	return length, nil
}

// emptyBody is the body of a zero-length range.
func emptyBody() io.ReadCloser { return io.NopCloser(strings.NewReader("")) }

// exactReader yields exactly size bytes of r and fails the read that would
// go past them, or that ends early, with ErrSizeMismatch. Providers hand it
// to their SDK so a wrong size fails the upload itself, before anything
// becomes visible, instead of being noticed after the object is stored.
type exactReader struct {
	ctx       context.Context
	r         io.Reader
	remaining int64
	size      int64
	end       error // result of checkEnd, once known
}

func newExactReader(ctx context.Context, r io.Reader, size int64) *exactReader {
	return &exactReader{ctx: ctx, r: r, remaining: size, size: size}
}

func (e *exactReader) Read(p []byte) (int, error) {
	if err := e.ctx.Err(); err != nil {
		return 0, err
	}
	if e.remaining == 0 {
		return 0, e.checkEnd()
	}
	if int64(len(p)) > e.remaining {
		p = p[:e.remaining]
	}
	n, err := e.r.Read(p)
	e.remaining -= int64(n)
	switch {
	case err == io.EOF && e.remaining > 0:
		return n, fmt.Errorf("%w: reader ended after %d of %d bytes", ErrSizeMismatch, e.size-e.remaining, e.size)
	case err != nil && err != io.EOF:
		return n, err
	case e.remaining == 0:
		// Report a too-long reader with the last bytes withheld, so even
		// an SDK that reads with io.ReadFull sees a short read and fails.
		if err := e.checkEnd(); err != io.EOF {
			return 0, err
		}
		return n, io.EOF
	}
	return n, nil
}

// checkEnd peeks past the last byte: more data means the caller's size was
// wrong, and storing a truncated object would hide that.
func (e *exactReader) checkEnd() error {
	if e.end != nil {
		return e.end
	}
	var b [1]byte
	for tries := 0; e.end == nil; tries++ {
		if tries == 100 {
			return io.ErrNoProgress
		}
		n, err := e.r.Read(b[:])
		switch {
		case n > 0:
			e.end = fmt.Errorf("%w: reader has more than %d bytes", ErrSizeMismatch, e.size)
		case err == io.EOF:
			e.end = io.EOF
		case err != nil:
			return err
		}
	}
	return e.end
}

// redacted hides a secret that an SDK might echo in an error message.
// Callers still match the cause with errors.Is.
type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }

func redact(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return &redacted{msg: strings.ReplaceAll(err.Error(), secret, "REDACTED"), err: err}
}
