package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/spf13/cobra"
	"github.com/tierd/tierd/client"
)

// tierbench memory: a real tierd's resident memory, file-backed pages
// included, under three workloads, beside the budgets it was given.

type memoryFlags struct {
	tierd      string
	runs       int
	workloads  []string
	hotBytes   string
	volume     float64
	edgeConfig string
	edgeFor    time.Duration
	edgeRate   float64
	edgeWarm   time.Duration
	streams    int
	perStream  int
	sample     time.Duration
	samplesOut string
	output     string
}

func newMemoryCmd() *cobra.Command {
	var f memoryFlags
	cmd := &cobra.Command{
		Use:   "memory",
		Short: "tierd's resident memory (anonymous and file-backed) against its budgets",
		Long: `memory starts a real tierd (bin/tierd next to this executable, or --tierd, or
one built with go build) on a throwaway data directory for each run of each
workload, drives the workload over HTTP, and samples the daemon's
/proc/<pid>/status every --sample: VmRSS (everything resident), RssAnon (heap,
stacks) and RssFile (mapped files: the binary and mapped warm segments).
Peak is the kernel's VmHWM; steady is the median of the samples in the
workload's steady window. Workloads:
  default  every setting at its default (hot.max_bytes 1 GiB unless
           --hot-bytes): 4 writers append batches of 100 records of 1000 B to
           8 streams until --volume × hot.max_bytes is appended, while a reader
           reads 1000-record ranges at random offsets (hot and warm). Steady:
           the second half of the time after the budget first filled.
  edge     the profile in --edge-config (examples/edge.yaml) with its policies
           replaced by a time-compressed one (segments seal at 5 s, leave memory
           at 5 s, move to the cold file store at --edge-warm-age, 15 s;
           migrator every 3 s), so that one run sees every tier: 2 writers
           append --edge-rate bytes/s of 200 B values to 4 streams for
           --edge-for, a reader reads 200-record ranges at random retained
           offsets (hot, warm and cold). Steady: the second half of the run.
  streams  every setting at its default: --streams streams get one batch of
           --per-stream records of 100 B each, from 32 goroutines. Steady: the
           5 s after the last append.
Each figure is the median over --runs runs (min–max).`,
		Example: "  tierbench memory\n  tierbench memory --workloads edge --runs 5\n  tierbench memory --workloads default --hot-bytes 256MiB",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMemory(cmd.Context(), cmd.OutOrStdout(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.tierd, "tierd", "", "tierd binary to start (default: tierd next to tierbench, else go build)")
	fl.IntVar(&f.runs, "runs", 3, "runs of each workload, each on a fresh tierd; medians are reported")
	fl.StringSliceVar(&f.workloads, "workloads", []string{"default", "edge", "streams"}, "workloads to run: default, edge, streams")
	fl.StringVar(&f.hotBytes, "hot-bytes", "", "hot.max_bytes of the default workload (default: tierd's default)")
	fl.Float64Var(&f.volume, "volume", 2, "default workload: bytes appended, as a multiple of hot.max_bytes")
	fl.StringVar(&f.edgeConfig, "edge-config", "examples/edge.yaml", "the edge profile's configuration file")
	fl.DurationVar(&f.edgeFor, "edge-for", time.Minute, "length of each edge run")
	fl.Float64Var(&f.edgeRate, "edge-rate", 2<<20, "edge workload: value bytes appended per second")
	fl.DurationVar(&f.edgeWarm, "edge-warm-age", 15*time.Second, "edge workload: the policy's warm.max_age (longer than --edge-for: nothing moves to cold, warm files pile up)")
	fl.IntVar(&f.streams, "streams", 100_000, "streams of the streams workload")
	fl.IntVar(&f.perStream, "per-stream", 3, "records per stream of the streams workload")
	fl.DurationVar(&f.sample, "sample", 200*time.Millisecond, "RSS sampling period")
	fl.StringVar(&f.samplesOut, "samples", "", "also write every sample to this CSV file (workload, run, seconds, rss, anon, file in bytes)")
	fl.StringVarP(&f.output, "output", "o", "table", "table or json")
	return cmd
}

// memSample is one reading of /proc/<pid>/status, in bytes.
type memSample struct {
	at                     time.Duration // since the sampler started
	rss, anon, file, shmem int64
	hwm                    int64
}

// readProcMem reads the daemon's memory counters.
func readProcMem(pid int) (memSample, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memSample{}, err
	}
	defer f.Close()
	var s memSample
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch name {
		case "VmRSS":
			dst = &s.rss
		case "RssAnon":
			dst = &s.anon
		case "RssFile":
			dst = &s.file
		case "RssShmem":
			dst = &s.shmem
		case "VmHWM":
			dst = &s.hwm
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return memSample{}, fmt.Errorf("/proc/%d/status: %s: %w", pid, name, err)
		}
		*dst = kb << 10
	}
	if err := sc.Err(); err != nil {
		return memSample{}, err
	}
	if s.rss == 0 {
		return memSample{}, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
	}
	return s, nil
}

// sampler reads a process's memory every period until stopped.
type sampler struct {
	pid   int
	start time.Time
	stop  chan struct{}
	done  chan struct{}

	mu      sync.Mutex
	samples []memSample
	err     error
}

func startSampler(pid int, period time.Duration) *sampler {
	s := &sampler{pid: pid, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			s.take()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) take() {
	m, err := readProcMem(s.pid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.err == nil {
			s.err = err
		}
		return
	}
	m.at = time.Since(s.start)
	s.samples = append(s.samples, m)
}

// now is the sampler's clock.
func (s *sampler) now() time.Duration { return time.Since(s.start) }

// finish stops sampling after one last reading and returns every sample.
func (s *sampler) finish() ([]memSample, error) {
	close(s.stop)
	<-s.done
	s.take()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples, s.err
}

// memRun is one run of one workload.
type memRun struct {
	budget  int64 // hot.max_bytes as the daemon reports it
	idle    memSample
	peak    memSample // rss = VmHWM; anon, file = the largest sampled
	steady  memSample // medians of the steady window's samples
	records int64     // appended
	bytes   int64     // value bytes appended
	reads   int64     // read requests answered
	secs    float64   // the workload's length
	// cold and warm are the segments the tiers held at the end.
	cold, warm int
	samples    []memSample
}

// summarize fills peak and steady from the samples; steady is the window
// [from, to).
func (r *memRun) summarize(samples []memSample, from, to time.Duration) error {
	if len(samples) == 0 {
		return errors.New("no memory samples")
	}
	r.idle, r.samples = samples[0], samples
	var rss, anon, file []float64
	for _, s := range samples {
		r.peak.hwm = max(r.peak.hwm, s.hwm)
		r.peak.rss = max(r.peak.rss, s.rss, s.hwm)
		r.peak.anon = max(r.peak.anon, s.anon)
		r.peak.file = max(r.peak.file, s.file)
		if s.at >= from && s.at < to {
			rss = append(rss, float64(s.rss))
			anon = append(anon, float64(s.anon))
			file = append(file, float64(s.file))
		}
	}
	if len(rss) == 0 {
		return fmt.Errorf("no samples in the steady window [%v, %v)", from, to)
	}
	r.steady = memSample{rss: int64(median(rss)), anon: int64(median(anon)), file: int64(median(file))}
	return nil
}

func runMemory(ctx context.Context, out io.Writer, f memoryFlags) error {
	if f.runs < 1 || f.streams < 1 || f.perStream < 1 || f.volume <= 0 || f.edgeRate <= 0 || f.sample <= 0 {
		return errors.New("memory: --runs, --streams, --per-stream, --volume, --edge-rate and --sample must be positive")
	}
	if f.output != "table" && f.output != "json" {
		return fmt.Errorf("memory: -o %q is not table or json", f.output)
	}
	for _, w := range f.workloads {
		if !slices.Contains([]string{"default", "edge", "streams"}, w) {
			return fmt.Errorf("memory: --workloads: %q is not default, edge or streams", w)
		}
	}
	var edgeCfg string
	if slices.Contains(f.workloads, "edge") {
		var err error
		if edgeCfg, err = edgeBenchConfig(f.edgeConfig, f.edgeWarm); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	tmp, err := os.MkdirTemp("", "tierbench-memory-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin, err := findTierd(ctx, f.tierd, tmp)
	if err != nil {
		return err
	}
	rep := memReport{Tierd: bin, Runs: f.runs}
	var csv io.Writer = io.Discard
	if f.samplesOut != "" {
		cf, err := os.Create(f.samplesOut)
		if err != nil {
			return err
		}
		defer cf.Close()
		bw := bufio.NewWriter(cf)
		defer bw.Flush()
		csv = bw
		fmt.Fprintln(csv, "workload,run,seconds,rss,anon,file")
	}
	for _, w := range f.workloads {
		var runs []memRun
		start := time.Now()
		for run := range f.runs {
			dir, err := os.MkdirTemp(tmp, w+"-")
			if err != nil {
				return err
			}
			var r memRun
			switch w {
			case "default":
				cfg := "# tierbench memory: every setting at its default\n"
				if f.hotBytes != "" {
					cfg += fmt.Sprintf("hot: {max_bytes: %s}\n", f.hotBytes)
				}
				r, err = memDefault(ctx, bin, dir, cfg, f, run)
			case "edge":
				r, err = memEdge(ctx, bin, dir, edgeCfg, f, run)
			case "streams":
				r, err = memStreams(ctx, bin, dir, f)
			}
			os.RemoveAll(dir)
			if err != nil {
				return fmt.Errorf("memory: %s run %d: %w", w, run+1, err)
			}
			runs = append(runs, r)
			for _, m := range r.samples {
				fmt.Fprintf(csv, "%s,%d,%.2f,%d,%d,%d\n", w, run+1, m.at.Seconds(), m.rss, m.anon, m.file)
			}
		}
		rep.add(w, f, runs, time.Since(start))
	}
	return rep.write(out, f.output)
}

// edgeBenchConfig is the edge profile with its policies replaced by one
// that moves a segment through every tier within seconds (to cold after
// warmAge), and the migrator run every 3 s; the budgets stay the
// profile's.
func edgeBenchConfig(path string, warmAge time.Duration) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("memory: --edge-config: %w", err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(raw, &m); err != nil {
		return "", fmt.Errorf("memory: --edge-config %s: %w", path, err)
	}
	if m == nil {
		m = map[string]any{}
	}
	m["policies"] = []any{map[string]any{
		"name":    "tierbench-edge",
		"streams": []string{"*"},
		"segment": map[string]any{"max_age": "5s"},
		"hot":     map[string]any{"max_age": "5s"},
		"warm":    map[string]any{"max_age": warmAge.String()},
	}}
	mig, _ := m["migrator"].(map[string]any)
	if mig == nil {
		mig = map[string]any{}
	}
	mig["schedule"] = "@every 3s"
	m["migrator"] = mig
	delete(m, "data_dir") // the run's own, from the command line
	delete(m, "listen")
	out, err := yaml.Marshal(m)
	if err != nil {
		return "", err
	}
	return "# tierbench memory: " + path + " with a time-compressed policy\n" + string(out), nil
}

// memDaemon starts tierd on cfg in dir and returns it, a client and the
// hot budget it reports.
func memDaemon(ctx context.Context, bin, dir, cfg string, conns int) (*tierdProc, *client.Client, int64, error) {
	d, err := startTierdConfig(ctx, bin, dir, cfg)
	if err != nil {
		return nil, nil, 0, err
	}
	c := client.New(d.addr, client.WithHTTPClient(produceHTTPClient(conns)))
	st, err := c.Status(ctx)
	if err != nil {
		d.stop()
		return nil, nil, 0, fmt.Errorf("status: %w", err)
	}
	return d, c, st.HotMaxBytes, nil
}

// appendRetrying appends one batch, waiting out backpressure.
func appendRetrying(ctx context.Context, c *client.Client, stream string, recs []client.Record) error {
	for {
		_, err := c.AppendBatch(ctx, stream, recs)
		var ae *client.APIError
		if errors.As(err, &ae) && (ae.Status == http.StatusServiceUnavailable || ae.Status == http.StatusTooManyRequests) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(max(ae.RetryAfter/10, 20*time.Millisecond)):
			}
			continue
		}
		return err
	}
}

// randomRecords returns n records with random values of size bytes.
func randomRecords(n, size int, rng *rand.Rand) []client.Record {
	recs := make([]client.Record, n)
	for i := range recs {
		v := make([]byte, size)
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		recs[i] = client.Record{Key: fmt.Sprintf("k%d", i%16), ValueB64: v}
	}
	return recs
}

// reader reads limit records at random offsets of random streams until
// stop closes, and counts the reads; next[i] is the offset stream i's next
// record gets, as far as the writers know.
func reader(ctx context.Context, c *client.Client, streams []string, next []atomic.Uint64, limit int, pause time.Duration, stop <-chan struct{}, reads *atomic.Int64, rng *rand.Rand) error {
	for {
		select {
		case <-stop:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		i := rng.IntN(len(streams))
		n := next[i].Load()
		if n == 0 {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		q := client.Query{From: rng.Uint64N(n), Limit: limit}
		got := 0
		for _, err := range c.ReadNDJSON(ctx, streams[i], q) {
			if err != nil {
				// Every workload keeps what it appends: a read error,
				// 410 expired included, is a failure of the run.
				return fmt.Errorf("read %s from %d: %w", streams[i], q.From, err)
			}
			got++
		}
		if got == 0 {
			return fmt.Errorf("read %s from %d below %d: no records", streams[i], q.From, n)
		}
		reads.Add(1)
		if pause > 0 {
			time.Sleep(pause)
		}
	}
}

// memDefault appends volume × the hot budget while reading.
func memDefault(ctx context.Context, bin, dir, cfg string, f memoryFlags, run int) (memRun, error) {
	const writers, nstreams, batch, size = 4, 8, 100, 1000
	d, c, budget, err := memDaemon(ctx, bin, dir, cfg, writers+1)
	if err != nil {
		return memRun{}, err
	}
	defer d.stop()
	r := memRun{budget: budget}
	target := int64(f.volume * float64(budget))
	streams := make([]string, nstreams)
	for i := range streams {
		streams[i] = fmt.Sprintf("mem-%d", i)
	}
	next := make([]atomic.Uint64, nstreams)
	var appended, reads atomic.Int64
	var filledAt atomic.Int64 // sampler time when the budget first filled
	filledAt.Store(-1)
	s := startSampler(d.Pid(), f.sample)
	start := time.Now()
	stopRead := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, writers+1)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs := randomRecords(batch, size, rand.New(rand.NewPCG(uint64(w), uint64(run))))
			for i := w; appended.Load() < target; i += writers {
				st := i % nstreams
				if err := appendRetrying(ctx, c, streams[st], recs); err != nil {
					errs[w] = err
					return
				}
				next[st].Add(batch)
				if appended.Add(batch*size) >= budget {
					filledAt.CompareAndSwap(-1, int64(s.now()))
				}
			}
		}()
	}
	rwg := sync.WaitGroup{}
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		errs[writers] = reader(ctx, c, streams, next, 1000, 0, stopRead, &reads, rand.New(rand.NewPCG(99, uint64(run))))
	}()
	wg.Wait()
	close(stopRead)
	rwg.Wait()
	end := s.now()
	r.secs = time.Since(start).Seconds()
	samples, serr := s.finish()
	if err := errors.Join(append(errs, serr)...); err != nil {
		return r, err
	}
	r.bytes, r.records, r.reads = appended.Load(), appended.Load()/size, reads.Load()
	from := time.Duration(filledAt.Load())
	if from < 0 {
		from = end / 2
	}
	if err := r.summarize(samples, from+(end-from)/2, end+time.Second); err != nil {
		return r, err
	}
	return r, r.tierCounts(ctx, c)
}

// tierCounts records the segments the daemon's tiers hold now.
func (r *memRun) tierCounts(ctx context.Context, c *client.Client) error {
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	r.cold, r.warm = st.Tiers["cold"].Segments, st.Tiers["warm"].Segments
	return nil
}

// memEdge runs the edge workload: paced appends, reads over every tier and
// the migrator moving segments to the cold file store.
func memEdge(ctx context.Context, bin, dir, cfg string, f memoryFlags, run int) (memRun, error) {
	const writers, nstreams, batch, size = 2, 4, 50, 200
	d, c, budget, err := memDaemon(ctx, bin, dir, cfg, writers+1)
	if err != nil {
		return memRun{}, err
	}
	defer d.stop()
	r := memRun{budget: budget}
	streams := make([]string, nstreams)
	for i := range streams {
		streams[i] = fmt.Sprintf("edge-%d", i)
	}
	next := make([]atomic.Uint64, nstreams)
	var appended, reads atomic.Int64
	s := startSampler(d.Pid(), f.sample)
	start := time.Now()
	// Each writer appends a batch every interval: together --edge-rate.
	interval := time.Duration(float64(time.Second) * float64(batch*size*writers) / f.edgeRate)
	stopRead := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, writers+1)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs := randomRecords(batch, size, rand.New(rand.NewPCG(uint64(w), uint64(run))))
			due := time.Now()
			for i := w; time.Since(start) < f.edgeFor; i += writers {
				st := i % nstreams
				if err := appendRetrying(ctx, c, streams[st], recs); err != nil {
					errs[w] = err
					return
				}
				next[st].Add(batch)
				appended.Add(batch * size)
				due = due.Add(interval)
				time.Sleep(time.Until(due))
			}
		}()
	}
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		errs[writers] = reader(ctx, c, streams, next, 200, 5*time.Millisecond, stopRead, &reads, rand.New(rand.NewPCG(99, uint64(run))))
	}()
	wg.Wait()
	close(stopRead)
	rwg.Wait()
	end := s.now()
	r.secs = time.Since(start).Seconds()
	samples, serr := s.finish()
	if err := errors.Join(append(errs, serr)...); err != nil {
		return r, err
	}
	r.bytes, r.records, r.reads = appended.Load(), appended.Load()/size, reads.Load()
	if err := r.summarize(samples, end/2, end+time.Second); err != nil {
		return r, err
	}
	if err := r.tierCounts(ctx, c); err != nil {
		return r, err
	}
	if r.cold == 0 && f.edgeWarm+10*time.Second < f.edgeFor {
		return r, errors.New("no segment reached the cold tier: the run did not measure migration")
	}
	return r, nil
}

// memStreams appends a few records to each of very many streams.
func memStreams(ctx context.Context, bin, dir string, f memoryFlags) (memRun, error) {
	const goroutines, size = 32, 100
	d, c, budget, err := memDaemon(ctx, bin, dir, "# tierbench memory: every setting at its default\n", goroutines)
	if err != nil {
		return memRun{}, err
	}
	defer d.stop()
	r := memRun{budget: budget}
	s := startSampler(d.Pid(), f.sample)
	time.Sleep(2 * f.sample) // an idle reading first
	start := time.Now()
	recs := randomRecords(f.perStream, size, rand.New(rand.NewPCG(1, 2)))
	var nextStream atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := nextStream.Add(1) - 1
				if i >= int64(f.streams) {
					return
				}
				if err := appendRetrying(ctx, c, fmt.Sprintf("s-%07d", i), recs); err != nil {
					errs[g] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		s.finish()
		return r, err
	}
	r.secs = time.Since(start).Seconds()
	from := s.now()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
	}
	samples, err := s.finish()
	if err != nil {
		return r, err
	}
	r.records = int64(f.streams * f.perStream)
	r.bytes = r.records * size
	if err := r.summarize(samples, from, from+time.Hour); err != nil {
		return r, err
	}
	st, err := c.Status(ctx)
	if err != nil {
		return r, err
	}
	if st.Streams < f.streams {
		return r, fmt.Errorf("status counts %d streams, %d appended", st.Streams, f.streams)
	}
	return r, nil
}
