package tiers

// nsPerDay is the length of a UTC day in nanoseconds (Unix time has no leap
// seconds).
const nsPerDay = 24 * 60 * 60 * 1_000_000_000

// UTCDay is the UTC calendar day of a record's ts (Unix ns), as days since
// 1970-01-01: floor(ts / 86400e9), so a ts before the epoch falls on the day
// that holds it, not the next one. A segment's records all have the same
// UTCDay (see docs/format/segment.md): the cold tier's date= partition is
// that day, so `date = D` and `ts::date = D` select the same rows.
func UTCDay(ts int64) int64 {
	d := ts / nsPerDay
	if ts%nsPerDay < 0 {
		d--
	}
	return d
}
