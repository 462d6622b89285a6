package warm

import (
	"encoding/binary"
	"slices"
)

// The key filter is a classic bloom filter of m = 64·W bits with k probes
// derived by double hashing (Kirsch–Mitzenmacher) from one 64-bit hash:
//
//	h  = fmix64(FNV-1a-64(key))
//	h1 = h & 0xffffffff, h2 = (h >> 32) | 1
//	probe i (0 ≤ i < k) sets bit (h1 + i·h2) mod m
//
// Bit j is bit j%64 of little-endian word j/64. The hash is fixed by the
// format (not seeded per process) because the filter is stored on disk.
const (
	bloomBitsPerKey = 10 // ≈1% false positives with k = 7
	bloomK          = 7
	maxBloomK       = 32
)

// keyHash is the filter's hash of a key.
func keyHash(key string) uint64 {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	h := uint64(offset64)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= prime64
	}
	// FNV alone mixes the high bits poorly for short keys; murmur3's
	// finalizer spreads every input bit over the whole word.
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// buildBloom returns the filter words for a set of key hashes (duplicates
// allowed). It sorts hashes in place.
func buildBloom(hashes []uint64) []uint64 {
	slices.Sort(hashes)
	hashes = slices.Compact(hashes)
	words := max(1, (len(hashes)*bloomBitsPerKey+63)/64)
	bits := make([]uint64, words)
	m := uint64(words) * 64
	for _, h := range hashes {
		h1, h2 := h&0xffffffff, h>>32|1
		for i := uint64(0); i < bloomK; i++ {
			j := (h1 + i*h2) % m
			bits[j/64] |= 1 << (j % 64)
		}
	}
	return bits
}

// bloomMayContain probes a filter stored as little-endian words in b
// (len(b) = 8·words) with k probes.
func bloomMayContain(b []byte, k uint32, key string) bool {
	m := uint64(len(b)/8) * 64
	if m == 0 {
		return true
	}
	h := keyHash(key)
	h1, h2 := h&0xffffffff, h>>32|1
	for i := uint64(0); i < uint64(k); i++ {
		j := (h1 + i*h2) % m
		if binary.LittleEndian.Uint64(b[j/64*8:])&(1<<(j%64)) == 0 {
			return false
		}
	}
	return true
}
