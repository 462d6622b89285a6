package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tierd/tierd/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestColdEndToEnd drives the real binary with its cold store in a real
// MinIO: records appended over HTTP, sealed and persisted by age, moved with
// the offload endpoint, and after a restart served from cold, identical.
func TestColdEndToEnd(t *testing.T) {
	m := testenv.StartMinIO(t)
	t.Setenv("AWS_ACCESS_KEY_ID", m.AccessKey) // the daemon reads the standard variables
	t.Setenv("AWS_SECRET_ACCESS_KEY", m.SecretKey)
	dir := t.TempDir()
	config := filepath.Join(dir, "tierd.yaml")
	os.WriteFile(config, []byte(fmt.Sprintf(`
max_record_bytes: 16KiB
segment: {max_bytes: 32KiB, max_age: 200ms}
hot: {max_age: 300ms}
cold: {store: %q}
`, m.URL("aws"))), 0o644)
	d := startDaemon(t, config, filepath.Join(dir, "data"))
	var batches []*batch
	for i := 0; i < 30; i++ {
		b := &batch{id: fmt.Sprintf("b%d", i), stream: "IF2406"}
		for j := 0; j < 20; j++ {
			b.values = append(b.values, fmt.Sprintf(`{"i":%d,"j":%d,"pad":"%0200d"}`, i, j, j))
		}
		if err := appendBatch(http.DefaultClient, d.addr, b); err != nil {
			t.Fatal(err)
		}
		batches = append(batches, b)
	}
	// Wait until every segment is sealed and persisted warm.
	var segs []struct {
		Base   uint64   `json:"base"`
		Tiers  []string `json:"tiers"`
		Active bool     `json:"active"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + d.addr + "/v1/streams/IF2406/segments")
		if err != nil {
			t.Fatal(err)
		}
		segs = nil // Decode would keep fields the answer omits
		json.NewDecoder(resp.Body).Decode(&segs)
		resp.Body.Close()
		warm := 0
		for _, s := range segs {
			if !s.Active && contains(s.Tiers, "warm") {
				warm++
			}
		}
		if warm == len(segs) && len(segs) > 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("segments never all persisted: %+v", segs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, s := range segs {
		resp, err := http.Post(fmt.Sprintf("http://%s/v1/streams/IF2406/segments/%d/offload", d.addr, s.Base), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("offload %d: %d %s", s.Base, resp.StatusCode, body)
		}
	}
	d.kill()
	d = startDaemon(t, config, filepath.Join(dir, "data"))
	got := readAll(t, d.addr, "IF2406")
	check(t, "IF2406", got, batches)
	if len(got) != 600 {
		t.Fatalf("read %d records, want 600", len(got))
	}
	tierOf := readTiers(t, d.addr, "IF2406")
	for off, tier := range tierOf {
		if tier != "cold" {
			t.Fatalf("offset %d served from %q, want cold", off, tier)
		}
	}
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// readTiers returns the tier that served each record.
func readTiers(t *testing.T, addr, stream string) []string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://%s/v1/streams/%s/records?limit=100000", addr, stream))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []string
	dec := json.NewDecoder(resp.Body)
	for dec.More() {
		var r struct {
			Tier string `json:"tier"`
		}
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r.Tier)
	}
	return out
}

// TestNoColdStore: with cold.store: none tierd runs without a cold tier and
// says so on offload; a per-stream policy's segment size applies.
func TestNoColdStore(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "tierd.yaml")
	os.WriteFile(config, []byte(`
max_record_bytes: 512B
cold: {store: none}
policies:
  - name: tiny
    streams: ["tiny*"]
    segment: {max_bytes: 1KiB}
`), 0o644)
	d := startDaemon(t, config, filepath.Join(dir, "data"))
	for _, stream := range []string{"tiny1", "other"} {
		for i := 0; i < 5; i++ {
			b := &batch{id: fmt.Sprintf("%s-%d", stream, i), stream: stream, values: []string{fmt.Sprintf(`{"pad":"%0300d"}`, i)}}
			if err := appendBatch(http.DefaultClient, d.addr, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	count := func(stream string) int {
		resp, err := http.Get("http://" + d.addr + "/v1/streams/" + stream + "/segments")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var segs []json.RawMessage
		json.NewDecoder(resp.Body).Decode(&segs)
		return len(segs)
	}
	if tiny, other := count("tiny1"), count("other"); tiny < 2 || other != 1 {
		t.Fatalf("segments: tiny1 %d (policy 1 KiB), other %d (default 64 MiB)", tiny, other)
	}
	resp, err := http.Post("http://"+d.addr+"/v1/streams/tiny1/segments/0/offload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 409 || !bytes.Contains(body, []byte("no_cold_tier")) {
		t.Fatalf("offload without a cold store: %d %s", resp.StatusCode, body)
	}
}
