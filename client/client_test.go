package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tierd/tierd/client"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/server"
)

// newServer starts tierd's real API over a real engine in a temporary
// directory and returns its URL.
func newServer(t *testing.T, eopts engine.Options, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	eopts.DataDir = t.TempDir()
	eng, err := engine.Open(context.Background(), eopts)
	if err != nil {
		t.Fatalf("engine.Open: %v", err)
	}
	var h http.Handler = server.New(eng, server.Options{})
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		eng.Close(context.Background())
	})
	return srv.URL
}

func collect(t *testing.T, seq func(func(client.Record, error) bool)) ([]client.Record, error) {
	t.Helper()
	var out []client.Record
	for r, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

func TestAppendReadRoundTrip(t *testing.T) {
	c := client.New(newServer(t, engine.Options{}, nil))
	ctx := context.Background()
	ts := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC)
	recs := []client.Record{
		{TS: ts, Key: "k1", Tags: []string{"a", "b"}, Value: json.RawMessage(`{"price":101.5,"qty":[1,2]}`)},
		{TS: ts.Add(time.Nanosecond), Value: json.RawMessage(`"<tag> & text"`)},
		{TS: ts.In(time.FixedZone("X", 3600)), Value: json.RawMessage(`null`)},
		{TS: ts, ValueB64: []byte{0, 1, 0xfe, 0xff, '\n'}},
		{TS: ts, Key: "empty"},
		{TS: ts, Value: json.RawMessage(`{ "spaced" : true }`)},
	}
	res, err := c.Append(ctx, "rt", recs)
	if err != nil {
		t.Fatal(err)
	}
	if res != (client.AppendResult{Stream: "rt", FirstOffset: 0, LastOffset: 5, Count: 6}) {
		t.Fatalf("append result %+v", res)
	}
	got, err := collect(t, c.Read(ctx, "rt", client.Query{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs) {
		t.Fatalf("read %d records, want %d", len(got), len(recs))
	}
	wantValues := []string{`{"price":101.5,"qty":[1,2]}`, `"<tag> & text"`, `null`, "\x00\x01\xfe\xff\n", "", `{"spaced":true}`}
	for i, g := range got {
		w := recs[i]
		if g.Offset != uint64(i) || !g.TS.Equal(w.TS) || g.Key != w.Key || !slices.Equal(g.Tags, w.Tags) || g.Tier != "hot" {
			t.Errorf("record %d = %+v, want %+v", i, g, w)
		}
		if string(g.Bytes()) != wantValues[i] {
			t.Errorf("record %d value = %q, want %q", i, g.Bytes(), wantValues[i])
		}
	}
	if got[3].Value != nil || got[3].ValueB64 == nil {
		t.Errorf("binary value not returned as ValueB64: %+v", got[3])
	}
}

func TestReadQuery(t *testing.T) {
	c := client.New(newServer(t, engine.Options{}, nil))
	ctx := context.Background()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var recs []client.Record
	for i := range 8 {
		r := client.Record{TS: base.Add(time.Duration(i) * time.Minute), Key: []string{"a", "b"}[i%2], Value: json.RawMessage(fmt.Sprint(i))}
		if i%3 == 0 {
			r.Tags = []string{"three"}
		}
		if i == 7 {
			r.Key = ""
		}
		recs = append(recs, r)
	}
	if _, err := c.Append(ctx, "q", recs); err != nil {
		t.Fatal(err)
	}
	u := func(v uint64) *uint64 { return &v }
	s := func(v string) *string { return &v }
	cases := []struct {
		name string
		q    client.Query
		want []uint64
	}{
		{"all", client.Query{}, []uint64{0, 1, 2, 3, 4, 5, 6, 7}},
		{"from", client.Query{From: 5}, []uint64{5, 6, 7}},
		{"to zero", client.Query{To: u(0)}, []uint64{0}},
		{"from to", client.Query{From: 2, To: u(4)}, []uint64{2, 3, 4}},
		{"since until", client.Query{Since: base.Add(2 * time.Minute), Until: base.Add(4 * time.Minute)}, []uint64{2, 3}},
		{"key", client.Query{Key: s("b")}, []uint64{1, 3, 5}},
		{"no key", client.Query{Key: s("")}, []uint64{7}},
		{"tag", client.Query{Tag: "three"}, []uint64{0, 3, 6}},
		{"limit", client.Query{Limit: 2, From: 3}, []uint64{3, 4}},
	}
	for _, c2 := range cases {
		t.Run(c2.name, func(t *testing.T) {
			got, err := collect(t, c.Read(ctx, "q", c2.q))
			if err != nil {
				t.Fatal(err)
			}
			var offs []uint64
			for _, r := range got {
				offs = append(offs, r.Offset)
			}
			if !slices.Equal(offs, c2.want) {
				t.Errorf("offsets %v, want %v", offs, c2.want)
			}
		})
	}
}

func TestReadStopsEarly(t *testing.T) {
	c := client.New(newServer(t, engine.Options{}, nil))
	ctx := context.Background()
	recs := make([]client.Record, 3000)
	if _, err := c.Append(ctx, "many", recs); err != nil {
		t.Fatal(err)
	}
	for round := range 3 { // the abandoned responses must not wedge later calls
		n := 0
		for r, err := range c.Read(ctx, "many", client.Query{Limit: 3000}) {
			if err != nil {
				t.Fatal(err)
			}
			if r.Offset != uint64(n) {
				t.Fatalf("round %d: offset %d at position %d", round, r.Offset, n)
			}
			n++
			if n == 10 {
				break
			}
		}
		if n != 10 {
			t.Fatalf("round %d: got %d records", round, n)
		}
	}
	if _, err := c.Streams(ctx); err != nil {
		t.Fatalf("client unusable after early stops: %v", err)
	}
}

func TestAPIErrors(t *testing.T) {
	c := client.New(newServer(t, engine.Options{HotMaxBytes: 4 << 10, SegmentMaxBytes: 4 << 10}, nil))
	ctx := context.Background()
	apiErr := func(err error) *client.APIError {
		t.Helper()
		var ae *client.APIError
		if !errors.As(err, &ae) {
			t.Fatalf("error %v (%T) is not an *APIError", err, err)
		}
		return ae
	}
	_, err := c.Append(ctx, "bad/name", []client.Record{{}})
	if ae := apiErr(err); ae.Status != 400 || ae.Code != "invalid_stream_name" {
		t.Errorf("bad name: %+v", ae)
	}
	_, err = c.Append(ctx, "s", nil)
	if ae := apiErr(err); ae.Status != 400 || ae.Code != "empty_batch" {
		t.Errorf("empty batch: %+v", ae)
	}
	_, err = c.Append(ctx, "s", []client.Record{{Value: json.RawMessage(`"` + strings.Repeat("x", 8<<10) + `"`)}})
	if ae := apiErr(err); ae.Status != 413 || ae.Code != "batch_over_budget" {
		t.Errorf("batch larger than the memory budget: %+v", ae)
	}
	if _, err := c.Append(ctx, "s", []client.Record{{Value: json.RawMessage(`1`), ValueB64: []byte{1}}}); err == nil {
		t.Error("Value and ValueB64 together accepted")
	}
	_, err = collect(t, c.Read(ctx, "nope", client.Query{}))
	if ae := apiErr(err); ae.Status != 404 || ae.Code != "stream_not_found" || !strings.Contains(ae.Error(), "stream_not_found") {
		t.Errorf("unknown stream: %+v", ae)
	}
	_, err = collect(t, c.Read(ctx, "nope", client.Query{Limit: 100001}))
	if ae := apiErr(err); ae.Code != "invalid_parameter" {
		t.Errorf("limit too large: %+v", ae)
	}
	_, err = c.Segments(ctx, "nope")
	if ae := apiErr(err); ae.Code != "stream_not_found" {
		t.Errorf("segments of unknown stream: %+v", ae)
	}
}

func TestNonAPIErrorPage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	}))
	defer srv.Close()
	_, err := client.New(srv.URL).Streams(context.Background())
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 502 || ae.Code != "http_502" || !strings.Contains(ae.Message, "bad gateway") {
		t.Fatalf("err = %v", err)
	}
}

func TestListingsStatusAndToken(t *testing.T) {
	var mu sync.Mutex
	var auth []string
	url := newServer(t, engine.Options{}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			auth = append(auth, r.Header.Get("Authorization"))
			mu.Unlock()
			h.ServeHTTP(w, r)
		})
	})
	c := client.New(strings.TrimPrefix(url, "http://")+"/", client.WithToken("s3cret"), client.WithHTTPClient(&http.Client{}))
	ctx := context.Background()
	if _, err := c.Append(ctx, "b", []client.Record{{Value: json.RawMessage(`1`)}, {Value: json.RawMessage(`2`)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Append(ctx, "a", []client.Record{{}}); err != nil {
		t.Fatal(err)
	}
	streams, err := c.Streams(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(streams) != 2 || streams[0].Name != "a" || streams[1].Name != "b" || streams[1].NextOffset != 2 || streams[1].Records != 2 {
		t.Fatalf("streams = %+v", streams)
	}
	if streams[1].Tiers["hot"].Segments != 1 {
		t.Errorf("b tiers = %+v", streams[1].Tiers)
	}
	segs, err := c.Segments(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 1 || !segs[0].Active || segs[0].Count != 2 || !slices.Equal(segs[0].Tiers, []string{"hot"}) || !segs[0].SealedAt.IsZero() || segs[0].MinTS.IsZero() {
		t.Fatalf("segments = %+v", segs)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(st.Raw, &m); err != nil || m["streams"] != 2.0 || st.Streams != 2 {
		t.Fatalf("status %s: %v", st.Raw, err)
	}
	if h := st.Tiers["hot"]; h.Streams != 2 || h.Segments != 2 || h.Bytes <= 0 || h.OldestTS.IsZero() || h.NewestTS.Before(h.OldestTS) || h.BudgetBytes <= 0 {
		t.Errorf("status tiers.hot = %+v", h)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, a := range auth {
		if a != "Bearer s3cret" {
			t.Errorf("request %d Authorization = %q", i, a)
		}
	}
	if len(auth) != 5 {
		t.Errorf("%d requests seen, want 5", len(auth))
	}
}

func TestBytesPrefersValue(t *testing.T) {
	r := client.Record{Value: json.RawMessage(`1`)}
	if !bytes.Equal(r.Bytes(), []byte("1")) {
		t.Fatal(r.Bytes())
	}
}

func TestBackpressureCarriesRetryAfter(t *testing.T) {
	// A segment as large as the budget never seals before the budget is full.
	c := client.New(newServer(t, engine.Options{HotMaxBytes: 64 << 10, SegmentMaxBytes: 64 << 10, SegmentMaxAge: time.Hour}, nil))
	rec := []client.Record{{Value: json.RawMessage(`"` + strings.Repeat("x", 2<<10) + `"`)}}
	for i := 0; i < 100; i++ {
		_, err := c.Append(context.Background(), "s", rec)
		if err == nil {
			continue
		}
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != 503 || ae.Code != "backpressure" || ae.RetryAfter <= 0 {
			t.Fatalf("want 503 backpressure with Retry-After, got %v", err)
		}
		return
	}
	t.Fatal("never pushed back")
}
