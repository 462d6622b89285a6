package catalog

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/tierd/tierd/tiers"
)

func TestUpdateSegment(t *testing.T) {
	ctx := context.Background()
	tomb := t0.Add(time.Hour)
	errFn := errors.New("fn refused")
	steps := []struct {
		name string
		fn   func(*tiers.SegmentMeta) error
		want func(m *tiers.SegmentMeta) // applied to the stored segment before the step
		err  error
	}{
		{"upload", func(m *tiers.SegmentMeta) error {
			m.Placements = m.Placements.With(tiers.Cold)
			m.ColdBytes = 777
			return nil
		},
			func(m *tiers.SegmentMeta) { m.Placements = tiers.Of(tiers.Warm, tiers.Cold); m.ColdBytes = 777 }, nil},
		{"fn error", func(m *tiers.SegmentMeta) error { m.Placements = 0; return errFn }, nil, errFn},
		{"drop warm, hot ignored", func(m *tiers.SegmentMeta) error { m.Placements = tiers.Of(tiers.Hot, tiers.Cold); return nil },
			func(m *tiers.SegmentMeta) { m.Placements = tiers.Of(tiers.Cold) }, nil},
		{"no placement", func(m *tiers.SegmentMeta) error { m.Placements = 0; return nil }, nil, ErrInvalidSegment},
		{"negative cold bytes", func(m *tiers.SegmentMeta) error { m.ColdBytes = -1; return nil }, nil, ErrInvalidSegment},
		{"change last", func(m *tiers.SegmentMeta) error { m.Last++; m.Count++; return nil }, nil, ErrInvalidSegment},
		{"change digest", func(m *tiers.SegmentMeta) error { m.Digest[0]++; return nil }, nil, ErrInvalidSegment},
		{"change bytes", func(m *tiers.SegmentMeta) error { m.Bytes++; return nil }, nil, ErrInvalidSegment},
		{"tombstone (only Tombstone may)", func(m *tiers.SegmentMeta) error { m.Tombstoned = tomb.In(time.Local); return nil }, nil, ErrInvalidSegment},
		{"cold bytes without cold", func(m *tiers.SegmentMeta) error { m.Placements = tiers.Of(tiers.Warm); return nil }, nil, ErrInvalidSegment},
		{"no change", func(m *tiers.SegmentMeta) error { return nil }, func(*tiers.SegmentMeta) {}, nil},
	}
	c, _ := openT(t, Options{})
	want := seg("s", 0, 9)
	put(t, c, want)
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			got, err := c.UpdateSegment(ctx, "s", 0, st.fn)
			if !errors.Is(err, st.err) || (st.err == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, st.err)
			}
			if st.want != nil {
				st.want(&want)
				sameMeta(t, got, want)
			}
			stored, err := c.Segment(ctx, "s", 0)
			if err != nil {
				t.Fatal(err)
			}
			sameMeta(t, stored, want)
		})
	}
	if _, err := c.UpdateSegment(ctx, "s", 10, func(*tiers.SegmentMeta) error { return nil }); !errors.Is(err, tiers.ErrSegmentNotFound) {
		t.Fatalf("missing segment: %v, want ErrSegmentNotFound", err)
	}
	infos, err := c.Streams(ctx)
	if err != nil || len(infos) != 1 || infos[0].Bytes != want.Bytes || infos[0].Records != 10 {
		t.Fatalf("Streams after updates = %+v, %v", infos, err)
	}
}

func TestPutIntent(t *testing.T) {
	ctx := context.Background()
	c, _ := openT(t, Options{})
	put(t, c, seg("s", 0, 9), seg("s", 10, 19))
	cases := []struct {
		name string
		in   Intent
		err  error
		want Intent // stored afterwards for (Stream, Base)
	}{
		{"first", Intent{Stream: "s", Base: 0, Kind: IntentUpload, Key: "a"}, nil,
			Intent{Stream: "s", Base: 0, Kind: IntentUpload, Key: "a", Started: t0}},
		{"same kind keeps history", Intent{Stream: "s", Base: 0, Kind: IntentUpload, Key: "b", Started: t0.Add(time.Hour), Attempts: 0}, nil,
			Intent{Stream: "s", Base: 0, Kind: IntentUpload, Key: "b", Started: t0}},
		{"other kind", Intent{Stream: "s", Base: 0, Kind: IntentDropWarm}, ErrIntentConflict,
			Intent{Stream: "s", Base: 0, Kind: IntentUpload, Key: "b", Started: t0}},
		{"explicit start", Intent{Stream: "s", Base: 10, Kind: IntentDeleteWarm, Started: t0.Add(time.Minute), Attempts: 2, LastError: "x"}, nil,
			Intent{Stream: "s", Base: 10, Kind: IntentDeleteWarm, Started: t0.Add(time.Minute), Attempts: 2, LastError: "x"}},
		{"missing segment", Intent{Stream: "s", Base: 5, Kind: IntentUpload}, tiers.ErrSegmentNotFound, Intent{}},
		{"unknown stream", Intent{Stream: "t", Base: 0, Kind: IntentUpload}, tiers.ErrSegmentNotFound, Intent{}},
		{"empty kind", Intent{Stream: "s", Base: 10, Kind: ""}, ErrInvalidIntent,
			Intent{Stream: "s", Base: 10, Kind: IntentDeleteWarm, Started: t0.Add(time.Minute), Attempts: 2, LastError: "x"}},
		{"long key", Intent{Stream: "s", Base: 10, Kind: IntentDeleteWarm, Key: strings.Repeat("k", maxKeyBytes+1)}, ErrInvalidIntent,
			Intent{Stream: "s", Base: 10, Kind: IntentDeleteWarm, Started: t0.Add(time.Minute), Attempts: 2, LastError: "x"}},
		{"bad stream", Intent{Stream: "../x", Base: 0, Kind: IntentUpload}, tiers.ErrInvalidStreamName, Intent{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := c.PutIntent(ctx, tc.in)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			got, ok, err := c.Intent(ctx, tc.in.Stream, tc.in.Base)
			if err != nil {
				t.Fatal(err)
			}
			if ok != (tc.want.Kind != "") {
				t.Fatalf("ok = %v, want an intent: %v", ok, tc.want.Kind != "")
			}
			sameIntent(t, got, tc.want)
		})
	}
	all, err := c.Intents(ctx)
	if err != nil || len(all) != 2 || all[0].Base != 0 || all[1].Base != 10 {
		t.Fatalf("Intents = %+v, %v; want s/0 and s/10", all, err)
	}
}

func sameIntent(t *testing.T, got, want Intent) {
	t.Helper()
	if !got.Started.Equal(want.Started) {
		t.Fatalf("Started %v, want %v", got.Started, want.Started)
	}
	got.Started = want.Started
	if got != want {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

func TestIntentsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	c, path := openT(t, Options{})
	put(t, c, seg("a", 0, 9), seg("a", 10, 19), seg("b", 0, 4))
	ins := []Intent{
		{Stream: "a", Base: 10, Kind: IntentDropWarm, Key: "warm/a/10.seg", Started: t0},
		{Stream: "a", Base: 0, Kind: IntentUpload, Key: "cold/a/0.parquet", Started: t0},
		{Stream: "b", Base: 0, Kind: IntentDeleteCold, Key: "cold/b/0.parquet", Started: t0},
	}
	for _, in := range ins {
		if err := c.PutIntent(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.RecordFailure(ctx, "a", 0, "put: connection refused"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	c2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	got, err := c2.Intents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Intent{ins[1], ins[0], ins[2]}
	want[0].Attempts, want[0].LastError = 1, "put: connection refused"
	if len(got) != len(want) {
		t.Fatalf("Intents after reopen = %+v, want %+v", got, want)
	}
	for i := range want {
		sameIntent(t, got[i], want[i])
	}
	f, ok, err := c2.LastError(ctx, "a", 0)
	if err != nil || !ok || f.Err != "put: connection refused" || f.Kind != IntentUpload || f.Attempts != 1 || !f.At.Equal(t0) {
		t.Fatalf("LastError after reopen = %+v, %v, %v", f, ok, err)
	}
}

func TestClearIntent(t *testing.T) {
	ctx := context.Background()
	c, _ := openT(t, Options{})
	put(t, c, seg("s", 0, 9))
	if err := c.PutIntent(ctx, Intent{Stream: "s", Base: 0, Kind: IntentUpload}); err != nil {
		t.Fatal(err)
	}
	if err := c.RecordFailure(ctx, "s", 0, "boom"); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the second clear finds nothing and still succeeds
		if err := c.ClearIntent(ctx, "s", 0); err != nil {
			t.Fatalf("clear %d: %v", i, err)
		}
	}
	if _, ok, err := c.Intent(ctx, "s", 0); ok || err != nil {
		t.Fatalf("Intent after clear: ok=%v err=%v", ok, err)
	}
	if f, ok, err := c.LastError(ctx, "s", 0); !ok || err != nil || f.Err != "boom" {
		t.Fatalf("ClearIntent (a rollback) lost the last error: %+v %v %v", f, ok, err)
	}
	if err := c.ClearIntent(ctx, "nostream", 3); err != nil {
		t.Fatalf("clear on an unknown stream: %v", err)
	}
	// The per-stream bucket goes with its last intent.
	if err := c.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte(bucketIntents)).Bucket([]byte("s")) != nil {
			return errors.New("empty intents bucket of stream s left behind")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestRecordFailureAndLastError(t *testing.T) {
	ctx := context.Background()
	now := t0
	c, _ := openT(t, Options{Now: func() time.Time { return now }})
	put(t, c, seg("s", 0, 9), seg("s", 10, 19))
	if err := c.PutIntent(ctx, Intent{Stream: "s", Base: 0, Kind: IntentUpload}); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("é", maxErrorBytes) // 2 bytes a rune: the cut must not split one
	steps := []struct {
		name         string
		base         uint64
		msg          string
		wantAttempts int // Failure.Attempts
		wantKind     string
	}{
		{"with intent", 0, "first", 1, IntentUpload},
		{"again", 0, "second", 2, IntentUpload},
		{"long message", 0, long, 3, IntentUpload},
		{"without intent", 10, "no intent", 1, ""},
	}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			now = t0.Add(time.Duration(i) * time.Second)
			if err := c.RecordFailure(ctx, "s", st.base, st.msg); err != nil {
				t.Fatal(err)
			}
			f, ok, err := c.LastError(ctx, "s", st.base)
			if err != nil || !ok {
				t.Fatalf("LastError: ok=%v err=%v", ok, err)
			}
			wantMsg := truncate(st.msg, maxErrorBytes)
			if f.Err != wantMsg || f.Attempts != st.wantAttempts || f.Kind != st.wantKind || !f.At.Equal(now) {
				t.Fatalf("LastError = {%q… %d %q %v}, want {%q… %d %q %v}", cut(f.Err), f.Attempts, f.Kind, f.At, cut(wantMsg), st.wantAttempts, st.wantKind, now)
			}
			if len(f.Err) > maxErrorBytes || !utf8.ValidString(f.Err) {
				t.Fatalf("stored message is %d bytes, valid UTF-8 %v", len(f.Err), utf8.ValidString(f.Err))
			}
			in, ok, err := c.Intent(ctx, "s", st.base)
			if err != nil {
				t.Fatal(err)
			}
			if st.wantKind != "" && (!ok || in.Attempts != st.wantAttempts || in.LastError != wantMsg) {
				t.Fatalf("intent = %+v, want %d attempts", in, st.wantAttempts)
			}
			if st.wantKind == "" && ok {
				t.Fatalf("RecordFailure created an intent: %+v", in)
			}
		})
	}
	if _, ok, err := c.LastError(ctx, "s", 20); ok || err != nil {
		t.Fatalf("LastError of a segment that never failed: ok=%v err=%v", ok, err)
	}
}

func cut(s string) string {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

func TestCommitMove(t *testing.T) {
	ctx := context.Background()
	errFn := errors.New("fn refused")
	upload := func(m *tiers.SegmentMeta) error {
		m.Placements = m.Placements.With(tiers.Cold)
		m.ColdBytes = 55
		return nil
	}
	cases := []struct {
		name      string
		intent    bool
		fn        func(*tiers.SegmentMeta) error
		err       error
		committed bool // the segment changed, the intent and last error are gone
	}{
		{"commit", true, upload, nil, true},
		{"fn fails", true, func(m *tiers.SegmentMeta) error { upload(m); return errFn }, errFn, false},
		{"invalid result", true, func(m *tiers.SegmentMeta) error { m.Placements = 0; return nil }, ErrInvalidSegment, false},
		{"changes records", true, func(m *tiers.SegmentMeta) error { upload(m); m.Digest[3] = 9; return nil }, ErrInvalidSegment, false},
		{"no intent", false, upload, ErrNoIntent, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := openT(t, Options{})
			orig := seg("s", 0, 9)
			put(t, c, orig)
			if tc.intent {
				if err := c.PutIntent(ctx, Intent{Stream: "s", Base: 0, Kind: IntentUpload, Key: "k"}); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.RecordFailure(ctx, "s", 0, "earlier failure"); err != nil {
				t.Fatal(err)
			}
			_, err := c.CommitMove(ctx, "s", 0, tc.fn)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			stored, err := c.Segment(ctx, "s", 0)
			if err != nil {
				t.Fatal(err)
			}
			_, hasIntent, err := c.Intent(ctx, "s", 0)
			if err != nil {
				t.Fatal(err)
			}
			_, hasErr, err := c.LastError(ctx, "s", 0)
			if err != nil {
				t.Fatal(err)
			}
			want := orig
			if tc.committed {
				want.Placements, want.ColdBytes = tiers.Of(tiers.Warm, tiers.Cold), 55
			}
			sameMeta(t, stored, want)
			if hasIntent != (tc.intent && !tc.committed) || hasErr == tc.committed {
				t.Fatalf("after commit: intent %v, last error %v", hasIntent, hasErr)
			}
		})
	}
}

func TestCommitDelete(t *testing.T) {
	ctx := context.Background()
	c, _ := openT(t, Options{})
	put(t, c, seg("s", 0, 9), seg("s", 10, 19))
	// A live segment, or a tombstoned one above the watermark (as damage
	// or an older build would leave it), is never forgotten as deleted.
	if err := c.CommitDelete(ctx, "s", 0); !errors.Is(err, ErrNotTombstoned) {
		t.Fatalf("CommitDelete of a live segment: %v, want ErrNotTombstoned", err)
	}
	if err := c.db.Update(func(tx *bolt.Tx) error {
		m := tombstoned(seg("s", 10, 19))
		return tx.Bucket([]byte(bucketSegments)).Bucket([]byte("s")).Put(segmentKey(10), encodeSegment(&m))
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.CommitDelete(ctx, "s", 10); !errors.Is(err, ErrNotTombstoned) {
		t.Fatalf("CommitDelete above the watermark: %v, want ErrNotTombstoned", err)
	}
	tombstone(t, c, "s", 0)
	if err := c.PutIntent(ctx, Intent{Stream: "s", Base: 0, Kind: IntentDeleteWarm}); err != nil {
		t.Fatal(err)
	}
	if err := c.RecordFailure(ctx, "s", 0, "unlink: busy"); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // repeating it after a crash is harmless
		if err := c.CommitDelete(ctx, "s", 0); err != nil {
			t.Fatalf("CommitDelete %d: %v", i, err)
		}
	}
	if _, err := c.Segment(ctx, "s", 0); !errors.Is(err, tiers.ErrSegmentNotFound) {
		t.Fatalf("segment after CommitDelete: %v", err)
	}
	if _, ok, _ := c.Intent(ctx, "s", 0); ok {
		t.Fatal("intent survived CommitDelete")
	}
	if _, ok, _ := c.LastError(ctx, "s", 0); ok {
		t.Fatal("last error survived CommitDelete")
	}
	infos, err := c.Streams(ctx)
	if err != nil || len(infos) != 1 || infos[0].Segments != 1 || infos[0].NextOffset != 20 {
		t.Fatalf("Streams = %+v, %v; want one segment, next offset 20", infos, err)
	}
}

func TestIntentCorruption(t *testing.T) {
	ctx := context.Background()
	c, path := openT(t, Options{})
	put(t, c, seg("s", 0, 9))
	if err := c.db.Update(func(tx *bolt.Tx) error {
		return putNested(tx, bucketIntents, "s", 0, []byte{1, 0})
	}); err != nil {
		t.Fatal(err)
	}
	checks := map[string]func() error{
		"Intents":   func() error { _, err := c.Intents(ctx); return err },
		"Intent":    func() error { _, _, err := c.Intent(ctx, "s", 0); return err },
		"PutIntent": func() error { return c.PutIntent(ctx, Intent{Stream: "s", Base: 0, Kind: IntentUpload}) },
	}
	for name, check := range checks {
		var ce *tiers.CorruptionError
		if err := check(); !errors.As(err, &ce) || ce.Path != path {
			t.Errorf("%s = %v, want a *tiers.CorruptionError naming %s", name, err, path)
		}
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abc", 2, "ab"},
		{"aé", 2, "a"},
		{"aé", 3, "aé"},
		{"日本", 4, "日"},
		{"日本", 2, ""},
	} {
		if got := truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
