package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/tiers"
)

// The wire forms of the responses are package api's types, which the
// client decodes too; they live apart from the engine's types so the engine
// can change without changing the API. These functions fill them in.

// formatTS renders Unix ns the way every response does: RFC 3339 in UTC
// with as many fractional digits as needed.
func formatTS(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

// toRecordOut fills out for it. A value goes out as "value" only when its
// bytes are exactly what an append of that JSON would store (valid UTF-8,
// valid and already compact JSON): then read → append round-trips byte for
// byte and the line cannot be broken by a newline inside the value. Anything
// else goes out as "value_b64"; an empty value as neither, like an append
// that gave neither. scratch is reused across calls.
func toRecordOut(out *api.Record, it *engine.Item, scratch *bytes.Buffer) {
	*out = api.Record{
		Offset: it.Offset,
		TS:     api.UnixNano(it.TS),
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
// full read. A read without from starts at the first retained offset
// (FromRetained: the engine applies retention).
func parseQuery(v url.Values) (tiers.Query, error) {
	q := tiers.AllRecords()
	q.Limit = defaultLimit
	q.FromRetained = !v.Has("from")
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

func toStreamOut(si *engine.StreamInfo) api.Stream {
	out := api.Stream{Name: si.Name, NextOffset: si.NextOffset, Records: si.Records, Tiers: map[string]api.TierUsage{}}
	for p, u := range si.Tiers {
		out.Tiers[p.String()] = api.TierUsage{Segments: u.Segments, Bytes: u.Bytes}
	}
	return out
}

// toSegmentOut is si as the segments listing shows it.
func toSegmentOut(si *engine.SegmentInfo) api.Segment {
	out := api.Segment{
		Base:      si.Base,
		Last:      si.Last,
		Count:     si.Count,
		Bytes:     si.Bytes,
		ColdBytes: si.ColdBytes,
		Tiers:     si.Placements.Strings(),
		Active:    si.Active,
	}
	if si.Count > 0 {
		out.MinTS, out.MaxTS = api.UnixNano(si.MinTS), api.UnixNano(si.MaxTS)
	}
	if !si.Active {
		out.SealedAt = api.UTC(si.SealedAt)
		if !si.Digest.IsZero() {
			out.Digest = si.Digest.String()
		}
		out.Tombstoned = api.UTC(si.Tombstoned)
	}
	if si.Active && len(out.Tiers) == 0 {
		out.Tiers = []string{tiers.Hot.String()}
	}
	return out
}
