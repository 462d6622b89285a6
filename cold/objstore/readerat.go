package objstore

import (
	"context"
	"fmt"
	"io"
)

// ReaderAt returns an io.ReaderAt over the object key of the given size,
// each ReadAt one ranged GET. Parquet readers need random access to the
// footer and to single column chunks; fetching only those is what makes a
// narrow cold read cheap. It does no caching: the cold reader layers a
// bounded cache on top. ctx bounds every read.
func ReaderAt(ctx context.Context, b Bucket, key string, size int64) io.ReaderAt {
	return &readerAt{ctx: ctx, b: b, key: key, size: size}
}

type readerAt struct {
	ctx  context.Context
	b    Bucket
	key  string
	size int64
}

// ReadAt follows the io.ReaderAt contract: a short read at the end of the
// object returns io.EOF, a short read anywhere else an error.
func (r *readerAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("objstore: read %q at %d: %w", r.key, off, ErrInvalidRange)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	want := int64(len(p))
	if want > r.size-off {
		want = r.size - off
	}
	if want == 0 {
		return 0, nil
	}
	body, err := r.b.GetRange(r.ctx, r.key, off, want)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	n, err := io.ReadFull(body, p[:want])
	if err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return n, fmt.Errorf("objstore: read %q [%d, %d): object shorter than its stated size %d: %w",
				r.key, off, off+want, r.size, io.ErrUnexpectedEOF)
		}
		return n, fmt.Errorf("objstore: read %q at %d: %w", r.key, off, err)
	}
	if want < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
}
