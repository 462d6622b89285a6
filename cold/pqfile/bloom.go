package pqfile

import (
	"fmt"
	"hash/crc32"

	"github.com/parquet-go/parquet-go/bloom"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// maxBloomBytes bounds the bloom filter a reader loads. Write sizes a filter
// at 10 bits per distinct key of a row group (125 KB for 100 000 keys); a
// footer that claims more than this is damaged.
const maxBloomBytes = 64 << 20

// bloomState is a row group's key bloom filter as loaded: filter is nil
// when the filter cannot be trusted (its CRC32C does not match, or the file
// predates checksums), and then a key query reads the group.
type bloomState struct {
	filter bloom.SplitBlockFilter
	// err says why the filter is not trusted; nil when it is.
	err error
}

// mayHaveKey reports whether row group g may hold key, by its key bloom
// filter when the filter is trustworthy: in format 1.2 its bytes must match
// the CRC32C in tierd.row_groups. A filter that fails is ignored (the group
// is read; Verify reports the damage), as is every filter of an older file:
// one flipped bit in a filter would otherwise make a key read skip the
// records it asks for, silently.
func (rd *Reader) mayHaveKey(g *groupInfo, key string) (bool, error) {
	if !rd.checksums || g.meta == nil || !g.meta.hasBloom {
		return true, nil
	}
	st, err := rd.loadBloom(g)
	if err != nil {
		return false, err
	}
	if st.filter == nil {
		return true, nil
	}
	return st.filter.Check(bloom.XXH64{}.Sum64([]byte(key))), nil
}

// IgnoredBloomFilters returns why each key bloom filter Scans loaded so far
// was not trusted (in a format 1.2 file: damage), so the caller can log
// what reads worked around; Verify reports the same damage.
func (rd *Reader) IgnoredBloomFilters() []error {
	var out []error
	for i := range rd.blooms {
		if st := rd.blooms[i].Load(); st != nil && st.filter == nil {
			out = append(out, st.err)
		}
	}
	return out
}

// loadBloom reads and checks g's key bloom filter once per Reader. It
// returns an error only when the store fails; a damaged filter is a
// bloomState with a nil filter and the reason.
func (rd *Reader) loadBloom(g *groupInfo) (*bloomState, error) {
	if st := rd.blooms[g.index].Load(); st != nil {
		return st, nil
	}
	ioErrs := rd.ra.ioErrs.Load()
	var st *bloomState
	err := protect(func() error {
		var err error
		st, err = rd.readBloom(g)
		return err
	})
	if err != nil {
		return nil, rd.classify(ioErrs, "reading the key bloom filter of", err)
	}
	rd.blooms[g.index].CompareAndSwap(nil, st)
	return rd.blooms[g.index].Load(), nil
}

// readBloom reads g's key bloom filter: the bytes its column chunk names,
// checked against the CRC32C in tierd.row_groups (format 1.2), then
// parsed: a Thrift BloomFilterHeader (split-block algorithm, xxHash,
// uncompressed) followed by exactly NumBytes of bitset, a whole number of
// 32-byte blocks. An error is the store's; damage is in the state.
func (rd *Reader) readBloom(g *groupInfo) (*bloomState, error) {
	md := &rd.file.Metadata().RowGroups[g.index].Columns[rd.colKey].MetaData
	off, n := md.BloomFilterOffset, int64(md.BloomFilterLength)
	if off <= 0 {
		return &bloomState{err: fmt.Errorf("%w: row group %d: no key bloom filter", ErrBloomFilter, g.index)}, nil
	}
	if n <= 0 || n > maxBloomBytes || n > rd.footerStart-off {
		return &bloomState{err: fmt.Errorf("%w: row group %d: key bloom filter of %d bytes at %d", ErrBloomFilter, g.index, n, off)}, nil
	}
	b := make([]byte, n)
	if _, err := rd.ra.ReadAt(b, off); err != nil {
		return nil, err
	}
	if g.meta != nil && g.meta.hasBloom {
		if got := crc32.Checksum(b, castagnoli); got != g.meta.bloomCRC {
			return &bloomState{err: fmt.Errorf("%w: row group %d: key bloom filter crc32c %08x, %s says %08x", ErrBloomFilter, g.index, got, MetaRowGroups, g.meta.bloomCRC)}, nil
		}
	}
	var proto thrift.CompactProtocol
	pr := proto.NewReaderFromBytes(b)
	var h format.BloomFilterHeader
	if err := thrift.NewDecoder(pr).Decode(&h); err != nil {
		return &bloomState{err: fmt.Errorf("%w: row group %d: key bloom filter header: %v", ErrBloomFilter, g.index, err)}, nil
	}
	bits := b[pr.BytesRead():]
	_, split := h.Algorithm.Value.(*format.SplitBlockAlgorithm)
	_, xx := h.Hash.Value.(*format.XxHash)
	_, plain := h.Compression.Value.(*format.BloomFilterUncompressed)
	switch {
	case !split || !xx || !plain:
		return &bloomState{err: fmt.Errorf("%w: row group %d: key bloom filter is not an uncompressed split-block xxHash filter", ErrBloomFilter, g.index)}, nil
	case int64(h.NumBytes) != int64(len(bits)) || len(bits) == 0 || len(bits)%bloom.BlockSize != 0:
		return &bloomState{err: fmt.Errorf("%w: row group %d: key bloom filter header says %d bytes, %d follow it", ErrBloomFilter, g.index, h.NumBytes, len(bits))}, nil
	}
	return &bloomState{filter: bloom.MakeSplitBlockFilter(bits)}, nil
}

// verifyBloom is Verify's check of g's key bloom filter, given every
// distinct key of the group: in format 1.2 the filter's bytes must match
// their CRC32C, and in every version a filter the footer names must parse
// and must answer "maybe" for every key the group holds (a false "absent"
// would make engines that use the filter, DuckDB among them, skip the
// group).
func (rd *Reader) verifyBloom(g *groupInfo, keys map[string]struct{}) error {
	md := &rd.file.Metadata().RowGroups[g.index].Columns[rd.colKey].MetaData
	if md.BloomFilterOffset == 0 {
		return nil // none; checkGroups made sure 1.2 metadata agrees
	}
	st, err := rd.loadBloom(g)
	if err != nil {
		return err
	}
	if st.filter == nil {
		return rd.corrupt(st.err)
	}
	for k := range keys {
		if !st.filter.Check(bloom.XXH64{}.Sum64([]byte(k))) {
			return rd.corrupt(fmt.Errorf("%w: row group %d: key bloom filter rules out key %q, which the group holds", ErrBloomFilter, g.index, k))
		}
	}
	return nil
}
