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
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/tierd/tierd/testenv"
)

// Helpers for the tests that drive the real binary through migrations:
// a daemon started with extra environment (failpoints), the segments
// listing, verify, a listing of the MinIO bucket, and writers that keep a
// ledger of every batch sent.

// lockedBuffer collects a daemon's output; it may be read while the
// process runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// daemon is a tierd process these tests started (testenv.StartTierd, on
// 127.0.0.1:0), with the address it listens on.
type daemon struct {
	*testenv.Tierd
	addr string
}

// envDaemon is a daemon started with extra environment variables.
type envDaemon = daemon

// logs returns the output of the daemon's current run.
func (d *daemon) logs() string { return d.RunLogs() }

// tail returns the last n bytes of the daemon's output, every run.
func (d *daemon) tail(n int) string { return d.Tail(n) }

// startDaemonEnv starts tierd on config with env ("NAME=value") added to
// the test process's environment and returns once it listens. On failure
// of the test the end of the daemon's log is printed.
func startDaemonEnv(t *testing.T, config, dataDir string, env ...string) *envDaemon {
	t.Helper()
	d := testenv.StartTierd(t, testenv.TierdOptions{Config: config, DataDir: dataDir, Env: env})
	return &daemon{Tierd: d, addr: d.Addr()}
}

// restart starts the stopped or killed daemon again on its data and its
// address (where its clients, tierctl processes among them, expect it),
// without the first run's extra environment.
func (d *daemon) restart(t *testing.T) {
	t.Helper()
	d.Restart()
	if d.Addr() != d.addr {
		t.Fatalf("tierd restarted on %s, not on %s", d.Addr(), d.addr)
	}
}

// stop shuts the daemon down with SIGTERM and waits for a clean exit.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	d.Stop()
}

// segInfo is one entry of GET /v1/streams/{s}/segments.
type segInfo struct {
	Base       uint64   `json:"base"`
	Last       uint64   `json:"last"`
	Count      uint64   `json:"count"`
	Bytes      int64    `json:"bytes"`
	ColdBytes  int64    `json:"cold_bytes"`
	MinTS      string   `json:"min_ts"`
	Tiers      []string `json:"tiers"`
	Digest     string   `json:"digest"`
	Active     bool     `json:"active"`
	Tombstoned string   `json:"tombstoned"`
}

func (s segInfo) String() string {
	extra := ""
	if s.Active {
		extra += " active"
	}
	if s.Tombstoned != "" {
		extra += " tombstoned"
	}
	return fmt.Sprintf("[%d,%d]×%d %v%s", s.Base, s.Last, s.Count, s.Tiers, extra)
}

// coldOnly reports whether the segment is sealed and placed in cold alone.
func (s segInfo) coldOnly() bool {
	return !s.Active && s.Tombstoned == "" && slices.Equal(s.Tiers, []string{"cold"})
}

// segments returns a stream's segments listing; nil for an unknown stream.
func segments(t *testing.T, addr, stream string) []segInfo {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/v1/streams/" + stream + "/segments")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == 404 {
		return nil
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("segments of %s: %d %s", stream, resp.StatusCode, body)
	}
	var segs []segInfo
	if err := json.Unmarshal(body, &segs); err != nil {
		t.Fatalf("segments of %s: %v in %s", stream, err, body)
	}
	return segs
}

// waitFor polls cond every 100 ms until it holds, failing the test with
// cond's last description of the state after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s; last state: %s", what, timeout, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// verifyResult is the answer of POST /v1/verify.
type verifyResult struct {
	OK       bool              `json:"ok"`
	Findings []json.RawMessage `json:"findings"`
	Streams  []struct {
		Stream   string `json:"stream"`
		Segments int    `json:"segments"`
	} `json:"streams"`
	WarmFiles   int `json:"warm_files"`
	ColdObjects int `json:"cold_objects"`
}

// verifyOK runs POST /v1/verify and fails the test unless it is clean.
func verifyOK(t *testing.T, addr string) verifyResult {
	t.Helper()
	body := postVerify(t, addr)
	var v verifyResult
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("verify: %v in %s", err, body)
	}
	if !v.OK || len(v.Findings) != 0 {
		t.Fatalf("verify is not clean: %s", body)
	}
	return v
}

// postVerify runs POST /v1/verify and returns its 200 answer's body.
func postVerify(t *testing.T, addr string) []byte {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/v1/verify", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("verify: %d %s", resp.StatusCode, body)
	}
	return body
}

// bucketObjects lists every object of the test's bucket: key → size.
func bucketObjects(t *testing.T, m *testenv.MinIO) map[string]int64 {
	t.Helper()
	u, err := url.Parse(m.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	c, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.SecretKey, ""), Region: testenv.Region, MaxRetries: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[string]int64{}
	for obj := range c.ListObjects(ctx, m.Bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			t.Fatalf("list bucket %s: %v", m.Bucket, obj.Err)
		}
		out[obj.Key] = obj.Size
	}
	return out
}

// coldKey is the object key (with the "tierd" prefix of testenv's URL) a
// cold segment must have: stream=<s>/date=<UTC day of min_ts>/<base>-<last>.parquet.
func coldKey(t *testing.T, stream string, s segInfo) string {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s.MinTS)
	if err != nil {
		t.Fatalf("segment %s/%d: min_ts %q: %v", stream, s.Base, s.MinTS, err)
	}
	return fmt.Sprintf("tierd/stream=%s/date=%s/%020d-%020d.parquet", stream, ts.UTC().Format("2006-01-02"), s.Base, s.Last)
}

// tablesMetadata reports whether key (with the "tierd" prefix of
// testenv's URL) is the Iceberg tables' metadata beside the segments: under
// _iceberg/, or a directory marker iceberg-go's S3 IO writes on its way
// there ("tierd/").
func tablesMetadata(key string) bool {
	return strings.HasPrefix(key, "tierd/_iceberg/") || key == "tierd/"
}

// checkBucket asserts that the bucket holds exactly one object per cold
// segment of the listings (of the size the catalog recorded) and nothing
// else but the tables' metadata.
func checkBucket(t *testing.T, m *testenv.MinIO, listings map[string][]segInfo) {
	t.Helper()
	want := map[string]int64{}
	for stream, segs := range listings {
		for _, s := range segs {
			if slices.Contains(s.Tiers, "cold") {
				want[coldKey(t, stream, s)] = s.ColdBytes
			}
		}
	}
	got := bucketObjects(t, m)
	var problems []string
	for k, size := range want {
		gs, ok := got[k]
		switch {
		case !ok:
			problems = append(problems, "missing object "+k)
		case gs != size:
			problems = append(problems, fmt.Sprintf("object %s has %d bytes, cold_bytes says %d", k, gs, size))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok && !tablesMetadata(k) {
			problems = append(problems, "object no cold segment accounts for: "+k)
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		t.Fatalf("bucket %s (%d objects, %d cold segments):\n%s", m.Bucket, len(got), len(want), strings.Join(problems, "\n"))
	}
}

// warmFiles lists the segment files of a stream's warm directory.
func warmFiles(t *testing.T, dataDir, stream string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dataDir, "warm", stream, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// ledger is every batch the writers sent, acknowledged or not.
type ledger struct {
	mu      sync.Mutex
	batches []*batch
}

func (l *ledger) add(b *batch) {
	l.mu.Lock()
	l.batches = append(l.batches, b)
	l.mu.Unlock()
}

// all returns the batches sent so far; call it once the writers are done.
func (l *ledger) all() []*batch {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.batches)
}

// acked counts the acknowledged batches and records of stream ("" for
// every stream).
func (l *ledger) acked(stream string) (batches, records int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.batches {
		if b.acked && (stream == "" || b.stream == stream) {
			batches++
			records += len(b.values)
		}
	}
	return
}

// newBatch makes a batch of 1–max records with padded values.
func newBatch(r *rand.Rand, id, stream string, max int) *batch {
	b := &batch{id: id, stream: stream}
	for i := range 1 + r.IntN(max) {
		b.values = append(b.values, fmt.Sprintf(`{"b":%q,"i":%d,"pad":"%s"}`, id, i, bytes.Repeat([]byte("x"), r.IntN(300))))
	}
	return b
}

// writeUntil appends batches to stream every pause until ctx is done or an
// append fails (the daemon is gone); every batch goes to l first. It
// returns the first error, nil when stopped by ctx.
func writeUntil(ctx context.Context, addr, stream, prefix string, seed uint64, pause time.Duration, l *ledger) error {
	r := rand.New(rand.NewPCG(seed, uint64(len(prefix))))
	client := &http.Client{Timeout: 10 * time.Second}
	for n := 0; ctx.Err() == nil; n++ {
		b := newBatch(r, fmt.Sprintf("%s-%d", prefix, n), stream, 20)
		l.add(b)
		if err := appendBatch(client, addr, b); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
	return nil
}

// readStatus GETs url and returns the status and body.
func readStatus(t *testing.T, u string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// countLines counts the NDJSON lines of body.
func countLines(body []byte) int {
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) > 0 {
			n++
		}
	}
	return n
}
