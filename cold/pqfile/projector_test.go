package pqfile

import (
	"bytes"
	"encoding/json"
	"math/big"
	"strings"
	"time"
)

// testProjector projects top-level fields ($.name) with encoding/json: the
// tests' stand-in for cold/colproj, whose semantics it follows for the
// values the tests use (int64 from an integer, double from any number,
// bool, string, timestamp from RFC 3339, decimal exactly at its scale).
type testProjector struct{ cols []Column }

func (p testProjector) Project(value []byte, out []Value) {
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	var m map[string]any
	if dec.Decode(&m) != nil {
		return
	}
	for i, c := range p.cols {
		out[i] = Value{}
		v, ok := m[strings.TrimPrefix(c.Path, "$.")]
		if !ok {
			continue
		}
		switch c.Type {
		case TypeString:
			out[i].S, out[i].Valid = v.(string)
		case TypeBool:
			out[i].B, out[i].Valid = v.(bool)
		case TypeInt64:
			if n, ok := v.(json.Number); ok {
				if x, err := n.Int64(); err == nil {
					out[i] = Value{Valid: true, I: x}
				}
			}
		case TypeDouble:
			if n, ok := v.(json.Number); ok {
				if x, err := n.Float64(); err == nil {
					out[i] = Value{Valid: true, F: x}
				}
			}
		case TypeTimestamp:
			if s, ok := v.(string); ok {
				if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
					out[i] = Value{Valid: true, I: t.UnixMicro()}
				}
			}
		case TypeDecimal:
			if n, ok := v.(json.Number); ok {
				r, ok := new(big.Rat).SetString(n.String())
				if !ok {
					continue
				}
				r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(c.Scale)), nil)))
				if r.IsInt() && r.Num().IsInt64() {
					out[i] = Value{Valid: true, I: r.Num().Int64()}
				}
			}
		}
	}
}
