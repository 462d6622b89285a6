package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/cold/pqfile"
	"github.com/tierd/tierd/tables"
	"github.com/tierd/tierd/tiers"
)

// TestTablesVerifyFindsForeignFiles: verify reports a data file a stream's
// Iceberg table lists that no segment holds (here put there by another
// writer of the table: an object tierd never catalogued), and once
// `tierctl table sync` made the table exact again, verify is clean.
func TestTablesVerifyFindsForeignFiles(t *testing.T) {
	d, c, dir := tablesDaemon(t)
	appendSealOffload(t, c, "ticks", workload(0, 20))
	waitTableExact(t, c, "ticks", served(t, c, "ticks"), nil)
	verifyOK(t, d.addr)

	coldURL := "file://" + filepath.Join(dir, "cold")
	key := addForeignFile(t, coldURL, "", objstore.Options{}, "ticks")
	findings := verifyFindings(t, d.addr)
	got := tableFindings(findings)
	if len(got) != 1 || got[0].Stream != "ticks" || got[0].Path != key || got[0].Tier != "table" {
		t.Fatalf("verify's table findings %+v, want one for %s; all findings: %+v", got, key, findings)
	}

	r := runCtl(t, ctlEnv("TIERD_ADDR=http://"+d.addr), "", "table", "sync", "ticks")
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	if err := os.Remove(filepath.Join(dir, "cold", key)); err != nil {
		t.Fatal(err)
	}
	waitTableExact(t, c, "ticks", served(t, c, "ticks"), nil)
	verifyOK(t, d.addr)
}

// addForeignFile puts a Parquet object of offsets 1000-1009 of stream,
// which tierd never wrote, in the cold store at coldURL, and makes the
// stream's table hold it (and only it) through a second publisher, with
// the PostgreSQL catalog at dsn or the file catalog. It returns the key.
func addForeignFile(t *testing.T, coldURL, dsn string, o objstore.Options, stream string) string {
	t.Helper()
	ctx := context.Background()
	recs := make([]tiers.Record, 10)
	for i := range recs {
		recs[i] = tiers.Record{Offset: 1000 + uint64(i), TS: 1_795_341_600_000_000_000 + int64(i), Value: []byte(`{"px":1}`)}
	}
	var buf bytes.Buffer
	info, err := pqfile.Write(ctx, &buf, stream, func(yield func(tiers.Record, error) bool) {
		for _, r := range recs {
			if !yield(r, nil) {
				return
			}
		}
	}, pqfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	foreign := info.Meta
	foreign.Stream, foreign.Placements = stream, tiers.Of(tiers.Cold)
	key := cold.ObjectKey(foreign)
	b, err := objstore.Open(ctx, coldURL, o)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Put(ctx, key, bytes.NewReader(buf.Bytes()), int64(buf.Len())); err != nil {
		t.Fatal(err)
	}
	p, err := tables.Open(ctx, tables.Options{ColdURL: coldURL, CatalogDSN: dsn, Segments: oneSegment{foreign}, AccessKey: o.AccessKey, SecretKey: o.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if res, err := p.Sync(ctx, stream); err != nil || res.Added != 1 {
		t.Fatalf("the other writer's Sync: %+v, %v", res, err)
	}
	return key
}

// tableFindings are the findings of kind table among findings.
func tableFindings(findings []api.Finding) []api.Finding {
	var out []api.Finding
	for _, f := range findings {
		if f.Kind == api.FindingTable {
			out = append(out, f)
		}
	}
	return out
}

// oneSegment is a tables.SegmentSource that wants one segment.
type oneSegment struct{ m tiers.SegmentMeta }

func (o oneSegment) ColdSegments(context.Context, string) ([]tiers.SegmentMeta, error) {
	return []tiers.SegmentMeta{o.m}, nil
}

func (o oneSegment) StreamNames(context.Context) ([]string, error) { return []string{o.m.Stream}, nil }

// verifyFindings runs POST /v1/verify and returns its findings.
func verifyFindings(t *testing.T, addr string) []api.Finding {
	t.Helper()
	body := postVerify(t, addr)
	var v struct {
		Findings []api.Finding `json:"findings"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("verify: %v in %s", err, body)
	}
	return v.Findings
}
