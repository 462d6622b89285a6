package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tierd/tierd/client"
	"github.com/tierd/tierd/testenv"
)

// garbleFirstAnswers passes appends to the real API but replaces the first
// n answers' bodies with one the client cannot read, keeping the headers
// (unless dropEcho, which makes the server look too old to deduplicate):
// the batch is stored, and the client does not learn its offsets.
func garbleFirstAnswers(n int64, garbled *atomic.Int64, dropEcho bool) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost || garbled.Load() >= n {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != http.StatusOK {
				w.WriteHeader(rec.Code)
				w.Write(rec.Body.Bytes())
				return
			}
			garbled.Add(1)
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			if dropEcho {
				w.Header().Del("Tierd-Producer-Seq")
			}
			w.WriteHeader(http.StatusOK)
			w.Write([]byte(`{"stream":"s","first_off`)) // cut short
		})
	}
}

// produceThroughGarbling sends n records to stream "s" through a Producer
// (batches of 10) against the real API behind garbleFirstAnswers(garble,
// dropEcho), and flushes.
func produceThroughGarbling(t *testing.T, garble int64, dropEcho bool, n int) (*client.Client, *client.Producer, *outcomes, *atomic.Int64) {
	t.Helper()
	port := testenv.ReservePort(t)
	addr := port.Addr()
	garbled := &atomic.Int64{}
	serveAt(t, port, garbleFirstAnswers(garble, garbled, dropEcho))
	c := client.New(addr)
	outs := &outcomes{}
	// A linger far longer than the test: batches are cut by count (10
	// records), never by a timer a slow machine would fire mid-batch.
	p := client.NewProducer(c, client.ProducerOptions{BatchRecords: 10, Linger: time.Minute, MinBackoff: time.Millisecond, OnBatch: outs.add})
	closeLater(t, p)
	for i := range n {
		if err := p.Send("s", rec(0, i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return c, p, outs, garbled
}

// A batch whose 200 answer is lost is retried, and the retry, carrying the
// same producer ID and sequence number, is answered with the offsets the
// batch already has: every record is stored once, at the offsets OnBatch
// reports.
func TestProducerRetriesALostAnswerWithoutDoubling(t *testing.T) {
	const n = 50
	c, p, outs, garbled := produceThroughGarbling(t, 3, false, n)
	if garbled.Load() != 3 {
		t.Fatalf("%d answers garbled, want 3", garbled.Load())
	}
	if st := p.Stats(); st.Persisted != n || st.Failed != 0 || st.Retries < 3 {
		t.Fatalf("stats %+v: want %d persisted after 3 retries", st, n)
	}
	recs := readStream(t, c, "s")
	if len(recs) != n {
		t.Fatalf("%d records stored for %d sent", len(recs), n)
	}
	for _, o := range outs.all() {
		for k, id := range o.ids {
			if got := recs[o.first+uint64(k)].Key; got != id {
				t.Fatalf("OnBatch reported %s at %d, which holds %s", id, o.first+uint64(k), got)
			}
		}
	}
}

// Against a server that does not say it deduplicates (no echoed
// Tierd-Producer-Seq, as from a tierd too old for the headers), a 2xx
// whose answer is unreadable is not retried: the batch is reported failed
// rather than risked twice.
func TestProducerDoesNotRetryAnUnreadableAnswerWithoutDedup(t *testing.T) {
	c, p, _, _ := produceThroughGarbling(t, 1, true, 10)
	if st := p.Stats(); st.Failed != 10 || st.Retries != 0 {
		t.Fatalf("stats %+v: want the batch failed, not retried", st)
	}
	if n := len(readStream(t, c, "s")); n != 10 {
		t.Fatalf("%d records stored, want the batch once", n)
	}
}

// AppendBatchIdempotent used by hand: a repeated call is a duplicate with
// the first call's offsets; an older sequence is refused.
func TestAppendBatchIdempotent(t *testing.T) {
	port := testenv.ReservePort(t)
	addr := port.Addr()
	serveAt(t, port, nil)
	c := client.New(addr)
	ctx := context.Background()
	idem := client.Idempotence{ProducerID: client.NewProducerID(), Seq: 1}
	recs := []client.Record{rec(0, 0), rec(0, 1)}
	a, err := c.AppendBatchIdempotent(ctx, "s", idem, recs)
	if err != nil || a.Duplicate || a.FirstOffset != 0 {
		t.Fatalf("first: %+v %v", a, err)
	}
	b, err := c.AppendBatchIdempotent(ctx, "s", idem, recs)
	if err != nil || !b.Duplicate || b.FirstOffset != 0 || b.LastOffset != 1 {
		t.Fatalf("repeat: %+v %v", b, err)
	}
	idem.Seq = 2
	if _, err := c.AppendBatchIdempotent(ctx, "s", idem, recs); err != nil {
		t.Fatal(err)
	}
	idem.Seq = 1
	_, err = c.AppendBatchIdempotent(ctx, "s", idem, recs)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 409 || ae.Code != "producer_sequence" {
		t.Fatalf("older sequence: %v, want 409 producer_sequence", err)
	}
	if got := len(readStream(t, c, "s")); got != 4 {
		t.Fatalf("%d records stored, want 4", got)
	}
}
