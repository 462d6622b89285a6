package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sealedSeg is what TestCatalogRebuildKeepsRetention compares of a segment.
type sealedSeg struct {
	Base     uint64   `json:"base"`
	Last     uint64   `json:"last"`
	Digest   string   `json:"digest"`
	SealedAt string   `json:"sealed_at"`
	Tiers    []string `json:"tiers"`
	Active   bool     `json:"active"`
}

func sealedSegs(t *testing.T, addr, stream string) []sealedSeg {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://%s/v1/streams/%s/segments", addr, stream))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []sealedSeg
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// getRecords reads stream from offset from (none: where retention says the
// stream starts) and returns the status and the records' values.
func getRecords(t *testing.T, addr, stream, from string) (int, []string, string) {
	t.Helper()
	u := fmt.Sprintf("http://%s/v1/streams/%s/records", addr, stream)
	if from != "" {
		u += "?from=" + from
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var vals []string
	if resp.StatusCode == 200 {
		for _, line := range bytes.Split(bytes.TrimSpace(body), []byte("\n")) {
			var r wireRecord
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatalf("bad line %q: %v", line, err)
			}
			vals = append(vals, string(r.Value))
		}
	}
	return resp.StatusCode, vals, string(body)
}

// TestCatalogRebuildKeepsRetention, with the real tierd and tierctl: records
// retention deleted (delete-warm, no cold store) while the WAL still held
// them (its file is kept for the active segments) stay deleted after the
// catalog is lost and rebuilt, with tierd's own WAL replay at the next
// start; and the segments that remain keep their original seal times.
func TestCatalogRebuildKeepsRetention(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	config := writeConfig(t, dir, `
max_record_bytes: 4KiB
segment: {max_bytes: 4KiB, max_age: 1h}
hot: {max_age: 200ms}
cold: {store: none}
migrator: {schedule: "@every 1s"}
policies:
  - name: short
    streams: ["short*"]
    warm: {max_age: 3s}
  - name: keep
    streams: ["*"]
`)
	d := startDaemonEnv(t, config, dataDir)
	const short, keep = "short.events", "keep.events"
	value := func(stream string, i int) string { return fmt.Sprintf(`{"s":%q,"i":%d,"pad":"%0300d"}`, stream, i, i) }
	for _, s := range []string{short, keep} {
		for i := 0; i < 40; i += 4 {
			b := &batch{id: fmt.Sprintf("%s-%d", s, i), stream: s}
			for j := i; j < i+4; j++ {
				b.values = append(b.values, value(s, j))
			}
			if err := appendBatch(http.DefaultClient, d.addr, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The sealed segments of both streams are persisted; those of short
	// are deleted by retention at 3 s, those of keep never.
	var keepBefore []sealedSeg
	var first uint64
	waitFor(t, 60*time.Second, "short's sealed segments deleted, keep's persisted", func() (bool, string) {
		keepBefore = sealedSegs(t, d.addr, keep)
		ss := sealedSegs(t, d.addr, short)
		sealed := 0
		for _, s := range keepBefore {
			if !s.Active && strings.Contains(strings.Join(s.Tiers, ","), "warm") {
				sealed++
			}
		}
		if len(ss) != 1 || !ss[0].Active || ss[0].Base == 0 || sealed < 2 {
			return false, fmt.Sprintf("short %+v; keep %+v", ss, keepBefore)
		}
		first = ss[0].Base
		return true, ""
	})
	if code, _, body := getRecords(t, d.addr, short, "0"); code != 410 {
		t.Fatalf("read of deleted records: %d %s, want 410", code, body)
	}
	d.stop(t)
	// The WAL still holds what retention deleted: the test must exercise
	// its replay.
	wals, _ := filepath.Glob(filepath.Join(dataDir, "wal", "*.wal"))
	held := false
	for _, w := range wals {
		if b, err := os.ReadFile(w); err == nil && bytes.Contains(b, []byte(value(short, 0))) {
			held = true
		}
	}
	if !held {
		t.Fatalf("the WAL (%v) no longer holds the deleted records", wals)
	}

	if err := os.Rename(filepath.Join(dataDir, "catalog.db"), filepath.Join(dataDir, "catalog.db.lost")); err != nil {
		t.Fatal(err)
	}
	code, out := tierctl(t, nil, "catalog", "rebuild", "--config", config, "--data-dir", dataDir)
	if code != 0 || !strings.Contains(out, "kept what retention deleted from 1 stream") {
		t.Fatalf("tierctl catalog rebuild: exit %d\n%s", code, out)
	}
	t.Logf("tierctl catalog rebuild:\n%s", out)

	d = startDaemonEnv(t, config, dataDir)
	defer d.stop(t)
	if code, _, body := getRecords(t, d.addr, short, "0"); code != 410 {
		t.Fatalf("after the rebuild, a read of deleted records answers %d %s, want 410", code, body)
	}
	code, vals, body := getRecords(t, d.addr, short, "")
	if code != 200 || len(vals) != 40-int(first) || vals[0] != value(short, int(first)) {
		t.Fatalf("after the rebuild, %s reads %d: %d records (%.200s), want the %d retained from %d", short, code, len(vals), body, 40-int(first), first)
	}
	if ss := sealedSegs(t, d.addr, short); len(ss) != 1 || ss[0].Base != first {
		t.Fatalf("after the rebuild %s has segments %+v: deleted records came back", short, ss)
	}
	keepAfter := sealedSegs(t, d.addr, keep)
	if len(keepAfter) != len(keepBefore) {
		t.Fatalf("%s: %+v after the rebuild, %+v before", keep, keepAfter, keepBefore)
	}
	for i := range keepAfter {
		a, b := keepAfter[i], keepBefore[i]
		if a.Base != b.Base || a.Last != b.Last || a.Digest != b.Digest || a.SealedAt != b.SealedAt {
			t.Fatalf("%s segment %d after the rebuild %+v, before %+v (sealed_at must be the original)", keep, i, a, b)
		}
	}
	// A few migrator runs later nothing has been persisted again.
	time.Sleep(2500 * time.Millisecond)
	if files := warmFiles(t, dataDir, short); len(files) != 0 {
		t.Fatalf("%s has warm files again after the rebuild: %v", short, files)
	}
	verifyOK(t, d.addr)
}
