package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// listingRow returns the segments listing's row of the segment at base.
func (e *testEnv) listingRow(stream string, base uint64) segmentOut {
	e.t.Helper()
	r := e.do("GET", "/v1/streams/"+stream+"/segments", nil)
	var segs []segmentOut
	if err := json.Unmarshal(r.body, &segs); r.status != 200 || err != nil {
		e.t.Fatalf("segments of %s: %d %s (%v)", stream, r.status, r.body, err)
	}
	for _, s := range segs {
		if s.Base == base {
			return s
		}
	}
	e.t.Fatalf("no segment at %d in %s", base, r.body)
	return segmentOut{}
}

// seal POSTs a seal and decodes its 200 answer strictly.
func (e *testEnv) seal(stream string) sealOut {
	e.t.Helper()
	r := e.do("POST", "/v1/streams/"+stream+"/seal", nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("seal %s: %d %s", stream, r.status, r.body)
	}
	dec := json.NewDecoder(strings.NewReader(string(r.body)))
	dec.DisallowUnknownFields()
	var out sealOut
	if err := dec.Decode(&out); err != nil {
		e.t.Fatalf("seal answer %s: %v", r.body, err)
	}
	return out
}

// TestSealEndpoint: a seal of a stream with records persists its active
// segment and answers it as the listing shows it; with nothing appended
// since, the same 200 shape says so and carries the last sealed segment;
// the segment can be offloaded at once; bad requests change nothing.
func TestSealEndpoint(t *testing.T) {
	e := newColdEnv(t) // segment.max_age 1 h: nothing seals by itself
	e.mustAppend("s", `{"key":"a","value":1}`+"\n"+`{"key":"b","value":2}`+"\n"+`{"key":"c","value":3}`)
	got := e.seal("s")
	if !got.Sealed || got.Stream != "s" || got.Segment == nil || got.Note != "" {
		t.Fatalf("seal answered %+v", got)
	}
	seg := *got.Segment
	if seg.Base != 0 || seg.Last != 2 || seg.Count != 3 || seg.Active || seg.SealedAt == "" || !strings.HasPrefix(seg.Digest, "sha256:") ||
		strings.Join(seg.Tiers, ",") != "hot,warm" {
		t.Fatalf("sealed segment %+v", seg)
	}
	if row := e.listingRow("s", 0); !reflect.DeepEqual(row, seg) {
		t.Fatalf("seal answered %+v, the listing says %+v", seg, row)
	}

	again := e.seal("s")
	if again.Sealed || again.Segment == nil || !reflect.DeepEqual(*again.Segment, seg) || !strings.Contains(again.Note, "nothing to seal") {
		t.Fatalf("seal with nothing to seal answered %+v", again)
	}

	r := e.do("POST", "/v1/streams/s/segments/0/offload", nil)
	var off segmentOut
	if err := json.Unmarshal(r.body, &off); r.status != 200 || err != nil {
		t.Fatalf("offload right after the seal: %d %s", r.status, r.body)
	}
	if strings.Join(off.Tiers, ",") != "hot,cold" || !reflect.DeepEqual(off, e.listingRow("s", 0)) {
		t.Fatalf("offload answered %+v, the listing says %+v", off, e.listingRow("s", 0))
	}

	e.mustAppend("s", `{"value":4}`)
	if got = e.seal("s"); !got.Sealed || got.Segment.Base != 3 || got.Segment.Last != 3 {
		t.Fatalf("second seal answered %+v", got)
	}
	if n := e.count("s"); n != 4 {
		t.Fatalf("%d records after the seals, want 4", n)
	}

	d := wantError(t, e.do("POST", "/v1/streams/nope/seal", nil), 404, "stream_not_found")
	if !strings.Contains(d.Message, "nope") {
		t.Errorf("stream_not_found does not name the stream: %q", d.Message)
	}
	wantError(t, e.do("POST", "/v1/streams/-bad/seal", nil), 400, "invalid_stream_name")
	wantError(t, e.do("POST", "/v1/streams/s/seal?now=1", nil), 400, "invalid_parameter")
	wantError(t, e.do("GET", "/v1/streams/s/seal", nil), 405, "method_not_allowed")
	if n := e.count("nope"); n != -1 {
		t.Fatalf("a seal of an unknown stream created it (%d records)", n)
	}
}

// TestSealAnswerShape: a stream with nothing to seal and no sealed
// segment (every segment deleted by retention, or every record of a new
// stream refused by the WAL) still answers the one shape, segment null.
func TestSealAnswerShape(t *testing.T) {
	b, err := json.Marshal(sealOut{Stream: "s", Note: "nothing to seal"})
	if err != nil || string(b) != `{"stream":"s","sealed":false,"segment":null,"note":"nothing to seal"}` {
		t.Fatalf("seal answer with no segment: %s (%v)", b, err)
	}
}

// TestVerifyCountsUnpersisted: verify's stream check says how many
// records are held only in memory, and a seal persists them.
func TestVerifyCountsUnpersisted(t *testing.T) {
	e := newColdEnv(t)
	var body strings.Builder
	for i := 0; i < 30; i++ {
		fmt.Fprintf(&body, `{"value":%d}`+"\n", i)
	}
	e.mustAppend("m", body.String())
	verify := func() streamCheckOut {
		r := e.do("POST", "/v1/verify", nil)
		var v verifyOut
		if err := json.Unmarshal(r.body, &v); r.status != 200 || err != nil || len(v.Streams) != 1 {
			t.Fatalf("verify: %d %s", r.status, r.body)
		}
		if !strings.Contains(string(r.body), `"unpersisted_records":`) {
			t.Fatalf("verify answer without unpersisted_records: %s", r.body)
		}
		return v.Streams[0]
	}
	if sc := verify(); sc.Next != 0 || sc.Segments != 0 || sc.UnpersistedRecords != 30 || sc.UnpersistedSegments != 1 {
		t.Fatalf("verify of 30 records in memory: %+v", sc)
	}
	e.seal("m")
	if sc := verify(); sc.Next != 30 || sc.Segments != 1 || sc.UnpersistedRecords != 0 || sc.UnpersistedSegments != 0 {
		t.Fatalf("verify after a seal: %+v", sc)
	}
}
