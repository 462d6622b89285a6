package catalog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/internal/bolttest"
	"github.com/tierd/tierd/tiers"
)

// sampleCatalog writes a catalog with nsegs segments in stream "many" (more
// than a leaf page holds, so there are branch pages), two small streams,
// a tombstone, an intent and a failure, and returns its bytes.
func sampleCatalog(t testing.TB, nsegs uint64) []byte {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "catalog.db")
	c, err := Open(path, Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(0); i < nsegs; i++ {
		if err := c.PutSegment(ctx, seg("many", i*10, i*10+9)); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []tiers.SegmentMeta{seg("a", 0, 9), seg("a", 10, 19), coldSeg("b", 0, 99)} {
		if err := c.PutSegment(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Tombstone(ctx, "a", 0, tombAt, justified); err != nil {
		t.Fatal(err)
	}
	if err := c.PutIntent(ctx, Intent{Stream: "b", Base: 0, Kind: IntentUpload, Key: "k"}); err != nil {
		t.Fatal(err)
	}
	if err := c.RecordRefusal(ctx, "a", 10, "refused"); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// catalogContent is everything a catalog answers, for comparing two.
type catalogContent struct {
	Streams  []StreamInfo
	Segments map[string][]tiers.SegmentMeta
	Intents  []Intent
	Failures []Failure
}

func contentOf(c *Catalog) (catalogContent, error) {
	ctx := context.Background()
	var cc catalogContent
	var err error
	if cc.Streams, err = c.Streams(ctx); err != nil {
		return cc, err
	}
	cc.Segments = map[string][]tiers.SegmentMeta{}
	for _, s := range cc.Streams {
		if cc.Segments[s.Name], err = c.Segments(ctx, s.Name); err != nil {
			return cc, err
		}
	}
	if cc.Intents, err = c.Intents(ctx); err != nil {
		return cc, err
	}
	cc.Failures, err = c.Failures(ctx)
	return cc, err
}

// openBytes writes b as a catalog file and opens it, within a bound: a hang
// fails the test.
func openBytes(t *testing.T, dir string, b []byte) (catalogContent, error) {
	t.Helper()
	path := filepath.Join(dir, "catalog.db")
	os.Remove(path)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	type result struct {
		cc  catalogContent
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := Open(path, Options{Now: func() time.Time { return t0 }, Timeout: time.Second})
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		cc, err := contentOf(c)
		done <- result{cc, err}
	}()
	select {
	case r := <-done:
		return r.cc, r.err
	case <-time.After(time.Minute):
		t.Fatal("open hung")
	}
	return catalogContent{}, nil
}

// wantRefused fails unless err is the corruption error of a damaged catalog
// that names the rebuild command.
func wantRefused(t *testing.T, what string, err error) {
	t.Helper()
	var ce *tiers.CorruptionError
	if !errors.As(err, &ce) || !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "tierctl catalog rebuild") {
		t.Fatalf("%s: %v, want a corruption error wrapping ErrDamaged that names tierctl catalog rebuild", what, err)
	}
}

// TestOpenRefusesDamagedStructure: each way a page can be wrong that makes
// bbolt panic, fault, loop, allocate without bound or read the wrong data
// is refused at open, quickly.
func TestOpenRefusesDamagedStructure(t *testing.T) {
	good := sampleCatalog(t, 120)
	l, err := bolttest.Read(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.BranchChildren) < 2 {
		t.Fatalf("sample catalog has %d branch children, want a branch page", len(l.BranchChildren))
	}
	le := binary.LittleEndian
	ps := l.PageSize
	newer, older := 0, ps
	if le.Uint64(good[ps+16+48:]) > le.Uint64(good[16+48:]) {
		newer, older = ps, 0
	}
	freelist := int(le.Uint64(good[newer+16+32:])) * ps
	var leafPage int
	for id, kind := range l.Pages {
		if kind == "leaf" && id > 2 {
			leafPage = int(id) * ps
			break
		}
	}
	firstLeafElem := -1
	for i := range good {
		if l.Kind[i] == bolttest.LeafElement {
			firstLeafElem = i
			break
		}
	}
	want, err := openBytes(t, t.TempDir(), good)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		damage func(b []byte)
		opens  bool // harmless: opens with the same content
	}{
		{"newest meta's root", func(b []byte) { b[newer+16+16] ^= 1 }, false},
		{"newest meta's txid", func(b []byte) { b[newer+16+48] ^= 4 }, false},
		{"older meta", func(b []byte) { b[older+16+16] ^= 1 }, true},
		{"both metas", func(b []byte) { b[older+16] ^= 1; b[newer+16] ^= 1 }, false},
		{"branch that is its own child", func(b []byte) {
			c := l.BranchChildren[0]
			le.PutUint64(b[c.Off:], c.Parent)
		}, false},
		{"two branch elements to one child", func(b []byte) {
			le.PutUint64(b[l.BranchChildren[1].Off:], l.BranchChildren[0].Page)
		}, false},
		{"branch child past the high-water mark", func(b []byte) { le.PutUint64(b[l.BranchChildren[0].Off:], 1<<40) }, false},
		{"page naming another page", func(b []byte) { b[leafPage] ^= 2 }, false},
		{"page of unknown type", func(b []byte) { b[leafPage+8] = 0x08 }, false},
		{"page with more elements than fit", func(b []byte) { le.PutUint16(b[leafPage+10:], 0xFFF0) }, false},
		{"page with huge overflow", func(b []byte) { le.PutUint32(b[leafPage+12:], 1<<30) }, false},
		{"element past its page", func(b []byte) { le.PutUint32(b[firstLeafElem+4:], 1<<20) }, false},
		{"value longer than its page", func(b []byte) { le.PutUint32(b[firstLeafElem+12:], 1<<31) }, false},
		{"empty key", func(b []byte) { le.PutUint32(b[firstLeafElem+8:], 0) }, false},
		{"unknown element flags", func(b []byte) { le.PutUint32(b[firstLeafElem:], 4) }, false},
		{"freelist of 2^40 pages", func(b []byte) { le.PutUint16(b[freelist+10:], 0xFFFF); le.PutUint64(b[freelist+16:], 1<<40) }, false},
		{"freelist count past its page", func(b []byte) { le.PutUint16(b[freelist+10:], 0xFFF0) }, false},
		{"file cut below the high-water mark", nil, false},
		{"top-level bucket renamed", func(b []byte) {
			i := bytes.Index(b, []byte(bucketStreams))
			for i >= 0 && l.Kind[i] != bolttest.Key {
				j := bytes.Index(b[i+1:], []byte(bucketStreams))
				if j < 0 {
					i = -1
					break
				}
				i += 1 + j
			}
			b[i+3] = 'z' // "strzams" sorts after "segments" still
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(good)
			if tc.damage != nil {
				tc.damage(b)
			} else {
				hwm := int(le.Uint64(b[newer+16+40:]))
				b = b[:(hwm-1)*ps]
			}
			start := time.Now()
			got, err := openBytes(t, t.TempDir(), b)
			if tc.opens {
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Fatalf("opened with %v; content differs: %v", err, !reflect.DeepEqual(got, want))
				}
				return
			}
			wantRefused(t, tc.name, err)
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("refused after %v", d)
			}
		})
	}
}

// TestEveryBitOfACatalog flips one bit of every byte bbolt reads in a
// catalog but values (one in three of those: each value's checksum is
// tested bit by bit in TestEveryBitFlipIsDetected), and all eight bits of
// every meta, freelist and page-header byte: each flip is refused at open,
// or the catalog opens and answers exactly what it did.
func TestEveryBitOfACatalog(t *testing.T) {
	good := sampleCatalog(t, 60)
	l, err := bolttest.Read(good)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	want, err := openBytes(t, dir, good)
	if err != nil {
		t.Fatal(err)
	}
	refused, same := 0, 0
	seen := map[string]int{}
	for i := range good {
		kind, ok := l.Kind[i]
		if !ok {
			continue
		}
		seen[kind]++
		if strings.HasSuffix(kind, bolttest.Value) && seen[kind]%3 != 1 {
			continue
		}
		bits := []int{(i*5 + 3) % 8}
		if kind == bolttest.Meta || strings.HasSuffix(kind, bolttest.PageHeader) || kind == bolttest.Freelist {
			bits = []int{0, 1, 2, 3, 4, 5, 6, 7}
		}
		for _, bit := range bits {
			b := bytes.Clone(good)
			b[i] ^= 1 << bit
			got, err := openBytes(t, dir, b)
			if err != nil {
				wantRefused(t, fmt.Sprintf("byte %d (%s) bit %d", i, kind, bit), err)
				refused++
				continue
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("byte %d (%s) bit %d: the catalog opened and answers differently", i, kind, bit)
			}
			same++
		}
	}
	t.Logf("%d flips refused, %d harmless (the same answers)", refused, same)
}

// FuzzOpenCatalog opens arbitrary bytes as a catalog file: it must refuse
// them with a corruption error or open them, never panic or hang, and an
// open catalog must answer every call without panicking.
func FuzzOpenCatalog(f *testing.F) {
	good := sampleCatalog(f, 60)
	f.Add(good)
	f.Add(good[:8192])
	f.Add([]byte{})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "catalog.db")
		os.Remove(path)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Open(path, Options{Now: func() time.Time { return t0 }, Timeout: time.Second})
		if err != nil {
			var ce *tiers.CorruptionError
			if !errors.As(err, &ce) && !strings.Contains(err.Error(), "schema version") {
				t.Fatalf("open failed with %v, neither corruption nor a newer schema", err)
			}
			return
		}
		defer c.Close()
		contentOf(c)
	})
}
