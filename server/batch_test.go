package server

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/tiers"
)

// appendBatchBody POSTs body as the binary batch encoding.
func (e *testEnv) appendBatchBody(stream, contentType string, body []byte) response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/v1/streams/"+stream+"/records", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

// encodeBatch encodes recs, leaving out the ts of those whose TS is
// ingestTS so the server stamps them.
func encodeBatch(recs []tiers.Record) []byte {
	var e tiers.BatchEncoder
	for i := range recs {
		e.Add(&recs[i], recs[i].TS != ingestTS)
	}
	return bytes.Clone(e.Finish())
}

// The binary parser yields exactly what the NDJSON parser yields for the
// same records, ingest-time stamping included.
func TestParseBatchMatchesNDJSON(t *testing.T) {
	recs := []tiers.Record{
		{TS: 1_700_000_000_000_000_001, Key: "k", Tags: []string{"a", "b"}, Value: []byte(`{"x":[1,2]}`)},
		{TS: ingestTS, Value: []byte{0, 0xff, '\n'}},
		{TS: -5, Key: "only key"},
		{TS: ingestTS, Tags: []string{""}, Value: []byte(`"<&>"`)},
	}
	opts := ParseOptions{MaxRecordBytes: 1000, MaxRecords: 10, IngestTS: ingestTS}
	fromBatch, err := ParseBatch(bytes.NewReader(encodeBatch(recs)), opts)
	if err != nil {
		t.Fatal(err)
	}
	fromNDJSON, err := ParseNDJSON(bytes.NewReader(encodeInput(recs)), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(fromBatch) != len(recs) || len(fromNDJSON) != len(recs) {
		t.Fatalf("batch %d, NDJSON %d records, want %d", len(fromBatch), len(fromNDJSON), len(recs))
	}
	for i := range recs {
		if !fromBatch[i].Equal(&fromNDJSON[i]) || !fromBatch[i].Equal(&recs[i]) {
			t.Errorf("record %d: batch %+v, NDJSON %+v, sent %+v", i, fromBatch[i], fromNDJSON[i], recs[i])
		}
	}
}

func TestParseBatchRejects(t *testing.T) {
	opts := ParseOptions{MaxRecordBytes: 10, MaxRecords: 2}
	one := []tiers.Record{{TS: 1, Value: []byte("v")}}
	cases := []struct {
		name string
		body []byte
		want error
	}{
		{"empty body", nil, tiers.ErrInvalidBatch},
		{"empty batch", encodeBatch(nil), ErrEmptyBatch},
		{"NDJSON sent as batch", []byte(`{"value":1}`), tiers.ErrInvalidBatch},
		{"too many records", encodeBatch(append(append(one, one...), one...)), tiers.ErrBatchTooLarge},
		{"value too large", encodeBatch([]tiers.Record{{Value: make([]byte, 11)}}), tiers.ErrRecordTooLarge},
	}
	for _, c := range cases {
		recs, err := ParseBatch(bytes.NewReader(c.body), opts)
		if !errors.Is(err, c.want) || recs != nil {
			t.Errorf("%s: %d records, err %v, want %v", c.name, len(recs), err, c.want)
		}
	}
	_, err := ParseBatch(io.MultiReader(bytes.NewReader(encodeBatch(one)[:5]), errReader{}), opts)
	if !errors.Is(err, ErrBodyRead) {
		t.Errorf("read error: %v, want ErrBodyRead", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestAppendBatchRoundTrip(t *testing.T) {
	e := newEnv(t, engine.Options{}, Options{})
	recs := []tiers.Record{
		{TS: 1_700_000_000_123_456_789, Key: "IF2406", Tags: []string{"fill"}, Value: []byte(`{"px":3521.4}`)},
		{TS: ingestTS, Value: []byte{0, 1, 0xfe}},
		{TS: 5},
	}
	for _, ct := range []string{tiers.BatchMediaType, tiers.BatchMediaType + "; version=1", "Application/Vnd.Tierd.Batch"} {
		r := e.appendBatchBody("bin", ct, encodeBatch(recs))
		if r.status != http.StatusOK {
			t.Fatalf("Content-Type %q: %d %s", ct, r.status, r.body)
		}
	}
	got := e.read("bin", "")
	if len(got) != 3*len(recs) {
		t.Fatalf("read %d records, want %d", len(got), 3*len(recs))
	}
	for i, w := range got {
		want := recs[i%len(recs)]
		if want.TS == ingestTS { // sent without ts: the server's clock
			want.TS = fixedNow.UnixNano()
		}
		if w.Offset != uint64(i) || w.TS != formatTS(want.TS) {
			t.Errorf("record %d: offset %d ts %s, want ts %s", i, w.Offset, w.TS, formatTS(want.TS))
		}
		var value []byte
		switch {
		case w.ValueB64 != nil:
			value, _ = base64.StdEncoding.DecodeString(*w.ValueB64)
		default:
			value = w.Value
		}
		if !bytes.Equal(value, want.Value) || (w.Key == nil) != (want.Key == "") || len(w.Tags) != len(want.Tags) {
			t.Errorf("record %d: %+v, want %+v", i, w, want)
		}
	}
}

// A damaged binary body is refused whole with a stable code, and the
// stream does not change.
func TestAppendBatchDamagedChangesNothing(t *testing.T) {
	e := newEnv(t, engine.Options{}, Options{MaxBodyBytes: 64 << 10, MaxRecordBytes: 1000, MaxBatchRecords: 50})
	e.mustAppend("existing", "{}\n{}\n{}")
	good := encodeBatch([]tiers.Record{{TS: 1, Key: "a", Value: []byte("one")}, {TS: 2, Key: "b", Value: []byte("two")}})
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 0x10; return b }
	reseal := func(b []byte) []byte {
		b = bytes.Clone(b[:len(b)-4])
		return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
	}
	many := make([]tiers.Record, 51)
	big := make([]tiers.Record, 40)
	for i := range big {
		big[i].Value = make([]byte, 1000)
		big[i].Key = strings.Repeat("k", 1000)
	}
	cases := []struct {
		name   string
		body   []byte
		status int
		code   string
	}{
		{"bit flipped in a value", flip(len(good) - 6), 400, "invalid_batch"},
		{"bit flipped in the count", flip(6), 400, "invalid_batch"},
		{"bit flipped in the checksum", flip(len(good) - 1), 400, "invalid_batch"},
		{"truncated", good[:len(good)-3], 400, "invalid_batch"},
		{"header only", good[:10], 400, "invalid_batch"},
		{"wrong magic", append([]byte("XDB1"), good[4:]...), 400, "invalid_batch"},
		{"NDJSON under the batch type", []byte(`{"value":1}` + "\n"), 400, "invalid_batch"},
		{"count larger than the records, resealed", reseal(append(good[:6:6], append([]byte{3, 0, 0, 0}, good[10:]...)...)), 400, "invalid_batch"},
		{"empty batch", encodeBatch(nil), 400, "empty_batch"},
		{"too many records", encodeBatch(many), 413, "batch_too_large"},
		{"value too large", encodeBatch([]tiers.Record{{Value: make([]byte, 1001)}}), 413, "record_too_large"},
		{"key too large", encodeBatch([]tiers.Record{{Key: strings.Repeat("k", tiers.MaxKeyBytes+1)}}), 413, "key_too_large"},
		{"key not UTF-8", encodeBatch([]tiers.Record{{Key: "\xff"}}), 400, "invalid_record"},
		{"body too large", encodeBatch(big), 413, "body_too_large"},
	}
	for _, stream := range []string{"fresh", "existing"} {
		for _, c := range cases {
			t.Run(stream+"/"+c.name, func(t *testing.T) {
				before := e.count(stream)
				wantError(t, e.appendBatchBody(stream, tiers.BatchMediaType, c.body), c.status, c.code)
				if after := e.count(stream); after != before {
					t.Errorf("records %d → %d after a rejected batch", before, after)
				}
			})
		}
	}
	// The undamaged body is accepted, so the cases above fail for their
	// damage alone.
	if r := e.appendBatchBody("existing", tiers.BatchMediaType, good); r.status != http.StatusOK {
		t.Fatalf("good body: %d %s", r.status, r.body)
	}
	if n := e.count("existing"); n != 5 {
		t.Fatalf("existing has %d records, want 5", n)
	}
}
