package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/tierd/tierd/client"
)

// TestSealAndOffload: Seal and Offload send the documented requests, decode
// every field the server sends, and answer what the listing says.
func TestSealAndOffload(t *testing.T) {
	ctx := context.Background()
	env := newAdminEnv(t, false)
	recs := []client.Record{{Key: "a", Value: json.RawMessage(`1`)}, {Key: "b", Value: json.RawMessage(`2`)}}
	if _, err := env.c.Append(ctx, "x", recs); err != nil {
		t.Fatal(err)
	}
	res, err := env.c.Seal(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	method, path, query, body := env.rec.last()
	if method != http.MethodPost || path != "/v1/streams/x/seal" || query != "" {
		t.Errorf("request %s %s?%s", method, path, query)
	}
	sameJSON(t, "seal", res, body)
	if !res.Sealed || res.Stream != "x" || res.Segment == nil || res.Segment.Base != 0 || res.Segment.Last != 1 ||
		strings.Join(res.Segment.Tiers, ",") != "hot,warm" || res.Segment.Digest == "" {
		t.Fatalf("Seal = %+v (segment %+v)", res, res.Segment)
	}
	again, err := env.c.Seal(ctx, "x")
	if _, _, _, body = env.rec.last(); err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "seal with nothing to seal", again, body)
	if again.Sealed || again.Segment == nil || !reflect.DeepEqual(*again.Segment, *res.Segment) || again.Note == "" {
		t.Fatalf("Seal with nothing to seal = %+v", again)
	}

	for _, c := range []struct {
		keepWarm bool
		query    string
		tiers    string
	}{{true, "keep_warm=true", "hot,warm,cold"}, {false, "", "hot,cold"}} {
		seg, err := env.c.Offload(ctx, "x", 0, c.keepWarm)
		if err != nil {
			t.Fatal(err)
		}
		method, path, query, body = env.rec.last()
		if method != http.MethodPost || path != "/v1/streams/x/segments/0/offload" || query != c.query {
			t.Errorf("request %s %s?%s", method, path, query)
		}
		sameJSON(t, "offload", seg, body)
		segs, err := env.c.Segments(ctx, "x")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(seg.Tiers, ",") != c.tiers || seg.ColdBytes <= 0 || !reflect.DeepEqual(segs[0], seg) {
			t.Fatalf("Offload(keepWarm %v) = %+v; the listing says %+v", c.keepWarm, seg, segs[0])
		}
	}

	check := func(name string, err error, status int, code string) {
		t.Helper()
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != status || ae.Code != code || ae.Message == "" {
			t.Errorf("%s: %v, want HTTP %d %s", name, err, status, code)
		}
	}
	_, err = env.c.Seal(ctx, "nope")
	check("seal of an unknown stream", err, http.StatusNotFound, "stream_not_found")
	_, err = env.c.Offload(ctx, "x", 99, false)
	check("offload of no segment", err, http.StatusNotFound, "segment_not_found")
	if _, err := env.c.Append(ctx, "x", recs); err != nil {
		t.Fatal(err)
	}
	_, err = env.c.Offload(ctx, "x", 2, false)
	check("offload of the active segment", err, http.StatusConflict, "segment_not_persisted")

	// Verify counts the two records only in memory.
	rep, err := env.c.Verify(ctx, client.VerifyRequest{Stream: "x"})
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, body = env.rec.last()
	sameJSON(t, "verify", rep, body)
	if sc := rep.Streams[0]; sc.Next != 2 || sc.UnpersistedRecords != 2 || sc.UnpersistedSegments != 1 {
		t.Fatalf("verify with 2 records in memory: %+v", sc)
	}
}
