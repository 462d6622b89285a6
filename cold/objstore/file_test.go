package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/internal/vfs"
)

// failingReader yields n bytes and then fails, like an upload source that
// dies (a crash of the encoder, a broken pipe) before the object is whole.
type failingReader struct {
	r io.Reader
	n int
}

var errSourceDied = errors.New("source died")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errSourceDied
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

// TestFileInterruptedPut: a Put that fails before its rename leaves no
// visible object, keeps the old one intact, and leaves no temporary file.
func TestFileInterruptedPut(t *testing.T) {
	dir := t.TempDir()
	b, err := objstore.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := "tierd/stream=IF2406/date=2026-11-22/00000000000000000000-00000000000000000099.parquet"
	cases := []struct {
		name   string
		before []byte // object present before the Put; nil for none
	}{
		{"new object", nil},
		{"overwrite", []byte("the committed version")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b.Delete(ctx, key)
			if tc.before != nil {
				put(t, b, key, tc.before)
			}
			data := pattern(1<<20, 6)
			err := b.Put(ctx, key, &failingReader{r: bytes.NewReader(data), n: len(data) / 2}, int64(len(data)))
			if !errors.Is(err, errSourceDied) {
				t.Fatalf("Put = %v, want the reader's error", err)
			}
			if !strings.Contains(err.Error(), "put") || !strings.Contains(err.Error(), key) {
				t.Fatalf("error %q does not name the op and key", err)
			}
			a, err := b.Stat(ctx, key)
			if tc.before == nil {
				if !errors.Is(err, objstore.ErrNotFound) {
					t.Fatalf("interrupted Put left a visible object: %+v, %v", a, err)
				}
			} else if got := get(t, b, key); !bytes.Equal(got, tc.before) {
				t.Fatalf("interrupted Put changed the old object to %d bytes", len(got))
			}
			assertNoTempFiles(t, dir)
		})
	}
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".objstore-tmp-") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
}

// TestFileCrashLeftovers: a crash between write and rename leaves a
// temporary file; it must stay invisible to every read and to List.
func TestFileCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	b, err := objstore.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	put(t, b, "s/obj", []byte("committed"))
	leftover := filepath.Join(dir, "s", ".objstore-tmp-123456")
	if err := os.WriteFile(leftover, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	keys, _ := listKeys(t, b, "")
	if len(keys) != 1 || keys[0] != "s/obj" {
		t.Fatalf("List shows %q, want only s/obj", keys)
	}
	if _, err := b.Stat(context.Background(), "s/.objstore-tmp-123456"); !errors.Is(err, objstore.ErrInvalidKey) {
		t.Fatalf("Stat of a temporary file: %v, want ErrInvalidKey", err)
	}
}

// TestFileStaysInRoot: keys map to paths under the root and nowhere else.
func TestFileStaysInRoot(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "store")
	b, err := objstore.NewFile(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"../escape", "a/../../escape", "/etc/passwd", "a/b/../../../escape"} {
		if err := b.Put(context.Background(), key, strings.NewReader("x"), 1); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 1 {
		t.Fatalf("files appeared beside the root: %v", entries)
	}
	put(t, b, "a/b/c", []byte("x"))
	if _, err := os.Stat(filepath.Join(root, "a", "b", "c")); err != nil {
		t.Fatalf("key a/b/c is not the file a/b/c: %v", err)
	}
	// Deleting the last object prunes the directories it emptied.
	if err := b.Delete(context.Background(), "a/b/c"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "a")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty directories left after Delete: %v", err)
	}
	if _, err := os.Stat(root); err != nil {
		t.Fatalf("Delete removed the root: %v", err)
	}
}

// FuzzValidateKey: every key ValidateKey accepts maps to a path strictly
// inside the root, unchanged by path cleaning (so two keys never share a
// file) and never onto a temporary file.
func FuzzValidateKey(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "tierd/stream=A/date=2026-01-01/0-1.parquet", "a//b", "./a", "a/.objstore-tmp-1"} {
		f.Add(s)
	}
	const root = "/store"
	f.Fuzz(func(t *testing.T, key string) {
		if objstore.ValidateKey(key) != nil {
			return
		}
		p := filepath.Join(root, filepath.FromSlash(key))
		if p != root+"/"+key {
			t.Fatalf("key %q maps to %q, not %q", key, p, root+"/"+key)
		}
		if !strings.HasPrefix(p, root+"/") {
			t.Fatalf("key %q escapes the root: %q", key, p)
		}
		if strings.Contains(key, ".objstore-tmp-") && strings.Contains("/"+key, "/.objstore-tmp-") {
			t.Fatalf("key %q names a temporary file", key)
		}
	})
}

// TestFilePutSurvivesCrash: once Put returns, the object survives a power
// loss, although its key's directories were new: a crash that keeps only
// what was synced must keep them and the object.
func TestFilePutSurvivesCrash(t *testing.T) {
	m := vfs.NewCrashableMem()
	b, err := objstore.NewFileFS(m, "/data/cold")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := "tierd/stream=IF2406/date=2026-11-22/00000000000000000000-00000000000000000099.parquet"
	put(t, b, key, []byte("the object"))
	after, err := objstore.NewFileFS(m.CrashClone(vfs.CrashOptions{}), "/data/cold")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := after.Get(ctx, key)
	if err != nil {
		t.Fatalf("after the crash: %v", err)
	}
	defer rc.Close()
	if got, _ := io.ReadAll(rc); string(got) != "the object" {
		t.Fatalf("after the crash: %q", got)
	}
}
