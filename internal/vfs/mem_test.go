package vfs

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// write creates name with data through fsys, syncing the file if sync.
func write(t *testing.T, fsys FS, name string, data string, sync bool) {
	t.Helper()
	f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func syncDir(t *testing.T, fsys FS, dir string) {
	t.Helper()
	if err := SyncDir(fsys, dir); err != nil {
		t.Fatal(err)
	}
}

// contents returns name's bytes, or "<absent>".
func contents(t *testing.T, fsys FS, name string) string {
	t.Helper()
	b, err := ReadFile(fsys, name)
	if errors.Is(err, fs.ErrNotExist) {
		return "<absent>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func names(t *testing.T, fsys FS, dir string) []string {
	t.Helper()
	es, err := fsys.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// TestCrashDropsUnsynced walks the cases a power loss decides: each step
// is done with and without the sync that makes it durable, and the crash
// clone must keep exactly the synced state.
func TestCrashDropsUnsynced(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, m *MemFS)
		want map[string]string // path: contents after the crash
	}{
		{"unsynced data dropped", func(t *testing.T, m *MemFS) {
			write(t, m, "/d/a", "synced", true)
			syncDir(t, m, "/d")
			f, err := m.OpenFile("/d/a", os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("+lost"))
			f.Close()
		}, map[string]string{"/d/a": "synced"}},
		{"never synced file is empty", func(t *testing.T, m *MemFS) {
			write(t, m, "/d/a", "data", false)
			syncDir(t, m, "/d")
		}, map[string]string{"/d/a": ""}},
		{"create without dir sync undone", func(t *testing.T, m *MemFS) {
			write(t, m, "/d/a", "data", true)
		}, map[string]string{"/d/a": "<absent>"}},
		{"rename without dir sync undone", func(t *testing.T, m *MemFS) {
			write(t, m, "/d/a", "old", true)
			write(t, m, "/d/a.tmp", "new", true)
			syncDir(t, m, "/d")
			if err := m.Rename("/d/a.tmp", "/d/a"); err != nil {
				t.Fatal(err)
			}
		}, map[string]string{"/d/a": "old", "/d/a.tmp": "new"}},
		{"rename with dir sync kept", func(t *testing.T, m *MemFS) {
			write(t, m, "/d/a", "old", true)
			write(t, m, "/d/a.tmp", "new", true)
			syncDir(t, m, "/d")
			if err := m.Rename("/d/a.tmp", "/d/a"); err != nil {
				t.Fatal(err)
			}
			syncDir(t, m, "/d")
		}, map[string]string{"/d/a": "new", "/d/a.tmp": "<absent>"}},
		{"remove without dir sync undone", func(t *testing.T, m *MemFS) {
			write(t, m, "/d/a", "kept", true)
			syncDir(t, m, "/d")
			if err := m.Remove("/d/a"); err != nil {
				t.Fatal(err)
			}
		}, map[string]string{"/d/a": "kept"}},
		{"remove with dir sync kept", func(t *testing.T, m *MemFS) {
			write(t, m, "/d/a", "gone", true)
			syncDir(t, m, "/d")
			m.Remove("/d/a")
			syncDir(t, m, "/d")
		}, map[string]string{"/d/a": "<absent>"}},
		{"directory not synced into its parent", func(t *testing.T, m *MemFS) {
			// /d/e/a is synced into /d/e, but /d/e never into /d.
			write(t, m, "/d/a", "x", true)
			syncDir(t, m, "/d")
			m.MkdirAll("/d/e", 0o755)
			write(t, m, "/d/e/a", "y", true)
			syncDir(t, m, "/d/e")
		}, map[string]string{"/d/a": "x", "/d/e/a": "<absent>"}},
		{"truncate without sync undone", func(t *testing.T, m *MemFS) {
			write(t, m, "/d/a", "0123456789", true)
			syncDir(t, m, "/d")
			f, _ := m.OpenFile("/d/a", os.O_RDWR, 0)
			f.Truncate(3)
			f.Write([]byte("xyz")) // at position 0: overwrites synced bytes
			f.Close()
			if got := contents(t, m, "/d/a"); got != "xyz" {
				t.Fatalf("live contents %q, want xyz", got)
			}
		}, map[string]string{"/d/a": "0123456789"}},
		{"truncate with sync kept", func(t *testing.T, m *MemFS) {
			write(t, m, "/d/a", "0123456789", true)
			syncDir(t, m, "/d")
			f, _ := m.OpenFile("/d/a", os.O_RDWR, 0)
			f.Truncate(3)
			f.Sync()
			f.Close()
		}, map[string]string{"/d/a": "012"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewCrashableMem()
			if err := m.MkdirAll("/d", 0o755); err != nil {
				t.Fatal(err)
			}
			syncDir(t, m, "/")
			tt.run(t, m)
			c := m.CrashClone(CrashOptions{})
			for p, want := range tt.want {
				if got := contents(t, c, p); got != want {
					t.Errorf("%s after crash = %q, want %q", p, got, want)
				}
			}
			// The clone is durable as a whole: a second crash keeps it.
			c2 := c.CrashClone(CrashOptions{})
			for p, want := range tt.want {
				if got := contents(t, c2, p); got != want {
					t.Errorf("%s after a second crash = %q, want %q", p, got, want)
				}
			}
		})
	}
}

// TestCrashTornTail checks that what a crash keeps of unsynced appends is
// a prefix of them or zeros, never more, and that a seeded crash repeats.
func TestCrashTornTail(t *testing.T) {
	m := NewCrashableMem()
	write(t, m, "/a", "synced:", true)
	syncDir(t, m, "/")
	f, _ := m.OpenFile("/a", os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("0123456789"))
	f.Close()
	seen := map[int]bool{}
	for seed := range uint64(200) {
		opts := CrashOptions{Rand: rand.New(rand.NewPCG(seed, 1)), TornProb: 1}
		got := contents(t, m.CrashClone(opts), "/a")
		again := contents(t, m.CrashClone(CrashOptions{Rand: rand.New(rand.NewPCG(seed, 1)), TornProb: 1}), "/a")
		if got != again {
			t.Fatalf("seed %d: %q then %q", seed, got, again)
		}
		tail, ok := bytes.CutPrefix([]byte(got), []byte("synced:"))
		if !ok || len(tail) > 10 {
			t.Fatalf("seed %d: %q", seed, got)
		}
		if !bytes.HasPrefix([]byte("0123456789"), tail) && !bytes.Equal(tail, make([]byte, len(tail))) {
			t.Fatalf("seed %d: tail %q is neither a prefix nor zeros", seed, tail)
		}
		seen[len(tail)] = true
	}
	if len(seen) < 5 {
		t.Fatalf("torn lengths seen: %v; want a spread", seen)
	}
}

// TestCrashKeepsLiveDir checks DirProb: a directory keeps every unsynced
// entry change, with the files' synced contents.
func TestCrashKeepsLiveDir(t *testing.T) {
	m := NewCrashableMem()
	write(t, m, "/old", "o", true)
	syncDir(t, m, "/")
	write(t, m, "/new", "n", true)
	m.Remove("/old")
	c := m.CrashClone(CrashOptions{Rand: rand.New(rand.NewPCG(1, 1)), DirProb: 1})
	if got := names(t, c, "/"); !slices.Equal(got, []string{"new"}) {
		t.Fatalf("entries %v, want [new]", got)
	}
	if got := contents(t, c, "/new"); got != "n" {
		t.Fatalf("/new = %q", got)
	}
}

// TestFailAfter checks the dead-disk injection: the first n mutating calls
// work, every later one fails with the error and changes nothing, reads go
// on.
func TestFailAfter(t *testing.T) {
	m := NewCrashableMem()
	write(t, m, "/a", "x", true) // create, write, sync: 3
	if n := m.MutatingOps(); n != 3 {
		t.Fatalf("MutatingOps = %d, want 3", n)
	}
	m.FailAfter(4, nil)
	if err := m.MkdirAll("/d", 0o755); err != nil { // the 4th
		t.Fatal(err)
	}
	checks := map[string]error{
		"create": func() error { _, err := m.OpenFile("/b", os.O_CREATE|os.O_WRONLY, 0o644); return err }(),
		"rename": m.Rename("/a", "/c"),
		"remove": m.Remove("/a"),
		"mkdir":  m.MkdirAll("/e", 0o755),
		"temp":   func() error { _, err := m.CreateTemp("/d", "t*", 0o600); return err }(),
		"sync":   SyncDir(m, "/"),
	}
	for op, err := range checks {
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("%s after the failure point: %v, want EIO", op, err)
		}
	}
	f, err := m.OpenFile("/a", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("y")); !errors.Is(err, syscall.EIO) {
		t.Errorf("write: %v", err)
	}
	if err := f.Truncate(0); !errors.Is(err, syscall.EIO) {
		t.Errorf("truncate: %v", err)
	}
	f.Close()
	if got := contents(t, m, "/a"); got != "x" {
		t.Fatalf("/a = %q after failed calls", got)
	}
	if got := names(t, m, "/"); !slices.Equal(got, []string{"a", "d"}) {
		t.Fatalf("entries %v", got)
	}
	if n := m.MutatingOps(); n != 4 {
		t.Fatalf("MutatingOps = %d, want 4", n)
	}
}

// TestSameAsOS runs one sequence of calls on Default and on a MemFS and
// compares what they answer, errors included, so the memory filesystem
// behaves as the code under test expects of the real one.
func TestSameAsOS(t *testing.T) {
	for _, tc := range []struct {
		name string
		fsys FS
		root string
	}{{"os", Default, t.TempDir()}, {"mem", NewCrashableMem(), "/tmp/x"}} {
		t.Run(tc.name, func(t *testing.T) {
			fsys, r := tc.fsys, tc.root
			p := func(s string) string { return filepath.Join(r, s) }
			if err := fsys.MkdirAll(p("a/b"), 0o755); err != nil {
				t.Fatal(err)
			}
			write(t, fsys, p("a/f"), "hello", true)
			if _, err := fsys.OpenFile(p("a/f"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); !errors.Is(err, fs.ErrExist) {
				t.Errorf("O_EXCL over a file: %v", err)
			}
			if _, err := fsys.Open(p("a/missing")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("open missing: %v", err)
			}
			if _, err := fsys.Stat(p("a/f/x")); !errors.Is(err, syscall.ENOTDIR) {
				t.Errorf("stat below a file: %v", err)
			}
			if err := fsys.Remove(p("a")); !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
				t.Errorf("remove non-empty dir: %v", err)
			}
			tmp, err := fsys.CreateTemp(p("a"), "t-*.x", 0o644)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tmp.Write([]byte("abc")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 5)
			n, err := tmp.ReadAt(buf, 1)
			if n != 2 || string(buf[:n]) != "bc" || err == nil {
				t.Errorf("ReadAt past the end: %d %q %v", n, buf[:n], err)
			}
			st, err := tmp.Stat()
			if err != nil || st.Size() != 3 || st.Mode().Perm() != 0o644 {
				t.Errorf("stat temp: %v %v", st, err)
			}
			tmp.Close()
			if err := fsys.Rename(tmp.Name(), p("a/f")); err != nil {
				t.Fatal(err)
			}
			if got := contents(t, fsys, p("a/f")); got != "abc" {
				t.Errorf("after rename over: %q", got)
			}
			if got := names(t, fsys, p("a")); !slices.Equal(got, []string{"b", "f"}) {
				t.Errorf("entries %v", got)
			}
			es, _ := fsys.ReadDir(p("a"))
			if !es[0].IsDir() || es[1].IsDir() {
				t.Errorf("kinds: %v", es)
			}
			if info, err := es[1].Info(); err != nil || info.Size() != 3 {
				t.Errorf("info: %v %v", info, err)
			}
			if err := SyncDir(fsys, p("a")); err != nil {
				t.Fatal(err)
			}
			if err := fsys.Remove(p("a/b")); err != nil {
				t.Fatal(err)
			}
			m, err := func() (Mapping, error) {
				f, err := fsys.Open(p("a/f"))
				if err != nil {
					return Mapping{}, err
				}
				defer f.Close()
				return Map(f, 3)
			}()
			if err != nil || string(m.Data) != "abc" || m.Mapped != (tc.name == "os") {
				t.Errorf("Map: %q mapped=%v %v", m.Data, m.Mapped, err)
			}
			m.DontNeed(0, len(m.Data))
			if string(m.Data) != "abc" {
				t.Errorf("after DontNeed: %q", m.Data)
			}
			if err := m.Unmap(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestMkdirAllSync: the directories MkdirAllSync creates survive a crash,
// those of MkdirAll alone do not.
func TestMkdirAllSync(t *testing.T) {
	m := NewCrashableMem()
	if err := MkdirAllSync(m, "/durable/a/b", 0o755); err != nil {
		t.Fatal(err)
	}
	// (After: syncing / above would have made its entry durable too.)
	if err := m.MkdirAll("/plain/a/b", 0o755); err != nil {
		t.Fatal(err)
	}
	c := m.CrashClone(CrashOptions{})
	if _, err := c.Stat("/durable/a/b"); err != nil {
		t.Errorf("after the crash: %v", err)
	}
	if _, err := c.Stat("/plain"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a directory never synced into its parent survived: %v", err)
	}
	// A directory that exists but is not durable (made by a start that
	// crashed before its sync) is made durable too.
	if err := MkdirAllSync(m, "/plain/a/b", 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CrashClone(CrashOptions{}).Stat("/plain/a/b"); err != nil {
		t.Errorf("after the crash: %v", err)
	}
}
