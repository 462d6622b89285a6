package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/engine"
)

// newColdEnv is newEnv with a file-store cold tier and small segments.
func newColdEnv(t *testing.T) *testEnv {
	t.Helper()
	storeURL := (&url.URL{Scheme: "file", Path: filepath.Join(t.TempDir(), "cold")}).String()
	b, err := objstore.Open(context.Background(), storeURL, objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := cold.New(cold.Options{Bucket: b, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return newEnv(t, engine.Options{Cold: ct, SegmentMaxBytes: 4 << 10, SegmentMaxAge: time.Hour, HotResidency: time.Hour, HotMaxBytes: 1 << 20}, Options{})
}

func TestOffloadEndpoint(t *testing.T) {
	e := newColdEnv(t)
	for b := 0; b < 10; b++ { // ten batches, so that several segments seal
		var body strings.Builder
		for i := b * 20; i < (b+1)*20; i++ {
			fmt.Fprintf(&body, `{"key":"k%d","value":{"n":%d,"pad":"%060d"}}`+"\n", i%3, i, i)
		}
		e.mustAppend("s", body.String())
	}
	if err := e.eng.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.mustAppend("s", `{"key":"tail"}`) // an active segment, in memory only
	var segs []segmentOut
	if err := json.Unmarshal(e.do("GET", "/v1/streams/s/segments", nil).body, &segs); err != nil || len(segs) < 2 {
		t.Fatalf("segments: %v (%d)", err, len(segs))
	}
	before := e.read("s", "limit=100000")

	r := e.do("POST", fmt.Sprintf("/v1/streams/s/segments/%d/offload", segs[1].Base), nil)
	if r.status != http.StatusOK {
		t.Fatalf("offload: %d %s", r.status, r.body)
	}
	// Still resident in memory: the answer says hot too, as the listing
	// right after does (docs/api.md: they match).
	var got segmentOut
	if err := json.Unmarshal(r.body, &got); err != nil || got.Base != segs[1].Base || strings.Join(got.Tiers, ",") != "hot,cold" || got.ColdBytes <= 0 {
		t.Fatalf("offload answered %s (%v)", r.body, err)
	}
	if row := e.listingRow("s", got.Base); !reflect.DeepEqual(row, got) {
		t.Fatalf("offload answered %+v, the listing right after says %+v", got, row)
	}
	r = e.do("POST", fmt.Sprintf("/v1/streams/s/segments/%d/offload?keep_warm=true", segs[0].Base), nil)
	if err := json.Unmarshal(r.body, &got); r.status != 200 || err != nil || strings.Join(got.Tiers, ",") != "hot,warm,cold" {
		t.Fatalf("offload keep_warm: %d %s", r.status, r.body)
	}
	if row := e.listingRow("s", got.Base); !reflect.DeepEqual(row, got) {
		t.Fatalf("offload keep_warm answered %+v, the listing right after says %+v", got, row)
	}
	// Still resident in memory, so reads are served hot and unchanged.
	after := e.read("s", "limit=100000")
	if len(after) != len(before) {
		t.Fatalf("read %d records after offload, %d before", len(after), len(before))
	}
	for i := range after {
		if after[i].Offset != before[i].Offset || string(after[i].Value) != string(before[i].Value) {
			t.Fatalf("record %d changed by offload", i)
		}
	}

	cases := []struct {
		path   string
		status int
		code   string
	}{
		{"/v1/streams/nope/segments/0/offload", 404, "stream_not_found"},
		{"/v1/streams/s/segments/7/offload", 404, "segment_not_found"},
		{fmt.Sprintf("/v1/streams/s/segments/%d/offload", segs[len(segs)-1].Base), 409, "segment_not_persisted"},
		{"/v1/streams/s/segments/x1/offload", 400, "invalid_parameter"},
		{"/v1/streams/s/segments/0/offload?keep_warm=maybe", 400, "invalid_parameter"},
		{"/v1/streams/s/segments/0/offload?force=1", 400, "invalid_parameter"},
		{"/v1/streams/-bad/segments/0/offload", 400, "invalid_stream_name"},
	}
	for _, c := range cases {
		wantError(t, e.do("POST", c.path, nil), c.status, c.code)
	}
	if n := len(e.read("s", "limit=100000")); n != len(before) {
		t.Fatalf("failed offloads changed the stream: %d records", n)
	}
	wantError(t, e.do("GET", "/v1/streams/s/segments/0/offload", nil), 405, "method_not_allowed")
}

func TestOffloadWithoutColdTier(t *testing.T) {
	e := newEnv(t, engine.Options{}, Options{})
	e.mustAppend("s", "{}")
	wantError(t, e.do("POST", "/v1/streams/s/segments/0/offload", nil), 409, "no_cold_tier")
}
