package tiers

import "math"

// Query selects records of one stream. Every tier's reader takes the same
// Query, so routing can hand it down unchanged. Bounds are inclusive except
// Until, which is exclusive.
type Query struct {
	From  uint64 // first offset wanted
	To    uint64 // last offset wanted (inclusive); math.MaxUint64 for no bound
	Since int64  // smallest ts wanted (Unix ns, inclusive); math.MinInt64 for no bound
	Until int64  // ts bound (Unix ns, exclusive); math.MaxInt64 for no bound
	Key   string // only records with this key, when HasKey
	// HasKey makes Key a filter; an empty Key with HasKey selects records
	// without a key.
	HasKey bool
	Tag    string // only records carrying this tag, when non-empty
	Limit  int    // at most this many records; 0 for no limit
	// FromRetained marks a read that did not name its first offset: a From
	// below the stream's first retained offset starts there instead of
	// being expired, and a bounded Until at or before the first retained
	// record is expired instead. The engine applies it; tiers' readers
	// ignore it.
	FromRetained bool
}

// AllRecords returns a Query that selects everything.
func AllRecords() Query {
	return Query{To: math.MaxUint64, Since: math.MinInt64, Until: math.MaxInt64}
}

// Match reports whether r passes the query's filters (offset range, time
// range, key and tag). Limit is the caller's business.
func (q *Query) Match(r *Record) bool {
	if r.Offset < q.From || r.Offset > q.To || r.TS < q.Since || r.TS >= q.Until {
		return false
	}
	if q.HasKey && r.Key != q.Key {
		return false
	}
	if q.Tag != "" && !r.HasTag(q.Tag) {
		return false
	}
	return true
}

// OverlapsTime reports whether a run of records with ts in [minTS, maxTS]
// may hold records in the query's time range, for pruning.
func (q *Query) OverlapsTime(minTS, maxTS int64) bool {
	return maxTS >= q.Since && minTS < q.Until
}

// OverlapsOffsets reports whether [base, last] intersects the query's offset
// range, for pruning.
func (q *Query) OverlapsOffsets(base, last uint64) bool {
	return last >= q.From && base <= q.To
}
