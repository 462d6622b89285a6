package cold

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/cold/colproj"
	"github.com/tierd/tierd/cold/pqfile"
	"github.com/tierd/tierd/internal/promreg"
)

// columnMisses is tierd_cold_column_misses_total{column}: values uploaded
// whose typed column is NULL although the value is not JSON null (not
// JSON, the field missing, another type, a number the column cannot hold
// exactly). Column names come from the configuration, so the label is
// bounded by it.
func newColumnMisses(reg prometheus.Registerer) *prometheus.CounterVec {
	return promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tierd_cold_column_misses_total",
		Help: "Values uploaded to cold whose typed column is NULL though the value is not JSON null: not JSON, the field missing, another type or a number the column cannot hold exactly.",
	}, []string{"column"}))
}

// projection is one upload's typed columns: the pqfile options that write
// them and the colproj.Projector behind them, which counts the misses.
type projection struct {
	cols  []colproj.Column
	p     *colproj.Projector
	calls uint64 // values pqfile handed to Project: the JSON ones
}

// newProjection returns the projection of cols, nil for none.
func newProjection(stream string, cols []colproj.Column) (*projection, error) {
	if len(cols) == 0 {
		return nil, nil
	}
	p, err := colproj.New(cols)
	if err != nil {
		return nil, fmt.Errorf("cold: typed columns of stream %s: %w", stream, err)
	}
	return &projection{cols: cols, p: p}, nil
}

// options sets the typed columns in o.
func (pr *projection) options(o *pqfile.Options) {
	o.Columns = pr.cols
	o.Projector = pr
}

// Project is pqfile.Projector; pqfile calls ProjectValid instead.
func (pr *projection) Project(value []byte, out []pqfile.Value) {
	pr.calls++
	pr.p.Project(value, out)
}

// ProjectValid is pqfile.ValidatingProjector: pqfile gives it every value
// and learns from the one pass whether the value is JSON. colproj counts
// a miss for each column of a value that is not JSON, so every value it
// saw is counted in calls.
func (pr *projection) ProjectValid(value []byte, out []pqfile.Value) bool {
	pr.calls++
	return pr.p.ProjectValid(value, out)
}

// count adds a written file's misses to the metric: the projector's, plus
// the values pqfile never projected (not JSON: NULL in every column). A
// failed upload counts nothing, since it is retried.
func (pr *projection) count(m *prometheus.CounterVec, records uint64) {
	notJSON := records - min(pr.calls, records)
	for i, n := range pr.p.Misses() {
		if total := float64(n) + float64(notJSON); total > 0 {
			m.WithLabelValues(pr.cols[i].Name).Add(total)
		}
	}
}
