package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tierd/tierd/testenv"
)

// The migration tests drive the real binary with its cold store in a real
// MinIO: the cron migrator moves segments hot → warm → cold and deletes
// them at cold.max_age, while the daemon is killed by failpoints between
// the steps of a move, by kill -9 at random moments, or loses its object
// store. Whatever happens, every acknowledged record is served exactly once
// and identical, verify is clean and the bucket holds exactly one object
// per cold segment.

// minioEnv passes the MinIO credentials the way an operator would: in the
// standard AWS variables.
func minioEnv(m *testenv.MinIO, extra ...string) []string {
	return append([]string{"AWS_ACCESS_KEY_ID=" + m.AccessKey, "AWS_SECRET_ACCESS_KEY=" + m.SecretKey}, extra...)
}

func writeConfig(t *testing.T, dir, text string) string {
	t.Helper()
	config := filepath.Join(dir, "tierd.yaml")
	if err := os.WriteFile(config, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return config
}

// describe renders listings for failure messages.
func describe(listings map[string][]segInfo) string {
	var b strings.Builder
	names := make([]string, 0, len(listings))
	for s := range listings {
		names = append(names, s)
	}
	slices.Sort(names)
	for _, s := range names {
		fmt.Fprintf(&b, "%s: %v; ", s, listings[s])
	}
	return b.String()
}

// allColdOnly reports whether stream has at least one segment and every
// one of its segments is sealed and placed in cold alone.
func allColdOnly(segs []segInfo) bool {
	if len(segs) == 0 {
		return false
	}
	for _, s := range segs {
		if !s.coldOnly() {
			return false
		}
	}
	return true
}

// assertServedFromCold reads stream and fails unless every record comes
// from the cold tier.
func assertServedFromCold(t *testing.T, addr, stream string) {
	t.Helper()
	for off, tier := range readTiers(t, addr, stream) {
		if tier != "cold" {
			t.Fatalf("%s: offset %d served from %q, want cold", stream, off, tier)
		}
	}
}

// assertNoWarmFiles fails if the warm directory still holds a file of a
// segment the catalog no longer places warm (here: of any segment).
func assertNoWarmFiles(t *testing.T, dataDir, stream string, segs []segInfo) {
	t.Helper()
	for _, s := range segs {
		p := filepath.Join(dataDir, "warm", stream, fmt.Sprintf("%020d.seg", s.Base))
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s: segment %v is cold only, but its warm file %s is still there", stream, s, p)
		}
	}
	if files := warmFiles(t, dataDir, stream); len(files) != 0 {
		t.Fatalf("%s: warm directory holds %v though every segment is cold only", stream, files)
	}
}

// TestMigrationEndToEnd: records appended over a few seconds to two
// streams age out of memory and local disk on the cron migrator's schedule
// and end up in cold alone, in MinIO, served back identical.
func TestMigrationEndToEnd(t *testing.T) {
	m := testenv.StartMinIO(t)
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	config := writeConfig(t, dir, fmt.Sprintf(`
max_record_bytes: 4KiB
segment: {max_bytes: 8KiB, max_age: 1s}
hot: {max_age: 1s}
cold: {store: %q}
migrator: {schedule: "@every 1s"}
policies:
  - name: archive
    streams: ["*"]
    hot: {max_age: 1s}
    warm: {max_age: 2s}
`, m.URL("minio")))
	d := startDaemonEnv(t, config, dataDir, minioEnv(m)...)
	streams := []string{"IF2406", "audit.log"}
	var l ledger
	r := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	for i := 0; i < 8; i++ {
		for _, s := range streams {
			b := newBatch(r, fmt.Sprintf("e2e-%s-%d", s, i), s, 40)
			l.add(b)
			if err := appendBatch(http.DefaultClient, d.addr, b); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(400 * time.Millisecond) // spread the appends over ~3 s of segment ages
	}
	listings := map[string][]segInfo{}
	waitFor(t, 60*time.Second, "every segment sealed and in cold alone", func() (bool, string) {
		ok := true
		for _, s := range streams {
			segs := segments(t, d.addr, s)
			listings[s] = segs
			var n uint64
			for _, sg := range segs {
				n += sg.Count
			}
			_, want := l.acked(s)
			ok = ok && allColdOnly(segs) && n == uint64(want)
		}
		return ok, describe(listings)
	})
	batches := l.all()
	total := 0
	for _, s := range streams {
		if len(listings[s]) < 3 {
			t.Fatalf("%s: only %d segments; the test should move several: %v", s, len(listings[s]), listings[s])
		}
		assertNoWarmFiles(t, dataDir, s, listings[s])
		got := readAll(t, d.addr, s)
		check(t, s, got, batches)
		if _, want := l.acked(s); len(got) != want {
			t.Fatalf("%s: read %d records, %d acknowledged", s, len(got), want)
		}
		assertServedFromCold(t, d.addr, s)
		total += len(listings[s])
	}
	v := verifyOK(t, d.addr)
	if v.ColdObjects != total {
		t.Fatalf("verify looked at %d cold objects, there are %d cold segments", v.ColdObjects, total)
	}
	checkBucket(t, m, listings)
	t.Logf("%d segments moved to cold", total)
}

// crashConfig has a stream family that is kept in cold forever (keep*) and
// one deleted by retention shortly after it reaches cold (exp*).
func crashConfig(store string) string {
	return fmt.Sprintf(`
max_record_bytes: 4KiB
segment: {max_bytes: 8KiB, max_age: 1s}
hot: {max_age: 1s}
cold: {store: %q, delete_delay: 1s}
migrator: {schedule: "@every 1s"}
policies:
  - name: expiring
    streams: ["exp*"]
    warm: {max_age: 2s}
    cold: {max_age: 3s}
  - name: keep
    streams: ["*"]
    warm: {max_age: 2s}
`, store)
}

// TestMigrationCrashAtEveryStep arms each failpoint of the move and delete
// protocols with crash in turn (and some on a later hit, when other moves
// are under way): the daemon kills itself there, restarts without the
// failpoint and must converge with nothing lost, doubled or orphaned.
func TestMigrationCrashAtEveryStep(t *testing.T) {
	for _, fp := range []struct{ name, action string }{
		{"move/after-write", "crash"},
		{"move/after-verify", "crash"},
		{"move/after-commit", "crash"},
		{"move/after-remove-source", "crash"},
		{"delete/after-tombstone", "crash"},
		{"delete/after-table-remove", "crash"},
		{"delete/after-remove", "crash"},
		{"move/after-write", "crash@3"},
		{"move/after-commit", "crash@4"},
	} {
		t.Run(strings.ReplaceAll(fp.name, "/", "-")+"="+fp.action, func(t *testing.T) {
			t.Parallel()
			crashAt(t, fp.name, fp.action)
		})
	}
}

// The two streams of crashConfig the failpoint tests write.
const keepStream, expStream = "keep.IF2406", "exp.audit"

func crashAt(t *testing.T, failpoint, action string) {
	m := testenv.StartMinIO(t) // a fresh bucket for this subtest
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	config := writeConfig(t, dir, crashConfig(m.URL("aws")))
	var l ledger

	d := startDaemonEnv(t, config, dataDir, minioEnv(m, "TIERD_FAILPOINTS="+failpoint+"="+action)...)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i, s := range []string{keepStream, expStream} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			writeUntil(ctx, d.addr, s, "pre-"+s, uint64(i), 100*time.Millisecond, &l) // ends with an error when the daemon dies
		}()
	}
	select {
	case <-d.Exited():
	case <-time.After(60 * time.Second):
		cancel()
		wg.Wait()
		t.Fatalf("failpoint %s armed with %s, but tierd is still running after 60 s", failpoint, action)
	}
	cancel()
	wg.Wait()
	if ws, ok := d.ProcessState().Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("tierd exited with %v, not killed by its failpoint:\n%s", d.ProcessState(), d.tail(4000))
	}
	if want := "failpoint " + failpoint + ": crashing"; !strings.Contains(d.logs(), want) {
		t.Fatalf("tierd died without %q in its log:\n%s", want, d.tail(4000))
	}
	for _, s := range []string{keepStream, expStream} {
		if n, _ := l.acked(s); n == 0 {
			t.Fatalf("%s: no batch acknowledged before the crash; the test exercised nothing", s)
		}
	}

	d2 := startDaemonEnv(t, config, dataDir, minioEnv(m)...)
	// Right after recovery, before the migrator has finished anything,
	// the kept stream already reads whole.
	check(t, keepStream, readAll(t, d2.addr, keepStream), l.all())
	// Appends after recovery continue at the next offsets.
	r := rand.New(rand.NewPCG(99, 1))
	for _, s := range []string{keepStream, expStream} {
		b := newBatch(r, "post-"+s, s, 20)
		l.add(b)
		if err := appendBatch(http.DefaultClient, d2.addr, b); err != nil {
			t.Fatalf("append after recovery: %v", err)
		}
	}
	n := assertConverged(t, m, d2, dataDir, &l)
	ab, ar := l.acked("")
	t.Logf("crash at %s=%s: %d batches (%d records) acknowledged, %d cold segments kept", failpoint, action, ab, ar, n)
}

// assertConverged waits until crashConfig's kept stream is all in cold
// and its expiring stream all deleted, then checks what a user would:
// every acknowledged record of the kept stream exactly once, identical,
// from cold; the expired range answering 410; verify clean; one object
// per cold segment and no other; no warm file left; and explain showing
// no error for any segment. It returns the number of cold segments.
func assertConverged(t *testing.T, m *testenv.MinIO, d *envDaemon, dataDir string, l *ledger) int {
	t.Helper()
	keep, exp := keepStream, expStream
	listings := map[string][]segInfo{}
	waitFor(t, 90*time.Second, "keep.* all in cold alone, exp.* all deleted", func() (bool, string) {
		listings[keep] = segments(t, d.addr, keep)
		listings[exp] = segments(t, d.addr, exp)
		return allColdOnly(listings[keep]) && len(listings[exp]) == 0, describe(listings)
	})
	batches := l.all()

	// The kept stream: every acknowledged record exactly once, identical,
	// from cold.
	got := readAll(t, d.addr, keep)
	check(t, keep, got, batches)
	if _, acked := l.acked(keep); len(got) < acked {
		t.Fatalf("%s: read %d records, %d acknowledged", keep, len(got), acked)
	}
	var n uint64
	for _, s := range listings[keep] {
		n += s.Count
	}
	if n != uint64(len(got)) {
		t.Fatalf("%s: segments hold %d records, a read returns %d: %v", keep, n, len(got), listings[keep])
	}
	assertServedFromCold(t, d.addr, keep)

	// The expiring stream: everything was deleted by retention and reads
	// say so.
	code, body := readStatus(t, fmt.Sprintf("http://%s/v1/streams/%s/records?from=0", d.addr, exp))
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e); code != http.StatusGone || e.Error.Code != "expired" {
		t.Fatalf("%s: reading from offset 0 after retention: %d %s, want 410 expired", exp, code, body)
	}
	code, body = readStatus(t, fmt.Sprintf("http://%s/v1/streams/%s/records", d.addr, exp))
	if code != 200 || countLines(body) != 0 {
		t.Fatalf("%s: reading the retained range after everything expired: %d %s, want 200 and no records", exp, code, body)
	}

	verifyOK(t, d.addr)
	checkBucket(t, m, listings) // exp.* contributes no segment, so no object
	assertNoWarmFiles(t, dataDir, keep, listings[keep])
	if files := warmFiles(t, dataDir, exp); len(files) != 0 {
		t.Fatalf("%s: warm files of deleted segments are left: %v", exp, files)
	}
	if errs, body := explainErrors(t, d.addr, keep); len(errs) != 0 {
		t.Fatalf("%s: every segment reached cold, but explain still shows errors: %s", keep, body)
	}
	return len(listings[keep])
}

// TestMigrationErrorAtEveryStep makes each step of the move and delete
// protocols fail once (error@1) in a running daemon: the migrator must
// retry or carry on so that, without a restart, everything converges as
// if nothing had failed.
func TestMigrationErrorAtEveryStep(t *testing.T) {
	for _, name := range []string{
		"move/after-write",
		"move/after-verify",
		"move/after-commit",
		"move/after-remove-source",
		"delete/after-tombstone",
		"delete/after-remove",
	} {
		t.Run(strings.ReplaceAll(name, "/", "-"), func(t *testing.T) {
			t.Parallel()
			m := testenv.StartMinIO(t)
			dir := t.TempDir()
			dataDir := filepath.Join(dir, "data")
			config := writeConfig(t, dir, crashConfig(m.URL("minio")))
			var l ledger
			d := startDaemonEnv(t, config, dataDir, minioEnv(m, "TIERD_FAILPOINTS="+name+"=error@1")...)
			// Write until the failpoint has fired, for 4 s at least.
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for i, s := range []string{keepStream, expStream} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := writeUntil(ctx, d.addr, s, "w-"+s, uint64(i), 100*time.Millisecond, &l); err != nil {
						t.Errorf("append to %s: %v", s, err)
					}
				}()
			}
			start := time.Now()
			want := "injected failure at " + name
			waitFor(t, 60*time.Second, "the failpoint fires", func() (bool, string) {
				return time.Since(start) > 4*time.Second && strings.Contains(d.logs(), want), d.tail(2000)
			})
			cancel()
			wg.Wait()
			n := assertConverged(t, m, d, dataDir, &l)
			ab, ar := l.acked("")
			t.Logf("%s failed once: %d batches (%d records) acknowledged, %d cold segments kept", name, ab, ar, n)
		})
	}
}

// TestMigrationKill9: writers append to two streams while the migrator
// moves their segments, and tierd is killed with SIGKILL at random
// moments; after the last restart everything converges to cold with every
// acknowledged record exactly once at its acknowledged offset.
func TestMigrationKill9(t *testing.T) {
	rounds := 4
	m := testenv.StartMinIO(t)
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	config := writeConfig(t, dir, fmt.Sprintf(`
max_record_bytes: 4KiB
wal: {sync: always, segment_bytes: 256KiB}
segment: {max_bytes: 8KiB, max_age: 300ms}
hot: {max_age: 300ms}
cold: {store: %q}
migrator: {schedule: "@every 1s", concurrency: 4}
policies:
  - name: fast
    streams: ["*"]
    warm: {max_age: 800ms}
`, m.URL("minio")))
	streams := []string{"IF2406", "IC2406"}
	var l ledger
	rng := rand.New(rand.NewPCG(3, uint64(time.Now().UnixNano())))
	for round := 0; round < rounds; round++ {
		d := startDaemonEnv(t, config, dataDir, minioEnv(m)...)
		batches := l.all()
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
				s := streams[w%len(streams)]
				writeUntil(ctx, d.addr, s, fmt.Sprintf("r%d-w%d", round, w), seed, 20*time.Millisecond, &l)
			}()
		}
		// Long enough for segments to seal, persist and come due, so that
		// uploads and warm drops are under way when the kill comes.
		time.Sleep(time.Duration(1200+rng.IntN(2000)) * time.Millisecond)
		d.kill()
		cancel()
		wg.Wait()
	}
	d := startDaemonEnv(t, config, dataDir, minioEnv(m)...)
	batches := l.all()
	for _, s := range streams {
		check(t, s, readAll(t, d.addr, s), batches)
	}
	listings := map[string][]segInfo{}
	waitFor(t, 90*time.Second, "every segment in cold alone", func() (bool, string) {
		ok := true
		for _, s := range streams {
			listings[s] = segments(t, d.addr, s)
			ok = ok && allColdOnly(listings[s])
		}
		return ok, describe(listings)
	})
	total := 0
	for _, s := range streams {
		got := readAll(t, d.addr, s)
		check(t, s, got, batches)
		var n uint64
		for _, sg := range listings[s] {
			n += sg.Count
		}
		if n != uint64(len(got)) {
			t.Fatalf("%s: segments hold %d records, a read returns %d", s, n, len(got))
		}
		assertServedFromCold(t, d.addr, s)
		assertNoWarmFiles(t, dataDir, s, listings[s])
		total += len(got)
	}
	verifyOK(t, d.addr)
	checkBucket(t, m, listings)
	ab, _ := l.acked("")
	if ab < rounds*20 {
		t.Fatalf("only %d batches acknowledged in %d rounds; the test exercised too little", ab, rounds)
	}
	t.Logf("%d rounds, %d batches sent, %d acknowledged, %d records read back from %d+%d cold segments",
		rounds, len(batches), ab, total, len(listings[streams[0]]), len(listings[streams[1]]))
}

// explainErrors returns the last errors explain shows for stream's
// segments, by base.
func explainErrors(t *testing.T, addr, stream string) (map[uint64]string, string) {
	t.Helper()
	code, body := readStatus(t, "http://"+addr+"/v1/streams/"+stream+"/explain")
	if code != 200 {
		t.Fatalf("explain %s: %d %s", stream, code, body)
	}
	var ex struct {
		Segments []struct {
			Base      uint64 `json:"base"`
			LastError *struct {
				Error string `json:"error"`
			} `json:"last_error"`
		} `json:"segments"`
	}
	if err := json.Unmarshal(body, &ex); err != nil {
		t.Fatalf("explain %s: %v in %s", stream, err, body)
	}
	out := map[uint64]string{}
	for _, s := range ex.Segments {
		if s.LastError != nil {
			out[s.Base] = s.LastError.Error
		}
	}
	return out, string(body)
}

// TestMigrationWhileMinIODown: with the object store gone for several
// seconds ingest goes on, segments due for cold stay warm and readable,
// explain shows why they do not move, and once the store is back they all
// reach cold.
func TestMigrationWhileMinIODown(t *testing.T) {
	m := testenv.StartDedicatedMinIO(t)
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	config := writeConfig(t, dir, fmt.Sprintf(`
max_record_bytes: 4KiB
segment: {max_bytes: 8KiB, max_age: 300ms}
hot: {max_age: 300ms}
cold: {store: %q}
migrator: {schedule: "@every 1s"}
policies:
  - name: fast
    streams: ["*"]
    warm: {max_age: 1s}
`, m.URL("minio")))
	d := startDaemonEnv(t, config, dataDir, minioEnv(m)...)
	const stream = "sensor.7"
	m.Stop()
	down := time.Now()
	var l ledger
	r := rand.New(rand.NewPCG(5, uint64(time.Now().UnixNano())))
	for i := 0; time.Since(down) < 3*time.Second; i++ {
		b := newBatch(r, fmt.Sprintf("down-%d", i), stream, 30)
		l.add(b)
		if err := appendBatch(http.DefaultClient, d.addr, b); err != nil {
			t.Fatalf("append %d with the object store down: %v", i, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var errs map[uint64]string
	waitFor(t, 15*time.Second, "explain shows a segment's upload error", func() (bool, string) {
		var body string
		errs, body = explainErrors(t, d.addr, stream)
		return len(errs) > 0, body
	})
	t.Logf("with the store down, explain shows %d segments failing, e.g. %v", len(errs), errs)
	// Everything is still readable, from memory or local disk.
	batches := l.all()
	got := readAll(t, d.addr, stream)
	check(t, stream, got, batches)
	if _, acked := l.acked(stream); len(got) != acked {
		t.Fatalf("read %d records with the store down, %d acknowledged", len(got), acked)
	}
	for off, tier := range readTiers(t, d.addr, stream) {
		if tier != "hot" && tier != "warm" {
			t.Fatalf("offset %d served from %q with the object store down", off, tier)
		}
	}
	segs := segments(t, d.addr, stream)
	if len(segs) < 3 {
		t.Fatalf("only %d segments: %v", len(segs), segs)
	}
	for _, s := range segs {
		if slices.Contains(s.Tiers, "cold") {
			t.Fatalf("segment %v placed cold though the store was down all along", s)
		}
	}
	if since := time.Since(down); since < 7*time.Second {
		time.Sleep(7*time.Second - since) // the outage lasts ~7 s
	}
	m.Restart()
	t.Logf("object store back after %s", time.Since(down).Round(100*time.Millisecond))

	listings := map[string][]segInfo{}
	waitFor(t, 90*time.Second, "every segment in cold alone after the store is back", func() (bool, string) {
		listings[stream] = segments(t, d.addr, stream)
		return allColdOnly(listings[stream]), describe(listings)
	})
	got = readAll(t, d.addr, stream)
	check(t, stream, got, batches)
	if _, acked := l.acked(stream); len(got) != acked {
		t.Fatalf("read %d records after recovery, %d acknowledged", len(got), acked)
	}
	assertServedFromCold(t, d.addr, stream)
	assertNoWarmFiles(t, dataDir, stream, listings[stream])
	verifyOK(t, d.addr)
	checkBucket(t, m, listings)
	if errs, body := explainErrors(t, d.addr, stream); len(errs) != 0 {
		t.Fatalf("every segment moved, but explain still shows errors: %s", body)
	}
}

// buildTierctl compiles cmd/tierctl once per test binary.
var buildTierctl = sync.OnceValues(func() (string, error) { return goBuild("github.com/tierd/tierd/cmd/tierctl", "tierctl") })

// tierctl runs the real tierctl binary and returns its exit code and output.
// TestMigrationFailedWarmDropThenRetention: a warm drop that fails after
// its catalog commit (the file not yet removed, or removed but the intent
// not yet cleared) must still be finished by the running daemon, so that
// the warm file does not linger and the segment can later be deleted by
// retention. One segment, so that the failpoint's hit number picks the
// drop deterministically (the upload is hit 1 of move/after-commit).
func TestMigrationFailedWarmDropThenRetention(t *testing.T) {
	for _, fp := range []string{"move/after-commit=error@2", "move/after-remove-source=error@1"} {
		t.Run(strings.ReplaceAll(strings.ReplaceAll(fp, "/", "-"), "@", "-"), func(t *testing.T) {
			t.Parallel()
			m := testenv.StartMinIO(t)
			dir := t.TempDir()
			dataDir := filepath.Join(dir, "data")
			config := writeConfig(t, dir, fmt.Sprintf(`
max_record_bytes: 4KiB
segment: {max_bytes: 64KiB, max_age: 500ms}
hot: {max_age: 500ms}
cold: {store: %q, delete_delay: 1s}
migrator: {schedule: "@every 1s"}
policies:
  - name: expiring
    streams: ["*"]
    warm: {max_age: 1s}
    cold: {max_age: 6s}
`, m.URL("minio")))
			d := startDaemonEnv(t, config, dataDir, minioEnv(m, "TIERD_FAILPOINTS="+fp)...)
			const stream = "exp.one"
			b := newBatch(rand.New(rand.NewPCG(1, 2)), "only", stream, 20)
			if err := appendBatch(http.DefaultClient, d.addr, b); err != nil {
				t.Fatal(err)
			}
			name, _, _ := strings.Cut(fp, "=")
			waitFor(t, 30*time.Second, "the warm drop fails at "+name, func() (bool, string) {
				return strings.Contains(d.logs(), "drop-warm") && strings.Contains(d.logs(), "injected failure at "+name), d.tail(2000)
			})
			// Between the drop and retention: the segment is in cold
			// alone, and its warm file is gone.
			waitFor(t, 10*time.Second, "the segment placed in cold alone", func() (bool, string) {
				segs := segments(t, d.addr, stream)
				return len(segs) == 1 && slices.Equal(segs[0].Tiers, []string{"cold"}), fmt.Sprint(segs)
			})
			deadline := time.Now().Add(5 * time.Second)
			for len(warmFiles(t, dataDir, stream)) != 0 && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			if files := warmFiles(t, dataDir, stream); len(files) != 0 {
				t.Errorf("the catalog no longer places the segment warm, but its warm file is still there after 5 s: %v", files)
			}
			waitFor(t, 20*time.Second, "the segment deleted by retention", func() (bool, string) {
				segs := segments(t, d.addr, stream)
				ex, _ := explainErrors(t, d.addr, stream)
				return len(segs) == 0, fmt.Sprintf("segments %v, explain errors %v", segs, ex)
			})
			if code, body := readStatus(t, fmt.Sprintf("http://%s/v1/streams/%s/records?from=0", d.addr, stream)); code != http.StatusGone {
				t.Fatalf("read after retention: %d %s, want 410", code, body)
			}
			verifyOK(t, d.addr)
			checkBucket(t, m, nil)
		})
	}
}
