package tables

import (
	"bytes"
	"context"
	"io"
	"testing"

	icebergio "github.com/apache/iceberg-go/io"
)

// TestPercentKeys: object keys with percent signs (part C encodes stream
// names such as NULL as stream=%4EULL) are read through iceberg-go's
// FileIO at the literal key, not a decoded one (a file:// URI would be
// decoded: the root of a file store is a plain path for this reason).
func TestPercentKeys(t *testing.T) {
	for _, mk := range []func(testing.TB) store{minioStore, fileStore} {
		s := mk(t)
		ctx := context.Background()
		key := "stream=%4EULL/date=2026-01-01/x.parquet"
		if err := s.bucket.Put(ctx, key, bytes.NewReader([]byte("hello")), 5); err != nil {
			t.Fatal(err)
		}
		p := open(t, s, newSource())
		fio, err := icebergio.LoadFS(ctx, p.props, p.root)
		if err != nil {
			t.Fatal(err)
		}
		f, err := fio.Open(p.root + "/" + key)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if string(b) != "hello" {
			t.Fatalf("%s: read %q", s.name, b)
		}
	}
}
