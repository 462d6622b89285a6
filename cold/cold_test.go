package cold

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/tiers"
)

// uploaded stores a segment of n records of stream s and returns its
// catalog metadata and records.
func uploaded(t *testing.T, tier *Tier, n int) (tiers.SegmentMeta, []tiers.Record) {
	t.Helper()
	recs := make([]tiers.Record, n)
	d := tiers.NewDigester()
	m := tiers.SegmentMeta{Stream: "s", Base: 100, Last: 100 + uint64(n) - 1, Count: uint64(n), MinTS: math.MaxInt64, MaxTS: math.MinInt64, SealedAt: time.Unix(1e9, 0)}
	for i := range recs {
		recs[i] = tiers.Record{Offset: 100 + uint64(i), TS: 1e18 + int64(i), Key: fmt.Sprintf("k%d", i%3), Value: []byte(fmt.Sprint(i))}
		d.Add(&recs[i])
		m.MinTS, m.MaxTS = min(m.MinTS, recs[i].TS), max(m.MaxTS, recs[i].TS)
	}
	m.Digest = d.Sum()
	seq := func(yield func(tiers.Record, error) bool) {
		for _, r := range recs {
			if !yield(r, nil) {
				return
			}
		}
	}
	if _, err := tier.Upload(context.Background(), m, seq); err != nil {
		t.Fatal(err)
	}
	return m, recs
}

// TestScanChecksTheCatalog: an object whose footer does not describe the
// catalogued segment (another count, ts range or digest) is never served:
// Scan and Verify answer a *tiers.CorruptionError.
func TestScanChecksTheCatalog(t *testing.T) {
	b, err := objstore.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tier, err := New(Options{Bucket: b, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer tier.Close()
	m, recs := uploaded(t, tier, 50)
	n := 0
	for _, err := range tier.Scan(context.Background(), m, tiers.AllRecords()) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != len(recs) {
		t.Fatalf("scanned %d of %d records", n, len(recs))
	}
	for name, edit := range map[string]func(*tiers.SegmentMeta){
		"max_ts":  func(m *tiers.SegmentMeta) { m.MaxTS++ },
		"min_ts":  func(m *tiers.SegmentMeta) { m.MinTS-- },
		"digest":  func(m *tiers.SegmentMeta) { m.Digest[3] ^= 1 },
		"count":   func(m *tiers.SegmentMeta) { m.Count-- },
		"nothing": nil,
	} {
		t.Run(name, func(t *testing.T) {
			want := m
			if edit != nil {
				edit(&want)
			}
			var scanErr error
			for _, err := range tier.Scan(context.Background(), want, tiers.AllRecords()) {
				if err != nil {
					scanErr = err
					break
				}
			}
			verifyErr := tier.Verify(context.Background(), want)
			var ce *tiers.CorruptionError
			if edit == nil {
				if scanErr != nil || verifyErr != nil {
					t.Fatalf("scan: %v, verify: %v", scanErr, verifyErr)
				}
				return
			}
			if !errors.As(scanErr, &ce) || !errors.Is(scanErr, ErrDigestMismatch) {
				t.Fatalf("scan error %v, want a CorruptionError wrapping ErrDigestMismatch", scanErr)
			}
			if !errors.As(verifyErr, &ce) {
				t.Fatalf("verify error %v, want a CorruptionError", verifyErr)
			}
		})
	}
}
