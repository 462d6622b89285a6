package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/server"
	"github.com/tierd/tierd/tiers"
	"golang.org/x/sys/unix"
)

type ingestFlags struct {
	dir      string
	runs     int
	duration time.Duration
	batch    int
	writers  int
	sizes    string
	output   string
}

func newIngestCmd() *cobra.Command {
	var f ingestFlags
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "Ingest throughput and ack latency vs. a raw write+fdatasync loop",
		Long: `ingest measures, for each record size, in this order and repeated --runs times:
  raw     a write+fdatasync loop of the same bytes per batch on the same disk
  engine  in-process appends (no HTTP) with wal.sync: always
  http    NDJSON appends over loopback HTTP with wal.sync: always
and then hot-tier reads by offset. It prints the median of the runs; "vs raw"
is the median of each run's throughput divided by the raw loop's in that run.`,
		Example: "  tierbench ingest --runs 5 --duration 2s --batch 100",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runIngest(cmd.Context(), cmd.OutOrStdout(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dir, "dir", "", "scratch directory on the disk to measure (default: a temp dir)")
	fl.IntVar(&f.runs, "runs", 5, "repetitions; medians are reported")
	fl.DurationVar(&f.duration, "duration", 2*time.Second, "length of each measurement")
	fl.IntVar(&f.batch, "batch", 100, "records per batch (per fsync in the raw loop)")
	fl.IntVar(&f.writers, "writers", 1, "concurrent writers for engine and http")
	fl.StringVar(&f.sizes, "sizes", "200,1024", "record value sizes in bytes")
	fl.StringVarP(&f.output, "output", "o", "table", "table or json")
	return cmd
}

func runIngest(ctx context.Context, out io.Writer, f ingestFlags) error {
	dir := f.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "tierbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	var sizes []int
	for _, s := range strings.Split(f.sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return fmt.Errorf("--sizes: bad size %q", s)
		}
		sizes = append(sizes, n)
	}
	var all []summary
	var readP50, readP99 []float64
	for _, size := range sizes {
		var raw, eng, web []result
		for run := 0; run < f.runs; run++ {
			runDir := filepath.Join(dir, fmt.Sprintf("s%d-r%d", size, run))
			r, err := rawLoop(filepath.Join(dir, "raw.dat"), size, f)
			if err != nil {
				return fmt.Errorf("raw loop: %w", err)
			}
			raw = append(raw, r)
			e, p50, p99, err := engineIngest(ctx, runDir+"-engine", size, f)
			if err != nil {
				return fmt.Errorf("engine: %w", err)
			}
			eng = append(eng, e)
			readP50 = append(readP50, float64(p50.Nanoseconds()))
			readP99 = append(readP99, float64(p99.Nanoseconds()))
			h, err := httpIngest(ctx, runDir+"-http", size, f)
			if err != nil {
				return fmt.Errorf("http: %w", err)
			}
			web = append(web, h)
			os.RemoveAll(runDir + "-engine")
			os.RemoveAll(runDir + "-http")
		}
		rs := summarize("raw write+fdatasync", size, raw)
		rs.Ratio = 1
		es := summarize("engine (in-process)", size, eng)
		es.Ratio = ratio(eng, raw)
		hs := summarize("http NDJSON", size, web)
		hs.Ratio = ratio(web, raw)
		all = append(all, rs, es, hs)
	}
	if f.output == "json" {
		return json.NewEncoder(out).Encode(map[string]any{
			"batch": f.batch, "writers": f.writers, "runs": f.runs, "duration": f.duration.String(),
			"results": all, "hot_read_p50_ns": median(readP50), "hot_read_p99_ns": median(readP99),
		})
	}
	fmt.Fprintf(out, "ingest: batch %d records, %d writer(s), %d runs of %s, medians; wal.sync always\n", f.batch, f.writers, f.runs, f.duration)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "measurement\tsize\trecords/s\tMB/s\tack p50\tack p99\tvs raw\t")
	for _, s := range all {
		fmt.Fprintf(tw, "%s\t%d B\t%.0f\t%.1f\t%.0f µs\t%.0f µs\t%.2f\t\n", s.Name, s.Size, s.Records, s.MBps, s.P50us, s.P99us, s.Ratio)
	}
	tw.Flush()
	fmt.Fprintf(out, "hot read by offset (in-process): p50 %.0f ns, p99 %.0f ns\n", median(readP50), median(readP99))
	return nil
}

// makeBatch builds a batch of records with values of size bytes.
func makeBatch(n, size int, rng *rand.Rand) []tiers.Record {
	recs := make([]tiers.Record, n)
	for i := range recs {
		v := make([]byte, size)
		for j := range v {
			v[j] = 'a' + byte(rng.IntN(26))
		}
		recs[i] = tiers.Record{TS: time.Now().UnixNano(), Key: fmt.Sprintf("k%d", i%16), Value: v}
	}
	return recs
}

// rawLoop writes the bytes a WAL frame of one batch would take, then
// fdatasyncs, in a loop: the floor any durable ingest pays.
func rawLoop(path string, size int, f ingestFlags) (result, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	var frame []byte
	for _, r := range makeBatch(f.batch, size, rng) {
		frame = tiers.AppendRecord(frame, &r)
	}
	file, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return result{}, err
	}
	defer os.Remove(path)
	defer file.Close()
	var lat []time.Duration
	start := time.Now()
	var written int64
	for time.Since(start) < f.duration {
		t0 := time.Now()
		if _, err := file.Write(frame); err != nil {
			return result{}, err
		}
		if err := unix.Fdatasync(int(file.Fd())); err != nil {
			return result{}, err
		}
		lat = append(lat, time.Since(t0))
		written += int64(len(frame))
		if written > 256<<20 { // keep the file small, like a WAL that rotates
			file.Truncate(0)
			file.Seek(0, 0)
			written = 0
		}
	}
	el := time.Since(start).Seconds()
	n := float64(len(lat) * f.batch)
	return result{records: n / el, mbps: n * float64(size) / el / 1e6, p50: percentile(lat, 50), p99: percentile(lat, 99)}, nil
}

func openEngine(ctx context.Context, dir string) (*engine.Engine, error) {
	return engine.Open(ctx, engine.Options{DataDir: dir, WALSync: tiers.SyncAlways, HotMaxBytes: 4 << 30, SegmentMaxBytes: 64 << 20})
}

// engineIngest appends batches in-process, then measures hot reads by offset.
func engineIngest(ctx context.Context, dir string, size int, f ingestFlags) (result, time.Duration, time.Duration, error) {
	eng, err := openEngine(ctx, dir)
	if err != nil {
		return result{}, 0, 0, err
	}
	defer eng.Close(ctx)
	res, err := drive(f, func(w int, rng *rand.Rand) (func() error, error) {
		batch := makeBatch(f.batch, size, rng)
		stream := fmt.Sprintf("bench-%d", w)
		return func() error { _, err := eng.Append(ctx, stream, batch); return err }, nil
	}, size)
	if err != nil {
		return result{}, 0, 0, err
	}
	// Let the flusher finish so reads are measured on a quiet machine; the
	// segments stay resident.
	if err := eng.Flush(ctx); err != nil {
		return result{}, 0, 0, err
	}
	p50, p99, err := hotReads(ctx, eng, "bench-0")
	return res, p50, p99, err
}

// hotReads reads random single offsets of a stream through the engine.
func hotReads(ctx context.Context, eng *engine.Engine, stream string) (time.Duration, time.Duration, error) {
	segs, err := eng.Segments(ctx, stream)
	if err != nil || len(segs) == 0 {
		return 0, 0, fmt.Errorf("no segments to read: %v", err)
	}
	next := segs[len(segs)-1].Last + 1
	rng := rand.New(rand.NewPCG(3, 4))
	lat := make([]time.Duration, 0, 100000)
	for i := 0; i < 100000; i++ {
		off := rng.Uint64N(next)
		q := tiers.AllRecords()
		q.From, q.To, q.Limit = off, off, 1
		t0 := time.Now()
		n := 0
		for it, err := range eng.Read(ctx, stream, q) {
			if err != nil {
				return 0, 0, err
			}
			if it.Tier != tiers.Hot {
				return 0, 0, fmt.Errorf("offset %d served from %v, not memory", off, it.Tier)
			}
			n++
		}
		lat = append(lat, time.Since(t0))
		if n != 1 {
			return 0, 0, fmt.Errorf("offset %d: read %d records", off, n)
		}
	}
	return percentile(lat, 50), percentile(lat, 99), nil
}

// httpIngest posts NDJSON batches to a server on loopback.
func httpIngest(ctx context.Context, dir string, size int, f ingestFlags) (result, error) {
	eng, err := openEngine(ctx, dir)
	if err != nil {
		return result{}, err
	}
	defer eng.Close(ctx)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	srv := &http.Server{Handler: server.New(eng, server.Options{})}
	go srv.Serve(ln)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: f.writers}}
	return drive(f, func(w int, rng *rand.Rand) (func() error, error) {
		var body bytes.Buffer
		for _, r := range makeBatch(f.batch, size, rng) {
			// The value is a JSON string of size-2 letters plus quotes: size bytes.
			fmt.Fprintf(&body, `{"key":%q,"value":"%s"}`+"\n", r.Key, r.Value[:size-2])
		}
		url := fmt.Sprintf("http://%s/v1/streams/bench-%d/records", ln.Addr(), w)
		payload := body.Bytes()
		return func() error {
			resp, err := client.Post(url, "application/x-ndjson", bytes.NewReader(payload))
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}, nil
	}, size)
}

// drive runs f.writers goroutines, each calling its op in a loop for
// f.duration, and measures every call.
func drive(f ingestFlags, mk func(w int, rng *rand.Rand) (func() error, error), size int) (result, error) {
	ops := make([]func() error, f.writers)
	for w := range ops {
		op, err := mk(w, rand.New(rand.NewPCG(uint64(w), 9)))
		if err != nil {
			return result{}, err
		}
		ops[w] = op
	}
	lat, secs, err := timedCalls(context.Background(), len(ops), f.duration, func(w, _ int) (bool, error) {
		return true, ops[w]()
	})
	if err != nil {
		return result{}, err
	}
	return batchResult(lat, secs, f.batch, size), nil
}
