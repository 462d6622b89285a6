package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/client"
)

// The writes line says whether the server takes writes, and if not, why,
// since when, and whether it clears by itself.
func TestStatusWritesLine(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		st   client.ServerStatus
		want []string
	}{
		{client.ServerStatus{Writes: "ok"}, []string{"writes:   ok\n"}},
		{client.ServerStatus{Writes: "disk_full", WritesError: "wal: create x:\n no space left on device", WritesSince: now.Add(-3 * time.Minute)},
			[]string{"writes:   REFUSED", "resumes by itself", "disk full", "3m", "no space left on device\n"}},
		{client.ServerStatus{Writes: "out_of_descriptors", WritesError: "too many open files", WritesSince: now.Add(-time.Second)},
			[]string{"REFUSED", "out of file descriptors"}},
		{client.ServerStatus{Writes: "wal_failed", WritesError: "fsync: input/output error"},
			[]string{"writes:   DISABLED until restart: WAL failed: fsync"}},
	} {
		var b bytes.Buffer
		if err := printStatus(&b, tc.st, now); err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("status with writes %q lacks %q:\n%s", tc.st.Writes, w, b.String())
			}
		}
	}
	var b bytes.Buffer
	printStatus(&b, client.ServerStatus{}, now)
	if strings.Contains(b.String(), "writes:") {
		t.Errorf("a server that does not report writes gets a writes line:\n%s", b.String())
	}
}

// A cluster node has no WAL: status says which node answered and that
// appends are durable in the shared engines, not "0 files, sync".
func TestStatusClusterMode(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	if err := printStatus(&b, client.ServerStatus{Mode: "cluster", NodeID: "node-2", Epoch: 7, Writes: "ok"}, now); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "mode:     cluster, node node-2 (epoch 7)") || strings.Contains(b.String(), "wal:") {
		t.Errorf("cluster status:\n%s", b.String())
	}
	b.Reset()
	printStatus(&b, client.ServerStatus{Mode: "local", WALSync: "always"}, now)
	if !strings.Contains(b.String(), "wal:      0 files, 0 B, sync always") || strings.Contains(b.String(), "mode:") {
		t.Errorf("local status:\n%s", b.String())
	}
}
