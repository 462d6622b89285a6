package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/engine"
)

// appendAs appends body with the given producer headers (name, value
// pairs) and returns the answer.
func (e *testEnv) appendAs(stream, body string, headers ...string) response {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/streams/"+stream+"/records", strings.NewReader(body))
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

func TestIdempotentProducerAppends(t *testing.T) {
	e := newEnv(t, engine.Options{}, Options{})
	const id = "00112233445566778899aabbccddeeff"
	two := `{"value":1}` + "\n" + `{"value":2}` + "\n"
	decode := func(r response) appendOut {
		t.Helper()
		if r.status != 200 {
			t.Fatalf("append: %d %s", r.status, r.body)
		}
		var out appendOut
		if err := json.Unmarshal(r.body, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	first := decode(e.appendAs("s", two, api.HeaderProducerID, id, api.HeaderProducerSeq, "1"))
	if first.Duplicate || first.FirstOffset != 0 || first.Count != 2 {
		t.Fatalf("first attempt %+v", first)
	}
	e.mustAppend("s", `{"value":"other writer"}`+"\n")
	retry := decode(e.appendAs("s", two, api.HeaderProducerID, id, api.HeaderProducerSeq, "1"))
	if r := e.appendAs("s", two, api.HeaderProducerID, id, api.HeaderProducerSeq, "1"); r.header.Get(api.HeaderProducerSeq) != "1" {
		t.Errorf("answer echoes %s %q, want \"1\"", api.HeaderProducerSeq, r.header.Get(api.HeaderProducerSeq))
	}
	if !retry.Duplicate || retry.FirstOffset != 0 || retry.LastOffset != 1 || retry.Count != 2 {
		t.Fatalf("retry %+v, want the first attempt's offsets marked duplicate", retry)
	}
	if !strings.Contains(string(retry.bodyJSON(t)), `"duplicate":true`) {
		t.Errorf("retry body lacks \"duplicate\":true")
	}
	if n := e.count("s"); n != 3 {
		t.Fatalf("%d records stored, want 3", n)
	}
	next := decode(e.appendAs("s", two, api.HeaderProducerID, id, api.HeaderProducerSeq, "2"))
	if next.Duplicate || next.FirstOffset != 3 {
		t.Fatalf("batch 2: %+v", next)
	}
	if strings.Contains(string(e.appendAs("s", two, api.HeaderProducerID, id, api.HeaderProducerSeq, "3").body), "duplicate") {
		t.Errorf("a new batch's answer mentions duplicate")
	}

	// Out of sequence: 409, nothing appended.
	before := e.count("s")
	wantError(t, e.appendAs("s", two, api.HeaderProducerID, id, api.HeaderProducerSeq, "1"), 409, "producer_sequence")
	wantError(t, e.appendAs("s", `{"value":1}`+"\n", api.HeaderProducerID, id, api.HeaderProducerSeq, "3"), 409, "producer_sequence")
	// Bad headers: 400, nothing appended.
	for _, h := range [][]string{
		{api.HeaderProducerID, id},
		{api.HeaderProducerSeq, "4"},
		{api.HeaderProducerID, id, api.HeaderProducerSeq, "0"},
		{api.HeaderProducerID, id, api.HeaderProducerSeq, "-1"},
		{api.HeaderProducerID, id, api.HeaderProducerSeq, "4", api.HeaderProducerSeq, "5"},
		{api.HeaderProducerID, "xyz", api.HeaderProducerSeq, "4"},
		{api.HeaderProducerID, strings.ToUpper(id), api.HeaderProducerSeq, "4"},
		{api.HeaderProducerID, strings.Repeat("0", 32), api.HeaderProducerSeq, "4"},
	} {
		wantError(t, e.appendAs("s", two, h...), 400, "invalid_producer")
	}
	if n := e.count("s"); n != before {
		t.Fatalf("refused appends changed the stream: %d records, want %d", n, before)
	}
}

func (o appendOut) bodyJSON(t *testing.T) []byte {
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzParseProducer feeds arbitrary header values to the producer header
// parser: it must refuse them or return an ID that prints back as the
// header it came from and a sequence of at least 1.
func FuzzParseProducer(f *testing.F) {
	f.Add("00112233445566778899aabbccddeeff", "1")
	f.Add("00000000000000000000000000000000", "18446744073709551615")
	f.Add("0011223344556677889", "-0")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, id, seq string) {
		r, _ := http.NewRequest("POST", "/", nil)
		r.Header[api.HeaderProducerID] = []string{id}
		r.Header[api.HeaderProducerSeq] = []string{seq}
		p, err := parseProducer(r)
		if err != nil {
			if !errors.Is(err, errInvalidProducer) {
				t.Fatalf("error %v does not wrap errInvalidProducer", err)
			}
			return
		}
		want, perr := strconv.ParseUint(seq, 10, 64)
		if p.ID.String() != id || p.Seq == 0 || perr != nil || p.Seq != want {
			t.Fatalf("parsed %q %q as %s %d", id, seq, p.ID, p.Seq)
		}
	})
}
