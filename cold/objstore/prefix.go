package objstore

import (
	"context"
	"io"
	"iter"
	"strings"
)

// prefixed stores every key under a fixed prefix, so several deployments
// (or tests) can share one bucket. It is a wrapper rather than a provider
// feature so every provider gets it identically.
type prefixed struct {
	b      Bucket
	prefix string // ends in "/"
}

// WithPrefix returns a Bucket that stores key as prefix/key in b and strips
// the prefix again from listed keys. An empty prefix returns b unchanged.
func WithPrefix(b Bucket, prefix string) Bucket {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return b
	}
	return &prefixed{b: b, prefix: prefix + "/"}
}

// Unwrap returns the wrapped Bucket (see HealthOf).
func (p *prefixed) Unwrap() Bucket { return p.b }

func (p *prefixed) full(key string) (string, error) {
	// Validate the caller's key on its own: "../x" under a prefix would
	// otherwise be caught only as a different, confusing full key.
	if err := ValidateKey(key); err != nil {
		return "", opError("prefix "+p.prefix, "validate", key, err)
	}
	return p.prefix + key, nil
}

func (p *prefixed) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	k, err := p.full(key)
	if err != nil {
		return err
	}
	return p.b.Put(ctx, k, r, size)
}

func (p *prefixed) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	k, err := p.full(key)
	if err != nil {
		return nil, err
	}
	return p.b.Get(ctx, k)
}

func (p *prefixed) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	k, err := p.full(key)
	if err != nil {
		return nil, err
	}
	return p.b.GetRange(ctx, k, off, length)
}

func (p *prefixed) Stat(ctx context.Context, key string) (Attrs, error) {
	k, err := p.full(key)
	if err != nil {
		return Attrs{}, err
	}
	a, err := p.b.Stat(ctx, k)
	a.Key = key
	return a, err
}

func (p *prefixed) List(ctx context.Context, prefix string) iter.Seq2[Attrs, error] {
	return func(yield func(Attrs, error) bool) {
		for a, err := range p.b.List(ctx, p.prefix+prefix) {
			if err == nil {
				a.Key = strings.TrimPrefix(a.Key, p.prefix)
			}
			if !yield(a, err) || err != nil {
				return
			}
		}
	}
}

func (p *prefixed) Delete(ctx context.Context, key string) error {
	k, err := p.full(key)
	if err != nil {
		return err
	}
	return p.b.Delete(ctx, k)
}

func (p *prefixed) Close() error { return p.b.Close() }
