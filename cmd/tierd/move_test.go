package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// Sealing and offloading by hand against the real binaries, crash safety
// of a seal, and a start-up that cannot listen.

// moveConfig seals only on request (segment.max_age 1 h) and keeps the
// default cold store, a file store in <data_dir>/cold.
const moveConfig = `
wal: {sync: always}
segment: {max_age: 1h}
migrator: {schedule: "@every 1h"}
`

// ctlJSON runs tierctl with -o json, fails the test on a non-zero exit,
// and decodes stdout into v.
func ctlJSON(t *testing.T, env []string, v any, args ...string) {
	t.Helper()
	r := runCtl(t, env, "", append(args, "-o", "json")...)
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("%v\nnot JSON: %v", r, err)
	}
}

// TestSealAndOffloadRealDaemon: the Quick start's path to the cold tier
// in seconds: append, tierctl seal, tierctl offload, each answer equal to
// the listing right after; a second offload moves nothing; --base of a
// segment already cold answers it as listed; verify is clean; and Ctrl-C
// of tail -f leaves no warning in the daemon's log.
func TestSealAndOffloadRealDaemon(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "tierd.yaml")
	os.WriteFile(config, []byte(moveConfig), 0o644)
	dataDir := filepath.Join(dir, "data")
	d := startDaemonEnv(t, config, dataDir)
	env := ctlEnv("TIERD_ADDR=http://" + d.addr)
	listing := func() []map[string]any {
		var segs []map[string]any
		ctlJSON(t, env, &segs, "segments", "trades")
		return segs
	}

	for round := 0; round < 2; round++ {
		if r := runCtl(t, env, e2eRecords("q", round*50, round*50+50), "append", "trades"); r.code != 0 {
			t.Fatalf("%v", r)
		}
		var sealed struct {
			Sealed  bool           `json:"sealed"`
			Segment map[string]any `json:"segment"`
		}
		ctlJSON(t, env, &sealed, "seal", "trades")
		segs := listing()
		if !sealed.Sealed || sealed.Segment == nil || !reflect.DeepEqual(sealed.Segment, segs[len(segs)-1]) {
			t.Fatalf("round %d: seal answered %+v; the listing right after ends with %v", round, sealed, segs[len(segs)-1])
		}
		if got := fmt.Sprint(sealed.Segment["base"], "-", sealed.Segment["last"], " ", sealed.Segment["tiers"]); got != fmt.Sprintf("%d-%d [hot warm]", round*50, round*50+49) {
			t.Fatalf("round %d: sealed segment %s", round, got)
		}
		var moved []map[string]any
		ctlJSON(t, env, &moved, "offload", "trades")
		segs = listing()
		if len(moved) != 1 || !reflect.DeepEqual(moved[0], segs[round]) || fmt.Sprint(moved[0]["tiers"]) != "[hot cold]" {
			t.Fatalf("round %d: offload printed %v; the listing right after: %v", round, moved, segs)
		}
	}
	if files := mustGlob(t, filepath.Join(dataDir, "cold", "stream=trades", "date=*", "*.parquet")); len(files) != 2 {
		t.Fatalf("%d Parquet files in the cold store, want 2: %v", len(files), files)
	}
	r := runCtl(t, env, "", "offload", "trades")
	if r.code != 0 || !strings.Contains(r.stdout, "nothing to offload") {
		t.Fatalf("offload with nothing to move: %v", r)
	}
	var again []map[string]any
	ctlJSON(t, env, &again, "offload", "trades", "--base", "0")
	if segs := listing(); len(again) != 1 || !reflect.DeepEqual(again[0], segs[0]) {
		t.Fatalf("offload --base 0 of a cold segment printed %v; the listing: %v", again, segs[0])
	}
	checkRecords(t, "read after offload", "q", parseRecords(t, runCtl(t, env, "", "read", "trades", "--limit", "1000").stdout), 0, 0, 100)
	verifyOK(t, d.addr)

	// Ctrl-C of tail -f: the client goes away, which is no server trouble.
	tail := startCtl(t, env, "tail", "trades", "-f")
	waitFor(t, 30*time.Second, "tail -f prints the last records", func() (bool, string) {
		return strings.Count(tail.stdout.String(), "\n") >= 10, tail.stdout.String()
	})
	time.Sleep(300 * time.Millisecond) // its long poll is waiting now
	tail.interrupt(t)
	time.Sleep(300 * time.Millisecond)
	for _, line := range strings.Split(d.logs(), "\n") {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "/records") {
			t.Fatalf("Ctrl-C of tail -f logged a warning: %s", line)
		}
	}
}

// TestKillAfterSeal: kill -9 right after a seal answers, while writers
// append: after the restart every acknowledged record is there exactly
// once at its offset, and the segment the seal answered is persisted.
func TestKillAfterSeal(t *testing.T) {
	rounds := 4
	if testing.Short() {
		rounds = 2
	}
	dir := t.TempDir()
	config := filepath.Join(dir, "tierd.yaml")
	os.WriteFile(config, []byte(moveConfig), 0o644)
	dataDir := filepath.Join(dir, "data")
	var l ledger
	type sealAnswer struct {
		Sealed  bool `json:"sealed"`
		Segment *struct {
			Base  uint64   `json:"base"`
			Last  uint64   `json:"last"`
			Tiers []string `json:"tiers"`
		} `json:"segment"`
	}
	var answered []sealAnswer
	for round := 0; round < rounds; round++ {
		d := startDaemonEnv(t, config, dataDir)
		check(t, "s", readAll(t, d.addr, "s"), l.all())
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := 0; w < 2; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				writeUntil(ctx, d.addr, "s", fmt.Sprintf("r%d-w%d", round, w), uint64(round*10+w), 2*time.Millisecond, &l)
			}()
		}
		time.Sleep(200 * time.Millisecond)
		resp, err := http.Post("http://"+d.addr+"/v1/streams/s/seal", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		d.kill() // at once: the writers' batches in flight are cut too
		cancel()
		wg.Wait()
		var a sealAnswer
		if err := json.Unmarshal(body, &a); resp.StatusCode != 200 || err != nil || !a.Sealed || a.Segment == nil {
			t.Fatalf("round %d: seal answered %d %s", round, resp.StatusCode, body)
		}
		answered = append(answered, a)
	}
	d := startDaemonEnv(t, config, dataDir)
	got := readAll(t, d.addr, "s")
	check(t, "s", got, l.all())
	segs := segments(t, d.addr, "s")
	for _, a := range answered {
		found := false
		for _, s := range segs {
			if s.Base == a.Segment.Base {
				found = s.Last == a.Segment.Last && strings.Contains(fmt.Sprint(s.Tiers), "warm")
			}
		}
		if !found {
			t.Fatalf("the seal answered segment [%d, %d] %v; after kill -9 and a restart the listing is %v", a.Segment.Base, a.Segment.Last, a.Segment.Tiers, segs)
		}
	}
	batches, records := l.acked("s")
	if batches < rounds*5 {
		t.Fatalf("only %d batches acknowledged in %d rounds; the test exercised too little", batches, rounds)
	}
	verifyOK(t, d.addr)
	t.Logf("%d rounds, %d acknowledged batches (%d records), %d records read back", rounds, batches, records, len(got))
}

// TestCrashBetweenSealAndPersist: a tierd that dies after sealing and
// before persisting (failpoint seal/after-seal) loses and doubles
// nothing: the WAL holds the records, they come back in the active
// segment, and the next seal persists them.
func TestCrashBetweenSealAndPersist(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "tierd.yaml")
	os.WriteFile(config, []byte(moveConfig), 0o644)
	dataDir := filepath.Join(dir, "data")
	d := startDaemonEnv(t, config, dataDir, "TIERD_FAILPOINTS=seal/after-seal=crash")
	var batches []*batch
	client := &http.Client{Timeout: 10 * time.Second}
	for i := 0; i < 5; i++ {
		b := &batch{id: fmt.Sprintf("b%d", i), stream: "s", values: []string{fmt.Sprintf(`{"i":%d}`, i), `"x"`}}
		if err := appendBatch(client, d.addr, b); err != nil {
			t.Fatal(err)
		}
		batches = append(batches, b)
	}
	if resp, err := http.Post("http://"+d.addr+"/v1/streams/s/seal", "", nil); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("the seal answered %d %s; the failpoint should have killed tierd first", resp.StatusCode, body)
	}
	select {
	case <-d.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("tierd still runs after its failpoint")
	}
	if !strings.Contains(d.logs(), "failpoint seal/after-seal: crashing") {
		t.Fatalf("tierd did not die at the failpoint:\n%s", d.tail(3000))
	}
	if files := warmFiles(t, dataDir, "s"); len(files) != 0 {
		t.Fatalf("a warm file was written before the crash: %v", files)
	}

	d = startDaemonEnv(t, config, dataDir)
	check(t, "s", readAll(t, d.addr, "s"), batches)
	if got := readAll(t, d.addr, "s"); len(got) != 10 {
		t.Fatalf("%d records after the crash, want 10", len(got))
	}
	segs := segments(t, d.addr, "s")
	if len(segs) != 1 || !segs[0].Active || segs[0].Count != 10 {
		t.Fatalf("after the restart the records should be back in the active segment: %v", segs)
	}
	resp, err := http.Post("http://"+d.addr+"/v1/streams/s/seal", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if segs = segments(t, d.addr, "s"); resp.StatusCode != 200 || len(segs) != 1 || segs[0].Active || fmt.Sprint(segs[0].Tiers) != "[hot warm]" {
		t.Fatalf("seal after the restart: %d, listing %v", resp.StatusCode, segs)
	}
	check(t, "s", readAll(t, d.addr, "s"), batches)
	verifyOK(t, d.addr)
}

// TestPortTakenCreatesNothing: a tierd whose port is taken exits non-zero
// saying so, and has created nothing on disk: no data directory, no cold
// store directory (with TLS too, whose files are read before the port is
// bound).
func TestPortTakenCreatesNothing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, certPEM, 0o644)
	os.WriteFile(keyFile, keyPEM, 0o600)
	for _, c := range []struct{ name, extra string }{
		{"plain", ""},
		{"tls", fmt.Sprintf("tls: {cert_file: %q, key_file: %q}\n", certFile, keyFile)},
	} {
		t.Run(c.name, func(t *testing.T) {
			sub := filepath.Join(dir, c.name)
			if err := os.Mkdir(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			dataDir, coldDir := filepath.Join(sub, "data"), filepath.Join(sub, "coldstore")
			config := filepath.Join(sub, "tierd.yaml")
			os.WriteFile(config, []byte(fmt.Sprintf("cold: {store: \"file://%s\"}\n%s", coldDir, c.extra)), 0o644)
			code, out := runUntilExit(t, nil, "--config", config, "--data-dir", dataDir, "--listen", taken.Addr().String())
			if code == 0 || !strings.Contains(out, "address already in use") || !strings.Contains(out, "--listen") || !strings.Contains(out, taken.Addr().String()) {
				t.Fatalf("tierd on a taken port: exit %d\n%s", code, out)
			}
			for _, p := range []string{dataDir, coldDir} {
				if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("tierd that could not listen created %s (%v)\n%s", p, err, out)
				}
			}
		})
	}
}
