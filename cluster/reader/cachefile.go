package reader

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// A disk cache file holds the bytes of one journal block, bound to where
// they came from: the object key and the byte range. The header names the
// range so that a file renamed, truncated, or holding another block's bytes
// is refused before DecodeBlock sees it; the trailing CRC32C covers the
// header and the data, so a flipped byte anywhere is caught
// (docs/format/cache.md is the specification).
//
//	0   magic "TDJC"
//	4   version (1)
//	5   reserved, three zero bytes
//	8   byte offset of the block in its object, uint64 LE
//	16  data length, uint64 LE
//	24  key length, uint16 LE
//	26  key
//	..  data
//	..  CRC32C (Castagnoli) of every byte before it, uint32 LE
const (
	cacheFileVersion   = 1
	cacheFileHeaderLen = 26
	cacheFileTrailer   = 4
	// maxCacheKeyLen bounds the object key a cache file names (S3 keys are
	// at most 1024 bytes).
	maxCacheKeyLen = 1024
)

var cacheFileMagic = [4]byte{'T', 'D', 'J', 'C'}

// castagnoli is the CRC32C table, built once.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCacheFile is the cause of every refusal of a cache file: the file is
// dropped and the block fetched again, so it never reaches a caller.
var errCacheFile = errors.New("reader: damaged disk cache file")

// appendCacheFile appends the cache file of data, the bytes
// [off, off+len(data)) of object key.
func appendCacheFile(dst []byte, key string, off int64, data []byte) []byte {
	start := len(dst)
	dst = append(dst, cacheFileMagic[:]...)
	dst = append(dst, cacheFileVersion, 0, 0, 0)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(off))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(len(data)))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(key)))
	dst = append(dst, key...)
	dst = append(dst, data...)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// decodeCacheFile checks a whole cache file and returns its key, offset and
// data (aliasing b). Anything but a file appendCacheFile wrote wraps
// errCacheFile.
func decodeCacheFile(b []byte) (key string, off int64, data []byte, err error) {
	fail := func(format string, args ...any) (string, int64, []byte, error) {
		return "", 0, nil, fmt.Errorf("%w: "+format, append([]any{errCacheFile}, args...)...)
	}
	if len(b) < cacheFileHeaderLen+cacheFileTrailer {
		return fail("%d bytes, shorter than a header", len(b))
	}
	if [4]byte(b[:4]) != cacheFileMagic {
		return fail("magic % x", b[:4])
	}
	if b[4] != cacheFileVersion || b[5] != 0 || b[6] != 0 || b[7] != 0 {
		return fail("version %d, reserved % x", b[4], b[5:8])
	}
	o := binary.LittleEndian.Uint64(b[8:])
	n := binary.LittleEndian.Uint64(b[16:])
	kl := int(binary.LittleEndian.Uint16(b[24:]))
	if o > math.MaxInt64 || kl > maxCacheKeyLen {
		return fail("offset %d, key of %d bytes", o, kl)
	}
	rest := uint64(len(b) - cacheFileHeaderLen - cacheFileTrailer)
	if uint64(kl) > rest || n != rest-uint64(kl) {
		return fail("%d bytes after the header for a %d-byte key and %d bytes of data", rest, kl, n)
	}
	end := len(b) - cacheFileTrailer
	if got, stored := crc32.Checksum(b[:end], castagnoli), binary.LittleEndian.Uint32(b[end:]); got != stored {
		return fail("crc32c %08x, stored %08x", got, stored)
	}
	return string(b[cacheFileHeaderLen : cacheFileHeaderLen+kl]), int64(o), b[cacheFileHeaderLen+kl : end], nil
}
