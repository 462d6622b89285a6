package main

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tierd/tierd/client"
)

// TestSealThenOffload: seal persists the active segment now and prints it;
// offload without --base moves every sealed, persisted segment not yet in
// cold, in offset order, and answers what the listing says; a second run
// says nothing needed to move; --base of a cold segment answers it.
func TestSealThenOffload(t *testing.T) {
	s := newAdminServer(t, nil)
	var in strings.Builder
	for i := range 40 {
		fmt.Fprintf(&in, `{"key":"k%d","value":{"i":%d,"pad":"%0120d"}}`+"\n", i%3, i, i)
	}
	// Batches of 3 into 1 KiB segments: several sealed by size (persisted
	// by the flusher, or not yet), the last ones still active.
	mustRun(t, s.url, in.String(), "append", "trades", "--batch", "3")

	out := mustRun(t, s.url, "", "seal", "trades")
	if !strings.HasPrefix(out, "BASE") || !strings.Contains(out, "hot,warm") || strings.Contains(out, "(active)") {
		t.Fatalf("seal table:\n%s", out)
	}
	var res client.SealResult
	decodeJSON(t, mustRun(t, s.url, "", "seal", "trades", "-o", "json"), &res)
	if res.Sealed || res.Segment == nil || res.Segment.Last != 39 || res.Note == "" {
		t.Fatalf("seal with nothing to seal: %+v", res)
	}
	if out := mustRun(t, s.url, "", "seal", "trades"); !strings.HasPrefix(out, "nothing to seal: no record was appended to trades since its last seal\n") ||
		!strings.Contains(out, "\nBASE") {
		t.Fatalf("seal table with nothing to seal:\n%s", out)
	}

	before := s.segments(t, "trades")
	var want []uint64
	for _, seg := range before {
		if seg.Active || !slices.Contains(seg.Tiers, "warm") {
			t.Fatalf("after the seal, a segment not persisted: %+v", seg)
		}
		want = append(want, seg.Base)
	}
	if len(want) < 3 {
		t.Fatalf("only %d segments; the test wants several", len(want))
	}
	// One copied already: offload leaves it alone.
	mustRun(t, s.url, "", "offload", "trades", "--base", fmt.Sprint(want[1]), "--keep-warm")
	var moved []client.Segment
	decodeJSON(t, mustRun(t, s.url, "", "offload", "trades", "-o", "json"), &moved)
	after := s.segments(t, "trades")
	var got []uint64
	for _, m := range moved {
		got = append(got, m.Base)
	}
	wantMoved := slices.Delete(slices.Clone(want), 1, 2)
	if !slices.Equal(got, wantMoved) {
		t.Fatalf("offload moved %v, want %v in offset order", got, wantMoved)
	}
	byBase := map[uint64]client.Segment{}
	for _, seg := range after {
		byBase[seg.Base] = seg
	}
	for _, m := range moved {
		if !reflect.DeepEqual(m, byBase[m.Base]) || strings.Join(m.Tiers, ",") != "hot,cold" {
			t.Errorf("offload printed %+v, the listing says %+v", m, byBase[m.Base])
		}
	}
	if tiers := strings.Join(byBase[want[1]].Tiers, ","); tiers != "hot,warm,cold" {
		t.Errorf("the segment copied with --keep-warm is %s after offload", tiers)
	}

	out = mustRun(t, s.url, "", "offload", "trades")
	if !strings.Contains(out, "nothing to offload: no sealed, persisted segment of trades is outside the cold tier") {
		t.Fatalf("second offload:\n%s", out)
	}
	decodeJSON(t, mustRun(t, s.url, "", "offload", "trades", "-o", "json"), &moved)
	if len(moved) != 0 {
		t.Fatalf("second offload -o json moved %+v", moved)
	}
	decodeJSON(t, mustRun(t, s.url, "", "offload", "trades", "--base", "0", "-o", "json"), &moved)
	if len(moved) != 1 || !reflect.DeepEqual(moved[0], s.segments(t, "trades")[0]) {
		t.Fatalf("offload --base 0 of a cold segment printed %+v", moved)
	}
	if out := mustRun(t, s.url, "", "offload", "trades", "--base", "0"); !strings.HasPrefix(out, "BASE") || !strings.Contains(out, "segment 0 of trades is in the cold tier") {
		t.Fatalf("offload --base table:\n%s", out)
	}

	// A record in memory: offload says it cannot move, verify counts it.
	mustRun(t, s.url, `{"value":"late"}`, "append", "trades")
	if out := mustRun(t, s.url, "", "offload", "trades"); !strings.Contains(out, "1 record of trades not yet persisted cannot move: 'tierctl seal trades' persists it now") {
		t.Fatalf("offload with a record in memory:\n%s", out)
	}
	out = mustRun(t, s.url, "", "verify", "--stream", "trades")
	if !strings.Contains(out, "IN_MEMORY") || !strings.Contains(out, "1 rec / 1 seg") || !strings.Contains(out, "\nIN_MEMORY: 1 record is only in memory and the WAL, not yet persisted warm: verify checks it once it is") {
		t.Fatalf("verify table with a record in memory:\n%s", out)
	}
}

func TestSealAndOffloadErrors(t *testing.T) {
	s := newAdminServer(t, nil)
	mustRun(t, s.url, `{"value":1}`, "append", "a")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"seal", "nope"}, 1, "error: stream_not_found: "},
		{[]string{"offload", "nope"}, 1, "error: stream_not_found: "},
		{[]string{"offload", "a", "--base", "99"}, 1, "error: segment_not_found: "},
		{[]string{"offload", "a", "--base", "0"}, 1, "error: segment_not_persisted: "},
		{[]string{"seal"}, 2, "seal wants one argument, STREAM"},
		{[]string{"offload"}, 2, "offload wants one argument, STREAM"},
		{[]string{"offload", "a", "--base", "x"}, 2, "--base"},
	} {
		if r := tierctl(t, s.url, "", c.args...); r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", c.args, r.code, r.stderr, c.code, c.want)
		}
	}
	if out := mustRun(t, s.url, "", "offload", "a"); !strings.Contains(out, "nothing to offload") || !strings.Contains(out, "1 record of a not yet persisted") {
		t.Fatalf("offload of a stream with only an active segment:\n%s", out)
	}
}
