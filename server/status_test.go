package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/internal/failpoint"
	"github.com/tierd/tierd/tiers"
)

// statusAnswer decodes GET /v1/status.
type statusAnswer struct {
	Streams  int                `json:"streams"`
	Tiers    map[string]tierOut `json:"tiers"`
	Migrator *migratorOut       `json:"migrator"`
}

func (e *adminEnv) status() statusAnswer {
	e.t.Helper()
	r := e.do("GET", "/v1/status", nil)
	if r.status != 200 {
		e.t.Fatalf("status: %d %s", r.status, r.body)
	}
	var st statusAnswer
	if err := json.Unmarshal(r.body, &st); err != nil {
		e.t.Fatalf("status %s: %v", r.body, err)
	}
	return st
}

func TestStatusTiersAndMigrator(t *testing.T) {
	e := newAdminEnv(t, true)
	e.appendN("s", 200)
	e.appendN("other", 20)
	segsS, segsO := e.segments("s"), e.segments("other")
	n := len(segsS) + len(segsO)

	st := e.status()
	if st.Migrator == nil || st.Migrator.LastRun != nil || st.Migrator.Failing != 0 || st.Migrator.Schedule != "" || st.Migrator.Running {
		t.Fatalf("migrator before any run: %+v", st.Migrator)
	}
	var warmBytes int64
	for _, s := range append(segsS, segsO...) {
		warmBytes += s.Bytes
	}
	if w := st.Tiers["warm"]; w.Segments != n || w.Streams != 2 || w.Bytes != warmBytes || w.OldestTS == "" || w.NewestTS < w.OldestTS || w.OldestSealedAt == "" {
		t.Fatalf("warm tier %+v, want %d segments of %d bytes in 2 streams", w, n, warmBytes)
	}
	if h := st.Tiers["hot"]; h.Segments != n || h.BudgetBytes <= 0 || h.BudgetUsed <= 0 {
		t.Fatalf("hot tier %+v, want %d resident segments and a budget", h, n)
	}
	if c, ok := st.Tiers["cold"]; !ok || c.Segments != 0 || c.OldestTS != "" || c.BudgetBytes != 0 {
		t.Fatalf("cold tier %+v (present %v), want present and empty", c, ok)
	}

	// One segment's upload fails, the rest move: the status shows the run
	// and the failing segment with its error.
	e.setClock(adminT0.Add(25 * time.Hour))
	if err := failpoint.Enable(failpoint.MoveAfterWrite, "error@1"); err != nil {
		t.Fatal(err)
	}
	out := e.migrate("dry_run=false")
	failpoint.Disable(failpoint.MoveAfterWrite)
	if out.Failed != 1 {
		t.Fatalf("run with one failpoint: %+v", out)
	}
	st = e.status()
	m := st.Migrator
	if m.LastRun == nil || m.LastRun.Actions != len(out.Actions) || m.LastRun.Failed != 1 || m.Failing != 1 || len(m.Failures) != 1 {
		t.Fatalf("migrator after a run with one failure: %+v (run %+v)", m, out)
	}
	f := m.Failures[0]
	if f.Action != "upload" || f.Attempts != 1 || !strings.Contains(f.Error, "failpoint") || f.RetryAt == "" {
		t.Fatalf("failure %+v", f)
	}
	// Which upload failed depends on the run's concurrency: when it was the
	// only segment of "other", cold holds one stream.
	wantStreams := 2
	if f.Stream == "other" && len(segsO) == 1 {
		wantStreams = 1
	}
	if c := st.Tiers["cold"]; c.Segments != n-1 || c.Streams != wantStreams || c.Bytes <= 0 {
		t.Fatalf("cold tier after the run %+v, want %d segments in %d streams (failed: %s/%d)", c, n-1, wantStreams, f.Stream, f.Base)
	}
	if h := st.Tiers["hot"]; h.Segments != 0 || h.Streams != 0 || h.OldestTS != "" {
		t.Fatalf("hot tier past every segment's hot.max_age: %+v", h)
	}
	if w := st.Tiers["warm"]; w.Segments != n {
		t.Fatalf("warm tier after uploads that keep warm: %+v, want %d segments", w, n)
	}

	// The retry succeeds and clears the failure.
	e.setClock(adminT0.Add(26 * time.Hour))
	if out := e.migrate("dry_run=false"); out.Failed != 0 {
		t.Fatalf("retry: %+v", out)
	}
	if m := e.status().Migrator; m.Failing != 0 || len(m.Failures) != 0 {
		t.Fatalf("failures after a successful retry: %+v", m)
	}
}

func TestStatusWithoutMigrator(t *testing.T) {
	e := newAdminEnv(t, false)
	r := e.do("GET", "/v1/status", nil)
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil || r.status != 200 {
		t.Fatalf("status: %d %s", r.status, r.body)
	}
	if v, ok := m["migrator"]; !ok || v != nil {
		t.Errorf("migrator = %v (present %v), want null", v, ok)
	}
}

// progressLines posts path with Accept: application/x-ndjson and returns
// the answer's status, Content-Type and decoded lines.
func progressLines(t *testing.T, e *adminEnv, path string) (int, string, []map[string]json.RawMessage) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+path, nil)
	req.Header.Set("Accept", "application/json, application/x-ndjson;q=0.9")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []map[string]json.RawMessage
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var l map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil || len(l) != 1 {
			t.Fatalf("line %q: %v (want one field)", sc.Text(), err)
		}
		out = append(out, l)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), out
}

func TestProgressStreams(t *testing.T) {
	e := newAdminEnv(t, true)
	e.appendN("s", 200)
	n := len(e.segments("s"))
	e.setClock(adminT0.Add(25 * time.Hour))

	for _, tc := range []struct {
		path, unit string
		total      int
	}{
		{"/v1/migrate?dry_run=false", "actions", n}, // an upload per segment
		{"/v1/verify", "segments", n},
	} {
		status, ct, lines := progressLines(t, e, tc.path)
		if status != 200 || ct != "application/x-ndjson" || len(lines) < 2 {
			t.Fatalf("%s: %d %s, %d lines", tc.path, status, ct, len(lines))
		}
		var last progressOut
		for i, l := range lines[:len(lines)-1] {
			var p progressOut
			if err := json.Unmarshal(l["progress"], &p); err != nil {
				t.Fatalf("%s line %d: %s", tc.path, i, l)
			}
			if p.Unit != tc.unit || p.Total != int64(tc.total) || p.Done < last.Done || p.Done > p.Total {
				t.Fatalf("%s progress %+v after %+v, want %d %s", tc.path, p, last, tc.total, tc.unit)
			}
			last = p
		}
		if last.Done != last.Total {
			t.Errorf("%s: last progress %+v is not complete", tc.path, last)
		}
		res, ok := lines[len(lines)-1]["result"]
		if !ok {
			t.Fatalf("%s: last line %v is not the result", tc.path, lines[len(lines)-1])
		}
		var v struct {
			Failed  int        `json:"failed"`
			Actions []struct{} `json:"actions"`
			OK      *bool      `json:"ok"`
		}
		if err := json.Unmarshal(res, &v); err != nil {
			t.Fatal(err)
		}
		if tc.unit == "actions" && (len(v.Actions) != tc.total || v.Failed != 0) {
			t.Errorf("migrate result %s", res)
		}
		if tc.unit == "segments" && (v.OK == nil || !*v.OK) {
			t.Errorf("verify result %s", res)
		}
	}

	// Refused before any work: the usual status and error body.
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/verify?stream=nope", nil)
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := new(bytes.Buffer)
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	wantError(t, response{resp.StatusCode, resp.Header, body.Bytes()}, 404, "stream_not_found")
}

func TestReadWaitLongPolls(t *testing.T) {
	e := newEnv(t, engine.Options{}, Options{})
	e.mustAppend("s", `{"value":1}`+"\n")

	// A record appended while the read waits is answered at once.
	type result struct {
		recs    []wireRecord
		elapsed time.Duration
	}
	done := make(chan result)
	go func() {
		start := time.Now()
		recs := e.read("s", "from=1&wait=60s")
		done <- result{recs, time.Since(start)}
	}()
	time.Sleep(100 * time.Millisecond) // let the read start waiting
	e.mustAppend("s", `{"value":2}`+"\n"+`{"value":3}`+"\n")
	res := <-done
	if len(res.recs) != 2 || res.recs[0].Offset != 1 || string(res.recs[1].Value) != "3" {
		t.Fatalf("long poll got %+v", res.recs)
	}
	if res.elapsed > 50*time.Second {
		t.Fatalf("long poll answered after %s: it waited out its wait instead of waking", res.elapsed)
	}

	// Records at from already: no wait. Nothing arriving: an empty answer
	// once the wait is over.
	if recs := e.read("s", "from=0&wait=60s"); len(recs) != 3 {
		t.Fatalf("read with records present: %d", len(recs))
	}
	if recs := e.read("s", "from=3&wait=50ms"); len(recs) != 0 {
		t.Fatalf("idle long poll returned %+v", recs)
	}
	// A stream created during the wait is answered.
	go func() {
		time.Sleep(100 * time.Millisecond)
		e.mustAppend("later", `{"value":"x"}`+"\n")
	}()
	if recs := e.read("later", "wait=60s"); len(recs) != 1 {
		t.Fatalf("waiting for a new stream: %+v", recs)
	}

	for _, q := range []string{"wait=61s", "wait=-1s", "wait=soon", "wait=1s&wait=2s"} {
		wantError(t, e.do("GET", "/v1/streams/s/records?"+q, nil), 400, "invalid_parameter")
	}
}

func TestShutdownEndsLongPolls(t *testing.T) {
	eng, err := engine.Open(context.Background(), engine.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(context.Background())
	api := New(eng, Options{})
	hs := &http.Server{Handler: api}
	hs.RegisterOnShutdown(api.Shutdown)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln)
	url := "http://" + ln.Addr().String()
	if _, err := eng.Append(context.Background(), "s", []tiers.Record{{Value: []byte("1")}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan int)
	go func() {
		resp, err := http.Get(url + "/v1/streams/s/records?from=1&wait=60s")
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := hs.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown waited for the long poll: %v", err)
	}
	if code := <-done; code != 200 {
		t.Fatalf("the long poll answered %d, want 200 (empty)", code)
	}
}
