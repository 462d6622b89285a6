package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tierd/tierd/testenv"
)

// The crash test drives the real binary: concurrent writers append batches
// over HTTP while the daemon is killed with SIGKILL at random moments; after
// every restart each acknowledged record must be present exactly once at its
// acknowledged offset with identical content, each unacknowledged batch
// present whole or not at all, and offsets dense.

// goBuild compiles pkg into a fresh temporary directory as name.
func goBuild(pkg, name string) (string, error) {
	dir, err := os.MkdirTemp("", name+"-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, name)
	out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

// freeAddr returns a loopback address nothing listens on: a server that
// is down, as a client sees it. The port stays reserved for the test
// (testenv.ReservePort), so no other process answers there.
func freeAddr(t *testing.T) string {
	t.Helper()
	return testenv.ReservePort(t).Addr()
}

// startDaemon starts tierd on config and returns once it listens.
func startDaemon(t *testing.T, config, dataDir string) *daemon {
	t.Helper()
	return startDaemonEnv(t, config, dataDir)
}

// kill sends SIGKILL and waits for the exit.
func (d *daemon) kill() { d.Kill() }

// batch is one append request as a writer sent it.
type batch struct {
	id     string
	stream string
	values []string // each record's value, as JSON
	acked  bool
	first  uint64
}

type wireRecord struct {
	Offset uint64          `json:"offset"`
	Key    string          `json:"key"`
	TS     string          `json:"ts"`
	Tags   []string        `json:"tags"`
	Value  json.RawMessage `json:"value"`
}

func appendBatch(client *http.Client, addr string, b *batch) error {
	var body bytes.Buffer
	for i, v := range b.values {
		fmt.Fprintf(&body, `{"key":%q,"ts":%d,"tags":["crash","i%d"],"value":%s}`+"\n", b.id, 1_700_000_000_000_000_000+int64(i), i, v)
	}
	resp, err := client.Post("http://"+addr+"/v1/streams/"+b.stream+"/records", "application/x-ndjson", &body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var ack struct {
		First uint64 `json:"first_offset"`
		Count int    `json:"count"`
	}
	if resp.StatusCode != 200 {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("status %d: %s", resp.StatusCode, msg)
	}
	if err := json.NewDecoder(resp.Body).Decode(&ack); err != nil {
		return err
	}
	if ack.Count != len(b.values) {
		return fmt.Errorf("ack count %d, sent %d", ack.Count, len(b.values))
	}
	b.acked, b.first = true, ack.First
	return nil
}

func readAll(t *testing.T, addr, stream string) []wireRecord {
	t.Helper()
	var out []wireRecord
	from := uint64(0)
	for {
		resp, err := http.Get(fmt.Sprintf("http://%s/v1/streams/%s/records?from=%d&limit=100000", addr, stream, from))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == 404 {
			resp.Body.Close()
			return nil
		}
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("read %s: %d %s", stream, resp.StatusCode, b)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		n := 0
		for sc.Scan() {
			var r wireRecord
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("bad line %q: %v", sc.Text(), err)
			}
			out = append(out, r)
			n++
		}
		resp.Body.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		if n < 100000 {
			return out
		}
		from = out[len(out)-1].Offset + 1
	}
}

// check verifies the invariants of one stream against every batch ever sent.
func check(t *testing.T, stream string, got []wireRecord, batches []*batch) {
	t.Helper()
	byID := map[string]*batch{}
	for _, b := range batches {
		if b.stream == stream {
			byID[b.id] = b
		}
	}
	for i, r := range got {
		if r.Offset != uint64(i) {
			t.Fatalf("%s: offsets not dense: position %d has offset %d", stream, i, r.Offset)
		}
	}
	seen := map[string]bool{}
	for i := 0; i < len(got); {
		r := got[i]
		b := byID[r.Key]
		if b == nil {
			t.Fatalf("%s: offset %d holds a record of unknown batch %q", stream, r.Offset, r.Key)
		}
		if seen[b.id] {
			t.Fatalf("%s: batch %s appears twice (again at offset %d)", stream, b.id, r.Offset)
		}
		seen[b.id] = true
		if b.acked && b.first != r.Offset {
			t.Fatalf("%s: acked batch %s at offset %d, acknowledged at %d", stream, b.id, r.Offset, b.first)
		}
		if i+len(b.values) > len(got) {
			t.Fatalf("%s: batch %s is cut short: %d of %d records", stream, b.id, len(got)-i, len(b.values))
		}
		for j, v := range b.values {
			g := got[i+j]
			if g.Key != b.id || string(g.Value) != v || len(g.Tags) != 2 || g.Tags[1] != fmt.Sprintf("i%d", j) {
				t.Fatalf("%s: offset %d: got key %q value %s tags %v, want batch %s record %d value %s", stream, g.Offset, g.Key, g.Value, g.Tags, b.id, j, v)
			}
			wantTS := time.Unix(0, 1_700_000_000_000_000_000+int64(j)).UTC().Format(time.RFC3339Nano)
			if g.TS != wantTS {
				t.Fatalf("%s: offset %d: ts %s, want %s", stream, g.Offset, g.TS, wantTS)
			}
		}
		i += len(b.values)
	}
	for _, b := range byID {
		if b.acked && !seen[b.id] {
			t.Fatalf("%s: acknowledged batch %s (offset %d, %d records) is missing", stream, b.id, b.first, len(b.values))
		}
	}
}

func TestCrashKill9(t *testing.T) {
	rounds := 12
	if testing.Short() {
		rounds = 3
	}
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	config := filepath.Join(dir, "tierd.yaml")
	// Small segments, WAL files and ages so that sealing, flushing, WAL
	// rotation and checkpointing all happen while the daemon is killed.
	os.WriteFile(config, []byte(`
max_record_bytes: 16KiB
wal: {sync: always, segment_bytes: 256KiB}
segment: {max_bytes: 64KiB, max_age: 300ms}
hot: {max_bytes: 64MiB, max_age: 500ms}
`), 0o644)
	streams := []string{"IF2406", "IC2406", "audit.log"}
	var (
		mu      sync.Mutex
		batches []*batch
	)
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	for round := 0; round < rounds; round++ {
		d := startDaemon(t, config, dataDir)
		// Everything sent in earlier rounds must have survived.
		for _, s := range streams {
			check(t, s, readAll(t, d.addr, s), batches)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			seed := rng.Uint64()
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(seed, uint64(w)))
				client := &http.Client{Timeout: 10 * time.Second}
				for n := 0; ctx.Err() == nil; n++ {
					b := &batch{id: fmt.Sprintf("r%d-w%d-%d", round, w, n), stream: streams[r.IntN(len(streams))]}
					for i := range 1 + r.IntN(40) {
						b.values = append(b.values, fmt.Sprintf(`{"b":%q,"i":%d,"pad":"%s"}`, b.id, i, bytes.Repeat([]byte("x"), r.IntN(300))))
					}
					mu.Lock()
					batches = append(batches, b)
					mu.Unlock()
					if err := appendBatch(client, d.addr, b); err != nil {
						if ctx.Err() == nil {
							t.Logf("writer %d: %v", w, err)
						}
						return // the daemon is gone
					}
				}
			}()
		}
		time.Sleep(time.Duration(150+rng.IntN(700)) * time.Millisecond)
		d.kill()
		cancel()
		wg.Wait()
	}
	d := startDaemon(t, config, dataDir)
	total, acked := 0, 0
	for _, s := range streams {
		got := readAll(t, d.addr, s)
		check(t, s, got, batches)
		total += len(got)
	}
	for _, b := range batches {
		if b.acked {
			acked++
		}
	}
	if acked < rounds*10 {
		t.Fatalf("only %d batches were acknowledged in %d rounds; the test exercised too little", acked, rounds)
	}
	t.Logf("%d rounds, %d batches sent, %d acknowledged, %d records read back", rounds, len(batches), acked, total)
}

func TestGracefulShutdownOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "tierd.yaml")
	os.WriteFile(config, []byte("wal: {sync: always}\n"), 0o644)
	d := startDaemon(t, config, filepath.Join(dir, "data"))
	b := &batch{id: "graceful", stream: "s", values: []string{`{"a":1}`, `{"b":2}`}}
	if err := appendBatch(http.DefaultClient, d.addr, b); err != nil {
		t.Fatal(err)
	}
	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.Exited():
	case <-time.After(30 * time.Second):
		t.Fatalf("tierd still running 30 s after SIGTERM:\n%s", d.logs())
	}
	if code := d.ExitCode(); code != 0 || !strings.Contains(d.logs(), "stopped") {
		t.Fatalf("exit code %d after SIGTERM, log:\n%s", code, d.logs())
	}
	d2 := startDaemon(t, config, filepath.Join(dir, "data"))
	check(t, "s", readAll(t, d2.addr, "s"), []*batch{b})
	if got := readAll(t, d2.addr, "s"); len(got) != 2 {
		t.Fatalf("after a graceful restart: %d records, want 2", len(got))
	}
}
