package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/client"
	"github.com/tierd/tierd/testenv"
)

// Helpers of the cluster-mode tests: real tierd processes sharing one
// MinIO bucket and one PostgreSQL database, writers that keep a ledger of
// every batch they sent and what its acknowledgement said, and the check
// that every node serves the same dense, whole, acknowledged history.

// clusterSpec is what every node of a test's cluster shares.
type clusterSpec struct {
	dsn   string // cluster.catalog
	store string // cold.store, the shared bucket
	// gcDelay is cluster.gc_delay; "" for the default.
	gcDelay string
	// extra is more YAML appended to every node's configuration.
	extra string
}

// clusterNode is one tierd process in cluster mode.
type clusterNode struct {
	*testenv.Tierd
	id string
	c  *client.Client
}

// clusterHTTP is the HTTP client of the tests' writers and readers: enough
// idle connections for every writer, and a bound on a request that a
// killed node leaves unanswered (a hang is minutes, a pass is seconds).
var clusterHTTP = &http.Client{
	Transport: &http.Transport{MaxIdleConnsPerHost: 16, ResponseHeaderTimeout: 90 * time.Second},
}

// useMinIOCredentials makes the nodes read the test MinIO's credentials
// from the standard variables, as an operator's deployment would.
func useMinIOCredentials(t *testing.T, m *testenv.MinIO) {
	t.Setenv("AWS_ACCESS_KEY_ID", m.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", m.SecretKey)
}

// nodeConfig is a node's tierd.yaml.
func (s clusterSpec) nodeConfig(id string) string {
	gc := ""
	if s.gcDelay != "" {
		gc = "  gc_delay: " + s.gcDelay + "\n"
	}
	return fmt.Sprintf(`# a cluster-mode node of a cmd/tierd test
cluster:
  catalog: %q
  node_id: %s
  flush_interval: 20ms
%scold:
  store: %q
%s`, s.dsn, id, gc, s.store, s.extra)
}

// startNode starts the node id of spec on a fresh data directory.
func startNode(t *testing.T, spec clusterSpec, id string) *clusterNode {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tierd.yaml")
	if err := os.WriteFile(cfg, []byte(spec.nodeConfig(id)), 0o644); err != nil {
		t.Fatal(err)
	}
	d := testenv.StartTierd(t, testenv.TierdOptions{Config: cfg, DataDir: filepath.Join(dir, "data")})
	return &clusterNode{Tierd: d, id: id, c: client.New(d.URL(), client.WithHTTPClient(clusterHTTP))}
}

// startNodes starts n nodes n1…nN.
func startNodes(t *testing.T, spec clusterSpec, n int) []*clusterNode {
	t.Helper()
	nodes := make([]*clusterNode, n)
	for i := range nodes {
		nodes[i] = startNode(t, spec, fmt.Sprintf("n%d", i+1))
	}
	return nodes
}

// killWipeRestart kills the node with SIGKILL, deletes its data directory
// (the disk is lost), and starts it again with the same node_id on an
// empty one, on the address it had.
func (n *clusterNode) killWipeRestart(t *testing.T) {
	t.Helper()
	n.Kill()
	if err := os.RemoveAll(n.DataDir()); err != nil {
		t.Fatal(err)
	}
	n.Restart()
}

// clBatch is one batch a writer sent: its records' values carry the batch
// id and their index, so a batch found in a stream can be told whole.
type clBatch struct {
	id     string
	stream string
	values [][]byte
	// producer and seqs, for a Producer's records: its id and each
	// record's sequence number.
	producer string
	seqs     []int

	mu          sync.Mutex
	acked       bool
	first, last uint64
}

// clValue is the JSON of a test record's value.
type clValue struct {
	B   string `json:"b"`           // batch id
	I   int    `json:"i"`           // index in the batch
	N   int    `json:"n"`           // records in the batch
	P   string `json:"p,omitempty"` // producer id
	S   int    `json:"s,omitempty"` // the producer's sequence number
	Pad string `json:"pad"`
}

// newClBatch builds a batch of n records for stream; its values are
// compact JSON, so the server stores them byte for byte.
func newClBatch(id, stream string, n, pad int) *clBatch {
	b := &clBatch{id: id, stream: stream}
	for i := range n {
		v, _ := json.Marshal(clValue{B: id, I: i, N: n, Pad: strings.Repeat("x", pad)})
		b.values = append(b.values, v)
	}
	return b
}

func (b *clBatch) records() []client.Record {
	recs := make([]client.Record, len(b.values))
	for i, v := range b.values {
		recs[i] = client.Record{Key: b.id, Value: v}
	}
	return recs
}

// ack records what the node's acknowledgement said.
func (b *clBatch) ack(r client.AppendResult) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.acked, b.first, b.last = true, r.FirstOffset, r.LastOffset
}

func (b *clBatch) ackState() (bool, uint64, uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.acked, b.first, b.last
}

// clLedger is every batch sent, acknowledged or not.
type clLedger struct {
	mu      sync.Mutex
	batches map[string]*clBatch
}

func newClLedger() *clLedger { return &clLedger{batches: map[string]*clBatch{}} }

func (l *clLedger) add(b *clBatch) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.batches[b.id] = b
}

func (l *clLedger) get(id string) *clBatch {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.batches[id]
}

// counts is the batches sent and acknowledged.
func (l *clLedger) counts() (sent, acked int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.batches {
		sent++
		if ok, _, _ := b.ackState(); ok {
			acked++
		}
	}
	return sent, acked
}

// appendFailure is a failed append as a writer saw it.
type appendFailure struct {
	node string
	err  error
}

// clWriter sends batches of 1–maxRecs records to random nodes and random
// streams until ctx ends, one at a time, recording each in l. A failed
// batch is not retried (its id is never reused, so a batch a node stored
// without answering shows up once, whole); the failure goes to onFail.
func clWriter(ctx context.Context, w int, nodes []*clusterNode, streams []string, l *clLedger, maxRecs int, onFail func(appendFailure)) {
	rng := rand.New(rand.NewPCG(uint64(w), 42))
	for i := 0; ctx.Err() == nil; i++ {
		n := nodes[rng.IntN(len(nodes))]
		b := newClBatch(fmt.Sprintf("w%d-%d", w, i), streams[rng.IntN(len(streams))], 1+rng.IntN(maxRecs), 60)
		l.add(b)
		actx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		r, err := n.c.AppendBatch(actx, b.stream, b.records())
		cancel()
		if err == nil {
			if r.Count != len(b.values) || r.LastOffset-r.FirstOffset+1 != uint64(len(b.values)) || r.Duplicate {
				onFail(appendFailure{n.id, fmt.Errorf("batch %s of %d records acknowledged as %+v", b.id, len(b.values), r)})
				continue
			}
			b.ack(r)
			continue
		}
		onFail(appendFailure{n.id, err})
		// A node being restarted refuses connections: do not spin.
		time.Sleep(time.Duration(5+rng.IntN(20)) * time.Millisecond)
	}
}

// readStream reads the whole of stream through c: every record up to the
// stream's next offset as the node lists it.
func readStream(ctx context.Context, c *client.Client, stream string) (next uint64, recs []api.Record, err error) {
	ss, err := c.Streams(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("streams: %w", err)
	}
	i := slices.IndexFunc(ss, func(s client.Stream) bool { return s.Name == stream })
	if i < 0 {
		return 0, nil, fmt.Errorf("stream %s not listed (listing %d streams)", stream, len(ss))
	}
	next = ss[i].NextOffset
	for from := uint64(0); from < next; {
		n := 0
		for r, err := range c.Read(ctx, stream, client.Query{From: from, Limit: 10000}) {
			if err != nil {
				return next, recs, fmt.Errorf("read %s from %d: %w", stream, from, err)
			}
			recs = append(recs, r)
			from = r.Offset + 1
			n++
		}
		if n == 0 {
			return next, recs, fmt.Errorf("read %s from %d: nothing, but next_offset is %d", stream, from, next)
		}
	}
	return next, recs, nil
}

// checkCluster reads every stream through every node and checks the
// promise: the same records through every node; offsets dense from 0 to
// the next offset; every record from a batch some writer sent, each batch
// present whole (its records in order at consecutive offsets) or absent;
// every acknowledged batch at exactly the offsets its acknowledgement gave,
// with the bytes sent. It returns the records found per stream.
func checkCluster(t *testing.T, nodes []*clusterNode, streams []string, l *clLedger) map[string][]api.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out := map[string][]api.Record{}
	for _, s := range streams {
		var ref []api.Record
		for i, n := range nodes {
			next, recs, err := readStream(ctx, n.c, s)
			if err != nil {
				t.Fatalf("node %s: %v", n.id, err)
			}
			if uint64(len(recs)) != next {
				t.Fatalf("node %s: stream %s: read %d records, next_offset %d", n.id, s, len(recs), next)
			}
			if i == 0 {
				ref = recs
				checkStream(t, n.id, s, recs, l)
				continue
			}
			if len(recs) != len(ref) {
				t.Fatalf("stream %s: node %s serves %d records, node %s %d", s, n.id, len(recs), nodes[0].id, len(ref))
			}
			for j := range recs {
				if recs[j].Offset != ref[j].Offset || string(recs[j].Bytes()) != string(ref[j].Bytes()) || recs[j].Key != ref[j].Key {
					t.Fatalf("stream %s offset %d: node %s serves %s, node %s %s", s, ref[j].Offset, n.id, recs[j].Bytes(), nodes[0].id, ref[j].Bytes())
				}
			}
		}
		out[s] = ref
	}
	// Every acknowledged batch was found (checkStream checked where).
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.batches {
		if ok, first, _ := b.ackState(); ok {
			recs := out[b.stream]
			if first >= uint64(len(recs)) || parseClValue(t, b.stream, recs[first]).B != b.id {
				t.Fatalf("batch %s acknowledged at %s@%d is not there", b.id, b.stream, first)
			}
		}
	}
	return out
}

func parseClValue(t *testing.T, stream string, r api.Record) clValue {
	t.Helper()
	var v clValue
	if err := json.Unmarshal(r.Bytes(), &v); err != nil || v.B == "" {
		t.Fatalf("stream %s offset %d: a record no writer sent: %q (%v)", stream, r.Offset, r.Bytes(), err)
	}
	return v
}

// checkStream checks one node's full read of stream against the ledger.
func checkStream(t *testing.T, node, stream string, recs []api.Record, l *clLedger) {
	t.Helper()
	seen := map[string]bool{}
	for j := 0; j < len(recs); {
		r := recs[j]
		if r.Offset != uint64(j) {
			t.Fatalf("node %s: stream %s: record %d has offset %d: offsets not dense", node, stream, j, r.Offset)
		}
		v := parseClValue(t, stream, r)
		b := l.get(v.B)
		switch {
		case b == nil:
			t.Fatalf("node %s: stream %s offset %d: batch %s was never sent", node, stream, r.Offset, v.B)
		case b.stream != stream:
			t.Fatalf("node %s: batch %s, sent to %s, found in %s at %d", node, v.B, b.stream, stream, r.Offset)
		case seen[v.B]:
			t.Fatalf("node %s: stream %s: batch %s found twice (again at %d)", node, stream, v.B, r.Offset)
		case v.I != 0:
			t.Fatalf("node %s: stream %s offset %d: batch %s starts at its record %d: not whole", node, stream, r.Offset, v.B, v.I)
		}
		seen[v.B] = true
		if j+len(b.values) > len(recs) {
			t.Fatalf("node %s: stream %s: batch %s at %d has %d records, the stream ends at %d", node, stream, v.B, j, len(b.values), len(recs))
		}
		for k, want := range b.values {
			if got := recs[j+k].Bytes(); string(got) != string(want) {
				t.Fatalf("node %s: stream %s offset %d: batch %s record %d is %s, sent %s", node, stream, j+k, v.B, k, got, want)
			}
		}
		if ok, first, last := b.ackState(); ok && (first != uint64(j) || last != uint64(j+len(b.values)-1)) {
			t.Fatalf("node %s: stream %s: batch %s acknowledged at [%d,%d], found at [%d,%d]", node, stream, v.B, first, last, j, j+len(b.values)-1)
		}
		j += len(b.values)
	}
}

// verifyClean runs verify through n and fails the test unless it is clean.
func verifyClean(t *testing.T, n *clusterNode) client.VerifyReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := n.c.Verify(ctx, client.VerifyRequest{})
	if err != nil {
		t.Fatalf("verify through %s: %v", n.id, err)
	}
	if !rep.OK || len(rep.Findings) != 0 {
		b, _ := json.MarshalIndent(rep, "", "  ")
		t.Fatalf("verify through %s is not clean:\n%s", n.id, b)
	}
	return rep
}

// unavailable checks that err is what an append must answer while a
// shared engine is down: a 503 with Retry-After and a JSON error code
// saying why (storage_unavailable; backpressure when the node's pending
// bytes are full of batches it cannot flush; outcome_unknown when the
// connection broke during a COMMIT). It returns a description of anything
// else.
func unavailable(err error) (ok bool, code string, why string) {
	var ae *client.APIError
	if !errors.As(err, &ae) {
		return false, "", fmt.Sprintf("not an API error: %v", err)
	}
	if ae.Status != http.StatusServiceUnavailable || ae.RetryAfter <= 0 {
		return false, ae.Code, fmt.Sprintf("HTTP %d, Retry-After %v: %v", ae.Status, ae.RetryAfter, ae)
	}
	switch ae.Code {
	case api.CodeStorageUnavailable, api.CodeBackpressure, api.CodeOutcomeUnknown:
		return true, ae.Code, ""
	}
	return false, ae.Code, fmt.Sprintf("code %q: %v", ae.Code, ae)
}

// waitWritable appends small probe batches to stream through n until one
// is acknowledged (recording each in l), failing the test after timeout.
func waitWritable(t *testing.T, n *clusterNode, stream string, l *clLedger, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for i := 0; time.Now().Before(deadline); i++ {
		b := newClBatch(fmt.Sprintf("probe-%s-%d-%d", n.id, time.Now().UnixNano(), i), stream, 2, 8)
		l.add(b)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		r, err := n.c.AppendBatch(ctx, stream, b.records())
		cancel()
		if err == nil {
			b.ack(r)
			return
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("node %s: no append acknowledged within %s after recovery; last error: %v", n.id, timeout, last)
}

// clusterNodeState is a node as GET /v1/cluster lists it (the fields the
// tests check).
type clusterNodeState struct {
	NodeID string `json:"node_id"`
	Epoch  int64  `json:"epoch"`
	Live   bool   `json:"live"`
}

// clusterStatus is GET /v1/cluster through n, by node id.
func clusterStatus(t *testing.T, n *clusterNode) map[string]clusterNodeState {
	t.Helper()
	resp, err := clusterHTTP.Get(n.URL() + "/v1/cluster")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Nodes []clusterNodeState `json:"nodes"`
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/cluster through %s: HTTP %d", n.id, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET /v1/cluster through %s: %v", n.id, err)
	}
	out := map[string]clusterNodeState{}
	for _, s := range body.Nodes {
		out[s.NodeID] = s
	}
	return out
}
