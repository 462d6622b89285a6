package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// awsPartSize is the part size of multipart uploads by the aws driver, and
// the largest object it sends in a single PUT. The SDK signs a payload it
// can seek, so each part is buffered; 16 MiB bounds that memory per upload
// and matches minio-go's default.
const awsPartSize = 16 << 20

// awsBucket is the S3 provider built on aws-sdk-go-v2, for deployments
// that rely on the AWS credential chain (environment, shared config and
// SSO, web identity, ECS and EC2 instance roles).
type awsBucket struct {
	client    *s3.Client
	transport *http.Transport
	bucket    string
	desc      string
	secret    string
	closed    atomic.Bool
}

func newAWS(ctx context.Context, cfg Config, opts Options) (*awsBucket, error) {
	attempts := opts.maxRetries()
	loadOpts := []func(*config.LoadOptions) error{
		config.WithRegion(cfg.Region),
		// A BuildableClient, not an http.Client, so the config loader can
		// still apply AWS_CA_BUNDLE.
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(tuneTransport)),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = attempts
				o.MaxBackoff = 500 * time.Millisecond
			})
		}),
	}
	if opts.AccessKey != "" || opts.SecretKey != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(opts.AccessKey, opts.SecretKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("objstore: aws config for %s: %w", cfg, redact(err, opts.SecretKey))
	}
	// Own the transport (a copy with the CA bundle applied) so Close can
	// drop its idle connections.
	tr := newTransport()
	if bc, ok := awsCfg.HTTPClient.(*awshttp.BuildableClient); ok {
		tr = bc.GetTransport()
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		o.HTTPClient = &http.Client{Transport: tr}
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
			o.UsePathStyle = true
		}
		// Checksums only where S3 demands them: the default trailing
		// checksums need aws-chunked encoding, which not every
		// S3-compatible store accepts, and the digest check after an
		// offload verifies content end to end anyway.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return &awsBucket{
		client:    client,
		transport: tr,
		bucket:    cfg.Bucket,
		desc:      "s3 aws-sdk-go-v2 bucket " + cfg.Bucket + " at " + endpointName(cfg),
		secret:    opts.SecretKey,
	}, nil
}

func isAWSNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return true
		case "NoSuchBucket":
			return false
		}
	}
	return httpStatus(err) == http.StatusNotFound
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func (b *awsBucket) fail(op, key string, err error) error {
	var ae smithy.APIError
	hasCode := errors.As(err, &ae)
	switch {
	case hasCode && ae.ErrorCode() == "NoSuchBucket":
		err = fmt.Errorf("%w: %w", ErrBucketNotFound, err)
	case isAWSNotFound(err):
		err = fmt.Errorf("%w: %w", ErrNotFound, err)
	case hasCode && isDenied(ae.ErrorCode(), httpStatus(err)), httpStatus(err) == http.StatusForbidden:
		err = fmt.Errorf("%w: %w", ErrAccessDenied, err)
	}
	return opError(b.desc, op, key, redact(err, b.secret))
}

func (b *awsBucket) check(op, key string) error {
	if b.closed.Load() {
		return opError(b.desc, op, key, ErrClosed)
	}
	if err := ValidateKey(key); err != nil {
		return opError(b.desc, op, key, err)
	}
	return nil
}

// Put implements Bucket: one PUT up to awsPartSize, a multipart upload
// above it (aborted on failure, so no parts linger).
func (b *awsBucket) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := b.check("put", key); err != nil {
		return err
	}
	if size < 0 {
		return b.fail("put", key, fmt.Errorf("%w: negative size %d", ErrSizeMismatch, size))
	}
	er := newExactReader(ctx, r, size)
	if size <= awsPartSize {
		buf := make([]byte, size)
		if err := readPart(er, buf, size); err != nil {
			return b.fail("put", key, err)
		}
		_, err := b.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        aws.String(b.bucket),
			Key:           aws.String(key),
			Body:          bytes.NewReader(buf),
			ContentLength: aws.Int64(size),
			ContentType:   aws.String("application/octet-stream"),
		})
		if err != nil {
			return b.fail("put", key, err)
		}
		return nil
	}
	if err := b.putMultipart(ctx, key, er, size); err != nil {
		return b.fail("put", key, err)
	}
	return nil
}

// readPart fills buf from er and, at the end of the object, checks that
// the reader has nothing more.
func readPart(er *exactReader, buf []byte, size int64) error {
	if _, err := io.ReadFull(er, buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: reader ended early (want %d bytes)", ErrSizeMismatch, size)
		}
		return err
	}
	if er.remaining == 0 {
		if err := er.checkEnd(); err != io.EOF {
			return err
		}
	}
	return nil
}

func (b *awsBucket) putMultipart(ctx context.Context, key string, er *exactReader, size int64) error {
	partSize := int64(awsPartSize)
	if min := (size + 9999) / 10000; min > partSize { // S3 allows 10,000 parts
		partSize = min
	}
	up, err := b.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(b.bucket), Key: aws.String(key), ContentType: aws.String("application/octet-stream"),
	})
	if err != nil {
		return fmt.Errorf("create multipart upload: %w", err)
	}
	done := false
	defer func() {
		if done {
			return
		}
		// Abort even when ctx is cancelled, but do not hang on a store
		// that is down.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		b.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(b.bucket), Key: aws.String(key), UploadId: up.UploadId,
		})
	}()
	buf := make([]byte, partSize)
	var parts []types.CompletedPart
	for num, off := int32(1), int64(0); off < size; num++ {
		n := min(partSize, size-off)
		if err := readPart(er, buf[:n], size); err != nil {
			return err
		}
		out, err := b.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: aws.String(b.bucket), Key: aws.String(key), UploadId: up.UploadId,
			PartNumber: aws.Int32(num), Body: bytes.NewReader(buf[:n]), ContentLength: aws.Int64(n),
		})
		if err != nil {
			return fmt.Errorf("upload part %d: %w", num, err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
		off += n
	}
	_, err = b.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(b.bucket), Key: aws.String(key), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return fmt.Errorf("complete multipart upload: %w", err)
	}
	done = true
	return nil
}

// Get implements Bucket.
func (b *awsBucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := b.check("get", key); err != nil {
		return nil, err
	}
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key)})
	if err != nil {
		return nil, b.fail("get", key, err)
	}
	return out.Body, nil
}

// GetRange implements Bucket; see minioBucket.GetRange for the 416 case.
func (b *awsBucket) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
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
	in := &s3.GetObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key)}
	switch {
	case length > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+length-1))
	case off > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", off))
	}
	out, err := b.client.GetObject(ctx, in)
	if err != nil {
		var ae smithy.APIError
		if httpStatus(err) == http.StatusRequestedRangeNotSatisfiable || (errors.As(err, &ae) && ae.ErrorCode() == "InvalidRange") {
			return b.emptyRange(ctx, key, off, length)
		}
		return nil, b.fail(op, key, err)
	}
	return out.Body, nil
}

func (b *awsBucket) emptyRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
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
func (b *awsBucket) Stat(ctx context.Context, key string) (Attrs, error) {
	if err := b.check("stat", key); err != nil {
		return Attrs{}, err
	}
	a, err := b.statRaw(ctx, key)
	if err != nil {
		return Attrs{}, b.fail("stat", key, err)
	}
	return a, nil
}

func (b *awsBucket) statRaw(ctx context.Context, key string) (Attrs, error) {
	out, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key)})
	if err != nil {
		return Attrs{}, err
	}
	return Attrs{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

// List implements Bucket.
func (b *awsBucket) List(ctx context.Context, prefix string) iter.Seq2[Attrs, error] {
	return func(yield func(Attrs, error) bool) {
		if b.closed.Load() {
			yield(Attrs{}, opError(b.desc, "list", prefix, ErrClosed))
			return
		}
		if !listable(prefix) {
			return
		}
		in := &s3.ListObjectsV2Input{Bucket: aws.String(b.bucket)}
		if prefix != "" {
			in.Prefix = aws.String(prefix)
		}
		pages := s3.NewListObjectsV2Paginator(b.client, in)
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				yield(Attrs{}, b.fail("list", prefix, err))
				return
			}
			for _, obj := range page.Contents {
				k := aws.ToString(obj.Key)
				if strings.HasSuffix(k, "/") {
					continue
				}
				if !yield(Attrs{Key: k, Size: aws.ToInt64(obj.Size), ModTime: aws.ToTime(obj.LastModified)}, nil) {
					return
				}
			}
		}
	}
}

// Delete implements Bucket.
func (b *awsBucket) Delete(ctx context.Context, key string) error {
	if err := b.check("delete", key); err != nil {
		return err
	}
	_, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key)})
	if err != nil && !isAWSNotFound(err) {
		return b.fail("delete", key, err)
	}
	return nil
}

// Close implements Bucket.
func (b *awsBucket) Close() error {
	b.closed.Store(true)
	b.transport.CloseIdleConnections()
	return nil
}
