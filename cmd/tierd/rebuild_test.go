package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/tierd/tierd/testenv"
)

func tierctl(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	bin, err := buildTierctl()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("tierctl %v: %v\n%s", args, err, out)
		}
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// segIdentity is what a rebuilt catalog must restore of a segment.
type segIdentity struct {
	Base, Last, Count uint64
	Digest            string
	Tiers             []string
	ColdBytes         int64
	Active            bool
}

func identities(segs []segInfo) []segIdentity {
	out := make([]segIdentity, len(segs))
	for i, s := range segs {
		out[i] = segIdentity{s.Base, s.Last, s.Count, s.Digest, s.Tiers, s.ColdBytes, s.Active}
	}
	return out
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestCatalogRebuildOfflineCLI: with tierd stopped and its catalog lost,
// `tierctl catalog rebuild` recreates it from the warm directory and the
// bucket alone; tierd then lists the same segments in the same places and
// serves the same records. A second rebuild refuses to overwrite.
func TestCatalogRebuildOfflineCLI(t *testing.T) {
	m := testenv.StartMinIO(t)
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	config := writeConfig(t, dir, fmt.Sprintf(`
max_record_bytes: 4KiB
segment: {max_bytes: 8KiB, max_age: 300ms}
hot: {max_age: 300ms}
cold: {store: %q}
migrator: {schedule: "@every 1s"}
policies:
  - name: archive
    streams: ["arch*"]
    warm: {max_age: 1s}
  - name: tail
    streams: ["tail*"]
    segment: {max_bytes: 1MiB, max_age: 1h}
  - name: local
    streams: ["*"]
`, m.URL("aws")))
	env := minioEnv(m)
	d := startDaemonEnv(t, config, dataDir, env...)
	// arch.* goes to cold alone, local.* stays in warm alone, and tail.*
	// stays in its active segment: in memory and the WAL only.
	const arch, local, tail = "arch.trades", "local.audit", "tail.events"
	streams := []string{arch, local, tail}
	var l ledger
	r := rand.New(rand.NewPCG(11, uint64(time.Now().UnixNano())))
	for i := 0; i < 10; i++ {
		for _, s := range streams {
			b := newBatch(r, fmt.Sprintf("cat-%s-%d", s, i), s, 40)
			l.add(b)
			if err := appendBatch(http.DefaultClient, d.addr, b); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(150 * time.Millisecond)
	}
	before := map[string][]segInfo{}
	waitFor(t, 60*time.Second, "arch.* in cold alone, local.* in warm alone", func() (bool, string) {
		ok := true
		for _, s := range []string{arch, local} {
			segs := segments(t, d.addr, s)
			before[s] = segs
			var n uint64
			for _, sg := range segs {
				n += sg.Count
				want := []string{"warm"}
				if s == arch {
					want = []string{"cold"}
				}
				ok = ok && !sg.Active && slices.Equal(sg.Tiers, want)
			}
			_, acked := l.acked(s)
			ok = ok && n == uint64(acked) && len(segs) >= 3
		}
		return ok, describe(before)
	})
	if segs := segments(t, d.addr, tail); len(segs) != 1 || !segs[0].Active {
		t.Fatalf("%s: want one active segment, got %v", tail, segs)
	}
	// One local segment gets a cold copy as well, so that the rebuild has
	// to merge a warm file and an object of one segment.
	both := before[local][1].Base
	code, body := func() (int, string) {
		resp, err := http.Post(fmt.Sprintf("http://%s/v1/streams/%s/segments/%d/offload?keep_warm=true", d.addr, local, both), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}()
	if code != 200 {
		t.Fatalf("offload keep_warm %s/%d: %d %s", local, both, code, body)
	}
	reads := map[string][]wireRecord{}
	tiersBefore := map[string][]string{}
	for _, s := range streams {
		before[s] = segments(t, d.addr, s)
		reads[s] = readAll(t, d.addr, s)
		check(t, s, reads[s], l.all())
		tiersBefore[s] = readTiers(t, d.addr, s)
	}
	if seg := before[local][1]; !slices.Equal(seg.Tiers, []string{"warm", "cold"}) {
		t.Fatalf("after offload with keep_warm: %v, want warm and cold", seg)
	}
	d.stop(t)

	catalogPath := filepath.Join(dataDir, "catalog.db")
	if err := os.Remove(catalogPath); err != nil {
		t.Fatal(err)
	}
	code, out := tierctl(t, env, "catalog", "rebuild", "--config", config, "--data-dir", dataDir)
	if code != 0 {
		t.Fatalf("tierctl catalog rebuild: exit %d\n%s", code, out)
	}
	t.Logf("tierctl catalog rebuild:\n%s", out)
	sum := fileSum(t, catalogPath)
	code, out2 := tierctl(t, env, "catalog", "rebuild", "--config", config, "--data-dir", dataDir)
	if code == 0 {
		t.Fatalf("tierctl catalog rebuild with catalog.db present exited 0:\n%s", out2)
	}
	if fileSum(t, catalogPath) != sum {
		t.Fatalf("a refused rebuild changed catalog.db (exit %d):\n%s", code, out2)
	}

	d = startDaemonEnv(t, config, dataDir, env...)
	for _, s := range streams {
		after := segments(t, d.addr, s)
		if !reflect.DeepEqual(identities(after), identities(before[s])) {
			t.Fatalf("%s: segments after the rebuild differ\nbefore: %+v\nafter:  %+v", s, identities(before[s]), identities(after))
		}
		got := readAll(t, d.addr, s)
		if !reflect.DeepEqual(got, reads[s]) {
			t.Fatalf("%s: records after the rebuild differ from before (%d records, were %d)", s, len(got), len(reads[s]))
		}
		if tiers := readTiers(t, d.addr, s); !slices.Equal(tiers, tiersBefore[s]) {
			t.Fatalf("%s: records served from %v after the rebuild, from %v before", s, tiers, tiersBefore[s])
		}
	}
	verifyOK(t, d.addr)
	checkBucket(t, m, before)
}
