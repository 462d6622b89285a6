package engine

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/testenv"
	"github.com/tierd/tierd/tiers"
)

// TestColdStoreHung: with the cold store's MinIO paused (SIGSTOP: it
// accepts connections and never answers), a cold read fails as the store
// failing within the read timeout, the status says the store is
// unavailable, verify ends in bounded time reporting cold copies as
// unreadable (never missing or damaged), and an offload fails fast with its
// failure recorded and without calling the object a mismatch. Once MinIO
// continues, everything works again.
func TestColdStoreHung(t *testing.T) {
	m := testenv.StartDedicatedMinIO(t)
	storeURL := m.URL("minio")
	const readTimeout = time.Second
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	b, err := objstore.Open(context.Background(), storeURL, objstore.Options{AccessKey: m.AccessKey, SecretKey: m.SecretKey,
		Logger: log, Deadlines: objstore.Deadlines{ReadTimeout: readTimeout}, ProbeInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := cold.New(cold.Options{Bucket: b, SpoolDir: t.TempDir(), RowGroupRows: 64, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	e := open(t, t.TempDir(), func(o *Options) { o.Cold = ct; o.Logger = log })
	defer e.Close(context.Background())
	ctx := context.Background()
	want := fill(t, e, "s", 400)
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	segs := sealedSegments(t, e, "s")
	if len(segs) < 3 {
		t.Fatalf("want at least 3 sealed segments, have %d", len(segs))
	}
	for _, s := range segs[:len(segs)-1] { // the last one stays warm
		if _, err := e.Offload(ctx, "s", s.Base, false); err != nil {
			t.Fatal(err)
		}
	}
	warmSeg := segs[len(segs)-1]
	e.hot.Evict("s", warmSeg.Last+1) // reads of the cold segments go to the store
	if st := e.Status(ctx); st.ColdStore != "ok" {
		t.Fatalf("status before the pause: cold store %q", st.ColdStore)
	}

	m.Pause()
	guard, cancel := context.WithTimeout(ctx, 2*time.Minute) // a hang is minutes; a guard only
	defer cancel()

	start := time.Now()
	var readErr error
	var served []tiers.Placement
	for it, err := range e.Read(guard, "s", fromTo(segs[0].Base, segs[0].Last)) {
		if err != nil {
			readErr = err
			break
		}
		served = append(served, it.Tier)
	}
	if len(served) > 0 {
		t.Fatalf("a read of a cold-only segment was served from %v with the store paused (MinIO still stopped: %v)", served[:min(5, len(served))], m.Paused())
	}
	took := time.Since(start)
	if !errors.Is(readErr, cold.ErrStoreUnavailable) || errors.Is(readErr, context.Canceled) || errors.Is(readErr, context.DeadlineExceeded) {
		t.Fatalf("cold read with the store paused: %v, want cold.ErrStoreUnavailable", readErr)
	}
	if took > readTimeout+5*time.Second {
		t.Errorf("cold read with the store paused failed after %v, read timeout %v", took, readTimeout)
	}
	st := e.Status(ctx)
	if st.ColdStore != "unavailable" || st.ColdStoreSince.IsZero() || !strings.Contains(st.ColdStoreError, "did not answer") {
		t.Errorf("status with the store paused: %q since %v: %q", st.ColdStore, st.ColdStoreSince, st.ColdStoreError)
	}

	start = time.Now()
	rep, err := e.Verify(guard, "", nil)
	took = time.Since(start)
	if err != nil {
		t.Fatalf("verify with the store paused: %v", err)
	}
	if took > 30*time.Second {
		t.Errorf("verify with the store paused took %v", took)
	}
	unreadable := 0
	for _, f := range rep.Findings {
		switch {
		case f.Kind == api.FindingUnreadable && f.Tier == "cold":
			unreadable++
		default:
			t.Errorf("verify with the store paused: finding %+v; a store that does not answer is only unreadable", f)
		}
	}
	if unreadable < len(segs)-1 {
		t.Errorf("verify with the store paused reported %d unreadable cold copies, want at least %d: %+v", unreadable, len(segs)-1, rep.Findings)
	}

	start = time.Now()
	_, err = e.Offload(guard, "s", warmSeg.Base, false)
	if !errors.Is(err, cold.ErrStoreUnavailable) {
		t.Errorf("offload with the store paused: %v, want cold.ErrStoreUnavailable", err)
	}
	if took := time.Since(start); took > readTimeout+5*time.Second {
		t.Errorf("offload with the store paused took %v", took)
	}
	if msg, _, _, ok, err := e.LastFailure(ctx, "s", warmSeg.Base); err != nil || !ok || !strings.Contains(msg, "unavailable") {
		t.Errorf("the failed offload's recorded failure: %q %v %v", msg, ok, err)
	}
	if p, _ := placementsOf(t, e, "s", warmSeg.Base); p != tiers.Of(tiers.Warm) {
		t.Errorf("a failed offload changed the placements to %v", p)
	}
	if strings.Contains(logs.String(), "does not match the catalog") {
		t.Errorf("a store that did not answer was logged as a mismatching object:\n%s", logs.String())
	}

	m.Resume()
	deadline := time.Now().Add(30 * time.Second)
	for e.Status(ctx).ColdStore != "ok" {
		if time.Now().After(deadline) {
			t.Fatalf("MinIO continued, but the store is still unavailable after 30 s: %+v", e.Status(ctx))
		}
		time.Sleep(50 * time.Millisecond)
	}
	wantRecords(t, readAll(t, e, "s", tiers.AllRecords()), want)
	if _, err := e.Offload(ctx, "s", warmSeg.Base, false); err != nil {
		t.Fatalf("offload once MinIO continued: %v", err)
	}
	wantVerifyClean(t, e)
	if !strings.Contains(logs.String(), "cold store answering again") {
		t.Errorf("no log line says the store answers again:\n%s", logs.String())
	}
}

// syncBuffer is a log destination read while goroutines write to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
