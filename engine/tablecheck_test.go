package engine

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/tablesync"
	"github.com/tierd/tierd/tiers"
)

// listedTables answers Files from a map (ErrNoTable for a stream not in
// it, err for "down") and counts the calls.
type listedTables struct {
	files map[string][]string
	calls []string
}

func (l *listedTables) Sync(context.Context, string) (api.TableSync, error) {
	return api.TableSync{}, nil
}
func (l *listedTables) Remove(context.Context, string, []tiers.SegmentMeta) error {
	return nil
}
func (l *listedTables) Describe(context.Context, string) (api.Table, error) {
	return api.Table{}, tablesync.ErrNoTable
}
func (l *listedTables) Files(_ context.Context, stream string) ([]string, error) {
	l.calls = append(l.calls, stream)
	if stream == "down" {
		return nil, tablesync.ErrUnavailable
	}
	f, ok := l.files[stream]
	if !ok {
		return nil, tablesync.ErrNoTable
	}
	return f, nil
}

// TestTableFindings: a table file no segment holds is a table finding; a
// stream without a table is fine; an unreadable table is one unreadable
// finding and the tables after it are not tried; with the store known to
// be down, no table is tried at all; without tables, nothing.
func TestTableFindings(t *testing.T) {
	ctx := context.Background()
	lt := &listedTables{files: map[string][]string{"a": {"k1", "k2"}, "b": {"k3"}}}
	loop := tablesync.New(tablesync.Options{Tables: lt, Interval: time.Hour, Registerer: prometheus.NewRegistry()})
	held := func(k string) bool { return k != "k2" }
	up := objstore.Health{Available: true}

	got := TableFindings(ctx, loop, []string{"a", "b", "none"}, held, up)
	if len(got) != 1 || got[0].Kind != api.FindingTable || got[0].Stream != "a" || got[0].Path != "k2" || got[0].Tier != "table" {
		t.Fatalf("findings %+v, want one table finding for a's k2", got)
	}

	lt.calls = nil
	got = TableFindings(ctx, loop, []string{"a", "down", "b", "none"}, held, up)
	if len(got) != 2 || got[1].Kind != api.FindingUnreadable || got[1].Stream != "down" || got[1].Tier != "table" {
		t.Fatalf("findings %+v, want a's table finding, then down unreadable", got)
	}
	if !slices.Equal(lt.calls, []string{"a", "down"}) {
		t.Fatalf("tables read %q: after an unreadable one the rest must not be tried", lt.calls)
	}

	lt.calls = nil
	got = TableFindings(ctx, loop, []string{"a", "b"}, held, objstore.Health{Since: time.Unix(1, 0), Err: "timeout"})
	if len(got) != 1 || got[0].Kind != api.FindingUnreadable || got[0].Stream != "" || len(lt.calls) != 0 {
		t.Fatalf("store down: findings %+v after reading %q, want one unreadable and no table read", got, lt.calls)
	}

	var off *tablesync.Loop
	if got := TableFindings(ctx, off, []string{"a"}, held, up); len(got) != 0 {
		t.Fatalf("without tables: %+v", got)
	}
}
