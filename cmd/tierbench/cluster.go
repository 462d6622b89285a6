package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/spf13/cobra"
	"github.com/tierd/tierd/client"
)

// S3 PUT pricing the report converts journal PUTs with: AWS's published
// price for S3 Standard PUT, COPY, POST and LIST requests in us-east-1.
const (
	s3PutUSDPer1000 = 0.005
	s3PriceSource   = "AWS S3 Standard, us-east-1: $0.005 per 1,000 PUT, COPY, POST or LIST requests (aws.amazon.com/s3/pricing; the price used on 2026-12-02)"
	secondsPerMonth = 30 * 24 * 3600
)

type clusterFlags struct {
	endpoint      string
	catalog       string
	tierd         string
	runs          int
	duration      time.Duration
	writers       int
	streams       int
	batch         int
	valueBytes    int
	flushInterval time.Duration
	nodes         int
	output        string
}

func newClusterCmd() *cobra.Command {
	var f clusterFlags
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Cluster-mode ingest vs. local mode in the same run; journal PUTs and their cost; 1 vs N nodes",
		Long: `cluster measures, in this order and repeated --runs times, with the same
records from the same client load (--writers goroutines each appending --batch
records per synchronous AppendBatch call, round-robin over --streams streams,
for --duration):
  local      one tierd in local mode (wal.sync: always, no cold tier): the baseline
  cluster-1  one tierd in cluster mode (flush_interval --flush-interval) over the
             MinIO at --endpoint and the PostgreSQL at --catalog
  cluster-N  --nodes tierd processes in cluster mode, writer w appending to node w mod N
Each cluster measurement gets a new bucket and a new database (created in the
server --catalog points at, so its user needs CREATEDB), dropped afterwards.
Journal PUTs are counted as the objects under _journal/ in the bucket when the
load stops (garbage collection waits gc_delay, 10 minutes by default, so none
is gone yet), per node from the node id in their keys. Their cost uses AWS's
published S3 PUT price (the price and its date are printed).

All the processes run on this machine: the N nodes share its cores with MinIO,
PostgreSQL and the client, so cluster-N measures the coordination cost of N
nodes sequencing through one PostgreSQL, not the capacity of N machines.
Credentials for MinIO come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY;
'make bench' starts MinIO (testenv/minio.sh) and PostgreSQL (testenv/postgres.sh).`,
		Example: "  AWS_ACCESS_KEY_ID=tierd AWS_SECRET_ACCESS_KEY=tierd-secret \\\n    tierbench cluster --endpoint http://127.0.0.1:9000 --catalog postgres://postgres@127.0.0.1:5432/tierd",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCluster(cmd.Context(), cmd.OutOrStdout(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.endpoint, "endpoint", "", "MinIO/S3 endpoint, e.g. http://127.0.0.1:9000 (required)")
	fl.StringVar(&f.catalog, "catalog", "", "PostgreSQL DSN whose user may CREATE DATABASE (required)")
	fl.StringVar(&f.tierd, "tierd", "", "tierd binary (default: tierd next to tierbench, else go build)")
	fl.IntVar(&f.runs, "runs", 3, "repetitions; medians are reported")
	fl.DurationVar(&f.duration, "duration", 5*time.Second, "length of each measurement")
	fl.IntVar(&f.writers, "writers", 32, "goroutines appending synchronously")
	fl.IntVar(&f.streams, "streams", 8, "streams the batches go to")
	fl.IntVar(&f.batch, "batch", 100, "records per AppendBatch call")
	fl.IntVar(&f.valueBytes, "value-bytes", 200, "value size of each record")
	fl.DurationVar(&f.flushInterval, "flush-interval", 50*time.Millisecond, "cluster.flush_interval of the nodes")
	fl.IntVar(&f.nodes, "nodes", 3, "nodes of the multi-node measurement")
	fl.StringVarP(&f.output, "output", "o", "table", "table or json")
	cmd.MarkFlagRequired("endpoint")
	cmd.MarkFlagRequired("catalog")
	return cmd
}

// clusterMeasure is one measurement of one run.
type clusterMeasure struct {
	res     result
	retries uint64 // calls repeated after a 503
	bytes   float64
	puts    map[string]int // journal objects per node id
	secs    float64
}

func (m clusterMeasure) totalPuts() int {
	n := 0
	for _, p := range m.puts {
		n += p
	}
	return n
}

// putsPerNodeSecond is the median node's journal PUTs per second.
func (m clusterMeasure) putsPerNodeSecond() float64 {
	var xs []float64
	for _, p := range m.puts {
		xs = append(xs, float64(p)/m.secs)
	}
	return median(xs)
}

// putsPerGiB is journal PUTs per GiB of record values acknowledged.
func (m clusterMeasure) putsPerGiB() float64 {
	if m.bytes == 0 {
		return 0
	}
	return float64(m.totalPuts()) / (m.bytes / (1 << 30))
}

type clusterRun struct {
	local, one, many clusterMeasure
}

func runCluster(ctx context.Context, out io.Writer, f clusterFlags) error {
	if f.runs < 1 || f.writers < 1 || f.streams < 1 || f.batch < 1 || f.valueBytes < 1 || f.nodes < 1 || f.flushInterval <= 0 {
		return errors.New("cluster: --runs, --writers, --streams, --batch, --value-bytes and --nodes must be at least 1, --flush-interval positive")
	}
	if f.output != "table" && f.output != "json" {
		return fmt.Errorf("cluster: -o %q is not table or json", f.output)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	tmp, err := os.MkdirTemp("", "tierbench-cluster-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin, err := findTierd(ctx, f.tierd, tmp)
	if err != nil {
		return err
	}
	s3, err := minio.New(trimScheme(f.endpoint), &minio.Options{Creds: credentials.NewEnvAWS(), Secure: isHTTPS(f.endpoint)})
	if err != nil {
		return err
	}
	var runs []clusterRun
	for run := range f.runs {
		recs := make([][]client.Record, f.writers)
		for w := range recs {
			for _, tr := range makeBatch(f.batch, f.valueBytes, rand.New(rand.NewPCG(uint64(w), uint64(run)))) {
				recs[w] = append(recs[w], client.Record{Key: tr.Key, ValueB64: tr.Value})
			}
		}
		var r clusterRun
		dir := filepath.Join(tmp, fmt.Sprintf("run%d", run))
		if r.local, err = measureLocal(ctx, bin, filepath.Join(dir, "local"), f, recs); err != nil {
			return fmt.Errorf("cluster: run %d: local: %w", run+1, err)
		}
		if r.one, err = measureCluster(ctx, bin, filepath.Join(dir, "one"), s3, f, 1, recs); err != nil {
			return fmt.Errorf("cluster: run %d: one node: %w", run+1, err)
		}
		if r.many, err = measureCluster(ctx, bin, filepath.Join(dir, "many"), s3, f, f.nodes, recs); err != nil {
			return fmt.Errorf("cluster: run %d: %d nodes: %w", run+1, f.nodes, err)
		}
		os.RemoveAll(dir)
		runs = append(runs, r)
	}
	return reportCluster(out, f, bin, runs)
}

// measureLocal runs the load against one tierd in local mode.
func measureLocal(ctx context.Context, bin, dir string, f clusterFlags, recs [][]client.Record) (clusterMeasure, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return clusterMeasure{}, err
	}
	d, err := startTierdConfig(ctx, bin, dir, produceConfig)
	if err != nil {
		return clusterMeasure{}, err
	}
	defer d.stop()
	hc := produceHTTPClient(f.writers)
	defer hc.CloseIdleConnections()
	return clusterLoad(ctx, []*client.Client{client.New(d.addr, client.WithHTTPClient(hc))}, f, recs)
}

// measureCluster runs the load against n nodes in cluster mode over a new
// bucket and a new database, and counts the journal objects they wrote.
func measureCluster(ctx context.Context, bin, dir string, s3 *minio.Client, f clusterFlags, n int, recs [][]client.Record) (clusterMeasure, error) {
	name := fmt.Sprintf("tierbench-cluster-%08x", rand.Uint32())
	if err := s3.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		return clusterMeasure{}, fmt.Errorf("bucket %s at %s: %w (are AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set?)", name, f.endpoint, err)
	}
	defer removeBucket(s3, name)
	dsn, drop, err := createDatabase(ctx, f.catalog, strings.ReplaceAll(name, "-", "_"))
	if err != nil {
		return clusterMeasure{}, err
	}
	defer drop()
	store := fmt.Sprintf("s3://%s/tierd?endpoint=%s&region=us-east-1", name, url.QueryEscape(f.endpoint))
	hc := produceHTTPClient(f.writers)
	defer hc.CloseIdleConnections()
	var clients []*client.Client
	for i := range n {
		id := fmt.Sprintf("n%d", i+1)
		ndir := filepath.Join(dir, id)
		if err := os.MkdirAll(ndir, 0o755); err != nil {
			return clusterMeasure{}, err
		}
		config := fmt.Sprintf(`# written by tierbench cluster
cluster:
  catalog: %q
  node_id: %s
  flush_interval: %s
cold:
  store: %q
`, dsn, id, f.flushInterval, store)
		d, err := startTierdConfig(ctx, bin, ndir, config)
		if err != nil {
			return clusterMeasure{}, err
		}
		defer d.stop()
		clients = append(clients, client.New(d.addr, client.WithHTTPClient(hc)))
	}
	m, err := clusterLoad(ctx, clients, f, recs)
	if err != nil {
		return m, err
	}
	m.puts, err = journalObjects(ctx, s3, name)
	if err != nil {
		return m, err
	}
	for i := range n { // a node that wrote nothing still counts, as 0
		id := fmt.Sprintf("n%d", i+1)
		m.puts[id] += 0
	}
	return m, nil
}

// clusterLoad is the client load: f.writers goroutines, writer w appending
// recs[w] to clients[w mod len] and to stream (w+i) mod f.streams, for
// f.duration. A 503 (backpressure, storage) is waited out and repeated, as
// the Producer would, and not timed.
func clusterLoad(ctx context.Context, clients []*client.Client, f clusterFlags, recs [][]client.Record) (clusterMeasure, error) {
	streams := make([]string, f.streams)
	for i := range streams {
		streams[i] = fmt.Sprintf("bench-%d", i)
	}
	var retries atomic.Uint64
	lat, secs, err := timedCalls(ctx, f.writers, f.duration, func(w, i int) (bool, error) {
		_, err := clients[w%len(clients)].AppendBatch(ctx, streams[(w+i)%len(streams)], recs[w])
		var ae *client.APIError
		if errors.As(err, &ae) && (ae.Status == http.StatusServiceUnavailable || ae.Status == http.StatusTooManyRequests) {
			retries.Add(1)
			time.Sleep(max(ae.RetryAfter, client.DefaultMinBackoff))
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return clusterMeasure{}, err
	}
	res := batchResult(lat, secs, f.batch, f.valueBytes)
	return clusterMeasure{res: res, retries: retries.Load(), secs: secs,
		bytes: float64(len(lat) * f.batch * f.valueBytes)}, nil
}

// journalObjects counts the objects under _journal/ in bucket by node id,
// the path element after _journal/.
func journalObjects(ctx context.Context, s3 *minio.Client, bucket string) (map[string]int, error) {
	out := map[string]int{}
	for obj := range s3.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("list %s: %w", bucket, obj.Err)
		}
		_, rest, ok := strings.Cut(obj.Key, "_journal/")
		if !ok {
			continue
		}
		node, _, _ := strings.Cut(rest, "/")
		out[node]++
	}
	return out, nil
}

// removeBucket empties and removes a bucket a measurement made.
func removeBucket(s3 *minio.Client, bucket string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	objs := s3.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true})
	for e := range s3.RemoveObjects(ctx, bucket, objs, minio.RemoveObjectsOptions{}) {
		_ = e // best effort: a leftover object only takes scratch space
	}
	s3.RemoveBucket(ctx, bucket)
}

// createDatabase creates database name on the server admin connects to and
// returns its DSN and a function dropping it.
func createDatabase(ctx context.Context, admin, name string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("--catalog: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("--catalog: create database %s: %w", name, err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", nil, fmt.Errorf("--catalog is not a postgres:// URL: %w", err)
	}
	u.Path = "/" + name
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return
		}
		defer conn.Close(context.Background())
		conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	}
	return u.String(), drop, nil
}
