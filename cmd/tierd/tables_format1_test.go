package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tierd/tierd/cold/pqfile"
	"github.com/tierd/tierd/tiers"
)

// fileVersion opens a cold object file and returns its format version.
func fileVersion(t *testing.T, path string) (string, *pqfile.Reader) {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pqfile.Open(context.Background(), bytes.NewReader(body), int64(len(body)), path)
	if err != nil {
		t.Fatal(err)
	}
	return r.FormatVersion(), r
}

// TestTablesFormat1Rewritten: cold objects written by a tierd of before
// format 2 (format 1.2 files: ts in nanoseconds, every value a BLOB) are
// existing cold segments an Iceberg table cannot describe as they are.
// `tierctl table sync` rewrites each in format 2 (under the segment's move
// lock, checked against the catalog) and publishes it: the table holds
// exactly the served records, and the objects are format 2.0 files.
func TestTablesFormat1Rewritten(t *testing.T) {
	d, c, dir := tablesDaemon(t)
	for b := range 2 {
		appendSealOffload(t, c, "ticks", workload(b, 30))
	}
	want := served(t, c, "ticks")
	waitTableExact(t, c, "ticks", want, nil)
	d.stop(t)

	// Turn the objects into what the previous release wrote, and forget
	// the tables.
	objects := coldObjects(t, filepath.Join(dir, "cold"))
	if len(objects) != 2 {
		t.Fatalf("cold objects %q, want 2", objects)
	}
	for _, p := range objects {
		_, r := fileVersion(t, p)
		var recs []tiers.Record
		for rec, err := range r.Scan(context.Background(), tiers.AllRecords()) {
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, rec)
		}
		var buf bytes.Buffer
		seq := func(yield func(tiers.Record, error) bool) {
			for _, rec := range recs {
				if !yield(rec, nil) {
					return
				}
			}
		}
		if _, err := pqfile.Write(context.Background(), &buf, "ticks", seq, pqfile.Options{Version: 1, SealedAt: r.Meta().SealedAt}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if v, _ := fileVersion(t, p); v != "1.2" {
			t.Fatalf("%s is format %s, want the 1.2 fixture", p, v)
		}
	}
	if err := os.RemoveAll(filepath.Join(dir, "cold", "_iceberg")); err != nil {
		t.Fatal(err)
	}

	d.restart(t)
	r := runCtl(t, ctlEnv("TIERD_ADDR=http://"+d.addr), "", "table", "sync", "ticks")
	if r.code != 0 || !strings.Contains(r.stdout, "1 stream synced, 0 failed") {
		t.Fatalf("%s", r)
	}
	waitTableExact(t, c, "ticks", want, nil)
	for _, p := range coldObjects(t, filepath.Join(dir, "cold")) {
		if v, _ := fileVersion(t, p); v != "2.0" {
			t.Fatalf("%s is still format %s after table sync", p, v)
		}
	}
	if got := served(t, c, "ticks"); diffRecords(got, want) != "" {
		t.Fatalf("after the rewrite tierd serves other records: %s", diffRecords(got, want))
	}
	verifyOK(t, d.addr)
}
