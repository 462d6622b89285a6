package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A segment whose only copy was deleted behind tierd's back answers 500
// segment_missing naming the object, not 500 internal (a bug).
func TestReadOfAMissingColdObject(t *testing.T) {
	e := newAdminEnv(t, true)
	e.appendN("s", 200)
	e.setClock(adminT0.Add(25 * time.Hour))
	e.migrate("dry_run=false") // upload
	e.setClock(adminT0.Add(26 * time.Hour))
	e.migrate("dry_run=false") // drop warm
	if segs := e.segments("s"); strings.Join(segs[0].Tiers, ",") != "cold" {
		t.Fatalf("segment 0 in %v, want cold only", segs[0].Tiers)
	}
	objs, _ := filepath.Glob(filepath.Join(e.storeDir, "stream=s", "*", "00000000000000000000-*.parquet"))
	if len(objs) != 1 {
		t.Fatalf("objects of segment 0: %v", objs)
	}
	if err := os.Remove(objs[0]); err != nil {
		t.Fatal(err)
	}
	d := wantError(t, e.do("GET", "/v1/streams/s/records", nil), 500, "segment_missing")
	if !strings.Contains(d.Message, filepath.Base(objs[0])) {
		t.Errorf("message %q does not name the object", d.Message)
	}
}
