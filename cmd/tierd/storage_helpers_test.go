package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Helpers for the tests of hostile clients and storage conditions: a
// daemon's open descriptors, the process's open-file limit, appends that
// say how they were refused, and /healthz as a checker reads it.

// fdCount returns how many descriptors process pid has open.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("open descriptors of %d: %v", pid, err)
	}
	return len(ents)
}

// raiseNoFile raises this process's soft open-file limit to its hard limit
// (the daemons it starts inherit it), raising the hard limit to need as
// root, and skips the test, saying why, when the hard limit is below need
// and cannot be raised.
func raiseNoFile(t *testing.T, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	if lim.Max < need && os.Geteuid() == 0 {
		lim.Max = need // root may raise its hard limit (CAP_SYS_RESOURCE)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatalf("raising the hard open-file limit to %d as root: %v", need, err)
		}
	}
	if lim.Max < need {
		t.Skipf("SKIP: this test needs %d open files and the hard limit (RLIMIT_NOFILE) is %d; raise it (ulimit -Hn %d as root, LimitNOFILE= in a unit) to run it", need, lim.Max, need)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatalf("raising the soft open-file limit to %d: %v", lim.Max, err)
		}
	}
}

// outcome is how tierd answered one append.
type outcome struct {
	status int
	code   string // the error code of a refusal
	retry  string // its Retry-After
	took   time.Duration
}

// appendOutcome posts b and returns how it was answered; a 200 marks b
// acknowledged. A transport error is returned as err.
func appendOutcome(client *http.Client, addr string, b *batch, header http.Header) (outcome, error) {
	var body bytes.Buffer
	for i, v := range b.values {
		fmt.Fprintf(&body, `{"key":%q,"ts":%d,"tags":["crash","i%d"],"value":%s}`+"\n", b.id, 1_700_000_000_000_000_000+int64(i), i, v)
	}
	req, err := http.NewRequest("POST", "http://"+addr+"/v1/streams/"+b.stream+"/records", &body)
	if err != nil {
		return outcome{}, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	for k, v := range header {
		req.Header[k] = v
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return outcome{}, err
	}
	defer resp.Body.Close()
	msg, err := io.ReadAll(resp.Body)
	o := outcome{status: resp.StatusCode, retry: resp.Header.Get("Retry-After"), took: time.Since(start)}
	if err != nil {
		return o, err
	}
	if resp.StatusCode != 200 {
		var eb struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(msg, &eb) != nil || eb.Error.Code == "" {
			return o, fmt.Errorf("status %d without a JSON error: %q", resp.StatusCode, msg)
		}
		o.code = eb.Error.Code
		return o, nil
	}
	var ack struct {
		First uint64 `json:"first_offset"`
		Count int    `json:"count"`
	}
	if err := json.Unmarshal(msg, &ack); err != nil || ack.Count != len(b.values) {
		return o, fmt.Errorf("ack %q for %d records: %v", msg, len(b.values), err)
	}
	b.acked, b.first = true, ack.First
	return o, nil
}

// healthOut is /healthz's answer.
type healthOut struct {
	Status string `json:"status"`
	Cause  string `json:"cause"`
	Since  string `json:"since"`
	Sticky bool   `json:"sticky"`
	Error  struct {
		Code, Message string
	} `json:"error"`
}

// healthz asks /healthz through client (on its kept-alive connection).
func healthz(t *testing.T, client *http.Client, addr string) (int, healthOut) {
	t.Helper()
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("healthz: %v", err)
	}
	defer resp.Body.Close()
	var h healthOut
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatalf("healthz answered %d %q: %v", resp.StatusCode, body, err)
	}
	return resp.StatusCode, h
}

// statusWrites returns /v1/status's writes fields.
func statusWrites(t *testing.T, client *http.Client, addr string) (writes, since, errText string) {
	t.Helper()
	resp, err := client.Get("http://" + addr + "/v1/status")
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	defer resp.Body.Close()
	var st struct {
		Writes      string `json:"writes"`
		WritesSince string `json:"writes_since"`
		WritesError string `json:"writes_error"`
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || json.Unmarshal(body, &st) != nil {
		t.Fatalf("status: %d %s", resp.StatusCode, body)
	}
	return st.Writes, st.WritesSince, st.WritesError
}

// refusedAbsent fails the test if a batch that was refused is stored.
func refusedAbsent(t *testing.T, got []wireRecord, refused []*batch) {
	t.Helper()
	ids := map[string]bool{}
	for _, b := range refused {
		ids[b.id] = true
	}
	for _, r := range got {
		if ids[r.Key] {
			t.Fatalf("offset %d holds batch %s, which was refused (503: nothing stored)", r.Offset, r.Key)
		}
	}
}

// keepAliveClient is an HTTP client that reuses one connection for
// sequential requests: it can still talk to a daemon that has no
// descriptor left to accept another.
func keepAliveClient() *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}}
}

// refusals tallies refused appends by code.
type refusals struct {
	mu    sync.Mutex
	codes map[string]int
}

func (r *refusals) add(code string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.codes == nil {
		r.codes = map[string]int{}
	}
	r.codes[code]++
}

func (r *refusals) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var parts []string
	for c, n := range r.codes {
		parts = append(parts, c+"="+strconv.Itoa(n))
	}
	return strings.Join(parts, " ")
}
