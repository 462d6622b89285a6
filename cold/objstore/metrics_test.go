package objstore_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/cold/objstore"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	b, err := objstore.Open(context.Background(), "file://"+t.TempDir(), objstore.Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	// A second bucket on the same registry shares the collectors.
	b2, err := objstore.Open(context.Background(), "file://"+t.TempDir(), objstore.Options{Registerer: reg})
	if err != nil {
		t.Fatalf("second Open on the same registry: %v", err)
	}
	ctx := context.Background()
	put(t, b, "k", []byte("hello"))
	put(t, b2, "k", []byte("hi"))
	get(t, b, "k")
	rc, err := b.GetRange(ctx, "k", 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(rc)
	rc.Close()
	b.Stat(ctx, "missing")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	b.Stat(cancelled, "k")
	for range b.List(ctx, "") {
	}
	b.Delete(ctx, "k")

	cases := []struct {
		labels []string
		want   float64
	}{
		{[]string{"requests", "put", "ok"}, 2},
		{[]string{"requests", "get", "ok"}, 1},
		{[]string{"requests", "get_range", "ok"}, 1},
		{[]string{"requests", "stat", "not_found"}, 1},
		{[]string{"requests", "stat", "canceled"}, 1},
		{[]string{"requests", "list", "ok"}, 1},
		{[]string{"requests", "delete", "ok"}, 1},
		{[]string{"bytes", "put"}, 7},
		{[]string{"bytes", "get"}, 5},
		{[]string{"bytes", "get_range"}, 2},
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	for _, mf := range mfs {
		name := strings.TrimSuffix(strings.TrimPrefix(mf.GetName(), "tierd_cold_store_"), "_total")
		for _, m := range mf.GetMetric() {
			k := name
			for _, l := range m.GetLabel() {
				k += "/" + l.GetValue()
			}
			switch {
			case m.Counter != nil:
				values[k] = m.Counter.GetValue()
			case m.Histogram != nil:
				values[k] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	for _, tc := range cases {
		k := strings.Join(tc.labels, "/")
		if values[k] != tc.want {
			t.Errorf("%s = %v, want %v (all: %v)", k, values[k], tc.want, values)
		}
	}
	if values["request_duration_seconds/put"] != 2 {
		t.Errorf("duration histogram has %v put samples, want 2", values["request_duration_seconds/put"])
	}
	n := 0
	for k := range values {
		if strings.HasPrefix(k, "requests/") {
			n++
		}
	}
	if n != 7 {
		t.Errorf("%d request series, want 7 (result labels must stay bounded)", n)
	}
}
