package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/api"
)

// roundTrip decodes an answer of the server as the client does, into T,
// refusing any field T does not know, and encodes it again as the server
// does: the bytes must be the ones the server sent. So T holds every field
// of the answer, loses nothing, and is what the server writes (names,
// order, omitempty, time format). escapeHTML is how the answer was
// encoded: plain answers do not escape, progress lines (json.Marshal) do.
func roundTrip[T any](t *testing.T, what string, body []byte, escapeHTML bool) T {
	t.Helper()
	body = bytes.TrimSuffix(body, []byte("\n"))
	var v T
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: decoding %s into %T: %v", what, body, v, err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(escapeHTML)
	if err := enc.Encode(v); err != nil {
		t.Fatalf("%s: encoding %T: %v", what, v, err)
	}
	if got := bytes.TrimSuffix(buf.Bytes(), []byte("\n")); !bytes.Equal(got, body) {
		t.Fatalf("%s: %T does not round-trip:\nserver: %s\napi:    %s", what, v, body, got)
	}
	return v
}

// both round-trips body through A (package api's type) and M (the mirror
// of what the server wrote before package api, mirror_test.go): A must
// hold what is sent, and the bytes must be the old ones.
func both[A, M any](t *testing.T, what string, body []byte, escapeHTML bool) A {
	t.Helper()
	roundTrip[M](t, what+" (mirror)", body, escapeHTML)
	return roundTrip[A](t, what, body, escapeHTML)
}

func ndjsonLines(body []byte) [][]byte {
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		out = append(out, append([]byte(nil), sc.Bytes()...))
	}
	return out
}

// TestAPIMatchesMirror round-trips every answer of the API through package
// api's types, the ones the client decodes: appends, records (JSON, base64
// and empty values, keys, tags), listings, seal, offload, migrate (dry run
// and run), explain, verify with and without progress, status, health and
// errors.
func TestAPIMatchesMirror(t *testing.T) {
	e := newAdminEnv(t, true)
	must := func(r response, what string) []byte {
		t.Helper()
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", what, r.status, r.body)
		}
		return r.body
	}
	e.appendN("s", 100)
	r := e.appendBody("s", `{"key":"<k>","tags":["a","b&c"],"ts":"2026-03-02T09:00:00.5+01:00","value_b64":"AAEC/w=="}`+"\n"+`{}`+"\n"+`{"value":"x<y>"}`+"\n")
	both[api.AppendResult, appendOut](t, "append", must(r, "append"), false)
	recs := ndjsonLines(must(e.do("GET", "/v1/streams/s/records?limit=100000", nil), "read"))
	if len(recs) != 103 {
		t.Fatalf("read %d records, want 103", len(recs))
	}
	for i, line := range recs {
		rec := both[api.Record, recordOut](t, "record", line, false)
		if i == 100 && (string(rec.Bytes()) != "\x00\x01\x02\xff" || rec.TS.Location() != time.UTC || len(rec.Tags) != 2) {
			t.Fatalf("record %d decoded as %+v", i, rec)
		}
	}
	both[api.StreamList, map[string][]streamOut](t, "streams", must(e.do("GET", "/v1/streams", nil), "streams"), false)
	both[api.SealResult, sealOut](t, "seal", must(e.do("POST", "/v1/streams/s/seal", nil), "seal"), false)
	both[api.SealResult, sealOut](t, "seal of nothing", must(e.do("POST", "/v1/streams/s/seal", nil), "seal"), false)
	segs := both[[]api.Segment, []segmentOut](t, "segments", must(e.do("GET", "/v1/streams/s/segments", nil), "segments"), false)
	both[api.Segment, segmentOut](t, "offload", must(e.do("POST", "/v1/streams/s/segments/0/offload?keep_warm=true", nil), "offload"), false)
	both[api.Explanation, explainOut](t, "explain", must(e.do("GET", "/v1/streams/s/explain", nil), "explain"), false)
	e.clk.Set(adminT0.Add(25 * time.Hour))
	both[api.MigrateReport, migrateOut](t, "migrate dry run", must(e.do("POST", "/v1/migrate?dry_run=true", nil), "migrate"), false)
	rep := both[api.MigrateReport, migrateOut](t, "migrate", must(e.do("POST", "/v1/migrate?dry_run=false", nil), "migrate"), false)
	if len(rep.Actions) == 0 || rep.Started.IsZero() || len(segs) < 2 {
		t.Fatalf("the migration did nothing (%d actions, %d segments): the round trip covers too little", len(rep.Actions), len(segs))
	}
	ex := both[api.Explanation, explainOut](t, "explain after", must(e.do("GET", "/v1/streams/s/explain", nil), "explain"), false)
	if len(ex.Segments) == 0 || ex.Segments[0].Next == nil {
		t.Fatalf("explain without a next action: %+v", ex)
	}
	both[api.VerifyReport, verifyOut](t, "verify", must(e.do("POST", "/v1/verify", nil), "verify"), false)
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/verify", nil)
	req.Header.Set("Accept", api.MediaNDJSON)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	lines := ndjsonLines(body.Bytes())
	for i, line := range lines {
		pl := both[api.ProgressLine, map[string]json.RawMessage](t, "progress line", line, true)
		if last := i == len(lines)-1; (pl.Result != nil) != last || (pl.Progress == nil) == !last {
			t.Fatalf("progress line %d of %d: %s", i, len(lines), line)
		}
		if pl.Progress != nil {
			both[map[string]api.Progress, map[string]progressOut](t, "progress", line, true)
		}
		if pl.Result != nil {
			both[api.VerifyReport, verifyOut](t, "verify result", pl.Result, true)
		}
	}

	// Status: the flat fields are the engine's, by reflection; every field
	// of api.Status must be one the server sends, and the nested objects
	// round-trip.
	st := must(e.do("GET", "/v1/status", nil), "status")
	var m map[string]json.RawMessage
	if err := json.Unmarshal(st, &m); err != nil {
		t.Fatal(err)
	}
	typ := reflect.TypeFor[api.Status]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if _, ok := m[name]; !ok {
			t.Errorf("api.Status.%s (%q) is not in the server's status: %s", typ.Field(i).Name, name, st)
		}
	}
	both[map[string]api.TierStatus, map[string]tierOut](t, "status tiers", m["tiers"], false)
	both[api.MigratorStatus, migratorOut](t, "status migrator", m["migrator"], false)
	var decoded api.Status
	if err := json.Unmarshal(st, &decoded); err != nil || decoded.Migrator == nil || decoded.Migrator.LastRun == nil || len(decoded.Tiers) == 0 {
		t.Fatalf("status decoded as %+v: %v", decoded, err)
	}

	both[api.HealthOK, map[string]string](t, "healthz", must(e.do("GET", "/healthz", nil), "healthz"), false)
	for _, c := range []struct{ method, path, code string }{
		{"GET", "/v1/streams/nope/records", api.CodeStreamNotFound},
		{"GET", "/v1/streams/s/records?from=x", api.CodeInvalidParameter},
		{"GET", "/v1/nope", api.CodeNotFound},
		{"DELETE", "/v1/streams", api.CodeMethodNotAllowed},
	} {
		r := e.do(c.method, c.path, nil)
		eb := both[api.ErrorBody, errorBody](t, c.path, r.body, false)
		if eb.Error == nil || eb.Error.Code != c.code {
			t.Fatalf("%s %s: %s, want code %s", c.method, c.path, r.body, c.code)
		}
	}
}
