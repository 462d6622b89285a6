package catalog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/tierd/tierd/tiers"
)

// A retention marker keeps a stream's retention watermark outside the
// catalog, so that a rebuilt catalog knows what retention deleted: without
// it, the WAL would replay deleted records and the tiers would not say that
// a range is gone on purpose. One small file per stream,
// <dir>/<stream>.retention, written atomically (temp file, fsync, rename,
// fsync of the directory) before the catalog commits a watermark that
// passes it, so the marker is never behind the catalog (writeMarker says
// how, on a full disk too). Layout
// (docs/format/retention.md), little-endian:
//
//	magic          4 bytes "TDRM"
//	version        u16 (1)
//	name_len       u16, 1..200
//	stream         name_len bytes
//	retained_from  u64: offsets below it were deleted by retention
//	crc            u32, CRC32C of every byte before it
const (
	markerVersion = 1
	markerSuffix  = ".retention"
	// markerTemp starts every temp file's name; no stream name starts with
	// a dot, so no marker is ever mistaken for one.
	markerTemp   = ".tmp-"
	markerMaxLen = 4 + 2 + 2 + 200 + 8 + 4
)

var markerMagic = [4]byte{'T', 'D', 'R', 'M'}

// errMarker is the cause of a damaged marker.
var errMarker = errors.New("catalog: damaged retention marker")

// markerPath is where stream's marker lives in dir.
func markerPath(dir, stream string) string {
	return filepath.Join(dir, stream+markerSuffix)
}

// encodeMarker returns the marker file of stream.
func encodeMarker(stream string, retainedFrom uint64) []byte {
	b := make([]byte, 0, markerMaxLen)
	b = append(b, markerMagic[:]...)
	b = binary.LittleEndian.AppendUint16(b, markerVersion)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(stream)))
	b = append(b, stream...)
	b = binary.LittleEndian.AppendUint64(b, retainedFrom)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeMarker is the inverse of encodeMarker; it errors, never panics, on
// any other bytes.
func decodeMarker(b []byte) (stream string, retainedFrom uint64, err error) {
	le := binary.LittleEndian
	switch {
	case len(b) < 8 || [4]byte(b[:4]) != markerMagic:
		return "", 0, fmt.Errorf("%w: bad magic", errMarker)
	case le.Uint16(b[4:]) != markerVersion:
		return "", 0, fmt.Errorf("%w: version %d, this build reads %d", errMarker, le.Uint16(b[4:]), markerVersion)
	}
	n := int(le.Uint16(b[6:]))
	if len(b) != 8+n+8+4 {
		return "", 0, fmt.Errorf("%w: %d bytes for a %d-byte name", errMarker, len(b), n)
	}
	body := b[:len(b)-4]
	if got, want := crc32.Checksum(body, castagnoli), le.Uint32(b[len(body):]); got != want {
		return "", 0, fmt.Errorf("%w: crc %08x, computed %08x", errMarker, want, got)
	}
	stream = string(b[8 : 8+n])
	if err := tiers.ValidateStreamName(stream); err != nil {
		return "", 0, fmt.Errorf("%w: %v", errMarker, err)
	}
	return stream, le.Uint64(b[8+n:]), nil
}

// writeMarker makes stream's marker in dir say retainedFrom, durably, before
// it returns. A stream's marker always has the same size, so once it exists
// it is overwritten in place and fsynced: that needs no new disk block, so
// retention can still delete (and free space) on a full disk, and a write
// of a few hundred bytes within one sector is not torn (were it, the crc
// says so). The first marker of a stream is created with a temp file,
// fsync, rename and a directory fsync.
func writeMarker(dir, stream string, retainedFrom uint64) error {
	b := encodeMarker(stream, retainedFrom)
	path := markerPath(dir, stream)
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Size() == int64(len(b)) {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err == nil {
			_, err = f.WriteAt(b, 0)
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			return fmt.Errorf("catalog: write retention marker of %s: %w", stream, err)
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("catalog: retention marker: %w", err)
	}
	f, err := os.CreateTemp(dir, markerTemp+stream+"-*")
	if err != nil {
		return fmt.Errorf("catalog: retention marker: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("catalog: write retention marker of %s: %w", stream, err)
	}
	return nil
}

// readMarker returns stream's marker in dir; ok is false when there is none.
func readMarker(dir, stream string) (retainedFrom uint64, ok bool, err error) {
	b, err := os.ReadFile(markerPath(dir, stream))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("catalog: read retention marker of %s: %w", stream, err)
	}
	if len(b) > markerMaxLen {
		return 0, false, fmt.Errorf("%w: %s is %d bytes", errMarker, markerPath(dir, stream), len(b))
	}
	name, from, err := decodeMarker(b)
	if err == nil && name != stream {
		err = fmt.Errorf("%w: it names stream %q", errMarker, name)
	}
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", markerPath(dir, stream), err)
	}
	return from, true, nil
}

// readMarkers returns the retention watermark of every stream with a marker
// in dir, and a line for each marker that could not be read (a damaged
// marker is reported, never guessed at). Leftover temp files are removed.
// A missing dir holds no markers.
func readMarkers(dir string) (map[string]uint64, []string, error) {
	out := map[string]uint64{}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("catalog: read retention markers: %w", err)
	}
	var problems []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, markerTemp) {
			os.Remove(filepath.Join(dir, name))
			continue
		}
		stream, ok := strings.CutSuffix(name, markerSuffix)
		if !ok || !e.Type().IsRegular() || tiers.ValidateStreamName(stream) != nil {
			continue
		}
		from, _, err := readMarker(dir, stream)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		out[stream] = from
	}
	return out, problems, nil
}
