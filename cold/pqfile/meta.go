package pqfile

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go/format"

	"github.com/tierd/tierd/tiers"
)

// castagnoli is the CRC32C table of every checksum format 1.2 adds.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum blocks (format 1.2). A row group's rows are cut into blocks of at
// most blockMaxRows rows; a block also ends after the record that brings its
// canonical bytes (tiers.EncodedLen) to blockMaxBytes or more, and at the end
// of its row group. Each block's CRC32C is in tierd.row_groups, so a reader
// checks a block before it yields any row of it while holding less than
// blockMaxBytes plus one record, and a query that starts inside a row group
// decodes from the start of the block holding its first offset, not from the
// start of the group. The caps are part of the format: a reader refuses a
// block that goes on past them.
const (
	blockMaxRows  = 4096
	blockMaxBytes = 256 << 10
)

// groupMeta is what format 1.2 records of one row group in tierd.row_groups.
type groupMeta struct {
	rows         int64
	minTS, maxTS int64
	// bloomCRC is the CRC32C of the key bloom filter's bytes (its Thrift
	// header and bitset, the range the column chunk's bloom_filter_offset
	// and bloom_filter_length name), when hasBloom.
	bloomCRC uint32
	hasBloom bool
	blocks   []blockMeta
}

// blockMeta is one checksum block of a row group.
type blockMeta struct {
	rows int64
	// crc is the CRC32C of the block's records' canonical encodings
	// (tiers.AppendRecord), concatenated in offset order.
	crc uint32
}

// appendRecordCRC adds the canonical encoding of r to crc. scratch is reused
// between calls; it returns both.
func appendRecordCRC(crc uint32, scratch []byte, r *tiers.Record) (uint32, []byte) {
	scratch = tiers.AppendRecord(scratch[:0], r)
	return crc32.Update(crc, castagnoli, scratch), scratch
}

// encodeRowGroups renders tierd.row_groups: one line per row group,
//
//	<rows> <min_ts> <max_ts> <bloom> <block>,<block>,…\n
//
// where <bloom> is the bloom filter's CRC32C as 8 lower-case hex digits or
// "-" for none, and each <block> is <rows>:<crc32c as 8 hex digits>. All
// numbers are decimal without sign or leading zeros except a negative ts.
func encodeRowGroups(groups []groupMeta) string {
	var b []byte
	for _, g := range groups {
		b = strconv.AppendInt(b, g.rows, 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, g.minTS, 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, g.maxTS, 10)
		b = append(b, ' ')
		if g.hasBloom {
			b = appendHex32(b, g.bloomCRC)
		} else {
			b = append(b, '-')
		}
		b = append(b, ' ')
		for i, bl := range g.blocks {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, bl.rows, 10)
			b = append(b, ':')
			b = appendHex32(b, bl.crc)
		}
		b = append(b, '\n')
	}
	return string(b)
}

func appendHex32(b []byte, v uint32) []byte {
	return fmt.Appendf(b, "%08x", v)
}

// decodeRowGroups parses tierd.row_groups. It accepts only the canonical
// form encodeRowGroups writes (it re-encodes what it parsed and compares),
// and checks that each group's blocks add up to its rows, that no block is
// empty or over blockMaxRows, and that min_ts ≤ max_ts. wantGroups is the
// number of row groups the footer lists: a mismatch is an error, which also
// bounds the work a hostile value can cause.
func decodeRowGroups(s string, wantGroups int) ([]groupMeta, error) {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) == 0 || lines[len(lines)-1] != "" {
		return nil, fmt.Errorf("%s does not end with a newline", MetaRowGroups)
	}
	lines = lines[:len(lines)-1]
	if len(lines) != wantGroups {
		return nil, fmt.Errorf("%s lists %d row groups, the file has %d", MetaRowGroups, len(lines), wantGroups)
	}
	groups := make([]groupMeta, 0, len(lines))
	for i, line := range lines {
		g, err := decodeGroup(strings.TrimSuffix(line, "\n"))
		if err != nil {
			return nil, fmt.Errorf("%s: row group %d: %w", MetaRowGroups, i, err)
		}
		groups = append(groups, g)
	}
	if encodeRowGroups(groups) != s {
		return nil, fmt.Errorf("%s is not in canonical form", MetaRowGroups)
	}
	return groups, nil
}

func decodeGroup(line string) (groupMeta, error) {
	var g groupMeta
	f := strings.Split(line, " ")
	if len(f) != 5 {
		return g, fmt.Errorf("%d fields, want 5", len(f))
	}
	var err error
	if g.rows, err = strconv.ParseInt(f[0], 10, 64); err != nil || g.rows <= 0 {
		return g, fmt.Errorf("rows %q", f[0])
	}
	if g.minTS, err = strconv.ParseInt(f[1], 10, 64); err != nil {
		return g, fmt.Errorf("min_ts %q", f[1])
	}
	if g.maxTS, err = strconv.ParseInt(f[2], 10, 64); err != nil || g.maxTS < g.minTS {
		return g, fmt.Errorf("max_ts %q (min_ts %d)", f[2], g.minTS)
	}
	if f[3] != "-" {
		if g.bloomCRC, err = parseHex32(f[3]); err != nil {
			return g, fmt.Errorf("bloom %q", f[3])
		}
		g.hasBloom = true
	}
	blocks := strings.Split(f[4], ",")
	if int64(len(blocks)) > g.rows {
		return g, fmt.Errorf("%d blocks for %d rows", len(blocks), g.rows)
	}
	var sum int64
	for _, b := range blocks {
		rs, cs, ok := strings.Cut(b, ":")
		n, err := strconv.ParseInt(rs, 10, 64)
		if !ok || err != nil || n <= 0 || n > blockMaxRows {
			return g, fmt.Errorf("block %q", b)
		}
		crc, err := parseHex32(cs)
		if err != nil {
			return g, fmt.Errorf("block %q", b)
		}
		g.blocks = append(g.blocks, blockMeta{rows: n, crc: crc})
		sum += n
	}
	if sum != g.rows {
		return g, fmt.Errorf("blocks hold %d rows, the group %d", sum, g.rows)
	}
	return g, nil
}

func parseHex32(s string) (uint32, error) {
	if len(s) != 8 {
		return 0, fmt.Errorf("%q is not 8 hex digits", s)
	}
	v, err := strconv.ParseUint(s, 16, 32)
	return uint32(v), err
}

// metaChecksum is tierd.meta_crc32c of a file's key/value metadata: the
// CRC32C, as 8 lower-case hex digits, of every pair whose key starts with
// "tierd." except tierd.meta_crc32c itself, in key order, each as the
// key's length (uvarint), the key, the value's length (uvarint), the value.
// Keys a later minor version adds are covered without this reader knowing
// them. It returns an error when a tierd key appears twice.
func metaChecksum(kv []format.KeyValue) (string, error) {
	pairs := make([]format.KeyValue, 0, len(kv))
	for _, p := range kv {
		if strings.HasPrefix(p.Key, "tierd.") && p.Key != MetaChecksum {
			pairs = append(pairs, p)
		}
	}
	slices.SortStableFunc(pairs, func(a, b format.KeyValue) int { return strings.Compare(a.Key, b.Key) })
	var crc uint32
	var l [binary.MaxVarintLen64]byte
	for i, p := range pairs {
		if i > 0 && pairs[i-1].Key == p.Key {
			return "", fmt.Errorf("%s appears twice in the file metadata", p.Key)
		}
		for _, s := range []string{p.Key, p.Value} {
			n := binary.PutUvarint(l[:], uint64(len(s)))
			crc = crc32.Update(crc, castagnoli, l[:n])
			crc = crc32.Update(crc, castagnoli, []byte(s))
		}
	}
	return string(appendHex32(nil, crc)), nil
}

// parseVersion parses tierd.format_version: "<major>" (minor 0) or
// "<major>.<minor>", both decimal without leading zeros. A major other than
// 1 and 2 is ErrUnsupportedVersion; anything else is not a version.
func parseVersion(v string) (major, minor int, err error) {
	ms, rest, hasMinor := strings.Cut(v, ".")
	major, err = strconv.Atoi(ms)
	if err != nil || major < 1 || major > formatMajor || ms != strconv.Itoa(major) {
		return 0, 0, fmt.Errorf("%w: %s is %q, this reader knows major versions 1 to %d", ErrUnsupportedVersion, MetaFormatVersion, v, formatMajor)
	}
	if !hasMinor {
		return major, 0, nil
	}
	m, err := strconv.Atoi(rest)
	if err != nil || m < 0 || rest != strconv.Itoa(m) {
		return 0, 0, fmt.Errorf("%w: %s %q is not a version", ErrNotSegment, MetaFormatVersion, v)
	}
	return major, m, nil
}
