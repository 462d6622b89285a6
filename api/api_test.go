package api

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// TestRoundTrip: every type decodes back to what was encoded, with every
// field set (times in UTC, as the server sends them) and with every field
// zero, so that no field is lost or renamed one way only.
func TestRoundTrip(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 0, 0, 123456789, time.UTC)
	u := func(n uint64) *uint64 { return &n }
	seg := Segment{Base: 1, Last: 2, Count: 2, Bytes: 3, ColdBytes: 4, MinTS: at, MaxTS: at, SealedAt: at, Tiers: []string{"warm"}, Digest: "d", Active: true, Tombstoned: at}
	fail := &MoveFailure{Error: "e", At: at, Attempts: 2, RetryAt: at}
	for _, v := range []any{
		&ErrorBody{Error: &Error{Code: CodeExpired, Message: "m"}},
		&AppendRecord{Key: "k", TS: "1", Tags: []string{"t"}, Value: json.RawMessage(`{"a":1}`)},
		&AppendResult{Stream: "s", FirstOffset: 1, LastOffset: 2, Count: 2, Duplicate: true},
		&Record{Offset: 1, TS: at, Key: "k", Tags: []string{"t"}, ValueB64: []byte{0, 1}, Tier: "cold"},
		&StreamList{Streams: []Stream{{Name: "s", NextOffset: 3, Records: 3, Tiers: map[string]TierUsage{"hot": {Segments: 1, Bytes: 2}}}}},
		&seg,
		&SealResult{Stream: "s", Sealed: true, Segment: &seg, Note: "n"},
		&Health{Status: "unavailable", Cause: "disk_full", Since: at, Sticky: true, Error: Error{Code: CodeStorageFull, Message: "m"}},
		&HealthOK{Status: "ok"},
		&MigrateReport{DryRun: true, Started: at, DurationMS: 1, Actions: []MigrateAction{{Action: "upload", Stream: "s", Base: 1, Bytes: 2, Policy: "p", Reason: "r", Due: at, Error: "e"}}, Failed: 1, Skipped: 2},
		&Explanation{Stream: "s", Now: at, Policy: Policy{Name: "p", HotMaxAge: "1h", WarmMaxAge: "1d", ColdMaxAge: "7d"},
			Segments: []ExplainSegment{{Segment: seg, Age: "1h", InFlight: true, Next: &NextAction{Action: "upload", Due: at, In: "0s", Reason: "r"}, LastError: fail, Note: "n"}}},
		&VerifyReport{OK: false, Streams: []StreamCheck{{Stream: "s", First: 1, Next: 2, Segments: 3, Placements: 4, UnpersistedRecords: 5, UnpersistedSegments: 6}},
			Findings: []Finding{{Kind: FindingGap, Stream: "s", Base: u(1), From: u(0), To: u(2), Tier: "warm", Path: "p", Message: "m"}}, WarmFiles: 1, ColdObjects: 2},
		&ProgressLine{Progress: &Progress{Done: 1, Total: 2, Unit: "actions", Bytes: 3, TotalBytes: 4}},
		&ProgressLine{Result: json.RawMessage(`{"ok":true}`)},
		&Table{Stream: "s", Table: "tierd.s", MetadataLocation: "s3://b/_iceberg/m.json", SnapshotID: 7, Files: 2, Records: 3, LastUpdated: at,
			Queries: TableQueries{DuckDB: "d", Spark: "s", Trino: "t"}},
		&TableSyncReport{Streams: []TableSync{{Stream: "s", Added: 1, Removed: 2, Skipped: []string{"k"}, SnapshotID: 3, Error: &Error{Code: CodeTablesUnavailable, Message: "m"}}}, Failed: 1},
		&ClusterStatus{Self: "n1", Nodes: []ClusterNode{{NodeID: "n1", Epoch: 3, Version: "v", Addr: "a:1", StartedAt: at, HeartbeatAt: at, HeartbeatAgeMS: 1200,
			StoppedAt: at, Live: true, StreamsWritten: 4, JobsHeld: 1, CacheBytes: 5}}},
		&Status{Started: at, Streams: 1, WALSync: "batch", Writes: "ok", WritesSince: at, ColdStore: "ok", ColdStoreSince: at,
			Tiers:    map[string]TierStatus{"warm": {Streams: 1, Segments: 2, Bytes: 3, OldestTS: at, NewestTS: at, OldestSealedAt: at, BudgetBytes: 4, BudgetUsed: 5}},
			Migrator: &MigratorStatus{Schedule: "@every 1m", NextRun: at, Running: true, LastRun: &LastRun{Started: at, DurationMS: 1, Actions: 2, Failed: 1, Skipped: 1}, LastError: "e", LastErrorAt: at, Failing: 1, Failures: []SegmentFailure{{Stream: "s", Base: 1, Action: "upload", Error: "e", At: at, Attempts: 1, RetryAt: at}}}},
	} {
		for _, zero := range []bool{false, true} {
			in := v
			if zero {
				in = reflect.New(reflect.TypeOf(v).Elem()).Interface()
			}
			b, err := json.Marshal(in)
			if err != nil {
				t.Fatalf("%T: %v", in, err)
			}
			out := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("%T: decoding %s: %v", in, b, err)
			}
			if !reflect.DeepEqual(in, out) {
				t.Errorf("%T does not round-trip:\n in: %+v\njson: %s\nout: %+v", in, in, b, out)
			}
		}
	}
}

// TestZeroTimesLeftOut: a time the server has nothing to say about is left
// out, never sent as the zero time (year 1).
func TestZeroTimesLeftOut(t *testing.T) {
	b, _ := json.Marshal(Segment{Tiers: []string{"hot"}})
	if got, want := string(b), `{"base":0,"last":0,"count":0,"bytes":0,"tiers":["hot"]}`; got != want {
		t.Fatalf("%s, want %s", got, want)
	}
	if got := UTC(time.Time{}); !got.IsZero() {
		t.Fatalf("UTC of the zero time is %v", got)
	}
	if got := UnixNano(0).Format(time.RFC3339Nano); got != "1970-01-01T00:00:00Z" {
		t.Fatalf("UnixNano(0) = %s", got)
	}
}

// TestClusterNodeState: a clean stop wins over the heartbeat, and a node
// that neither heartbeats nor left is stale.
func TestClusterNodeState(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		n    ClusterNode
		want string
	}{
		{ClusterNode{Live: true}, NodeLive},
		{ClusterNode{}, NodeStale},
		{ClusterNode{StoppedAt: at}, NodeStopped},
		{ClusterNode{StoppedAt: at, Live: true}, NodeStopped},
	} {
		if got := tc.n.State(); got != tc.want {
			t.Errorf("%+v: State() = %q, want %q", tc.n, got, tc.want)
		}
	}
}
