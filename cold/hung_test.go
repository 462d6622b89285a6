package cold_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/tiers"
)

// hungStore is an S3 endpoint that accepts every request and never
// answers, as a paused MinIO does; it records the methods it was sent.
func hungStore(t *testing.T) (url string, methods func() []string) {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method)
		mu.Unlock()
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return srv.URL, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// TestHungStore: against a store that does not answer, an upload fails as
// the store failing, within the read timeout, without sending the object
// and without calling the object it could not stat a mismatch; reads and
// the store check fail the same way, and the tier reports the store
// unavailable.
func TestHungStore(t *testing.T) {
	endpoint, methods := hungStore(t)
	const readTimeout = 500 * time.Millisecond
	b, err := objstore.Open(context.Background(), "s3://hung/tierd?region=us-east-1&endpoint="+endpoint,
		objstore.Options{AccessKey: "ak", SecretKey: "sk", Deadlines: objstore.Deadlines{ReadTimeout: readTimeout}, ProbeInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	tier, err := cold.New(cold.Options{Bucket: b, SpoolDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer tier.Close()
	m := tiers.SegmentMeta{Stream: "s", Base: 0, Last: 0, Count: 1, MinTS: 1, MaxTS: 1}
	records := func(yield func(tiers.Record, error) bool) {
		yield(tiers.Record{Offset: 0, TS: 1, Value: []byte("v")}, nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a guard only
	defer cancel()

	start := time.Now()
	_, err = tier.Upload(ctx, m, records)
	took := time.Since(start)
	unavailable := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, cold.ErrStoreUnavailable) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s against a hung store: %v, want cold.ErrStoreUnavailable and no cancellation", what, err)
		}
		var ce *tiers.CorruptionError
		if errors.As(err, &ce) || errors.Is(err, cold.ErrDigestMismatch) {
			t.Errorf("%s against a hung store reads as damage: %v", what, err)
		}
	}
	unavailable("upload", err)
	if !errors.Is(err, objstore.ErrTimeout) {
		t.Errorf("the first call to time out: %v, want objstore.ErrTimeout", err)
	}
	if took > readTimeout+5*time.Second {
		t.Errorf("upload took %v, read timeout %v", took, readTimeout)
	}
	if strings.Contains(logs.String(), "replacing") || strings.Contains(logs.String(), "does not match") {
		t.Errorf("a timed-out stat was logged as a mismatching object:\n%s", logs.String())
	}
	for _, m := range methods() {
		if m == http.MethodPut || m == http.MethodPost {
			t.Errorf("the upload sent %s though it could not stat the object: %v", m, methods())
		}
	}
	if h := tier.Health(); h.Available || !strings.Contains(h.Err, "stat") {
		t.Errorf("after a timeout the tier's health is %+v, want unavailable", h)
	}
	// The store is now known not to answer: the rest fail at once.
	start = time.Now()
	for _, err := range tier.Scan(ctx, m, tiers.AllRecords()) {
		unavailable("scan", err)
		break
	}
	unavailable("verify", tier.Verify(ctx, m))
	_, err = tier.Check(ctx, m)
	unavailable("check", err)
	unavailable("delete", tier.Delete(ctx, m))
	unavailable("check store", tier.CheckStore(ctx))
	for _, err := range tier.Objects(ctx, "") {
		unavailable("objects", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("six calls to a store known to be unavailable took %v", took)
	}
}
