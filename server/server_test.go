package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/tiers"
)

// fixedNow is the ingest clock of every test server.
var fixedNow = time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC)

type testEnv struct {
	t       *testing.T
	eng     *engine.Engine
	srv     *httptest.Server
	dataDir string
}

// newEnv starts a server over a real engine in a temporary directory.
func newEnv(t *testing.T, eopts engine.Options, sopts Options) *testEnv {
	t.Helper()
	eopts.DataDir = t.TempDir()
	eng, err := engine.Open(context.Background(), eopts)
	if err != nil {
		t.Fatalf("engine.Open: %v", err)
	}
	if sopts.Now == nil {
		sopts.Now = func() time.Time { return fixedNow }
	}
	srv := httptest.NewServer(New(eng, sopts))
	t.Cleanup(func() {
		srv.Close()
		eng.Close(context.Background())
	})
	return &testEnv{t: t, eng: eng, srv: srv, dataDir: eopts.DataDir}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (e *testEnv) do(method, path string, body io.Reader) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func (e *testEnv) appendBody(stream, body string) response {
	e.t.Helper()
	return e.do(http.MethodPost, "/v1/streams/"+stream+"/records", strings.NewReader(body))
}

// mustAppend appends and fails the test unless the server took the batch.
func (e *testEnv) mustAppend(stream, body string) appendOut {
	e.t.Helper()
	r := e.appendBody(stream, body)
	if r.status != http.StatusOK {
		e.t.Fatalf("append to %s: %d %s", stream, r.status, r.body)
	}
	var out appendOut
	if err := json.Unmarshal(r.body, &out); err != nil {
		e.t.Fatalf("append response %s: %v", r.body, err)
	}
	return out
}

// wireRecord is a read line as a client decodes it.
type wireRecord struct {
	Offset   uint64          `json:"offset"`
	TS       string          `json:"ts"`
	Key      *string         `json:"key"`
	Tags     []string        `json:"tags"`
	Value    json.RawMessage `json:"value"`
	ValueB64 *string         `json:"value_b64"`
	Tier     string          `json:"tier"`
}

// read fetches records and decodes every line, failing on anything but 200.
func (e *testEnv) read(stream, query string) []wireRecord {
	e.t.Helper()
	r := e.do(http.MethodGet, "/v1/streams/"+stream+"/records?"+query, nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("read %s?%s: %d %s", stream, query, r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/x-ndjson" {
		e.t.Errorf("read Content-Type = %q", ct)
	}
	var out []wireRecord
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		var w wireRecord
		if err := dec.Decode(&w); err != nil {
			e.t.Fatalf("read line %q: %v", sc.Text(), err)
		}
		out = append(out, w)
	}
	return out
}

// count is the number of records the engine holds for stream, -1 when it
// does not know the stream: the ground truth for "nothing changed".
func (e *testEnv) count(stream string) int {
	e.t.Helper()
	n := 0
	for _, err := range e.eng.Read(context.Background(), stream, tiers.AllRecords()) {
		if errors.Is(err, tiers.ErrStreamNotFound) {
			return -1
		}
		if err != nil {
			e.t.Fatalf("count %s: %v", stream, err)
		}
		n++
	}
	return n
}

// wantError checks an error answer's status, JSON shape and code.
func wantError(t *testing.T, r response, status int, code string) errorDetail {
	t.Helper()
	if r.status != status {
		t.Errorf("status = %d, want %d (body %s)", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type = %q", ct)
	}
	var eb errorBody
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&eb); err != nil {
		t.Fatalf("error body %q is not {\"error\":{…}}: %v", r.body, err)
	}
	if eb.Error.Code != code {
		t.Errorf("code = %q, want %q (message %q)", eb.Error.Code, code, eb.Error.Message)
	}
	if eb.Error.Message == "" {
		t.Error("empty error message")
	}
	return eb.Error
}

func TestValueRoundTrip(t *testing.T) {
	e := newEnv(t, engine.Options{}, Options{})
	bin := []byte{0, 0xff, '\n', '"', 0xc3}
	cases := []struct {
		name     string
		field    string // the input's value field, "" for none
		wantJSON string // the value read back as JSON, "" if it comes back as value_b64
		wantB64  []byte
	}{
		{"object", `"value":{"a":1,"b":[true,false,null]}`, `{"a":1,"b":[true,false,null]}`, nil},
		{"object compacted", `"value":{ "a" : 1 ,	"b" : [ 1 , 2 ] }`, `{"a":1,"b":[1,2]}`, nil},
		{"string", `"value":"hello \"world\" \u00e9 ü"`, `"hello \"world\" \u00e9 ü"`, nil},
		{"html-ish string kept as is", `"value":"<a href=\"x\">&</a>"`, `"<a href=\"x\">&</a>"`, nil},
		{"integer", `"value":42`, `42`, nil},
		{"number text kept", `"value":-1.50e+10`, `-1.50e+10`, nil},
		{"big integer kept exactly", `"value":123456789012345678901234567890`, `123456789012345678901234567890`, nil},
		{"null", `"value":null`, `null`, nil},
		{"bool", `"value":false`, `false`, nil},
		{"nested", `"value":[[[{"x":[{}]}]],{"y":{"z":[]}}]`, `[[[{"x":[{}]}]],{"y":{"z":[]}}]`, nil},
		{"binary", `"value_b64":"` + base64.StdEncoding.EncodeToString(bin) + `"`, "", bin},
		{"b64 of compact JSON reads as value", `"value_b64":"` + base64.StdEncoding.EncodeToString([]byte(`{"a":1}`)) + `"`, `{"a":1}`, nil},
		{"b64 of spaced JSON stays b64", `"value_b64":"` + base64.StdEncoding.EncodeToString([]byte("{\n}")) + `"`, "", []byte("{\n}")},
		{"no value", ``, "", nil},
	}
	var body strings.Builder
	for i, c := range cases {
		sep := ""
		if c.field != "" {
			sep = ","
		}
		fmt.Fprintf(&body, `{"key":"k%d"%s%s}`+"\n", i, sep, c.field)
	}
	res := e.mustAppend("values", body.String())
	if res.Count != len(cases) || res.FirstOffset != 0 || res.LastOffset != uint64(len(cases)-1) || res.Stream != "values" {
		t.Fatalf("append result %+v", res)
	}
	got := e.read("values", "")
	if len(got) != len(cases) {
		t.Fatalf("read %d records, want %d", len(got), len(cases))
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := got[i]
			if g.Offset != uint64(i) || g.Key == nil || *g.Key != fmt.Sprintf("k%d", i) || g.Tier != "hot" {
				t.Errorf("offset/key/tier = %d/%v/%q", g.Offset, g.Key, g.Tier)
			}
			if string(g.Value) != c.wantJSON {
				t.Errorf("value = %s, want %s", g.Value, c.wantJSON)
			}
			switch {
			case c.wantB64 == nil && g.ValueB64 != nil:
				t.Errorf("unexpected value_b64 %q", *g.ValueB64)
			case c.wantB64 != nil:
				if g.ValueB64 == nil {
					t.Fatalf("no value_b64")
				}
				b, err := base64.StdEncoding.DecodeString(*g.ValueB64)
				if err != nil || !bytes.Equal(b, c.wantB64) {
					t.Errorf("value_b64 = %q (%v), want %q", b, err, c.wantB64)
				}
			}
		})
	}
}

func TestTimestampForms(t *testing.T) {
	e := newEnv(t, engine.Options{}, Options{})
	body := strings.Join([]string{
		`{"ts":"2026-11-22T10:00:00.123456789Z"}`,
		`{"ts":"2026-11-22T12:00:00.5+02:00"}`,
		`{"ts":1795341600000000001}`,
		`{"ts":0}`,
		`{"ts":-1}`,
		`{}`,
		`{"ts":null}`,
	}, "\n")
	e.mustAppend("ts", body)
	want := []string{
		"2026-11-22T10:00:00.123456789Z",
		"2026-11-22T10:00:00.5Z",
		"2026-11-22T10:00:00.000000001Z",
		"1970-01-01T00:00:00Z",
		"1969-12-31T23:59:59.999999999Z",
		fixedNow.Format(time.RFC3339Nano), // ingest time
		fixedNow.Format(time.RFC3339Nano),
	}
	got := e.read("ts", "")
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].TS != want[i] {
			t.Errorf("record %d ts = %s, want %s", i, got[i].TS, want[i])
		}
		if got[i].Key != nil || got[i].Tags != nil || got[i].Value != nil || got[i].ValueB64 != nil {
			t.Errorf("record %d: empty key/tags/value not omitted: %+v", i, got[i])
		}
	}
}

func TestTimestampEdges(t *testing.T) {
	// Every ts the API accepts is read back, from memory and from a
	// persisted segment, with and without time bounds.
	e := newEnv(t, engine.Options{}, Options{})
	body := `{"ts":-9223372036854775808,"value":"min"}` + "\n" +
		`{"ts":"2262-04-11T23:47:16.854775806Z","value":"max"}` + "\n" +
		`{"ts":"1677-09-21T00:12:43.145224192Z","value":"min as RFC 3339"}`
	e.mustAppend("edge", body)
	want := []string{"1677-09-21T00:12:43.145224192Z", "2262-04-11T23:47:16.854775806Z", "1677-09-21T00:12:43.145224192Z"}
	check := func(where string) {
		t.Helper()
		for _, q := range []string{"", "&since=-9223372036854775808", "&until=9223372036854775807", "&since=1677-09-21T00:12:43.145224192Z&until=2262-04-11T23:47:16.854775807Z"} {
			got := e.read("edge", "from=0"+q)
			if len(got) != len(want) {
				t.Fatalf("%s, query %q: read %d records, want %d", where, q, len(got), len(want))
			}
			for i := range want {
				if got[i].TS != want[i] {
					t.Errorf("%s, query %q: record %d ts = %s, want %s", where, q, i, got[i].TS, want[i])
				}
			}
		}
	}
	check("in memory")
	if err := e.eng.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	check("after a flush")
}

func TestReadQueryParameters(t *testing.T) {
	e := newEnv(t, engine.Options{}, Options{})
	// Offsets 0..9 with ts = base + offset seconds; keys alternate a/b with
	// offset 9 keyless; tags: even offsets "even", multiples of 3 "three".
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var body strings.Builder
	for i := range 10 {
		key := `"a"`
		if i%2 == 1 {
			key = `"b"`
		}
		var tags []string
		if i%2 == 0 {
			tags = append(tags, `"even"`)
		}
		if i%3 == 0 {
			tags = append(tags, `"three"`)
		}
		if i == 9 {
			fmt.Fprintf(&body, `{"ts":%d,"tags":[%s],"value":%d}`+"\n", base.Add(time.Duration(i)*time.Second).UnixNano(), strings.Join(tags, ","), i)
			continue
		}
		fmt.Fprintf(&body, `{"key":%s,"ts":%d,"tags":[%s],"value":%d}`+"\n", key, base.Add(time.Duration(i)*time.Second).UnixNano(), strings.Join(tags, ","), i)
	}
	e.mustAppend("q", body.String())
	ts := func(sec int) string { return base.Add(time.Duration(sec) * time.Second).Format(time.RFC3339Nano) }
	cases := []struct {
		query string
		want  []uint64
	}{
		{"", []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"from=3", []uint64{3, 4, 5, 6, 7, 8, 9}},
		{"to=2", []uint64{0, 1, 2}},
		{"from=4&to=6", []uint64{4, 5, 6}},
		{"from=4&to=4", []uint64{4}},
		{"from=100", nil},
		{"since=" + ts(7), []uint64{7, 8, 9}},
		{"until=" + ts(2), []uint64{0, 1}},
		{"since=" + ts(2) + "&until=" + ts(5), []uint64{2, 3, 4}},
		{fmt.Sprintf("since=%d&until=%d", base.Add(2*time.Second).UnixNano(), base.Add(4*time.Second).UnixNano()), []uint64{2, 3}},
		{"since=2026-01-01T01:00:04%2B01:00", []uint64{4, 5, 6, 7, 8, 9}},
		{"key=b", []uint64{1, 3, 5, 7}},
		{"key=", []uint64{9}},
		{"key=zzz", nil},
		{"tag=three", []uint64{0, 3, 6, 9}},
		{"tag=even&key=a", []uint64{0, 2, 4, 6, 8}},
		{"tag=three&from=1&to=8", []uint64{3, 6}},
		{"limit=3", []uint64{0, 1, 2}},
		{"limit=2&tag=three&from=1", []uint64{3, 6}},
		{"limit=100000", []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			got := e.read("q", c.query)
			var offs []uint64
			for _, r := range got {
				offs = append(offs, r.Offset)
			}
			if fmt.Sprint(offs) != fmt.Sprint(c.want) {
				t.Errorf("offsets = %v, want %v", offs, c.want)
			}
		})
	}
}

func TestReadDefaultLimitAndStreaming(t *testing.T) {
	e := newEnv(t, engine.Options{}, Options{})
	const n = 2500 // more than the default limit and several flushes' worth
	var body strings.Builder
	for i := range n {
		fmt.Fprintf(&body, `{"value":{"i":%d}}`+"\n", i)
	}
	e.mustAppend("big", body.String())
	if got := e.read("big", ""); len(got) != defaultLimit {
		t.Fatalf("default read returned %d records, want %d", len(got), defaultLimit)
	}
	got := e.read("big", "limit=100000")
	if len(got) != n {
		t.Fatalf("read %d records, want %d", len(got), n)
	}
	for i, r := range got {
		if r.Offset != uint64(i) || string(r.Value) != fmt.Sprintf(`{"i":%d}`, i) {
			t.Fatalf("record %d: offset %d value %s", i, r.Offset, r.Value)
		}
	}
}

func TestReadErrors(t *testing.T) {
	e := newEnv(t, engine.Options{}, Options{})
	e.mustAppend("s", "{}\n{}")
	cases := []struct {
		path   string
		status int
		code   string
	}{
		{"/v1/streams/nope/records", 404, "stream_not_found"},
		{"/v1/streams/nope/segments", 404, "stream_not_found"},
		{"/v1/streams/.bad/records", 400, "invalid_stream_name"},
		{"/v1/streams/a%2Fb/records", 400, "invalid_stream_name"},
		{"/v1/streams/" + strings.Repeat("x", 201) + "/segments", 400, "invalid_stream_name"},
		{"/v1/streams/s/records?limit=0", 400, "invalid_parameter"},
		{"/v1/streams/s/records?limit=100001", 400, "invalid_parameter"},
		{"/v1/streams/s/records?limit=ten", 400, "invalid_parameter"},
		{"/v1/streams/s/records?from=-1", 400, "invalid_parameter"},
		{"/v1/streams/s/records?to=x", 400, "invalid_parameter"},
		{"/v1/streams/s/records?from=5&to=4", 400, "invalid_parameter"},
		{"/v1/streams/s/records?offset=3", 400, "invalid_parameter"},
		{"/v1/streams/s/records?from=1&from=2", 400, "invalid_parameter"},
		{"/v1/streams/s/records?tag=", 400, "invalid_parameter"},
		{"/v1/streams/s/records?from=%zz", 400, "invalid_parameter"},
		{"/v1/streams/s/records?since=yesterday", 400, "invalid_ts"},
		{"/v1/streams/s/records?until=2026-13-01T00:00:00Z", 400, "invalid_ts"},
		{"/v1/streams/s/records?since=5&until=5", 400, "invalid_parameter"},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			wantError(t, e.do(http.MethodGet, c.path, nil), c.status, c.code)
		})
	}
	if n := e.count("nope"); n != -1 {
		t.Errorf("reading an unknown stream created it (%d records)", n)
	}
	// An unknown stream is named in the message, whether it is in the path
	// or a parameter.
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/v1/streams/nope/records"},
		{http.MethodGet, "/v1/streams/nope/segments"},
		{http.MethodPost, "/v1/verify?stream=nope"},
	} {
		d := wantError(t, e.do(r.method, r.path, nil), 404, "stream_not_found")
		if !strings.Contains(d.Message, `"nope"`) {
			t.Errorf("%s %s: message %q does not name the stream", r.method, r.path, d.Message)
		}
	}
}

func TestAppendErrorsChangeNothing(t *testing.T) {
	e := newEnv(t, engine.Options{}, Options{MaxBodyBytes: 64 << 10, MaxRecordBytes: 1000, MaxBatchRecords: 50})
	e.mustAppend("existing", "{}\n{}\n{}")
	cases := []struct {
		name   string
		body   string
		status int
		code   string
		inMsg  string // a substring the message must carry
	}{
		{"malformed JSON names the line", "{}\n\n{\"key\":", 400, "invalid_json", "line 3"},
		{"not an object", "[1,2]", 400, "invalid_json", "line 1"},
		{"unknown field", `{"vaule":1}`, 400, "invalid_record", `"vaule"`},
		{"value and value_b64", `{"value":1,"value_b64":"AA=="}`, 400, "invalid_record", "line 1"},
		{"bad ts", `{"ts":"noon"}`, 400, "invalid_ts", "line 1"},
		{"ts past the nanosecond", `{"ts":"2026-11-22T10:00:00.1234567891Z"}`, 400, "invalid_ts", "10 fractional digits"},
		{"ts max int64 as RFC 3339", `{"ts":"2262-04-11T23:47:16.854775807Z"}`, 400, "invalid_ts", "no upper bound"},
		{"ts max int64 as nanoseconds", `{"ts":9223372036854775807}`, 400, "invalid_ts", "no upper bound"},
		{"ts beyond int64", `{"ts":9223372036854775808}`, 400, "invalid_ts", "line 1"},
		{"bad base64", `{"value_b64":"***"}`, 400, "invalid_base64", "line 1"},
		{"empty body", "", 400, "empty_batch", ""},
		{"blank lines only", "\n\n  \n", 400, "empty_batch", ""},
		{"value too large", `{"value":"` + strings.Repeat("x", 1000) + `"}`, 413, "record_too_large", "line 1"},
		{"key too large", `{"key":"` + strings.Repeat("k", tiers.MaxKeyBytes+1) + `"}`, 413, "key_too_large", "line 1"},
		{"body too large", strings.Repeat(`{"key":"`+strings.Repeat("k", 1000)+`","value":"`+strings.Repeat("x", 900)+`"}`+"\n", 40), 413, "body_too_large", ""},
		{"too many records", strings.Repeat("{}\n", 51), 413, "batch_too_large", "line 51"},
		{"bad line at the end", strings.Repeat("{\"value\":1}\n", 20) + `{"value":}`, 400, "invalid_json", "line 21"},
	}
	for _, stream := range []string{"fresh", "existing"} {
		for _, c := range cases {
			t.Run(stream+"/"+c.name, func(t *testing.T) {
				before := e.count(stream)
				d := wantError(t, e.appendBody(stream, c.body), c.status, c.code)
				if !strings.Contains(d.Message, c.inMsg) {
					t.Errorf("message %q does not mention %q", d.Message, c.inMsg)
				}
				if after := e.count(stream); after != before {
					t.Errorf("records %d → %d after a rejected batch", before, after)
				}
			})
		}
	}
	t.Run("invalid stream name", func(t *testing.T) {
		wantError(t, e.appendBody("-x", "{}"), 400, "invalid_stream_name")
		if e.count("-x") != -1 {
			t.Error("stream created")
		}
	})
}

func TestBackpressure(t *testing.T) {
	// A segment as large as the memory budget never seals before the budget
	// is full of unpersisted data, so appends must be pushed back.
	e := newEnv(t, engine.Options{HotMaxBytes: 64 << 10, SegmentMaxBytes: 64 << 10, SegmentMaxAge: time.Hour}, Options{})
	line := `{"value":"` + strings.Repeat("x", 2<<10) + `"}`
	for i := 0; i < 100; i++ {
		before := e.count("bp")
		r := e.appendBody("bp", line)
		if r.status == http.StatusOK {
			continue
		}
		wantError(t, r, http.StatusServiceUnavailable, "backpressure")
		if ra := r.header.Get("Retry-After"); ra == "" {
			t.Error("backpressure without Retry-After")
		}
		if n := e.count("bp"); n != before {
			t.Errorf("a pushed-back batch changed the stream: %d records, had %d", n, before)
		}
		return
	}
	t.Fatal("100 appends of 2 KiB into a 64 KiB budget were never pushed back")
}

func TestBatchLargerThanMemoryBudget(t *testing.T) {
	// Retrying cannot help a batch larger than the whole budget: 413, not 503.
	e := newEnv(t, engine.Options{HotMaxBytes: 4 << 10, SegmentMaxBytes: 4 << 10}, Options{MaxRecordBytes: 4 << 10})
	r := e.appendBody("bp", `{"value":"`+strings.Repeat("x", 3<<10)+`"}`+"\n"+`{"value":"`+strings.Repeat("x", 3<<10)+`"}`)
	wantError(t, r, http.StatusRequestEntityTooLarge, "batch_over_budget")
	if n := e.count("bp"); n > 0 {
		t.Errorf("%d records appended", n)
	}
}

func TestShuttingDown(t *testing.T) {
	e := newEnv(t, engine.Options{}, Options{})
	e.mustAppend("s", "{}")
	if err := e.eng.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantError(t, e.appendBody("s", "{}"), http.StatusServiceUnavailable, "shutting_down")
}

func TestRoutes(t *testing.T) {
	e := newEnv(t, engine.Options{}, Options{})
	cases := []struct {
		method, path string
		status       int
		code         string
		allow        string
	}{
		{"GET", "/v2/streams", 404, "not_found", ""},
		{"GET", "/", 404, "not_found", ""},
		{"GET", "/v1/streams/s/other", 404, "not_found", ""},
		{"DELETE", "/v1/streams/s/records", 405, "method_not_allowed", "GET, HEAD, POST"},
		{"PUT", "/v1/streams", 405, "method_not_allowed", "GET, HEAD"},
		{"POST", "/healthz", 405, "method_not_allowed", "GET, HEAD"},
		// Unclean paths are refused, not redirected to another route.
		{"GET", "/v1/streams/../records", 400, "invalid_path", ""},
		{"POST", "/v1/streams/../records", 400, "invalid_path", ""},
		{"GET", "/v1//streams/s/records", 400, "invalid_path", ""},
		{"GET", "/v1/streams/./s/records", 400, "invalid_path", ""},
		{"POST", "/v1/streams/s/../t/records", 400, "invalid_path", ""},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			r := e.do(c.method, c.path, nil)
			wantError(t, r, c.status, c.code)
			if got := r.header.Get("Allow"); got != c.allow {
				t.Errorf("Allow = %q, want %q", got, c.allow)
			}
		})
	}
	r := e.do("GET", "/healthz", nil)
	if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"status":"ok"}` {
		t.Errorf("healthz: %d %s", r.status, r.body)
	}
}

func TestListingsAndStatus(t *testing.T) {
	e := newEnv(t, engine.Options{}, Options{})
	r := e.do("GET", "/v1/streams", nil)
	if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"streams":[]}` {
		t.Fatalf("empty listing: %d %s", r.status, r.body)
	}
	e.mustAppend("b", `{"ts":1000,"value":1}`+"\n"+`{"ts":2000,"value":2}`)
	if err := e.eng.Flush(context.Background()); err != nil { // seal and persist warm
		t.Fatal(err)
	}
	e.mustAppend("b", `{"ts":3000,"value":3}`)
	e.mustAppend("a", `{}`)

	var streams struct {
		Streams []struct {
			Name       string `json:"name"`
			NextOffset uint64 `json:"next_offset"`
			Records    uint64 `json:"records"`
			Tiers      map[string]struct {
				Segments int   `json:"segments"`
				Bytes    int64 `json:"bytes"`
			} `json:"tiers"`
		} `json:"streams"`
	}
	r = e.do("GET", "/v1/streams", nil)
	if err := json.Unmarshal(r.body, &streams); err != nil || r.status != 200 {
		t.Fatalf("streams: %d %s %v", r.status, r.body, err)
	}
	if len(streams.Streams) != 2 || streams.Streams[0].Name != "a" || streams.Streams[1].Name != "b" {
		t.Fatalf("streams = %s", r.body)
	}
	b := streams.Streams[1]
	if b.NextOffset != 3 || b.Records != 3 {
		t.Errorf("b: next_offset %d records %d, want 3 and 3", b.NextOffset, b.Records)
	}
	if w := b.Tiers["warm"]; w.Segments != 1 || w.Bytes <= 0 {
		t.Errorf("b warm usage = %+v (body %s)", w, r.body)
	}
	if h := b.Tiers["hot"]; h.Segments < 1 {
		t.Errorf("b hot usage = %+v", h)
	}

	var segs []map[string]any
	r = e.do("GET", "/v1/streams/b/segments", nil)
	if err := json.Unmarshal(r.body, &segs); err != nil || r.status != 200 {
		t.Fatalf("segments: %d %s %v", r.status, r.body, err)
	}
	if len(segs) != 2 {
		t.Fatalf("segments = %s", r.body)
	}
	sealed, active := segs[0], segs[1]
	if sealed["base"] != 0.0 || sealed["last"] != 1.0 || sealed["count"] != 2.0 || sealed["active"] != nil {
		t.Errorf("sealed segment = %v", sealed)
	}
	if sealed["min_ts"] != "1970-01-01T00:00:00.000001Z" || sealed["max_ts"] != "1970-01-01T00:00:00.000002Z" {
		t.Errorf("sealed time range = %v..%v", sealed["min_ts"], sealed["max_ts"])
	}
	if d, _ := sealed["digest"].(string); !strings.HasPrefix(d, "sha256:") || len(d) != 71 {
		t.Errorf("sealed digest = %v", sealed["digest"])
	}
	if s, _ := sealed["sealed_at"].(string); s == "" {
		t.Errorf("sealed_at missing: %v", sealed)
	}
	if fmt.Sprint(sealed["tiers"]) != "[hot warm]" && fmt.Sprint(sealed["tiers"]) != "[warm]" {
		t.Errorf("sealed tiers = %v", sealed["tiers"])
	}
	if active["active"] != true || fmt.Sprint(active["tiers"]) != "[hot]" || active["base"] != 2.0 || active["count"] != 1.0 {
		t.Errorf("active segment = %v", active)
	}
	if _, ok := active["digest"]; ok {
		t.Errorf("active segment has a digest: %v", active)
	}
	if _, ok := active["sealed_at"]; ok {
		t.Errorf("active segment has sealed_at: %v", active)
	}

	var st map[string]any
	r = e.do("GET", "/v1/status", nil)
	if err := json.Unmarshal(r.body, &st); err != nil || r.status != 200 {
		t.Fatalf("status: %d %s %v", r.status, r.body, err)
	}
	for _, k := range []string{"started", "streams", "hot_bytes", "hot_max_bytes", "wal_files", "wal_sync"} {
		if _, ok := st[k]; !ok {
			t.Errorf("status lacks %q: %s", k, r.body)
		}
	}
	if st["streams"] != 2.0 {
		t.Errorf("status streams = %v", st["streams"])
	}
}

func TestReadFromWarm(t *testing.T) {
	// A residency of a nanosecond evicts persisted segments at once, so the
	// sealed records must come back from the warm tier.
	e := newEnv(t, engine.Options{HotResidency: time.Nanosecond}, Options{})
	e.mustAppend("w", `{"value":"old"}`)
	if err := e.eng.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.mustAppend("w", `{"value":"new"}`)
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := e.read("w", "")
		if len(got) != 2 || string(got[0].Value) != `"old"` || string(got[1].Value) != `"new"` || got[1].Tier != "hot" {
			t.Fatalf("read = %+v", got)
		}
		if got[0].Tier == "warm" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("offset 0 still served from %q", got[0].Tier)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPanicAnswers500(t *testing.T) {
	var logs bytes.Buffer
	// A server without an engine panics on any engine call: the real
	// handler path, no mock needed.
	srv := httptest.NewServer(New(nil, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}))
	defer srv.Close()
	e := &testEnv{t: t, srv: srv}
	wantError(t, e.do("GET", "/v1/streams", nil), http.StatusInternalServerError, "internal")
	if !strings.Contains(logs.String(), "panicked") {
		t.Errorf("panic not logged: %q", logs.String())
	}
	// A route that needs no engine (/healthz asks it about writes).
	if r := e.do("GET", "/no-such-route", nil); r.status != http.StatusNotFound {
		t.Errorf("server dead after a panic: %d", r.status)
	}
}

func TestSnakeCase(t *testing.T) {
	for in, want := range map[string]string{
		"Started": "started", "HotMaxBytes": "hot_max_bytes", "WALFiles": "wal_files",
		"WALSync": "wal_sync", "HotUnpersisted": "hot_unpersisted", "P99Latency": "p99_latency", "ID": "id",
	} {
		if got := snakeCase(in); got != want {
			t.Errorf("snakeCase(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCorruptionAnswers(t *testing.T) {
	e := newEnv(t, engine.Options{HotResidency: time.Nanosecond}, Options{})
	cases := []struct {
		name       string
		damage     func(file, value []byte) int // index of the byte to flip
		wantStatus int
		wantLines  int // records before the error line
	}{
		// Damage before the first record: the status can still say so.
		{"first record", func(f, v []byte) int { return bytes.Index(f, v) + 1000 }, 500, 0},
		// Damage after records went out: the body ends with an error line.
		{"last record", func(f, v []byte) int { return bytes.LastIndex(f, v) + 1000 }, 200, 2},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stream := fmt.Sprintf("c%d", i)
			big := strings.Repeat("v", 2000)
			e.mustAppend(stream, strings.Repeat(`{"value":"`+big+`"}`+"\n", 3))
			if err := e.eng.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(20 * time.Second)
			for e.read(stream, "")[0].Tier != "warm" {
				if time.Now().After(deadline) {
					t.Fatal("segment never evicted to warm")
				}
				time.Sleep(20 * time.Millisecond)
			}
			files, err := filepath.Glob(filepath.Join(e.dataDir, "warm", stream, "*"))
			if err != nil || len(files) != 1 {
				t.Fatalf("warm files %v %v", files, err)
			}
			b, err := os.ReadFile(files[0])
			if err != nil {
				t.Fatal(err)
			}
			b[c.damage(b, []byte(big))] ^= 0x20
			if err := os.WriteFile(files[0], b, 0o644); err != nil {
				t.Fatal(err)
			}

			r := e.do("GET", "/v1/streams/"+stream+"/records", nil)
			if c.wantStatus != 200 {
				wantError(t, r, c.wantStatus, "corruption")
				return
			}
			if r.status != 200 {
				t.Fatalf("status %d %s", r.status, r.body)
			}
			lines := strings.Split(strings.TrimSuffix(string(r.body), "\n"), "\n")
			if len(lines) != c.wantLines+1 {
				t.Fatalf("%d lines, want %d records and an error line:\n%.300s", len(lines), c.wantLines, r.body)
			}
			var eb errorBody
			if err := json.Unmarshal([]byte(lines[c.wantLines]), &eb); err != nil || eb.Error.Code != "corruption" {
				t.Fatalf("last line %.200q is not a corruption error (%v)", lines[c.wantLines], err)
			}
		})
	}
}

func TestMetricsCountRequests(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, engine.Options{}, Options{Registerer: reg})
	e.mustAppend("m", "{}")
	e.mustAppend("m", "{}")
	e.appendBody("m", "nope")
	e.do("GET", "/nowhere", nil)
	want := map[string]float64{
		"POST /v1/streams/{stream}/records 200": 2,
		"POST /v1/streams/{stream}/records 400": 1,
		"unmatched 404":                         1,
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "tierd_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var route, code string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "route":
					route = l.GetValue()
				case "code":
					code = l.GetValue()
				}
			}
			got[route+" "+code] = m.GetCounter().GetValue()
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("requests{%s} = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}
