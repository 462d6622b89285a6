package warm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/tierd/tierd/tiers"
)

const (
	fuzzStream = "f"
	fuzzBase   = 5
)

// fuzzSeed builds a small valid segment file.
func fuzzSeed(f *testing.F, n, interval int) []byte {
	f.Helper()
	s := openStore(f, f.TempDir(), Options{IndexInterval: interval})
	recs := make([]tiers.Record, n)
	for i := range recs {
		recs[i] = tiers.Record{Offset: fuzzBase + uint64(i), TS: int64(100 - i*3%7), Key: string(rune('a' + i%3)), Value: []byte{byte(i), 1, 2}, JSON: i%3 == 1}
		if i%2 == 0 {
			recs[i].Tags = []string{"t"}
		}
	}
	commitSegment(f, s, fuzzStream, recs)
	b, err := os.ReadFile(s.Path(fuzzStream, fuzzBase))
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzOpenSegment writes arbitrary bytes as a segment file and reads it
// every way a caller can. Errors are fine; a panic, an out-of-range access,
// an error of the wrong kind, or a file that verifies but reads differently
// is not.
func FuzzOpenSegment(f *testing.F) {
	good := fuzzSeed(f, 12, 4)
	f.Add(good)
	f.Add(v1File(good))
	f.Add(oldFile(good, formatV2))
	f.Add(fuzzSeed(f, 1, 64))
	f.Add(good[:len(good)-9])
	f.Add(good[:40])
	f.Add([]byte{})
	// One directory per worker process, reused by every input: the inputs
	// run one at a time, and each closes its store (unmapping the file)
	// before the next rewrites it. Open is not used because its directory
	// fsync costs more than the whole read path.
	dir := f.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, fuzzStream), 0o755); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzOpenSegment(t, dir, data)
		// Every part of a file is checksummed, so random bytes rarely get
		// past the CRCs; re-sealing them lets the fuzzer reach the checks
		// of lengths, offsets, index and footer fields behind them.
		if fixed := resealCRCs(data); !bytes.Equal(fixed, data) {
			fuzzOpenSegment(t, dir, fixed)
		}
	})
}

// v1File rewrites a current (version 3) segment file as a version 1 file:
// the same records and tables, without the footer's sealed_at and the
// frames' JSON hints, so that the reader of the older format is tested on
// files it would really meet.
func v1File(b []byte) []byte {
	le := binary.LittleEndian
	out := oldFile(b, formatV1)
	flen := int(le.Uint32(out[len(out)-trailerLen:]))
	start := len(out) - trailerLen - flen
	body := out[start : len(out)-trailerLen-crcLen]
	v1 := append(bytes.Clone(body[:footerFixedLenV1]), body[footerFixedLen:]...)
	res := append(out[:start:start], v1...)
	res = le.AppendUint32(res, crc32.Checksum(v1, castagnoli))
	res = le.AppendUint32(res, uint32(len(v1)+crcLen))
	return append(res, trailerMagic[:]...)
}

// oldFile rewrites a current segment file as the given older version with
// the same footer: every frame's JSON hint bit cleared (and its CRC
// recomputed), and the header's version and CRC changed.
func oldFile(b []byte, version uint16) []byte {
	le := binary.LittleEndian
	out := bytes.Clone(b)
	le.PutUint16(out[4:], version)
	hdr := headerFixedLen + int(le.Uint16(out[6:]))
	le.PutUint32(out[hdr:], crc32.Checksum(out[:hdr], castagnoli))
	footerStart := len(out) - trailerLen - int(le.Uint32(out[len(out)-trailerLen:]))
	for pos := hdr + crcLen; pos < footerStart; {
		n := le.Uint32(out[pos:]) &^ frameJSON
		le.PutUint32(out[pos:], n)
		end := pos + frameHeaderLen + int(n)
		le.PutUint32(out[pos+4:], frameCRC(out[pos:pos+4], out[pos+frameHeaderLen:end]))
		pos = end
	}
	return out
}

// resealCRCs returns a copy of b with the header, frame and footer CRCs
// recomputed wherever the lengths they cover are in bounds.
func resealCRCs(b []byte) []byte {
	b = bytes.Clone(b)
	le := binary.LittleEndian
	if len(b) < headerFixedLen {
		return b
	}
	hdr := headerFixedLen + int(le.Uint16(b[6:]))
	if hdr+crcLen > len(b) {
		return b
	}
	le.PutUint32(b[hdr:], crc32.Checksum(b[:hdr], castagnoli))
	end := len(b)
	if len(b) >= hdr+crcLen+trailerLen {
		if fl := int(le.Uint32(b[len(b)-trailerLen:])); fl >= crcLen && fl <= len(b)-trailerLen-hdr-crcLen {
			end = len(b) - trailerLen - fl
			crcAt := len(b) - trailerLen - crcLen
			le.PutUint32(b[crcAt:], crc32.Checksum(b[end:crcAt], castagnoli))
		}
	}
	for pos := hdr + crcLen; pos+frameHeaderLen <= end; {
		n := int(le.Uint32(b[pos:]) &^ frameJSON)
		if n > end-pos-frameHeaderLen {
			break
		}
		le.PutUint32(b[pos+4:], frameCRC(b[pos:pos+4], b[pos+frameHeaderLen:pos+frameHeaderLen+n]))
		pos += frameHeaderLen + n
	}
	return b
}

// fuzzOpenSegment is the body of FuzzOpenSegment: it reads data as the
// segment file of (fuzzStream, fuzzBase) in dir.
func fuzzOpenSegment(t *testing.T, dir string, data []byte) {
	s, err := newStore(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	path := s.Path(fuzzStream, fuzzBase)
	// Unlink first: ext4 flushes a file rewritten by truncation on close,
	// which would make every input wait for the disk.
	os.Remove(path)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	wantKind := func(call string, err error) {
		var ce *tiers.CorruptionError
		if !errors.As(err, &ce) && !errors.Is(err, ErrUnsupportedVersion) {
			t.Fatalf("%s: %v is neither corruption nor an unsupported version", call, err)
		}
	}
	r, err := s.Acquire(fuzzStream, fuzzBase)
	if err != nil {
		wantKind("Acquire", err)
		return
	}
	defer r.Release()
	meta := r.Meta()
	if meta.Stream != fuzzStream || meta.Base != fuzzBase || meta.Bytes != int64(len(data)) || meta.Count == 0 {
		t.Fatalf("accepted file has meta %+v", meta)
	}

	d := tiers.NewDigester()
	var n uint64
	var scanErr error
	for rec, err := range r.Scan(tiers.AllRecords()) {
		if err != nil {
			wantKind("Scan", err)
			scanErr = err
			break
		}
		if rec.Offset != meta.Base+n {
			t.Fatalf("Scan yielded offset %d, want %d", rec.Offset, meta.Base+n)
		}
		if rec.JSON && binary.LittleEndian.Uint16(data[4:]) < formatVersion {
			t.Fatalf("a version %d file gave offset %d a JSON hint", binary.LittleEndian.Uint16(data[4:]), rec.Offset)
		}
		d.Add(&rec)
		n++
	}
	r.MayContainKey("a")
	for _, off := range []uint64{meta.Base, meta.Last, meta.Base + meta.Count/2} {
		if _, err := r.Get(off); err != nil {
			wantKind("Get", err)
		}
	}
	verr := r.Verify()
	if verr != nil {
		wantKind("Verify", verr)
		return
	}
	// A file that verifies must read back completely and consistently.
	if scanErr != nil || n != meta.Count || d.Sum() != meta.Digest {
		t.Fatalf("verified file scanned %d of %d records (err %v), digest match %v", n, meta.Count, scanErr, d.Sum() == meta.Digest)
	}
	for off := meta.Base; off <= meta.Last; off++ {
		rec, err := r.Get(off)
		if err != nil || rec.Offset != off || rec.TS < meta.MinTS || rec.TS > meta.MaxTS || !r.MayContainKey(rec.Key) {
			t.Fatalf("verified file: Get(%d) = %+v, %v", off, rec, err)
		}
	}
}
