package tables

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/iceberg-go"
	icebergio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"

	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/pqfile"
	"github.com/tierd/tierd/tiers"
)

// TestBadObjectsSkipped: a missing object, a damaged one and one holding
// another segment are not published; each is reported in Skipped (not as
// legacy) and the good segments are published around them.
func TestBadObjectsSkipped(t *testing.T) {
	s := fileStore(t)
	src := newSource()
	p := open(t, s, src)
	ctx := context.Background()
	segs, want := threeSegments(t, s, "bad", pqfile.Options{})
	good := segs[0]

	// Missing: the catalog has it, the store does not.
	missing := putSegment(t, s, "bad", records(1000, 5, 20001*day, 1000), pqfile.Options{})
	if err := s.bucket.Delete(ctx, cold.ObjectKey(missing)); err != nil {
		t.Fatal(err)
	}
	// Damaged: torn (its end missing), then a garbage trailer.
	damaged := segs[1]
	key := cold.ObjectKey(damaged)
	body := readObject(t, s, key)
	body = append(body[:len(body)-300], "\x10\x00\x00\x00PAR1"...)
	if err := s.bucket.Put(ctx, key, bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
	// Another segment's records under this one's key (same offsets, other
	// values): the digest differs from the catalog's.
	other := segs[2]
	recs := records(other.Base, int(other.Count), other.MinTS, 1_000_003)
	for i := range recs {
		recs[i].Value = []byte(`{"other":true}`)
	}
	swapped := putSegment(t, s, "bad", recs, pqfile.Options{})
	if swapped.Digest == other.Digest || cold.ObjectKey(swapped) != cold.ObjectKey(other) {
		t.Fatal("test setup: want the same key with another digest")
	}

	src.add(good, damaged, other, missing)
	res := mustSync(t, p, "bad")
	if res.Added != 1 || len(res.Skipped) != 3 {
		t.Fatalf("Sync: %+v", res)
	}
	for _, sk := range res.Skipped {
		if sk.Legacy || sk.Reason == "" {
			t.Fatalf("skipped %+v", sk)
		}
		t.Logf("skipped %d: %s", sk.Segment.Base, sk.Reason)
	}
	if !strings.Contains(res.Skipped[2].Reason, "not found") {
		t.Fatalf("missing object reported as %q", res.Skipped[2].Reason)
	}
	sameRecords(t, scanRecords(t, loadTable(t, p, "bad")), want[:100])
}

func readObject(t *testing.T, s store, key string) []byte {
	t.Helper()
	rc, err := s.bucket.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzReadFooter: whatever bytes an object holds, reading its footer for
// the table returns a file or an error, never a panic.
func FuzzReadFooter(f *testing.F) {
	dir := f.TempDir()
	recs := records(0, 30, 20000*day, 1000)
	var seg tiers.SegmentMeta
	for _, o := range []pqfile.Options{{}, {Version: 1}, withColumns(pxColumns)} {
		path := filepath.Join(dir, "seed.parquet")
		fh, err := os.Create(path)
		if err != nil {
			f.Fatal(err)
		}
		info, err := pqfile.Write(context.Background(), fh, "fuzz", seqOf(recs), o)
		fh.Close()
		if err != nil {
			f.Fatal(err)
		}
		seg = info.Meta
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("PAR1\x00\x00\x00\x00PAR1"))
	fio := icebergio.LocalFS{}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "x.parquet")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		df, err := readFooter(context.Background(), fio, seg, path)
		if err == nil && df.meta == nil {
			t.Fatal("no error and no footer")
		}
	})
}

// TestForeignAndDoubledFilesRemoved: a file in the table that is no
// segment of the stream, and a second file of a segment already listed
// (say, its object under another date directory), are taken out by the
// next Sync, so a segment's records are never in the table twice.
func TestForeignAndDoubledFilesRemoved(t *testing.T) {
	s := fileStore(t)
	src := newSource()
	p := open(t, s, src)
	ctx := context.Background()
	segs, want := threeSegments(t, s, "dup", pqfile.Options{})
	src.add(segs...)
	mustSync(t, p, "dup")

	// Copies of segs[0]'s object: one under another date, one outside the
	// stream's keys.
	body := readObject(t, s, cold.ObjectKey(segs[0]))
	twin := "stream=dup/date=1999-01-01/" + filepath.Base(cold.ObjectKey(segs[0]))
	foreign := "elsewhere/copy.parquet"
	tbl := loadTable(t, p, "dup")
	var files []iceberg.DataFile
	for _, key := range []string{twin, foreign} {
		if err := s.bucket.Put(ctx, key, bytes.NewReader(body), int64(len(body))); err != nil {
			t.Fatal(err)
		}
		df, err := readFooter(ctx, icebergio.LocalFS{}, segs[0], p.root+"/"+key)
		if err != nil {
			t.Fatal(err)
		}
		f, err := table.DataFileFromMetadata(table.DataFileArgs{Schema: tbl.Schema(), Spec: tbl.Spec(), Format: iceberg.ParquetFile,
			Metadata: df.meta, FilePath: df.path, FileSize: df.size, Content: iceberg.EntryContentData, FormatVersion: 2})
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	tx := tbl.NewTransaction()
	if err := tx.AddDataFiles(ctx, files, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(scanRecords(t, loadTable(t, p, "dup"))); n != len(want)+200 {
		t.Fatalf("test setup: %d records", n)
	}
	res := mustSync(t, p, "dup")
	if res.Removed != 2 || res.Added != 0 || res.Files != 3 {
		t.Fatalf("Sync: %+v", res)
	}
	tbl = loadTable(t, p, "dup")
	sameRecords(t, scanRecords(t, tbl), want)
	for _, f := range plannedFiles(t, tbl) {
		if strings.Contains(f, "1999") || strings.Contains(f, "elsewhere") {
			t.Fatalf("%s still in the table", f)
		}
	}
}
