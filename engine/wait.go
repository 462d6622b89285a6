package engine

import (
	"context"

	"github.com/tierd/tierd/tiers"
)

// WaitFor blocks until stream holds a readable record at offset or above,
// or ctx is done (its error is returned). An unknown stream is waited for
// too: it exists once its first batch is appended. Long-polling readers
// (GET …/records?wait=) and tierctl tail -f use it. The hot tier wakes
// the wait where the stream's records become visible (hot.Tier.WaitFor).
func (e *Engine) WaitFor(ctx context.Context, stream string, offset uint64) error {
	if err := tiers.ValidateStreamName(stream); err != nil {
		return err
	}
	return e.hot.WaitFor(ctx, stream, offset)
}
