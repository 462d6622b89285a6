package engine

import (
	"context"
	"fmt"

	"github.com/tierd/tierd/tiers"
)

// SealResult is what Seal did.
type SealResult struct {
	// Sealed is true when the active segment held records and was sealed
	// now; false when there was nothing to seal (nothing appended since
	// the last seal).
	Sealed bool
	// Segment is the segment just sealed, or, when nothing was, the
	// stream's last sealed segment (when HasSegment), as the segments
	// listing shows it: persisted warm, so placed warm (and hot while
	// resident).
	Segment    SegmentInfo
	HasSegment bool
}

// Seal seals stream's active segment now and returns once it is persisted
// warm, through the hot tier's flusher path (hot.Tier.Seal): the WAL holds
// its records until the warm file is committed, so a crash at any point
// loses and doubles nothing. With nothing appended since the last seal it
// seals nothing and answers the last sealed segment; segments sealed
// earlier are persisted before it returns in both cases, so afterwards
// every record appended before the call is in a sealed, persisted segment
// that can be offloaded. ctx bounds the wait for the persist; when it ends
// first the segment stays sealed and the flusher persists it.
// Errors: tiers.ErrInvalidStreamName, tiers.ErrStreamNotFound, storage
// errors of the persist, tiers.ErrClosed, ctx's.
func (e *Engine) Seal(ctx context.Context, stream string) (SealResult, error) {
	if err := tiers.ValidateStreamName(stream); err != nil {
		return SealResult{}, err
	}
	base, sealed, err := e.hot.Seal(ctx, stream)
	if err != nil {
		return SealResult{}, err
	}
	if sealed {
		m, err := e.catalog.Segment(ctx, stream, base)
		if err != nil {
			return SealResult{}, fmt.Errorf("engine: sealed segment %s/%d: %w", stream, base, err)
		}
		return SealResult{Sealed: true, Segment: e.Describe(m), HasSegment: true}, nil
	}
	segs, err := e.Segments(ctx, stream)
	if err != nil {
		return SealResult{}, err
	}
	for i := len(segs) - 1; i >= 0; i-- {
		if !segs[i].Active {
			return SealResult{Segment: segs[i], HasSegment: true}, nil
		}
	}
	return SealResult{}, nil
}
