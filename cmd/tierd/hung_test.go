package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tierd/tierd/testenv"
)

// Tests of a cold store that hangs (MinIO paused with SIGSTOP: it accepts
// connections and requests and answers none): reads, status, explain,
// verify and the migrator must report it promptly, and tierd must recover
// by itself once the store answers again.

// hungStatus is the part of GET /v1/status these tests read.
type hungStatus struct {
	ColdStore      string `json:"cold_store"`
	ColdStoreError string `json:"cold_store_error"`
	ColdStoreSince string `json:"cold_store_since"`
	Migrator       struct {
		Running bool `json:"running"`
		LastRun *struct {
			DurationMS int64 `json:"duration_ms"`
			Actions    int   `json:"actions"`
			Failed     int   `json:"failed"`
		} `json:"last_run"`
		Failing  int `json:"failing_segments"`
		Failures []struct {
			Base  uint64 `json:"base"`
			Error string `json:"error"`
		} `json:"failures"`
	} `json:"migrator"`
}

func getStatus(t *testing.T, addr string) hungStatus {
	t.Helper()
	code, body := readStatus(t, "http://"+addr+"/v1/status")
	var st hungStatus
	if code != 200 || json.Unmarshal(body, &st) != nil {
		t.Fatalf("status: %d %s", code, body)
	}
	return st
}

// timedGet GETs url with a client bound of two minutes (a hang is
// minutes) and returns the answer and how long it took.
func timedGet(t *testing.T, url string) (*http.Response, []byte, time.Duration) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Minute}
	start := time.Now()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v after %v", url, err, time.Since(start))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body, time.Since(start)
}

// timedPost is timedGet for a POST without a body.
func timedPost(t *testing.T, url string) (int, []byte, time.Duration) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Minute}
	start := time.Now()
	resp, err := c.Post(url, "", nil)
	if err != nil {
		t.Fatalf("POST %s: %v after %v", url, err, time.Since(start))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body, time.Since(start)
}

// storeFailure reports whether an error message is the store failing:
// timed out, or failing fast because it did.
func storeFailure(msg string) bool {
	return strings.Contains(msg, "object store unavailable") || strings.Contains(msg, "did not answer") || strings.Contains(msg, "store unavailable")
}

// TestColdStoreHung: with the cold store's MinIO paused, a cold read
// answers 503 cold_store_unavailable with Retry-After within
// cold.read_timeout + 1 s; ingest goes on; status (and tierctl status)
// says the store is unavailable and the migrator's failing moves, explain
// shows the failure, verify and a migrator run end in bounded time
// reporting the store; once MinIO continues everything works again and
// nothing is lost or doubled. A second pause with no read at all shows in
// status within one migrator tick.
func TestColdStoreHung(t *testing.T) {
	m := testenv.StartDedicatedMinIO(t)
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	const readTimeout = 2 * time.Second
	config := writeConfig(t, dir, fmt.Sprintf(`
max_record_bytes: 4KiB
segment: {max_bytes: 8KiB, max_age: 300ms}
hot: {max_age: 300ms}
cold: {store: %q, read_timeout: 2s}
migrator: {schedule: "@every 1s"}
policies:
  - name: archive
    streams: ["*"]
    hot: {max_age: 300ms}
    warm: {max_age: 1s}
`, m.URL("minio")))
	d := startDaemonEnv(t, config, dataDir, minioEnv(m)...)
	var l ledger
	r := rand.New(rand.NewPCG(10, 20))
	write := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			b := newBatch(r, fmt.Sprintf("%s%d", prefix, i), "arch", 10)
			l.add(b)
			if err := appendBatch(http.DefaultClient, d.addr, b); err != nil {
				t.Fatalf("append %s: %v", b.id, err)
			}
		}
	}
	write("a", 40)
	waitFor(t, 90*time.Second, "every segment of arch in cold alone", func() (bool, string) {
		segs := segments(t, d.addr, "arch")
		return allColdOnly(segs) && len(segs) >= 3, fmt.Sprint(segs)
	})

	m.Pause()
	// A cold read: the store fails in time, as the store failing.
	resp, body, took := timedGet(t, "http://"+d.addr+"/v1/streams/arch/records?from=0&limit=5")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"cold_store_unavailable"`) {
		t.Fatalf("cold read with the store paused: %d %.300s after %v (MinIO still stopped: %v)", resp.StatusCode, body, took, m.Paused())
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Errorf("a cold_store_unavailable answer without Retry-After")
	}
	if took > readTimeout+time.Second {
		t.Errorf("cold read with the store paused answered after %v, want within cold.read_timeout + 1 s = %v", took, readTimeout+time.Second)
	}
	t.Logf("cold read with the store paused: 503 after %v", took.Round(time.Millisecond))
	// Later reads do not wait out the timeout again.
	if resp, _, took := timedGet(t, "http://"+d.addr+"/v1/streams/arch/records?from=0&limit=5"); resp.StatusCode != 503 || took > readTimeout {
		t.Errorf("second cold read: %d after %v", resp.StatusCode, took)
	}

	// Ingest goes on; the new segments come due for upload and fail.
	write("b", 20)
	waitFor(t, 30*time.Second, "status to show the store unavailable and the failing uploads", func() (bool, string) {
		st := getStatus(t, d.addr)
		ok := st.ColdStore == "unavailable" && st.ColdStoreSince != "" && st.Migrator.Failing > 0
		for _, f := range st.Migrator.Failures {
			ok = ok && storeFailure(f.Error)
		}
		return ok, fmt.Sprintf("%+v", st)
	})
	st := getStatus(t, d.addr)
	if lr := st.Migrator.LastRun; lr == nil || lr.DurationMS > 30_000 {
		t.Errorf("the migrator's last run with the store paused: %+v", lr)
	}
	ctl := runCtl(t, ctlEnv("TIERD_ADDR=http://"+d.addr), "", "status")
	if ctl.code != 0 || !strings.Contains(ctl.stdout, "STORE UNAVAILABLE") || !strings.Contains(ctl.stdout, "failing:") {
		t.Errorf("tierctl status with the store paused:\n%v", ctl)
	}
	code, body := readStatus(t, "http://"+d.addr+"/v1/streams/arch/explain")
	if code != 200 || !strings.Contains(string(body), `"last_error"`) || !storeFailure(string(body)) {
		t.Errorf("explain with the store paused: %d %s", code, body)
	}

	// Verify ends, reporting cold copies unreadable and nothing else.
	code, body, took = timedPost(t, "http://"+d.addr+"/v1/verify")
	var v struct {
		OK       bool `json:"ok"`
		Findings []struct {
			Kind string `json:"kind"`
			Tier string `json:"tier"`
		} `json:"findings"`
	}
	if code != 200 || json.Unmarshal(body, &v) != nil {
		t.Fatalf("verify with the store paused: %d %s", code, body)
	}
	t.Logf("verify with the store paused: %d findings after %v", len(v.Findings), took.Round(time.Millisecond))
	if took > 30*time.Second {
		t.Errorf("verify with the store paused took %v", took)
	}
	if v.OK || len(v.Findings) == 0 {
		t.Errorf("verify with the store paused says ok: %s", body)
	}
	tablesUnchecked := 0
	for _, f := range v.Findings {
		if f.Tier == "table" {
			tablesUnchecked++ // the Iceberg tables live in the same store
		}
		if f.Kind != "unreadable" || (f.Tier != "cold" && f.Tier != "table") {
			t.Errorf("verify with the store paused: finding %+v; a store that does not answer makes copies unreadable, not missing or damaged: %s", f, body)
			break
		}
	}
	if tablesUnchecked != 1 {
		t.Errorf("verify with the store paused: %d findings about the tables, want one saying they were not checked: %s", tablesUnchecked, body)
	}
	// A migrator run on demand ends too, each action failed by the store
	// or skipped while its segment backs off.
	code, body, took = timedPost(t, "http://"+d.addr+"/v1/migrate?dry_run=false")
	var run migrateRun
	if code != 200 || json.Unmarshal(body, &run) != nil {
		t.Fatalf("migrate with the store paused: %d %s", code, body)
	}
	if took > 30*time.Second {
		t.Errorf("a migrator run with the store paused took %v", took)
	}
	for _, a := range run.Actions {
		if a.Error != "" && !storeFailure(a.Error) {
			t.Errorf("migrate with the store paused: action %+v failed for another reason", a)
		}
	}
	t.Logf("migrate with the store paused: %d actions, %d failed, %d skipped, in %v", len(run.Actions), run.Failed, run.Skipped, took.Round(time.Millisecond))

	m.Resume()
	waitFor(t, 30*time.Second, "the store to be available again", func() (bool, string) {
		st := getStatus(t, d.addr)
		return st.ColdStore == "ok", fmt.Sprintf("%+v", st)
	})
	check(t, "arch", readAll(t, d.addr, "arch"), l.all())
	waitFor(t, 2*time.Minute, "the migrator to move the new segments after all", func() (bool, string) {
		segs := segments(t, d.addr, "arch")
		return allColdOnly(segs), fmt.Sprint(segs)
	})
	got := readAll(t, d.addr, "arch")
	check(t, "arch", got, l.all())
	if _, n := l.acked("arch"); len(got) != n {
		t.Fatalf("read %d records, %d acknowledged", len(got), n)
	}
	verifyOK(t, d.addr)
	checkBucket(t, m, map[string][]segInfo{"arch": segments(t, d.addr, "arch")})

	// With nothing reading, the migrator's next tick finds the store hung.
	m.Pause()
	paused := time.Now()
	waitFor(t, 30*time.Second, "status to show a store paused with no read", func() (bool, string) {
		st := getStatus(t, d.addr)
		return st.ColdStore == "unavailable", fmt.Sprintf("%+v", st)
	})
	// One tick (1 s) plus the read timeout, with room for a loaded machine.
	if took := time.Since(paused); took > time.Second+readTimeout+5*time.Second {
		t.Errorf("status showed the paused store %v after the pause", took)
	}
	m.Resume()
	waitFor(t, 30*time.Second, "the store to be available again", func() (bool, string) {
		st := getStatus(t, d.addr)
		return st.ColdStore == "ok", fmt.Sprintf("%+v", st)
	})
	check(t, "arch", readAll(t, d.addr, "arch"), l.all())
}

// putStallProxy stands between tierd and MinIO and, while stalling,
// forwards each PUT to MinIO (which stores the object) but never passes
// its answer back: an upload hung after the store has it. Every other
// request goes through.
type putStallProxy struct {
	url     string
	stall   atomic.Bool
	puts    atomic.Int64
	release chan struct{}
}

func newPutStallProxy(t *testing.T, endpoint string) *putStallProxy {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	// The Host header stays the proxy's, the one the client signed.
	rp := httputil.NewSingleHostReverseProxy(target)
	p := &putStallProxy{release: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || !p.stall.Load() {
			rp.ServeHTTP(w, r)
			return
		}
		p.puts.Add(1)
		rp.ServeHTTP(httptest.NewRecorder(), r)
		select {
		case <-r.Context().Done():
		case <-p.release:
		}
	}))
	t.Cleanup(func() { close(p.release); srv.Close() })
	p.url = srv.URL
	return p
}

// TestShutdownWithStalledUploads: SIGTERM while the migrator's uploads
// (and an operator's offload) hang on the cold store ends them, and tierd
// exits 0 within its shutdown bound, though the uploads' own deadlines are
// minutes away; the next start settles the intents they left (rolled back,
// or finished when the object made it), the moves then complete, and
// nothing is lost or doubled. Once with MinIO paused, once with MinIO
// storing each upload but its answer withheld.
func TestShutdownWithStalledUploads(t *testing.T) {
	for _, mode := range []string{"paused", "answer-withheld"} {
		t.Run(mode, func(t *testing.T) {
			var m *testenv.MinIO
			var proxy *putStallProxy
			storeURL := ""
			if mode == "paused" {
				m = testenv.StartDedicatedMinIO(t)
				storeURL = m.URL("minio")
			} else {
				m = testenv.StartMinIO(t)
				proxy = newPutStallProxy(t, m.Endpoint)
				storeURL = strings.Replace(m.URL("minio"), url.QueryEscape(m.Endpoint), url.QueryEscape(proxy.url), 1)
			}
			dir := t.TempDir()
			dataDir := filepath.Join(dir, "data")
			// Nothing times out on its own within the test: an upload of a
			// few KiB may take 60 s + size at 1 KiB/s.
			config := writeConfig(t, dir, fmt.Sprintf(`
max_record_bytes: 4KiB
segment: {max_bytes: 8KiB, max_age: 300ms}
hot: {max_age: 300ms}
cold: {store: %q, read_timeout: 60s, min_bytes_per_second: 1KiB}
migrator: {schedule: "@every 1s", concurrency: 2}
policies:
  - name: archive
    streams: ["*"]
    hot: {max_age: 300ms}
    warm: {max_age: 1s}
`, storeURL))
			d := startDaemonEnv(t, config, dataDir, minioEnv(m)...)
			if mode == "paused" {
				m.Pause()
			} else {
				proxy.stall.Store(true)
			}
			var l ledger
			r := rand.New(rand.NewPCG(30, 40))
			for i := range 30 {
				b := newBatch(r, fmt.Sprintf("s%d", i), "arch", 10)
				l.add(b)
				if err := appendBatch(http.DefaultClient, d.addr, b); err != nil {
					t.Fatalf("append %s: %v", b.id, err)
				}
			}
			// The migrator's uploads start and hang.
			waitFor(t, 60*time.Second, "uploads in flight", func() (bool, string) {
				st := getStatus(t, d.addr)
				if proxy != nil {
					return st.Migrator.Running && proxy.puts.Load() > 0, fmt.Sprintf("running %v, %d PUTs", st.Migrator.Running, proxy.puts.Load())
				}
				return st.Migrator.Running, fmt.Sprintf("%+v", st.Migrator)
			})
			// An operator's offload of another segment hangs too.
			var target segInfo
			waitFor(t, 30*time.Second, "a segment persisted warm", func() (bool, string) {
				segs := segments(t, d.addr, "arch")
				for _, s := range segs {
					if !s.Active && slices.Contains(s.Tiers, "warm") {
						target = s
					}
				}
				return target.Count > 0, fmt.Sprint(segs)
			})
			offloaded := make(chan string, 1)
			go func() {
				c := &http.Client{Timeout: 2 * time.Minute}
				resp, err := c.Post(fmt.Sprintf("http://%s/v1/streams/arch/segments/%d/offload", d.addr, target.Base), "", nil)
				if err != nil {
					offloaded <- err.Error()
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				offloaded <- fmt.Sprintf("%d %s", resp.StatusCode, body)
			}()
			time.Sleep(2 * time.Second)
			if st := getStatus(t, d.addr); !st.Migrator.Running {
				t.Fatalf("the uploads ended before the shutdown: %+v", st.Migrator)
			}
			select {
			case res := <-offloaded:
				t.Fatalf("the offload ended before the shutdown: %s", res)
			default:
			}

			start := time.Now()
			d.stop(t) // SIGTERM; exit 0 within 30 s
			t.Logf("%s: tierd exited 0 %v after SIGTERM", mode, time.Since(start).Round(time.Millisecond))
			if !strings.Contains(d.logs(), "stopped") {
				t.Errorf("no clean stop in the log:\n%s", d.tail(3000))
			}
			select {
			case res := <-offloaded:
				if strings.HasPrefix(res, "200") || strings.Contains(res, "cold_store_unavailable") {
					t.Errorf("the offload cancelled by the shutdown answered %.300s", res)
				}
				t.Logf("the offload in flight ended with: %.200s", res)
			case <-time.After(10 * time.Second):
				t.Errorf("the offload request did not end with tierd")
			}

			if mode == "paused" {
				m.Resume()
			} else {
				proxy.stall.Store(false)
			}
			d = startDaemonEnv(t, config, dataDir, minioEnv(m)...)
			// Paused, nothing reached MinIO: the intents are rolled back.
			// Answers withheld, MinIO has the objects: the moves finish.
			settled := map[string]string{"paused": "rolling back an upload interrupted before its object was written",
				"answer-withheld": "finishing an upload interrupted after its object was written"}[mode]
			if logs := d.logs(); !strings.Contains(logs, settled) {
				t.Errorf("the restart did not say %q:\n%s", settled, d.tail(4000))
			}
			waitFor(t, 2*time.Minute, "every segment of arch in cold alone", func() (bool, string) {
				segs := segments(t, d.addr, "arch")
				return allColdOnly(segs), fmt.Sprint(segs)
			})
			got := readAll(t, d.addr, "arch")
			check(t, "arch", got, l.all())
			if _, n := l.acked("arch"); len(got) != n {
				t.Fatalf("read %d records, %d acknowledged", len(got), n)
			}
			verifyOK(t, d.addr)
			checkBucket(t, m, map[string][]segInfo{"arch": segments(t, d.addr, "arch")})
		})
	}
}

// TestColdStoreStartupCheck: tierd checks its cold store at start and
// names what is wrong — a missing bucket, refused credentials, an
// endpoint that is unreachable or does not answer — in a warning, and runs
// anyway (appends and hot reads work), within a bounded start.
func TestColdStoreStartupCheck(t *testing.T) {
	shared := testenv.StartMinIO(t)
	hung := testenv.StartDedicatedMinIO(t)
	hung.Pause()
	closed := freeAddr(t) // nothing listens there
	cases := []struct {
		name, store string
		env         []string
		warning     string
	}{
		{"bucket missing", strings.Replace(shared.URL("minio"), shared.Bucket, "t-no-such-bucket-"+fmt.Sprint(time.Now().UnixNano()), 1),
			minioEnv(shared), "the bucket does not exist"},
		{"credentials refused", shared.URL("minio"), minioEnv(shared, "AWS_SECRET_ACCESS_KEY=not-the-secret"), "the credentials were refused"},
		{"credentials refused aws", shared.URL("aws"), minioEnv(shared, "AWS_SECRET_ACCESS_KEY=not-the-secret"), "the credentials were refused"},
		{"endpoint unreachable", "s3://tierd-test/tierd?region=us-east-1&endpoint=http://" + closed, minioEnv(shared), "the endpoint is unreachable"},
		{"endpoint hung", hung.URL("minio"), minioEnv(hung), "the endpoint does not answer within cold.read_timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			config := writeConfig(t, dir, fmt.Sprintf("cold: {store: %q, read_timeout: 2s}\n", tc.store))
			start := time.Now()
			d := startDaemonEnv(t, config, filepath.Join(dir, "data"), tc.env...)
			took := time.Since(start)
			logs := d.logs()
			if !strings.Contains(logs, tc.warning) || !strings.Contains(logs, "level=WARN") {
				t.Errorf("start-up log does not warn %q:\n%s", tc.warning, d.tail(3000))
			}
			if strings.Contains(logs, "not-the-secret") {
				t.Errorf("the log shows the secret:\n%s", logs)
			}
			for _, line := range strings.Split(logs, "\n") {
				if strings.Contains(line, "cold store") {
					t.Logf("%s: tierd up after %v: %.400s", tc.name, took.Round(time.Millisecond), line)
				}
			}
			b := &batch{id: "x", stream: "s", values: []string{`{"v":1}`}}
			if err := appendBatch(http.DefaultClient, d.addr, b); err != nil {
				t.Fatalf("append with a broken cold store: %v", err)
			}
			check(t, "s", readAll(t, d.addr, "s"), []*batch{b})
			st := getStatus(t, d.addr)
			if tc.name == "endpoint hung" && st.ColdStore != "unavailable" {
				t.Errorf("status after starting on a hung store: %+v", st)
			}
			d.stop(t)
		})
	}
}
