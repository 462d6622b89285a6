package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tierd/tierd/client"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/tiers"
)

// AppendBatch stores exactly what Append stores for the same records, and
// goes as the binary encoding.
func TestAppendBatchMatchesAppend(t *testing.T) {
	var mu sync.Mutex
	var types []string
	url := newServer(t, engine.Options{}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost {
				mu.Lock()
				types = append(types, r.Header.Get("Content-Type"))
				mu.Unlock()
			}
			h.ServeHTTP(w, r)
		})
	})
	c := client.New(url)
	ctx := context.Background()
	ts := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC)
	recs := []client.Record{
		{TS: ts, Key: "k1", Tags: []string{"a", "b"}, Value: json.RawMessage(`{"price":101.5,"qty":[1,2]}`)},
		{TS: ts.Add(time.Nanosecond), Value: json.RawMessage(`"<tag> & text"`)},
		{TS: ts.In(time.FixedZone("X", 3600)), Value: json.RawMessage(`null`)},
		{TS: ts, ValueB64: []byte{0, 1, 0xfe, 0xff, '\n'}},
		{TS: ts, Key: "empty"},
		{TS: ts, Value: json.RawMessage("{ \"spaced\" :\n true }")},
		{TS: time.Unix(0, -1), Tags: []string{""}},
	}
	for _, stream := range []string{"ndjson", "binary"} {
		var res client.AppendResult
		var err error
		if stream == "ndjson" {
			res, err = c.Append(ctx, stream, recs)
		} else {
			res, err = c.AppendBatch(ctx, stream, recs)
		}
		if err != nil {
			t.Fatal(err)
		}
		if res != (client.AppendResult{Stream: stream, FirstOffset: 0, LastOffset: uint64(len(recs) - 1), Count: len(recs)}) {
			t.Fatalf("%s append result %+v", stream, res)
		}
	}
	if !slices.Equal(types, []string{"application/x-ndjson", tiers.BatchMediaType}) {
		t.Fatalf("Content-Types sent: %q", types)
	}
	want, err := collect(t, c.Read(ctx, "ndjson", client.Query{}))
	if err != nil {
		t.Fatal(err)
	}
	got, err := collect(t, c.Read(ctx, "binary", client.Query{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs) || len(want) != len(recs) {
		t.Fatalf("read %d and %d records, want %d", len(got), len(want), len(recs))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Offset != w.Offset || !g.TS.Equal(w.TS) || g.Key != w.Key || !slices.Equal(g.Tags, w.Tags) ||
			string(g.Value) != string(w.Value) || string(g.ValueB64) != string(w.ValueB64) {
			t.Errorf("record %d: binary %+v, NDJSON %+v", i, g, w)
		}
	}
	if string(got[5].Value) != `{"spaced":true}` {
		t.Errorf("JSON value not compacted: %s", got[5].Value)
	}
	// Without a TS the server stamps its ingest time.
	before := time.Now()
	if _, err := c.AppendBatch(ctx, "ingest", []client.Record{{Key: "now"}}); err != nil {
		t.Fatal(err)
	}
	r, err := collect(t, c.Read(ctx, "ingest", client.Query{}))
	if err != nil || len(r) != 1 || r[0].TS.Before(before.Add(-time.Second)) || r[0].TS.After(time.Now().Add(time.Second)) {
		t.Fatalf("ingest-time record: %+v, %v", r, err)
	}
}

func TestAppendBatchRefusals(t *testing.T) {
	c := client.New(newServer(t, engine.Options{}, nil))
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		rec  client.Record
		also error
	}{
		{"Value and ValueB64", client.Record{Value: json.RawMessage(`1`), ValueB64: []byte{1}}, nil},
		{"Value not JSON", client.Record{Value: json.RawMessage(`{"a":`)}, nil},
		{"TS out of range", client.Record{TS: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}, nil},
		{"key too large", client.Record{Key: strings.Repeat("k", tiers.MaxKeyBytes+1)}, tiers.ErrKeyTooLarge},
		{"key not UTF-8", client.Record{Key: "\xff"}, tiers.ErrInvalidRecord},
	} {
		_, err := c.AppendBatch(ctx, "s", []client.Record{{}, tc.rec})
		if !errors.Is(err, client.ErrInvalidRecord) || (tc.also != nil && !errors.Is(err, tc.also)) || !strings.Contains(err.Error(), "record 1") {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if _, err := collect(t, c.Read(ctx, "s", client.Query{})); err == nil {
		t.Error("a refused batch created the stream")
	}
	// The server's own refusals come back as *APIError, as for Append.
	apiErr := func(err error, status int, code string) {
		t.Helper()
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != status || ae.Code != code {
			t.Errorf("err %v, want %d %s", err, status, code)
		}
	}
	_, err := c.AppendBatch(ctx, "s", []client.Record{{ValueB64: make([]byte, tiers.DefaultMaxRecordBytes+1)}})
	apiErr(err, 413, "record_too_large")
	_, err = c.AppendBatch(ctx, "s", nil)
	apiErr(err, 400, "empty_batch")
	_, err = c.AppendBatch(ctx, "bad name", []client.Record{{}})
	apiErr(err, 400, "invalid_stream_name")
}
