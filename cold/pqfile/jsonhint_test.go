package pqfile

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// TestJSONHintWritesTheSameFile: a record's JSON hint only saves Write the
// check. A segment whose JSON values carry the hint converts to exactly the
// bytes it converts to without hints, in format 2 as in format 1, so that
// a hint lost on the way (a WAL replay, the cluster journal) costs time and
// never changes a file.
func TestJSONHintWritesTheSameFile(t *testing.T) {
	recs := mixedRecords(3000, 40)
	hint := func(on bool) int {
		n := 0
		for i := range recs {
			recs[i].JSON = on && i%4 != 0 && IsJSON(recs[i].Value)
			if recs[i].JSON {
				n++
			}
		}
		return n
	}
	if n := hint(true); n < 300 || n == len(recs) {
		t.Fatalf("%d of %d records hinted: the segment must mix hinted, unhinted JSON and other values", n, len(recs))
	}
	for _, version := range []int{1, 2} {
		opts := Options{Version: version, RowGroupRows: 700}
		hint(true)
		withHints, _ := writeBytes(t, "s", recs, opts)
		hint(false)
		plain, _ := writeBytes(t, "s", recs, opts)
		// Everything before the Parquet footer (every page of every
		// column) is the same; the footer is compared by size, because
		// it differs between any two writes of the same records.
		if len(withHints) != len(plain) || !bytes.Equal(pages(withHints), pages(plain)) {
			t.Fatalf("format %d: the file with hints (%d bytes) differs from the one without (%d bytes)", version, len(withHints), len(plain))
		}
	}
}

// pages is a Parquet file's bytes before its footer: "PAR1" and the column
// chunks.
func pages(file []byte) []byte {
	n := len(file) - 8 - int(binary.LittleEndian.Uint32(file[len(file)-8:]))
	return file[:n]
}
