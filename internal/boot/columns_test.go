package boot

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tiers"
)

// TestOpenColdColumns: the cold tier OpenCold builds writes each stream's
// policy columns, and none for a stream whose policy has none.
func TestOpenColdColumns(t *testing.T) {
	dir := t.TempDir()
	cfg, err := policy.Parse("tierd.yaml", []byte(`
data_dir: `+dir+`
policies:
  - name: trading
    streams: ["IF*"]
    columns: [{name: px, path: $.px, type: double}, {name: amt, path: $.amt, type: decimal, precision: 12, scale: 2}]
`))
	if err != nil {
		t.Fatal(err)
	}
	ct, err := OpenCold(context.Background(), cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ct.Close()
	for stream, want := range map[string][]string{"IF2612": {"px", "amt"}, "logs": nil} {
		recs := []tiers.Record{{Offset: 0, TS: time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC).UnixNano(), Key: "k", Value: []byte(`{"px":1.5,"amt":"2.25"}`)}}
		d := tiers.NewDigester()
		d.Add(&recs[0])
		m := tiers.SegmentMeta{Stream: stream, Base: 0, Last: 0, Count: 1, MinTS: recs[0].TS, MaxTS: recs[0].TS, Digest: d.Sum(), SealedAt: time.Unix(1e9, 0)}
		if _, err := ct.Upload(context.Background(), m, func(yield func(tiers.Record, error) bool) { yield(recs[0], nil) }); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(filepath.Join(dir, "cold", cold.ObjectKey(m)))
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		pf, err := parquet.OpenFile(f, st.Size())
		if err != nil {
			t.Fatal(err)
		}
		var typed []string
		for _, fld := range pf.Schema().Fields()[7:] { // after the base columns
			typed = append(typed, fld.Name())
		}
		f.Close()
		if len(typed) != len(want) || (len(want) > 0 && (typed[0] != want[0] || typed[1] != want[1])) {
			t.Errorf("stream %s: typed columns %v, want %v", stream, typed, want)
		}
	}
}
