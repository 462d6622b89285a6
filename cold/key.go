package cold

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/tierd/tierd/tiers"
)

// ObjectKey is where a segment lives in the bucket, Hive-style so engines can
// read `.../**/*.parquet` with hive_partitioning:
// stream=<stream>/date=<YYYY-MM-DD>/<base:020d>-<last:020d>.parquet. The date
// is the UTC day of the segment's smallest ts, which since issue 14 is the
// day of all its records (a segment never holds two UTC days). The stream
// is percent-encoded by EscapeStream so that engines read the name back as
// the same string. The key depends only on the segment's catalogued
// identity, so every attempt to move it writes the same object.
func ObjectKey(m tiers.SegmentMeta) string {
	return segmentKey(EscapeStream(m.Stream), m)
}

// LegacyObjectKey is the key releases before issue 14 gave the segment: the
// stream name raw. It differs from ObjectKey only for the names EscapeStream
// encodes; an object written there stays readable, checkable and deletable
// (the Tier looks there when ObjectKey has no object), and a listing finds
// it.
func LegacyObjectKey(m tiers.SegmentMeta) string {
	return segmentKey(m.Stream, m)
}

// IsObjectKeyOf reports whether key is a place segment m's object may be:
// ObjectKey(m) or LegacyObjectKey(m). Code that matches listed objects to
// catalogued segments (verify, garbage collection) uses it, so that an
// object at the legacy key is claimed, never an orphan.
func IsObjectKeyOf(key string, m tiers.SegmentMeta) bool {
	return key == ObjectKey(m) || key == LegacyObjectKey(m)
}

func segmentKey(streamDir string, m tiers.SegmentMeta) string {
	day := time.Unix(0, m.MinTS).UTC().Format("2006-01-02")
	return path.Join("stream="+streamDir, "date="+day, fmt.Sprintf("%020d-%020d.parquet", m.Base, m.Last))
}

// EscapeStream is the stream's directory name in object keys: the name
// itself, except that the first character is percent-encoded (%XX,
// upper-case hex) when an engine reading the Hive partitions would take
// the raw name for something other than that string. DuckDB decides NULL
// and the partition's type on the raw text and URL-decodes afterwards, so
// `stream=%4EULL` reads as the string 'NULL' where `stream=NULL` reads as
// SQL NULL, and `stream=%32026` as '2026' where `stream=2026` is a BIGINT.
// Encoded: every name that starts with a digit (numbers, dates,
// timestamps, 0x… and 0b… literals) and null, inf, infinity and epoch in
// any case (NULL, and DATE values). Stream names never hold '%', so the
// encoding is unambiguous. See docs/format/parquet.md, "Partitions", for
// what each engine reads.
func EscapeStream(name string) string {
	if !needsEscape(name) {
		return name
	}
	return fmt.Sprintf("%%%02X%s", name[0], name[1:])
}

// needsEscape reports whether a raw stream directory would not read back
// as the stream's name (see EscapeStream).
func needsEscape(name string) bool {
	if name == "" {
		return false
	}
	if c := name[0]; c >= '0' && c <= '9' {
		return true
	}
	switch strings.ToLower(name) {
	case "null", "inf", "infinity", "epoch":
		return true
	}
	return false
}

// unescapeStream reads a key's stream directory: the stream's name and
// whether the directory is the legacy (raw) form of a name EscapeStream
// now encodes; ok is false when dir is no directory ObjectKey or an
// earlier release wrote (an invalid name, or an encoding EscapeStream
// would not produce).
func unescapeStream(dir string) (name string, legacy, ok bool) {
	if !strings.HasPrefix(dir, "%") {
		if tiers.ValidateStreamName(dir) != nil {
			return "", false, false
		}
		return dir, needsEscape(dir), true
	}
	if len(dir) < 3 {
		return "", false, false
	}
	c, err := strconv.ParseUint(dir[1:3], 16, 8)
	if err != nil {
		return "", false, false
	}
	name = string(rune(c)) + dir[3:]
	if c >= 0x80 || tiers.ValidateStreamName(name) != nil || EscapeStream(name) != dir {
		return "", false, false
	}
	return name, false, true
}

// ParseObjectKey reads the stream, base and last offsets out of a key of
// the form ObjectKey (or LegacyObjectKey) writes; ok is false for any other
// key (the cluster's _journal/ objects, table metadata under _iceberg/).
func ParseObjectKey(key string) (stream string, base, last uint64, ok bool) {
	k, ok := parseKey(key)
	return k.stream, k.base, k.last, ok
}

// parsedKey is what a segment object's key says.
type parsedKey struct {
	stream     string
	day        time.Time // noon UTC of the key's date
	base, last uint64
	legacy     bool
}

func parseKey(key string) (parsedKey, bool) {
	var k parsedKey
	parts := strings.Split(key, "/")
	if len(parts) != 3 {
		return k, false
	}
	dir, ok := strings.CutPrefix(parts[0], "stream=")
	if !ok {
		return k, false
	}
	if k.stream, k.legacy, ok = unescapeStream(dir); !ok {
		return k, false
	}
	date, ok := strings.CutPrefix(parts[1], "date=")
	if !ok {
		return k, false
	}
	day, err := time.Parse("2006-01-02", date)
	if err != nil || day.Format("2006-01-02") != date {
		return k, false
	}
	// Noon of the day stands for it: any ts of the day gives the key, and
	// noon is in int64 range for every day a ts can fall on (1677-09-21 to
	// 2262-04-11).
	k.day = day.Add(12 * time.Hour)
	if !time.Unix(0, k.day.UnixNano()).UTC().Equal(k.day) {
		return k, false
	}
	name, ok := strings.CutSuffix(parts[2], ".parquet")
	b, l, found := strings.Cut(name, "-")
	if !ok || !found || len(b) != 20 || len(l) != 20 {
		return k, false
	}
	var err1, err2 error
	k.base, err1 = strconv.ParseUint(b, 10, 64)
	k.last, err2 = strconv.ParseUint(l, 10, 64)
	if err1 != nil || err2 != nil || k.last < k.base {
		return k, false
	}
	return k, true
}

// KeySegment is the segment identity a segment object's key names: stream,
// base, last, and MinTS at noon of the key's day, so that
// IsObjectKeyOf(key, m) holds and Tier.Delete(m) removes the object.
// Garbage collection uses it to delete an object no segment references.
func KeySegment(key string) (tiers.SegmentMeta, bool) {
	k, ok := parseKey(key)
	if !ok {
		return tiers.SegmentMeta{}, false
	}
	return tiers.SegmentMeta{Stream: k.stream, Base: k.base, Last: k.last, MinTS: k.day.UnixNano()}, true
}
