package objstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/internal/vfs"
	"github.com/tierd/tierd/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// backend opens a fresh, empty Bucket for one test.
type backend struct {
	name string
	open func(t *testing.T) objstore.Bucket
}

func openURL(t *testing.T, rawURL string, opts objstore.Options) objstore.Bucket {
	t.Helper()
	b, err := objstore.Open(context.Background(), rawURL, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", rawURL, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func minioBackend(driver string) func(t *testing.T) objstore.Bucket {
	return func(t *testing.T) objstore.Bucket {
		mc := testenv.StartMinIO(t)
		return openURL(t, mc.URL(driver), objstore.Options{AccessKey: mc.AccessKey, SecretKey: mc.SecretKey})
	}
}

func backends() []backend {
	return []backend{
		{"file", func(t *testing.T) objstore.Bucket {
			return openURL(t, "file://"+t.TempDir(), objstore.Options{})
		}},
		{"file+prefix+metrics", func(t *testing.T) objstore.Bucket {
			f, err := objstore.NewFile(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return objstore.WithMetrics(objstore.WithPrefix(f, "tierd/"), prometheus.NewRegistry())
		}},
		// The file provider on the memory filesystem of crash tests: it
		// must keep the same contract as on the OS's.
		{"file-memfs", func(t *testing.T) objstore.Bucket {
			f, err := objstore.NewFileFS(vfs.NewCrashableMem(), "/store")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			return f
		}},
		{"s3-minio", minioBackend(objstore.DriverMinio)},
		{"s3-aws", minioBackend(objstore.DriverAWS)},
	}
}

// TestAcceptance holds every provider to the same contract.
func TestAcceptance(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range acceptanceCases {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, be.open(t)) })
			}
		})
	}
}

var acceptanceCases = []struct {
	name string
	run  func(t *testing.T, b objstore.Bucket)
}{
	{"PutGetStat", testPutGetStat},
	{"GetRange", testGetRange},
	{"NotFound", testNotFound},
	{"List", testList},
	{"Delete", testDelete},
	{"Overwrite", testOverwrite},
	{"OverwriteAtomic", testOverwriteAtomic},
	{"Large", testLarge},
	{"Empty", testEmpty},
	{"HiveKeys", testHiveKeys},
	{"InvalidKeys", testInvalidKeys},
	{"SizeMismatch", testSizeMismatch},
	{"Cancel", testCancel},
	{"ReaderAt", testReaderAt},
	{"Closed", testClosed},
}

func testClosed(t *testing.T, b objstore.Bucket) {
	put(t, b, "k", []byte("v"))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Put(ctx, "k2", strings.NewReader("v"), 1); !errors.Is(err, objstore.ErrClosed) {
		t.Errorf("Put after Close: %v", err)
	}
	if _, err := b.Get(ctx, "k"); !errors.Is(err, objstore.ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	var listErr error
	for _, err := range b.List(ctx, "") {
		listErr = err
	}
	if !errors.Is(listErr, objstore.ErrClosed) {
		t.Errorf("List after Close: %v", listErr)
	}
}

func put(t *testing.T, b objstore.Bucket, key string, data []byte) {
	t.Helper()
	if err := b.Put(context.Background(), key, onlyReader{bytes.NewReader(data)}, int64(len(data))); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func get(t *testing.T, b objstore.Bucket, key string) []byte {
	t.Helper()
	rc, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q) body: %v", key, err)
	}
	return data
}

// onlyReader hides Seek, WriterTo and friends: callers stream from
// pipes and encoders, and the providers must not depend on more.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func pattern(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func testPutGetStat(t *testing.T, b objstore.Bucket) {
	data := pattern(1000, 1)
	put(t, b, "a/b.bin", data)
	if got := get(t, b, "a/b.bin"); !bytes.Equal(got, data) {
		t.Fatalf("Get returned %d bytes, not what was put", len(got))
	}
	a, err := b.Stat(context.Background(), "a/b.bin")
	if err != nil {
		t.Fatal(err)
	}
	if a.Key != "a/b.bin" || a.Size != 1000 {
		t.Fatalf("Stat = %+v, want key a/b.bin size 1000", a)
	}
	if d := time.Since(a.ModTime); d < -time.Hour || d > time.Hour {
		t.Fatalf("Stat ModTime %v is not about now", a.ModTime)
	}
}

func testGetRange(t *testing.T, b objstore.Bucket) {
	data := pattern(1000, 2)
	put(t, b, "r", data)
	cases := []struct {
		name        string
		off, length int64
		want        []byte
		err         error
	}{
		{"first byte", 0, 1, data[:1], nil},
		{"middle", 400, 100, data[400:500], nil},
		{"last byte", 999, 1, data[999:], nil},
		{"to end", 990, -1, data[990:], nil},
		{"whole", 0, -1, data, nil},
		{"whole exact", 0, 1000, data, nil},
		{"runs past end", 995, 100, data[995:], nil},
		{"zero length", 5, 0, nil, nil},
		{"at end", 1000, 10, nil, nil},
		{"at end to end", 1000, -1, nil, nil},
		{"past end", 1001, 1, nil, objstore.ErrInvalidRange},
		{"far past end", 1 << 40, 10, nil, objstore.ErrInvalidRange},
		{"negative offset", -1, 1, nil, objstore.ErrInvalidRange},
	}
	for _, tc := range cases {
		rc, err := b.GetRange(context.Background(), "r", tc.off, tc.length)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s: GetRange(%d, %d) err = %v, want %v", tc.name, tc.off, tc.length, err, tc.err)
			}
			if rc != nil {
				rc.Close()
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: GetRange(%d, %d): %v", tc.name, tc.off, tc.length, err)
			continue
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("%s: GetRange(%d, %d) = %d bytes (err %v), want %d bytes", tc.name, tc.off, tc.length, len(got), err, len(tc.want))
		}
	}
}

func testNotFound(t *testing.T, b objstore.Bucket) {
	ctx := context.Background()
	put(t, b, "dir/obj", []byte("x"))
	for _, key := range []string{"missing", "dir", "dir/obj/below", "dir/ob"} {
		_, err := b.Get(ctx, key)
		checkNotFound(t, "get", key, err)
		_, err = b.GetRange(ctx, key, 0, 1)
		checkNotFound(t, "get range", key, err)
		_, err = b.GetRange(ctx, key, 0, 0)
		checkNotFound(t, "get range", key, err)
		_, err = b.Stat(ctx, key)
		checkNotFound(t, "stat", key, err)
		if err := b.Delete(ctx, key); err != nil {
			t.Errorf("Delete(%q) of a missing key: %v", key, err)
		}
	}
	if got := get(t, b, "dir/obj"); string(got) != "x" {
		t.Fatalf("deleting missing keys touched a neighbour: %q", got)
	}
}

func checkNotFound(t *testing.T, op, key string, err error) {
	t.Helper()
	if !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("%s %q: err = %v, want ErrNotFound", op, key, err)
		return
	}
	if msg := err.Error(); !strings.Contains(msg, op) || !strings.Contains(msg, key) {
		t.Errorf("%s %q: error %q does not name the operation and key", op, key, msg)
	}
}

func listKeys(t *testing.T, b objstore.Bucket, prefix string) ([]string, map[string]int64) {
	t.Helper()
	var keys []string
	sizes := map[string]int64{}
	for a, err := range b.List(context.Background(), prefix) {
		if err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		keys = append(keys, a.Key)
		sizes[a.Key] = a.Size
	}
	return keys, sizes
}

func testList(t *testing.T, b objstore.Bucket) {
	all := []string{"x/a", "x/b/c", "x/b-d", "x/b/e/f", "y", "x-z", "x/b0", "z/stream=A/date=2026-01-01/1.parquet"}
	for i, k := range all {
		put(t, b, k, bytes.Repeat([]byte{'k'}, i))
	}
	sorted := slices.Sorted(slices.Values(all))
	cases := []struct {
		prefix string
		want   []string
	}{
		{"", sorted},
		{"x/", []string{"x/a", "x/b-d", "x/b/c", "x/b/e/f", "x/b0"}},
		{"x/b", []string{"x/b-d", "x/b/c", "x/b/e/f", "x/b0"}},
		{"x/b/", []string{"x/b/c", "x/b/e/f"}},
		{"x", []string{"x-z", "x/a", "x/b-d", "x/b/c", "x/b/e/f", "x/b0"}},
		{"z/stream=A/", []string{"z/stream=A/date=2026-01-01/1.parquet"}},
		{"y", []string{"y"}},
		{"nope/", nil},
		{"x/a/", nil},
		{"../", nil},
	}
	for _, tc := range cases {
		got, sizes := listKeys(t, b, tc.prefix)
		if !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
		for i, k := range all {
			if s, ok := sizes[k]; ok && s != int64(i) {
				t.Errorf("List(%q): %s has size %d, want %d", tc.prefix, k, s, i)
			}
		}
	}
	n := 0
	for range b.List(context.Background(), "") {
		n++
		if n == 2 {
			break
		}
	}
	if n != 2 {
		t.Fatalf("breaking out of List after 2 gave %d", n)
	}
}

func testDelete(t *testing.T, b objstore.Bucket) {
	ctx := context.Background()
	put(t, b, "d/1", []byte("one"))
	put(t, b, "d/2", []byte("two"))
	if err := b.Delete(ctx, "d/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, "d/1"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Stat after Delete: %v, want ErrNotFound", err)
	}
	if err := b.Delete(ctx, "d/1"); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if keys, _ := listKeys(t, b, ""); !slices.Equal(keys, []string{"d/2"}) {
		t.Fatalf("after Delete, List = %q", keys)
	}
	if err := b.Delete(ctx, "d/2"); err != nil {
		t.Fatal(err)
	}
	if keys, _ := listKeys(t, b, ""); len(keys) != 0 {
		t.Fatalf("after deleting everything, List = %q", keys)
	}
	put(t, b, "d/3", []byte("three")) // the emptied directory can be reused
	if got := get(t, b, "d/3"); string(got) != "three" {
		t.Fatalf("Get after re-Put = %q", got)
	}
}

func testOverwrite(t *testing.T, b objstore.Bucket) {
	put(t, b, "o", []byte("first version"))
	put(t, b, "o", []byte("v2"))
	if got := get(t, b, "o"); string(got) != "v2" {
		t.Fatalf("after overwrite Get = %q", got)
	}
	if a, err := b.Stat(context.Background(), "o"); err != nil || a.Size != 2 {
		t.Fatalf("after overwrite Stat = %+v, %v", a, err)
	}
}

// testOverwriteAtomic checks that readers racing an overwrite see one
// version whole, never a mix or a partial object.
func testOverwriteAtomic(t *testing.T, b objstore.Bucket) {
	const size = 256 << 10
	versions := [][]byte{bytes.Repeat([]byte{'A'}, size), bytes.Repeat([]byte{'B'}, size+1000)}
	put(t, b, "atomic", versions[0])
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var problems []string
	reads := 0
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				rc, err := b.Get(context.Background(), "atomic")
				if err != nil {
					mu.Lock()
					problems = append(problems, "get: "+err.Error())
					mu.Unlock()
					return
				}
				data, err := io.ReadAll(rc)
				rc.Close()
				mu.Lock()
				reads++
				if err != nil {
					problems = append(problems, "read: "+err.Error())
				} else if !bytes.Equal(data, versions[0]) && !bytes.Equal(data, versions[1]) {
					problems = append(problems, fmt.Sprintf("read a mixed or partial object of %d bytes", len(data)))
				}
				mu.Unlock()
			}
		}()
	}
	for i := range 20 {
		v := versions[(i+1)%2]
		if err := b.Put(context.Background(), "atomic", onlyReader{bytes.NewReader(v)}, int64(len(v))); err != nil {
			t.Errorf("Put %d: %v", i, err)
		}
	}
	cancel()
	wg.Wait()
	if len(problems) > 0 {
		t.Fatalf("%d of %d reads went wrong, first: %s", len(problems), reads, problems[0])
	}
	if got := get(t, b, "atomic"); !bytes.Equal(got, versions[0]) {
		t.Fatalf("last version lost: got %d bytes", len(got))
	}
}

// testLarge puts an object big enough for a multipart upload (the S3
// providers switch at 16 MiB) from a plain reader.
func testLarge(t *testing.T, b objstore.Bucket) {
	data := pattern(20<<20+123, 3)
	put(t, b, "big/object", data)
	got := get(t, b, "big/object")
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("large object differs after round trip (%d bytes back, %d put)", len(got), len(data))
	}
	off := int64(16<<20 - 10) // across the first part boundary
	rc, err := b.GetRange(context.Background(), "big/object", off, 20)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(part, data[off:off+20]) {
		t.Fatalf("range across a part boundary differs")
	}
	if a, err := b.Stat(context.Background(), "big/object"); err != nil || a.Size != int64(len(data)) {
		t.Fatalf("Stat = %+v, %v", a, err)
	}
}

func testEmpty(t *testing.T, b objstore.Bucket) {
	put(t, b, "empty", nil)
	if got := get(t, b, "empty"); len(got) != 0 {
		t.Fatalf("empty object read back as %d bytes", len(got))
	}
	if a, err := b.Stat(context.Background(), "empty"); err != nil || a.Size != 0 {
		t.Fatalf("Stat = %+v, %v", a, err)
	}
	for _, r := range [][2]int64{{0, -1}, {0, 10}, {0, 0}} {
		rc, err := b.GetRange(context.Background(), "empty", r[0], r[1])
		if err != nil {
			t.Fatalf("GetRange%v on an empty object: %v", r, err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if len(got) != 0 {
			t.Fatalf("GetRange%v on an empty object gave %d bytes", r, len(got))
		}
	}
	if _, err := b.GetRange(context.Background(), "empty", 1, 1); !errors.Is(err, objstore.ErrInvalidRange) {
		t.Fatalf("GetRange(1, 1) on an empty object: %v, want ErrInvalidRange", err)
	}
	if keys, sizes := listKeys(t, b, ""); !slices.Equal(keys, []string{"empty"}) || sizes["empty"] != 0 {
		t.Fatalf("List = %q %v", keys, sizes)
	}
}

func testHiveKeys(t *testing.T, b objstore.Bucket) {
	keys := []string{
		"tierd/stream=IF2406/date=2026-11-22/00000000000000000000-00000000000000000099.parquet",
		"tierd/stream=IF2406/date=2026-11-23/00000000000000000100-00000000000000000199.parquet",
		"tierd/stream=IF2407/date=2026-11-22/00000000000000000000-00000000000000000009.parquet",
		"tierd/stream=a.b_c-d/date=2026-11-22/x y+z%41&q=1.parquet",
	}
	for i, k := range keys {
		put(t, b, k, []byte(k[:i+10]))
	}
	for i, k := range keys {
		if got := get(t, b, k); string(got) != k[:i+10] {
			t.Errorf("Get(%q) = %q", k, got)
		}
	}
	got, _ := listKeys(t, b, "tierd/stream=IF2406/")
	if !slices.Equal(got, keys[:2]) {
		t.Errorf("List(stream=IF2406/) = %q", got)
	}
	got, _ = listKeys(t, b, "tierd/stream=IF2406/date=2026-11-22/0000")
	if !slices.Equal(got, keys[:1]) {
		t.Errorf("List(date prefix) = %q", got)
	}
}

func testInvalidKeys(t *testing.T, b objstore.Bucket) {
	ctx := context.Background()
	for _, key := range []string{"", "/abs", "../up", "a/../../b", "a//b", "a/", ".", "a/./b", "nul\x00", `back\slash`, strings.Repeat("k", 1025), "\xff"} {
		if err := b.Put(ctx, key, strings.NewReader("x"), 1); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("Put(%q): %v, want ErrInvalidKey", key, err)
		}
		if _, err := b.Get(ctx, key); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("Get(%q): %v, want ErrInvalidKey", key, err)
		}
		if err := b.Delete(ctx, key); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("Delete(%q): %v, want ErrInvalidKey", key, err)
		}
	}
	if keys, _ := listKeys(t, b, ""); len(keys) != 0 {
		t.Fatalf("invalid keys left objects: %q", keys)
	}
}

func testSizeMismatch(t *testing.T, b objstore.Bucket) {
	ctx := context.Background()
	put(t, b, "sized", []byte("old"))
	for _, tc := range []struct {
		name string
		data string
		size int64
	}{
		{"short", "abc", 10},
		{"long", "abcdefghij", 3},
		{"short large", strings.Repeat("x", 17<<20), 18 << 20},
	} {
		err := b.Put(ctx, "sized", onlyReader{strings.NewReader(tc.data)}, tc.size)
		if !errors.Is(err, objstore.ErrSizeMismatch) {
			t.Errorf("%s: Put = %v, want ErrSizeMismatch", tc.name, err)
		}
		if got := get(t, b, "sized"); string(got) != "old" {
			t.Errorf("%s: a failed Put replaced the object with %d bytes", tc.name, len(got))
		}
	}
	if err := b.Put(ctx, "new", strings.NewReader("abc"), 5); !errors.Is(err, objstore.ErrSizeMismatch) {
		t.Errorf("Put new short = %v", err)
	}
	if _, err := b.Stat(ctx, "new"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("a failed Put left an object: %v", err)
	}
}

// cancellingReader cancels its context after n bytes, as a caller that
// gives up mid-upload would.
type cancellingReader struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
	}
	n, err := c.r.Read(p)
	c.n -= n
	return n, err
}

func testCancel(t *testing.T, b objstore.Bucket) {
	put(t, b, "c", []byte("keep"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Put(ctx, "c2", strings.NewReader("x"), 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with cancelled ctx: %v", err)
	}
	if _, err := b.Get(ctx, "c"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with cancelled ctx: %v", err)
	}
	if _, err := b.GetRange(ctx, "c", 1, 2); !errors.Is(err, context.Canceled) {
		t.Errorf("GetRange with cancelled ctx: %v", err)
	}
	if _, err := b.Stat(ctx, "c"); !errors.Is(err, context.Canceled) {
		t.Errorf("Stat with cancelled ctx: %v", err)
	}
	var listErr error
	for _, err := range b.List(ctx, "") {
		listErr = err
	}
	if !errors.Is(listErr, context.Canceled) {
		t.Errorf("List with cancelled ctx: last err %v", listErr)
	}
	// Cancelled mid-upload: an error, and no object.
	for _, size := range []int{1 << 20, 20 << 20} {
		ctx, cancel := context.WithCancel(context.Background())
		r := &cancellingReader{r: bytes.NewReader(pattern(size, 4)), n: size / 2, cancel: cancel}
		if err := b.Put(ctx, "c3", r, int64(size)); !errors.Is(err, context.Canceled) {
			t.Errorf("Put cancelled mid-way (%d bytes): %v", size, err)
		}
		cancel()
		if _, err := b.Stat(context.Background(), "c3"); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("Put cancelled mid-way left an object: %v", err)
		}
	}
	if got := get(t, b, "c"); string(got) != "keep" {
		t.Fatalf("cancelled calls changed another object: %q", got)
	}
}

func testReaderAt(t *testing.T, b objstore.Bucket) {
	data := pattern(5000, 5)
	put(t, b, "ra", data)
	ra := objstore.ReaderAt(context.Background(), b, "ra", int64(len(data)))
	got, err := io.ReadAll(io.NewSectionReader(ra, 0, int64(len(data))))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reading through ReaderAt: %d bytes, %v", len(got), err)
	}
	cases := []struct {
		off    int64
		n      int
		wantN  int
		wantEO bool
	}{
		{0, 10, 10, false},
		{4990, 10, 10, false},
		{4995, 10, 5, true},
		{5000, 10, 0, true},
		{9000, 1, 0, true},
	}
	for _, tc := range cases {
		p := make([]byte, tc.n)
		n, err := ra.ReadAt(p, tc.off)
		if n != tc.wantN || (err == io.EOF) != tc.wantEO || (err != nil && err != io.EOF) {
			t.Errorf("ReadAt(%d bytes at %d) = %d, %v; want %d, EOF=%v", tc.n, tc.off, n, err, tc.wantN, tc.wantEO)
		}
		if !bytes.Equal(p[:n], data[min(tc.off, 5000):min(tc.off, 5000)+int64(n)]) {
			t.Errorf("ReadAt(%d bytes at %d) returned the wrong bytes", tc.n, tc.off)
		}
	}
	missing := objstore.ReaderAt(context.Background(), b, "nope", 10)
	if _, err := missing.ReadAt(make([]byte, 4), 0); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("ReadAt of a missing object: %v", err)
	}
}
