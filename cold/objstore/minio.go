package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Transport timeouts shared by both S3 providers: a refused connection
// fails at once, a black-holed one after dialTimeout per attempt. There is
// no response timeout here on purpose: how long a call may wait for its
// answer depends on the call (a stat, a 5 GiB upload's completion), and
// WithDeadlines, which Open always adds, sets it per call. A fixed
// transport timeout would either stall reads for minutes or cut large
// uploads short.
const dialTimeout = 5 * time.Second

func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	tuneTransport(t)
	return t
}

func tuneTransport(t *http.Transport) {
	t.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = 0 // per call: WithDeadlines
	t.MaxIdleConnsPerHost = 16
	// Ranged reads of Parquet files are already compressed; asking for gzip
	// would only cost CPU and break Content-Length checks.
	t.DisableCompression = true
}

// minioBucket is the S3 provider built on minio-go. It uses the Core API
// for reads, so a Get is exactly one request whose error (say, NoSuchKey)
// comes back from the call rather than from the first Read.
type minioBucket struct {
	core      *minio.Core
	transport *http.Transport
	bucket    string
	desc      string // for errors: never holds credentials
	secret    string // to redact from errors, should the SDK echo it
	closed    atomic.Bool
}

func newMinio(cfg Config, opts Options) (*minioBucket, error) {
	host, secure := "s3.amazonaws.com", true
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("%w: endpoint %q: %v", ErrInvalidURL, cfg.Endpoint, err)
		}
		host, secure = u.Host, u.Scheme == "https"
	}
	var creds *credentials.Credentials
	if opts.AccessKey != "" || opts.SecretKey != "" {
		creds = credentials.NewStaticV4(opts.AccessKey, opts.SecretKey, "")
	} else {
		// The environment first (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
		// then MINIO_ROOT_USER / MINIO_ROOT_PASSWORD), then
		// ~/.aws/credentials. Instance roles and SSO are the aws driver's job.
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{}, &credentials.EnvMinio{}, &credentials.FileAWSCredentials{},
		})
	}
	// Path-style for explicit endpoints (MinIO and most S3-compatible
	// stores need it); AWS itself chooses.
	lookup := minio.BucketLookupPath
	if cfg.Endpoint == "" {
		lookup = minio.BucketLookupAuto
	}
	tr := newTransport()
	core, err := minio.NewCore(host, &minio.Options{
		Creds:        creds,
		Secure:       secure,
		Transport:    tr,
		Region:       cfg.Region,
		BucketLookup: lookup,
		MaxRetries:   opts.maxRetries(),
	})
	if err != nil {
		return nil, fmt.Errorf("objstore: s3 client for %s: %w", cfg, redact(err, opts.SecretKey))
	}
	return &minioBucket{
		core:      core,
		transport: tr,
		bucket:    cfg.Bucket,
		desc:      "s3 minio-go bucket " + cfg.Bucket + " at " + endpointName(cfg),
		secret:    opts.SecretKey,
	}, nil
}

func endpointName(cfg Config) string {
	if cfg.Endpoint == "" {
		return "AWS " + cfg.Region
	}
	return cfg.Endpoint
}

func (b *minioBucket) fail(op, key string, err error) error {
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		switch {
		case er.Code == "NoSuchBucket":
			err = fmt.Errorf("%w: %w", ErrBucketNotFound, err)
		case er.Code == "NoSuchKey" || er.Code == "NotFound" || er.StatusCode == http.StatusNotFound:
			err = fmt.Errorf("%w: %w", ErrNotFound, err)
		case isDenied(er.Code, er.StatusCode):
			err = fmt.Errorf("%w: %w", ErrAccessDenied, err)
		}
	}
	return opError(b.desc, op, key, redact(err, b.secret))
}

// isDenied reports an S3 error that means the credentials were refused or
// do not allow the request.
func isDenied(code string, status int) bool {
	switch code {
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken":
		return true
	}
	return status == http.StatusForbidden
}

func (b *minioBucket) check(op, key string) error {
	if b.closed.Load() {
		return opError(b.desc, op, key, ErrClosed)
	}
	if err := ValidateKey(key); err != nil {
		return opError(b.desc, op, key, err)
	}
	return nil
}

// Put implements Bucket. minio-go uploads objects up to 16 MiB in one PUT
// and larger ones as a multipart upload with bounded part buffers; either
// way the object appears only when the last request completes.
func (b *minioBucket) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := b.check("put", key); err != nil {
		return err
	}
	if size < 0 {
		return b.fail("put", key, fmt.Errorf("%w: negative size %d", ErrSizeMismatch, size))
	}
	_, err := b.core.Client.PutObject(ctx, b.bucket, key, newExactReader(ctx, r, size), size,
		minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return b.fail("put", key, err)
	}
	return nil
}

// Get implements Bucket.
func (b *minioBucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := b.check("get", key); err != nil {
		return nil, err
	}
	rc, _, _, err := b.core.GetObject(ctx, b.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, b.fail("get", key, err)
	}
	return rc, nil
}

// GetRange implements Bucket. S3 answers a range that starts at or past
// the end with 416; only then is the size looked up, to tell an empty read
// at the very end from an invalid range.
func (b *minioBucket) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	const op = "get range"
	if err := b.check(op, key); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, b.fail(op, key, fmt.Errorf("%w: negative offset %d", ErrInvalidRange, off))
	}
	if length == 0 {
		return b.emptyRange(ctx, key, off, length)
	}
	var o minio.GetObjectOptions
	if off > 0 || length > 0 { // else the whole object: no Range header, which also works when it is empty
		end := int64(0) // bytes=off-
		if length > 0 {
			end = off + length - 1
		}
		if err := o.SetRange(off, end); err != nil {
			return nil, b.fail(op, key, fmt.Errorf("%w: %v", ErrInvalidRange, err))
		}
	}
	rc, _, _, err := b.core.GetObject(ctx, b.bucket, key, o)
	if err != nil {
		var er minio.ErrorResponse
		if errors.As(err, &er) && (er.StatusCode == http.StatusRequestedRangeNotSatisfiable || er.Code == "InvalidRange") {
			return b.emptyRange(ctx, key, off, length)
		}
		return nil, b.fail(op, key, err)
	}
	return rc, nil
}

// emptyRange answers a range that reads nothing: not found, invalid, or
// empty.
func (b *minioBucket) emptyRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	a, err := b.statRaw(ctx, key)
	if err != nil {
		return nil, b.fail("get range", key, err)
	}
	if _, err := checkRange(off, length, a.Size); err != nil {
		return nil, b.fail("get range", key, err)
	}
	return emptyBody(), nil
}

// Stat implements Bucket.
func (b *minioBucket) Stat(ctx context.Context, key string) (Attrs, error) {
	if err := b.check("stat", key); err != nil {
		return Attrs{}, err
	}
	a, err := b.statRaw(ctx, key)
	if err != nil {
		return Attrs{}, b.fail("stat", key, err)
	}
	return a, nil
}

func (b *minioBucket) statRaw(ctx context.Context, key string) (Attrs, error) {
	info, err := b.core.StatObject(ctx, b.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return Attrs{}, err
	}
	return Attrs{Key: key, Size: info.Size, ModTime: info.LastModified}, nil
}

// List implements Bucket.
func (b *minioBucket) List(ctx context.Context, prefix string) iter.Seq2[Attrs, error] {
	return func(yield func(Attrs, error) bool) {
		if b.closed.Load() {
			yield(Attrs{}, opError(b.desc, "list", prefix, ErrClosed))
			return
		}
		if !listable(prefix) {
			return
		}
		// Cancelling stops minio-go's listing goroutine when the caller
		// breaks out of the loop early.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		for obj := range b.core.Client.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if obj.Err != nil {
				yield(Attrs{}, b.fail("list", prefix, obj.Err))
				return
			}
			if strings.HasSuffix(obj.Key, "/") {
				continue // a directory marker some tools create; not an object
			}
			if !yield(Attrs{Key: obj.Key, Size: obj.Size, ModTime: obj.LastModified}, nil) {
				return
			}
		}
		if err := ctx.Err(); err != nil {
			yield(Attrs{}, b.fail("list", prefix, err))
		}
	}
}

// Delete implements Bucket. S3 deletes are idempotent already.
func (b *minioBucket) Delete(ctx context.Context, key string) error {
	if err := b.check("delete", key); err != nil {
		return err
	}
	if err := b.core.RemoveObject(ctx, b.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		var er minio.ErrorResponse
		if errors.As(err, &er) && er.Code == "NoSuchKey" {
			return nil
		}
		return b.fail("delete", key, err)
	}
	return nil
}

// Close implements Bucket.
func (b *minioBucket) Close() error {
	b.closed.Store(true)
	b.transport.CloseIdleConnections()
	return nil
}
