package boot

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/policy"
)

// TestCheckCold: the start-up check answers within cold.read_timeout and a
// second, says in a warning what is wrong with the store and leaves the
// store unavailable when it did not answer; a store that works gets an
// info line.
func TestCheckCold(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "ak")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "sk")
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hung.Close()
	defer close(release)
	denied := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidAccessKeyId</Code><Message>The Access Key Id you provided does not exist in our records.</Message></Error>`))
	}))
	defer denied.Close()
	cases := []struct {
		name, store string
		want        error
		log         string
	}{
		{"file store", "", nil, "cold store answers"},
		{"hung", "s3://hung/tierd?region=us-east-1&endpoint=" + hung.URL, objstore.ErrTimeout, "does not answer within cold.read_timeout"},
		{"denied", "s3://denied/tierd?region=us-east-1&endpoint=" + denied.URL, objstore.ErrAccessDenied, "the credentials were refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := policy.Default()
			cfg.DataDir = t.TempDir()
			cfg.Cold.Store = tc.store
			cfg.Cold.ReadTimeout = 300 * time.Millisecond
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			ct, err := OpenCold(context.Background(), cfg, log, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ct.Close()
			start := time.Now()
			err = CheckCold(context.Background(), ct, cfg, log)
			if took := time.Since(start); took > cfg.Cold.ReadTimeout+time.Second+3*time.Second {
				t.Errorf("the check took %v", took)
			}
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("CheckCold = %v, want %v", err, tc.want)
			}
			if !strings.Contains(logs.String(), tc.log) {
				t.Errorf("log does not say %q:\n%s", tc.log, logs.String())
			}
			if tc.want != nil && !strings.Contains(logs.String(), "level=WARN") {
				t.Errorf("a broken store is not a warning:\n%s", logs.String())
			}
			if h := ct.Health(); h.Available != (tc.name != "hung") {
				t.Errorf("health after the check: %+v", h)
			}
		})
	}
	if err := CheckCold(context.Background(), nil, policy.Default(), slog.New(slog.DiscardHandler)); err != nil {
		t.Errorf("CheckCold without a cold tier: %v", err)
	}
}
