package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/tiers"
)

// The wire forms of the responses. They live apart from the engine's types
// so the engine can change without changing the API.

// recordOut is one line of a read response.
type recordOut struct {
	Offset   uint64          `json:"offset"`
	TS       string          `json:"ts"`
	Key      string          `json:"key,omitempty"`
	Tags     []string        `json:"tags,omitempty"`
	Value    json.RawMessage `json:"value,omitempty"`
	ValueB64 []byte          `json:"value_b64,omitempty"` // encoding/json writes []byte as standard base64
	Tier     string          `json:"tier"`
}

// formatTS renders Unix ns the way every response does: RFC 3339 in UTC
// with as many fractional digits as needed.
func formatTS(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

// toRecordOut fills out for it. A value goes out as "value" only when its
// bytes are exactly what an append of that JSON would store (valid UTF-8,
// valid and already compact JSON): then read → append round-trips byte for
// byte and the line cannot be broken by a newline inside the value. Anything
// else goes out as "value_b64"; an empty value as neither, like an append
// that gave neither. scratch is reused across calls.
func toRecordOut(out *recordOut, it *engine.Item, scratch *bytes.Buffer) {
	*out = recordOut{
		Offset: it.Offset,
		TS:     formatTS(it.TS),
		Key:    it.Key,
		Tags:   it.Tags,
		Tier:   it.Tier.String(),
	}
	if len(it.Value) == 0 {
		return
	}
	if isCompactJSON(it.Value, scratch) {
		out.Value = it.Value
	} else {
		out.ValueB64 = it.Value
	}
}

func isCompactJSON(b []byte, scratch *bytes.Buffer) bool {
	if !utf8.Valid(b) {
		return false
	}
	scratch.Reset()
	if err := json.Compact(scratch, b); err != nil {
		return false
	}
	return bytes.Equal(scratch.Bytes(), b)
}

// Read limits.
const (
	defaultLimit = 1000
	maxLimit     = 100000
)

// parseQuery maps a read's URL parameters onto a tiers.Query. Unknown and
// repeated parameters are errors, so a typo ("offset=") is not silently a
// full read.
func parseQuery(v url.Values) (tiers.Query, error) {
	q := tiers.AllRecords()
	q.Limit = defaultLimit
	for name, vals := range v {
		if len(vals) != 1 {
			return q, fmt.Errorf("parameter %q given %d times", name, len(vals))
		}
		s := vals[0]
		var err error
		switch name {
		case "from":
			q.From, err = parseOffset(name, s)
		case "to":
			q.To, err = parseOffset(name, s)
		case "since":
			q.Since, err = parseTSParam(name, s)
		case "until":
			q.Until, err = parseTSParam(name, s)
		case "key":
			q.Key, q.HasKey = s, true
		case "tag":
			if s == "" {
				err = fmt.Errorf("tag must not be empty")
			}
			q.Tag = s
		case "limit":
			n, perr := strconv.Atoi(s)
			if perr != nil || n < 1 || n > maxLimit {
				err = fmt.Errorf("limit %q must be an integer from 1 to %d", s, maxLimit)
			}
			q.Limit = n
		default:
			err = fmt.Errorf("unknown parameter %q (known: from, to, since, until, key, tag, limit, wait)", name)
		}
		if err != nil {
			return q, err
		}
	}
	if q.To < q.From {
		return q, fmt.Errorf("to (%d) is before from (%d)", q.To, q.From)
	}
	if q.Until <= q.Since {
		return q, fmt.Errorf("until must be after since")
	}
	return q, nil
}

func parseOffset(name, s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not an offset (an unsigned integer)", name, s)
	}
	return n, nil
}

func parseTSParam(name, s string) (int64, error) {
	ns, err := ParseTS(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return ns, nil
}

// appendOut is the response to an append.
type appendOut struct {
	Stream      string `json:"stream"`
	FirstOffset uint64 `json:"first_offset"`
	LastOffset  uint64 `json:"last_offset"`
	Count       int    `json:"count"`
	// Duplicate: an idempotent producer's retry, not appended again.
	Duplicate bool `json:"duplicate,omitempty"`
}

// streamOut is one entry of the streams listing.
type streamOut struct {
	Name       string                  `json:"name"`
	NextOffset uint64                  `json:"next_offset"`
	Records    uint64                  `json:"records"`
	Tiers      map[string]tierUsageOut `json:"tiers"`
}

// tierUsageOut is what one tier holds of a stream.
type tierUsageOut struct {
	Segments int   `json:"segments"`
	Bytes    int64 `json:"bytes"`
}

func toStreamOut(si *engine.StreamInfo) streamOut {
	out := streamOut{Name: si.Name, NextOffset: si.NextOffset, Records: si.Records, Tiers: map[string]tierUsageOut{}}
	for p, u := range si.Tiers {
		out.Tiers[p.String()] = tierUsageOut{Segments: u.Segments, Bytes: u.Bytes}
	}
	return out
}

// segmentOut is one entry of a segments listing. The active segment has no
// seal time or digest yet, and an empty one no time range.
type segmentOut struct {
	Base  uint64 `json:"base"`
	Last  uint64 `json:"last"`
	Count uint64 `json:"count"`
	Bytes int64  `json:"bytes"`
	// ColdBytes is the cold object's size, present once the segment has one.
	ColdBytes int64    `json:"cold_bytes,omitempty"`
	MinTS     string   `json:"min_ts,omitempty"`
	MaxTS     string   `json:"max_ts,omitempty"`
	SealedAt  string   `json:"sealed_at,omitempty"`
	Tiers     []string `json:"tiers"`
	Digest    string   `json:"digest,omitempty"`
	Active    bool     `json:"active,omitempty"`
	// Tombstoned is when deletion by retention began; the segment is no
	// longer served and its copies go after cold.delete_delay.
	Tombstoned string `json:"tombstoned,omitempty"`
}

func toSegmentOut(si *engine.SegmentInfo) segmentOut {
	out := segmentOut{
		Base:      si.Base,
		Last:      si.Last,
		Count:     si.Count,
		Bytes:     si.Bytes,
		ColdBytes: si.ColdBytes,
		Tiers:     si.Placements.Strings(),
		Active:    si.Active,
	}
	if si.Count > 0 {
		out.MinTS, out.MaxTS = formatTS(si.MinTS), formatTS(si.MaxTS)
	}
	if !si.Active {
		if !si.SealedAt.IsZero() {
			out.SealedAt = formatTime(si.SealedAt)
		}
		if !si.Digest.IsZero() {
			out.Digest = si.Digest.String()
		}
		if !si.Tombstoned.IsZero() {
			out.Tombstoned = formatTime(si.Tombstoned)
		}
	}
	if si.Active && len(out.Tiers) == 0 {
		out.Tiers = []string{tiers.Hot.String()}
	}
	return out
}
