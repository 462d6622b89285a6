package promreg

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestRegisterReusesTheExistingCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "tierd_test_total", Help: "test"}
	a := Register(reg, prometheus.NewCounter(opts))
	b := Register(reg, prometheus.NewCounter(opts))
	a.Inc()
	b.Inc()
	var m dto.Metric
	if err := a.Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetCounter().GetValue(); got != 2 {
		t.Fatalf("two registrations count into %v, want one series at 2", got)
	}
	if c := Register[prometheus.Counter](nil, prometheus.NewCounter(opts)); c == nil {
		t.Fatal("nil registerer returned nil")
	}
}
