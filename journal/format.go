package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"unicode/utf8"

	"github.com/tierd/tierd/tiers"
)

// The layout; docs/format/journal.md is its specification.
const (
	// FormatVersion is written in the object header and in every block.
	// Readers reject other versions rather than guess at their bytes.
	FormatVersion = 1

	// MaxBlockBytes bounds one block (one batch). It keeps a damaged length
	// field from asking for gigabytes; the writer refuses larger batches,
	// so a reader never meets a longer valid block.
	MaxBlockBytes = 256 << 20
	// MaxBlockRecords bounds the records of one block, for the same reason:
	// a count is checked against it before the records are allocated. It
	// is far above the server's batch limit (100 000 by default).
	MaxBlockRecords = 1 << 20
	// MaxNodeIDLen is the longest node id a header holds (a host name is
	// at most 253 bytes).
	MaxNodeIDLen = 255
	// MaxHeaderLen is the longest object header: a ranged GET of this many
	// bytes from the start of an object is enough for DecodeHeader.
	MaxHeaderLen = headerFixedLen + MaxNodeIDLen
	// FooterLen is the size of the footer that ends every object.
	FooterLen = 24

	// maxTags matches the record decoder of tiers: a tag count above it is
	// damage, and the writer refuses such a record.
	maxTags = 1 << 16

	headerFixedLen  = 29 // magic 4, version 1, flags 1, length 2, epoch 8, created 8, node id length 1, crc 4
	blockHeaderLen  = 20 // magic 4, version 1, flags 1, reserved 2, length 4, position 8
	blockTrailerLen = 4  // crc32c
	// minRecordLen is the smallest record encoding: offset 1, ts 8, and
	// zero lengths for key, tag count and value. It bounds the count a
	// block of a given size can claim.
	minRecordLen = 12
	// minBlockLen is a block of a one-byte stream name and one empty record.
	minBlockLen = blockHeaderLen + 2 + 1 + minRecordLen + blockTrailerLen

	flagProducer = 1 << 0
)

var (
	objectMagic = [4]byte{'T', 'J', 'N', 'L'}
	blockMagic  = [4]byte{'T', 'J', 'B', 'K'}
	footerMagic = [4]byte{'T', 'J', 'N', 'F'}
)

// castagnoli is the CRC32C table, built once (crc32 uses the SSE4.2 /
// ARMv8 instructions with it).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors of the decoders. Damage is always a *tiers.CorruptionError whose
// Err wraps one of ErrTruncated, ErrChecksum, ErrVersion, ErrMalformed or
// ErrMismatch; check them with errors.Is.
var (
	// ErrTruncated reports bytes that end before their length field says.
	ErrTruncated = errors.New("journal: truncated")
	// ErrChecksum reports a block, header or footer whose CRC32C does not
	// match its bytes.
	ErrChecksum = errors.New("journal: checksum mismatch")
	// ErrVersion reports a format version this build does not read.
	ErrVersion = errors.New("journal: unknown format version")
	// ErrMalformed reports bytes that are not a journal block or object:
	// a wrong magic, a reserved bit set, a length out of its bounds, or
	// checksummed bytes that do not decode (which no torn or flipped
	// write can produce).
	ErrMalformed = errors.New("journal: malformed")
	// ErrMismatch reports a whole, intact block that is not the one the
	// catalog describes: another stream, record count or position. The
	// catalog row or the object under its key is wrong; either way the
	// records must not be served.
	ErrMismatch = errors.New("journal: block does not match the catalog")
)

// Errors of the Writer. A refused batch leaves the object as it was.
var (
	// ErrInvalidBatch refuses a batch a reader would reject: a bad stream
	// name, no records, a record that fails tiers.Record.Validate, or a
	// producer with sequence 0 (or a sequence without a producer).
	ErrInvalidBatch = errors.New("journal: invalid batch")
	// ErrBatchTooLarge refuses a batch above MaxBlockBytes or
	// MaxBlockRecords; the caller splits it.
	ErrBatchTooLarge = errors.New("journal: batch too large for one block")
	// ErrInvalidHeader refuses a header a reader would reject: a node id
	// empty, longer than MaxNodeIDLen or not UTF-8.
	ErrInvalidHeader = errors.New("journal: invalid header")
	// ErrFinished refuses an Add after Finish, or before the first Reset.
	ErrFinished = errors.New("journal: writer is finished; Reset starts the next object")
)

// Header opens every object: who wrote it and when. It lets garbage
// collection and verify tell a node's objects apart without the catalog.
type Header struct {
	// NodeID is the writing node's cluster.node_id (1..255 bytes, UTF-8).
	NodeID string
	// Epoch is the node's epoch when it wrote the object: a restarted node
	// takes a newer one and fences the old process.
	Epoch uint64
	// CreatedAt is when the object was started, Unix nanoseconds.
	CreatedAt int64
}

func (h *Header) validate() error {
	if len(h.NodeID) == 0 || len(h.NodeID) > MaxNodeIDLen || !utf8.ValidString(h.NodeID) {
		return fmt.Errorf("%w: node id of %d bytes must be 1..%d bytes of UTF-8", ErrInvalidHeader, len(h.NodeID), MaxNodeIDLen)
	}
	return nil
}

// appendHeader appends h's encoding; h must have passed validate.
func appendHeader(dst []byte, h *Header) []byte {
	start := len(dst)
	dst = append(dst, objectMagic[:]...)
	dst = append(dst, FormatVersion, 0)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(headerFixedLen+len(h.NodeID)))
	dst = binary.LittleEndian.AppendUint64(dst, h.Epoch)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(h.CreatedAt))
	dst = append(dst, byte(len(h.NodeID)))
	dst = append(dst, h.NodeID...)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// DecodeHeader decodes the object header at the start of b, which may go
// on past it (a ranged GET of the first MaxHeaderLen bytes is enough), and
// returns it with its length. key names the object in errors.
func DecodeHeader(b []byte, key string) (Header, int, error) {
	fail := func(off int, cause error, format string, args ...any) (Header, int, error) {
		return Header{}, 0, corrupt(key, int64(off), cause, format, args...)
	}
	if len(b) < headerFixedLen+1 {
		return fail(0, ErrTruncated, "%d bytes, an object header needs at least %d", len(b), headerFixedLen+1)
	}
	if [4]byte(b[:4]) != objectMagic {
		return fail(0, ErrMalformed, "object magic % x, want %q", b[:4], objectMagic[:])
	}
	if b[4] != FormatVersion {
		return fail(4, ErrVersion, "object version %d, this build reads %d", b[4], FormatVersion)
	}
	if b[5] != 0 {
		return fail(5, ErrMalformed, "object flags %#x, none are defined", b[5])
	}
	n := int(binary.LittleEndian.Uint16(b[6:]))
	nodeLen := int(b[24])
	if nodeLen == 0 || n != headerFixedLen+nodeLen {
		return fail(6, ErrMalformed, "header length %d with a node id of %d bytes", n, nodeLen)
	}
	if len(b) < n {
		return fail(0, ErrTruncated, "%d bytes, the header says %d", len(b), n)
	}
	if got, want := crc32.Checksum(b[:n-4], castagnoli), binary.LittleEndian.Uint32(b[n-4:]); got != want {
		return fail(n-4, ErrChecksum, "header crc32c %08x, stored %08x", got, want)
	}
	h := Header{
		Epoch:     binary.LittleEndian.Uint64(b[8:]),
		CreatedAt: int64(binary.LittleEndian.Uint64(b[16:])),
		NodeID:    string(b[25 : 25+nodeLen]),
	}
	if !utf8.ValidString(h.NodeID) {
		return fail(25, ErrMalformed, "node id is not UTF-8")
	}
	return h, n, nil
}

// footer is the decoded end of an object.
type footer struct {
	blocks uint32
	pos    uint64 // where the footer starts: the header and every block before it
	chain  uint32 // CRC32C over the header's crc and each block's crc, in order
}

func appendFooter(dst []byte, f footer) []byte {
	start := len(dst)
	dst = append(dst, footerMagic[:]...)
	dst = binary.LittleEndian.AppendUint32(dst, f.blocks)
	dst = binary.LittleEndian.AppendUint64(dst, f.pos)
	dst = binary.LittleEndian.AppendUint32(dst, f.chain)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// decodeFooter decodes the last FooterLen bytes of an object of size
// objLen; b is those bytes.
func decodeFooter(b []byte, objLen int, key string) (footer, error) {
	off := int64(objLen - FooterLen)
	if [4]byte(b[:4]) != footerMagic {
		return footer{}, corrupt(key, off, ErrMalformed, "footer magic % x, want %q", b[:4], footerMagic[:])
	}
	if got, want := crc32.Checksum(b[:20], castagnoli), binary.LittleEndian.Uint32(b[20:]); got != want {
		return footer{}, corrupt(key, off+20, ErrChecksum, "footer crc32c %08x, stored %08x", got, want)
	}
	f := footer{
		blocks: binary.LittleEndian.Uint32(b[4:]),
		pos:    binary.LittleEndian.Uint64(b[8:]),
		chain:  binary.LittleEndian.Uint32(b[16:]),
	}
	if f.pos != uint64(off) {
		return footer{}, corrupt(key, off+8, ErrTruncated, "footer says it starts at byte %d, the object has it at %d", f.pos, off)
	}
	return f, nil
}

// chainCRC extends the footer's chain by one checksum, given as the 4
// bytes it is stored in (a local array would escape through crc32.Update).
func chainCRC(chain uint32, stored []byte) uint32 {
	return crc32.Update(chain, castagnoli, stored)
}

// corrupt builds the typed error of every damage the decoders find.
func corrupt(key string, off int64, cause error, format string, args ...any) error {
	return &tiers.CorruptionError{Path: key, Offset: off, Err: fmt.Errorf("%w: "+format, append([]any{cause}, args...)...)}
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
