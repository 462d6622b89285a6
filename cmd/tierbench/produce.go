package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/tierd/tierd/client"
)

type produceFlags struct {
	addr        string
	tierd       string
	runs        int
	duration    time.Duration
	goroutines  int
	streams     int
	valueBytes  int
	queue       int
	policy      string
	batch       int
	linger      time.Duration
	workers     int
	sampleEvery int
	rate        float64
	output      string
}

func newProduceCmd() *cobra.Command {
	var f produceFlags
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Producer.Send latency and persisted records/s vs. a channel send and synchronous AppendBatch",
		Long: `produce drives client.Producer from --goroutines goroutines against a running
tierd and measures, in this order and repeated --runs times:
  chan         baseline: a bare buffered-channel send loop (one channel of --queue
               entries shaped like the Producer's, the same goroutines and the same
               policy, one goroutine draining it) for --duration
  appendbatch  baseline: client.AppendBatch of --batch records per call from the
               same goroutines, synchronously, for --duration
  producer     Producer.Send from the same goroutines for --duration, then Flush
Send latency is the caller's: one call in --sample-every (at random gaps) of
each goroutine is timed with time.Now around it (timing every call would put two clock reads
into a loop whose calls take tens of nanoseconds). Persisted records/s counts
the records OnBatch reports persisted over the time from the first Send until
Flush returns. Ratios are medians of per-run ratios. Unpaced, the goroutines
outrun the server and fill the queue, so under --policy block some Sends wait
for room; --rate paces the Send and channel loops (in bursts of about 1 ms per
goroutine) below the server's capacity to measure Send with room in the queue.
The AppendBatch baseline is never paced.

Without --addr it starts its own tierd (bin/tierd next to this executable, or
--tierd, or one built with go build) on a free loopback port with wal.sync:
always, 16 MiB segments and no cold tier, data in a temp dir, and stops it
at the end. The streams are the same from run to run. With
--addr, $TIERD_TOKEN (if set) is sent as the bearer token.`,
		Example: "  tierbench produce --runs 5\n  tierbench produce --goroutines 32 --policy drop\n  TIERD_TOKEN=… tierbench produce --addr 127.0.0.1:7070",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runProduce(cmd.Context(), cmd.OutOrStdout(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", "", "tierd to measure, host:port or URL (default: start one)")
	fl.StringVar(&f.tierd, "tierd", "", "tierd binary to start without --addr (default: tierd next to tierbench, else go build)")
	fl.IntVar(&f.runs, "runs", 5, "repetitions; medians are reported")
	fl.DurationVar(&f.duration, "duration", 5*time.Second, "length of each measurement")
	fl.IntVar(&f.goroutines, "goroutines", 8, "goroutines calling Send (and the baselines)")
	fl.IntVar(&f.streams, "streams", 4, "streams the records are spread over")
	fl.IntVar(&f.valueBytes, "value-bytes", 100, "value size of each record")
	fl.IntVar(&f.queue, "queue", client.DefaultQueueSize, "ProducerOptions.QueueSize, and the baseline channel's capacity")
	fl.StringVar(&f.policy, "policy", "block", "queue-full policy: block or drop")
	fl.IntVar(&f.batch, "batch", client.DefaultBatchRecords, "ProducerOptions.BatchRecords, and AppendBatch's batch size")
	fl.DurationVar(&f.linger, "linger", client.DefaultLinger, "ProducerOptions.Linger")
	fl.IntVar(&f.workers, "workers", client.DefaultWorkers, "ProducerOptions.Workers")
	fl.IntVar(&f.sampleEvery, "sample-every", 16, "time one Send call in N of each goroutine (at random gaps of mean N)")
	fl.Float64Var(&f.rate, "rate", 0, "Send calls per second across all goroutines, for Send and the channel (0: as fast as they go)")
	fl.StringVarP(&f.output, "output", "o", "table", "table or json")
	return cmd
}

// produceRun is one run's figures.
type produceRun struct {
	chanSend, send sendStats
	appendRes      result // records/s and ack latency of the AppendBatch baseline
	appendRetries  uint64 // AppendBatch calls repeated after backpressure
	producer       result // persisted records/s until Flush returned
	persisted      uint64 // records OnBatch reported persisted
	stats          client.ProducerStats
	flushWait      time.Duration // from the last Send's return to Flush's
	failErr        error         // the first batch OnBatch reported failed
}

// sendStats summarises the timed calls of one send loop.
type sendStats struct {
	callsPerS           float64
	p50, p99, p999, max time.Duration
	samples             int
}

func runProduce(ctx context.Context, out io.Writer, f produceFlags) error {
	if f.runs < 1 || f.goroutines < 1 || f.streams < 1 || f.valueBytes < 1 || f.queue < 1 || f.batch < 1 || f.workers < 1 || f.sampleEvery < 1 {
		return errors.New("produce: --runs, --goroutines, --streams, --value-bytes, --queue, --batch, --workers and --sample-every must be at least 1")
	}
	if f.output != "table" && f.output != "json" {
		return fmt.Errorf("produce: -o %q is not table or json", f.output)
	}
	var policy client.QueuePolicy
	switch f.policy {
	case "block":
		policy = client.Block
	case "drop":
		policy = client.Drop
	default:
		return fmt.Errorf("produce: --policy %q is not block or drop", f.policy)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	addr, server := f.addr, "--addr "+f.addr
	var opts []client.Option
	if addr == "" {
		tmp, err := os.MkdirTemp("", "tierbench-produce-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		bin, err := findTierd(ctx, f.tierd, tmp)
		if err != nil {
			return err
		}
		d, err := startTierd(ctx, bin, tmp)
		if err != nil {
			return err
		}
		defer d.stop()
		addr = d.addr
		server = fmt.Sprintf("own tierd %s on %s (wal.sync always, 16 MiB segments, cold.store none)", bin, addr)
	} else if tok := os.Getenv("TIERD_TOKEN"); tok != "" {
		opts = append(opts, client.WithToken(tok))
	}

	floor := timerFloor()
	var runs []produceRun
	for run := range f.runs {
		r, err := produceOnce(ctx, addr, opts, f, policy, run)
		if err != nil {
			return fmt.Errorf("produce: run %d: %w", run+1, err)
		}
		runs = append(runs, r)
	}
	return reportProduce(out, f, server, floor, runs)
}

// produceOnce measures the two baselines and then the Producer.
func produceOnce(ctx context.Context, addr string, opts []client.Option, f produceFlags, policy client.QueuePolicy, run int) (produceRun, error) {
	var r produceRun
	recs := make([][]client.Record, f.goroutines)
	for w := range recs {
		for _, tr := range makeBatch(f.batch, f.valueBytes, rand.New(rand.NewPCG(uint64(w), uint64(run)))) {
			recs[w] = append(recs[w], client.Record{Key: tr.Key, ValueB64: tr.Value}) // zero TS: server time
		}
	}
	names := func(kind string) []string {
		s := make([]string, f.streams)
		for i := range s {
			s[i] = fmt.Sprintf("tierbench-%s-%d", kind, i)
		}
		return s
	}

	runtime.GC()
	cs, err := chanBaseline(ctx, f, policy, recs)
	if err != nil {
		return r, fmt.Errorf("channel baseline: %w", err)
	}
	r.chanSend = cs

	runtime.GC()
	hc := produceHTTPClient(max(f.goroutines, f.workers))
	defer hc.CloseIdleConnections()
	c := client.New(addr, append(opts, client.WithHTTPClient(hc))...)
	if r.appendRes, r.appendRetries, err = appendLoop(ctx, c, f, names("appendbatch"), recs); err != nil {
		return r, fmt.Errorf("AppendBatch baseline: %w", err)
	}

	runtime.GC()
	err = producerLoop(ctx, c, f, policy, names("produce"), recs, &r)
	return r, err
}

// producerLoop sends from f.goroutines goroutines through a new Producer
// for f.duration, then flushes it, and sets r's producer figures: the
// persisted records/s over the whole time, the Send latencies, the
// Producer's stats, how long Flush took and the first failure OnBatch
// reported.
func producerLoop(ctx context.Context, c *client.Client, f produceFlags, policy client.QueuePolicy, streams []string, recs [][]client.Record, r *produceRun) error {
	var (
		persisted atomic.Uint64
		failMu    sync.Mutex
		firstFail error
	)
	p := client.NewProducer(c, client.ProducerOptions{
		QueueSize: f.queue, Policy: policy, BatchRecords: f.batch, Linger: f.linger, Workers: f.workers,
		OnBatch: func(o *client.Outcome) {
			if o.Err == nil {
				persisted.Add(uint64(o.Count))
				return
			}
			failMu.Lock()
			firstFail = cmp.Or(firstFail, o.Err)
			failMu.Unlock()
		},
	})
	// Close gives up after a minute (an unreachable server): a benchmark
	// that failed should not hang.
	cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	defer p.Close(cctx)
	ns := len(streams)
	start := time.Now()
	send, err := sendLoop(ctx, f, func(w, i int) error {
		err := p.Send(streams[(w+i)%ns], recs[w][i%len(recs[w])])
		if errors.Is(err, client.ErrQueueFull) {
			return nil // counted in Stats().Dropped
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("Send: %w", err)
	}
	sent := time.Now()
	fctx, fcancel := context.WithTimeout(ctx, 5*time.Minute)
	defer fcancel()
	if err := p.Flush(fctx); err != nil {
		return err
	}
	end := time.Now()
	r.send, r.stats, r.flushWait = send, p.Stats(), end.Sub(sent)
	if err := p.Close(cctx); err != nil {
		return err
	}
	r.failErr = firstFail // Close has stopped the workers
	el := end.Sub(start).Seconds()
	r.persisted = persisted.Load()
	n := float64(r.persisted)
	if n == 0 {
		return fmt.Errorf("no record persisted (first failure: %v)", r.failErr)
	}
	r.producer = result{records: n / el, mbps: n * float64(f.valueBytes) / el / 1e6}
	return nil
}

// chanEntry has the shape of the Producer's queue entry (a stream name, a
// client.Record and a pointer), so the baseline copies the same bytes.
type chanEntry struct {
	stream string
	rec    client.Record
	_      *byte
}

// chanBaseline is the floor under Send: a buffered channel of the queue's
// capacity, fed by the same goroutines and drained by one; under the drop
// policy a full channel refuses instead of waiting, as Send does.
func chanBaseline(ctx context.Context, f produceFlags, policy client.QueuePolicy, recs [][]client.Record) (sendStats, error) {
	ch := make(chan chanEntry, f.queue)
	drained := make(chan struct{})
	go func() {
		for range ch {
		}
		close(drained)
	}()
	streams := make([]string, f.streams)
	for i := range streams {
		streams[i] = fmt.Sprintf("chan-%d", i)
	}
	ns := len(streams)
	s, err := sendLoop(ctx, f, func(w, i int) error {
		e := chanEntry{stream: streams[(w+i)%ns], rec: recs[w][i%len(recs[w])]}
		if policy == client.Block {
			ch <- e
			return nil
		}
		select {
		case ch <- e:
		default: // refused, as Send refuses with ErrQueueFull
		}
		return nil
	})
	close(ch)
	<-drained
	return s, err
}

// sendLoop calls send from f.goroutines goroutines until f.duration has
// passed, timing one call in f.sampleEvery of each with time.Now around
// it. The loop checks an atomic flag a timer sets, so an untimed call costs
// no clock read.
func sendLoop(ctx context.Context, f produceFlags, send func(w, i int) error) (sendStats, error) {
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		lat      []time.Duration
		calls    int
		firstErr error
	)
	start := time.Now()
	t := time.AfterFunc(f.duration, func() { stop.Store(true) })
	defer t.Stop()
	defer context.AfterFunc(ctx, func() { stop.Store(true) })()
	for w := range f.goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, 1<<14)
			// Pacing: every chunk calls (about 1 ms of them), sleep until
			// the schedule catches up.
			var interval time.Duration
			chunk := math.MaxInt
			if f.rate > 0 {
				interval = time.Duration(float64(f.goroutines) / f.rate * 1e9)
				chunk = max(1, int(time.Millisecond/max(interval, 1)))
			}
			// The gap between timed calls is random with mean
			// f.sampleEvery, so that timed calls do not line up with the
			// pacing (always the first call after a sleep, say).
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			var err error
			i, next, pace := 0, 0, chunk
			for ; !stop.Load(); i++ {
				if next == 0 {
					next = 1 + rng.IntN(2*f.sampleEvery-1)
					t0 := time.Now()
					err = send(w, i)
					mine = append(mine, time.Since(t0))
				} else {
					err = send(w, i)
				}
				next--
				if err != nil {
					break
				}
				if pace--; pace == 0 {
					pace = chunk
					if ahead := time.Duration(i+1)*interval - time.Since(start); ahead > 0 {
						time.Sleep(ahead)
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, mine...)
			calls += i
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if firstErr = cmp.Or(firstErr, ctx.Err()); firstErr != nil {
		return sendStats{}, firstErr
	}
	s := sendStats{callsPerS: float64(calls) / el.Seconds(), samples: len(lat)}
	if len(lat) > 0 {
		s.p50, s.p99, s.p999 = percentile(lat, 50), percentile(lat, 99), percentile(lat, 99.9)
		s.max = lat[len(lat)-1] // percentile sorted lat
	}
	return s, nil
}

// appendLoop is the server's own ingest path at the same concurrency:
// f.goroutines goroutines each appending f.batch records per synchronous
// AppendBatch call, round-robin over the streams, for f.duration. It
// returns the records/s, the ack latency and the calls repeated after
// backpressure.
func appendLoop(ctx context.Context, c *client.Client, f produceFlags, streams []string, recs [][]client.Record) (result, uint64, error) {
	var retries atomic.Uint64
	lat, secs, err := timedCalls(ctx, f.goroutines, f.duration, func(w, i int) (bool, error) {
		_, err := c.AppendBatch(ctx, streams[(w+i)%len(streams)], recs[w])
		var ae *client.APIError
		if errors.As(err, &ae) && (ae.Status == http.StatusServiceUnavailable || ae.Status == http.StatusTooManyRequests) {
			// Backpressure: wait and try again, as the Producer does.
			retries.Add(1)
			time.Sleep(max(ae.RetryAfter, client.DefaultMinBackoff))
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return result{}, 0, err
	}
	return batchResult(lat, secs, f.batch, f.valueBytes), retries.Load(), nil
}

// timerFloor is the median of an empty interval timed the way sendLoop
// times a call: it is included in every Send figure, baseline's too.
func timerFloor() time.Duration {
	lat := make([]time.Duration, 1<<18)
	for i := range lat {
		t0 := time.Now()
		lat[i] = time.Since(t0)
	}
	return percentile(lat, 50)
}

// produceHTTPClient keeps conns idle connections per host, where
// http.DefaultTransport keeps 2: the Producer's workers and the baseline's
// goroutines would otherwise open and close connections per request.
func produceHTTPClient(conns int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conns
	tr.MaxIdleConns = max(tr.MaxIdleConns, conns)
	return &http.Client{Transport: tr}
}

// produceConfig is the configuration of the tierd produce starts: every
// group commit fsyncs, and no cold tier competes for the disk. Segments of
// 16 MiB keep the active segments of both measurements' streams well
// inside the default 1 GiB hot budget (unsealed data cannot be evicted, and
// ingest answers 503 when it fills the budget); sealed ones are persisted
// to warm files and evicted as on a server in its steady state.
const produceConfig = `# written by tierbench produce
wal:
  sync: always
segment:
  max_bytes: 16MiB
cold:
  store: none
`

// latStat is a latency over the runs, in nanoseconds.
type latStat struct {
	CallsPerS stat `json:"calls_per_s"`
	P50ns     stat `json:"p50_ns"`
	P99ns     stat `json:"p99_ns"`
	P999ns    stat `json:"p999_ns"`
	MaxNs     stat `json:"max_ns"`
	Samples   stat `json:"timed_calls"`
}

// produceSummary is the report: medians (and min, max) over the runs.
type produceSummary struct {
	Server        string  `json:"server"`
	Goroutines    int     `json:"goroutines"`
	Streams       int     `json:"streams"`
	ValueBytes    int     `json:"value_bytes"`
	Queue         int     `json:"queue"`
	Policy        string  `json:"policy"`
	Batch         int     `json:"batch"`
	Linger        string  `json:"linger"`
	Workers       int     `json:"workers"`
	SampleEvery   int     `json:"sample_every"`
	Rate          float64 `json:"rate,omitempty"`
	Runs          int     `json:"runs"`
	Duration      string  `json:"duration"`
	TimerFloorNs  float64 `json:"timer_floor_ns"`
	ChanSend      latStat `json:"chan_send"`
	Send          latStat `json:"producer_send"`
	SendP50VsChan stat    `json:"send_p50_vs_chan"`
	SendP99VsChan stat    `json:"send_p99_vs_chan"`

	AppendRecords stat   `json:"appendbatch_records_per_s"`
	AppendP50us   stat   `json:"appendbatch_ack_p50_us"`
	AppendP99us   stat   `json:"appendbatch_ack_p99_us"`
	AppendRetries stat   `json:"appendbatch_retries"`
	Records       stat   `json:"producer_persisted_records_per_s"`
	MBps          stat   `json:"producer_value_mb_per_s"`
	VsAppend      stat   `json:"producer_vs_appendbatch"`
	Dropped       stat   `json:"dropped"`
	LossRate      stat   `json:"loss_rate"`
	Failed        stat   `json:"failed"`
	Retries       stat   `json:"retries"`
	FlushMs       stat   `json:"flush_ms"`
	FirstFailure  string `json:"first_failure,omitempty"`
}

func reportProduce(out io.Writer, f produceFlags, server string, floor time.Duration, runs []produceRun) error {
	col := func(fn func(r produceRun) float64) stat {
		var xs []float64
		for _, r := range runs {
			xs = append(xs, fn(r))
		}
		return statOf(xs)
	}
	lat := func(fn func(r produceRun) sendStats) latStat {
		ns := func(d func(s sendStats) time.Duration) stat {
			return col(func(r produceRun) float64 { return float64(d(fn(r)).Nanoseconds()) })
		}
		return latStat{
			CallsPerS: col(func(r produceRun) float64 { return fn(r).callsPerS }),
			P50ns:     ns(func(s sendStats) time.Duration { return s.p50 }),
			P99ns:     ns(func(s sendStats) time.Duration { return s.p99 }),
			P999ns:    ns(func(s sendStats) time.Duration { return s.p999 }),
			MaxNs:     ns(func(s sendStats) time.Duration { return s.max }),
			Samples:   col(func(r produceRun) float64 { return float64(fn(r).samples) }),
		}
	}
	s := produceSummary{
		Server: server, Goroutines: f.goroutines, Streams: f.streams, ValueBytes: f.valueBytes, Queue: f.queue,
		Policy: f.policy, Batch: f.batch, Linger: f.linger.String(), Workers: f.workers, SampleEvery: f.sampleEvery, Rate: f.rate,
		Runs: len(runs), Duration: f.duration.String(), TimerFloorNs: float64(floor.Nanoseconds()),
		ChanSend: lat(func(r produceRun) sendStats { return r.chanSend }),
		Send:     lat(func(r produceRun) sendStats { return r.send }),
		SendP50VsChan: col(func(r produceRun) float64 {
			return float64(r.send.p50) / float64(max(r.chanSend.p50, 1))
		}),
		SendP99VsChan: col(func(r produceRun) float64 {
			return float64(r.send.p99) / float64(max(r.chanSend.p99, 1))
		}),
		AppendRecords: col(func(r produceRun) float64 { return r.appendRes.records }),
		AppendP50us:   col(func(r produceRun) float64 { return float64(r.appendRes.p50.Microseconds()) }),
		AppendP99us:   col(func(r produceRun) float64 { return float64(r.appendRes.p99.Microseconds()) }),
		AppendRetries: col(func(r produceRun) float64 { return float64(r.appendRetries) }),
		Records:       col(func(r produceRun) float64 { return r.producer.records }),
		MBps:          col(func(r produceRun) float64 { return r.producer.mbps }),
		VsAppend:      col(func(r produceRun) float64 { return r.producer.records / r.appendRes.records }),
		Dropped:       col(func(r produceRun) float64 { return float64(r.stats.Dropped) }),
		LossRate:      col(func(r produceRun) float64 { return r.stats.LossRate }),
		Failed:        col(func(r produceRun) float64 { return float64(r.stats.Failed) }),
		Retries:       col(func(r produceRun) float64 { return float64(r.stats.Retries) }),
		FlushMs:       col(func(r produceRun) float64 { return float64(r.flushWait.Microseconds()) / 1000 }),
	}
	if i := slices.IndexFunc(runs, func(r produceRun) bool { return r.failErr != nil }); i >= 0 {
		s.FirstFailure = runs[i].failErr.Error()
	}
	if f.output == "json" {
		return json.NewEncoder(out).Encode(s)
	}
	fmt.Fprintf(out, "produce: %d goroutines, %d streams, %d B values, queue %d (%s), batch %d, linger %s, %d workers; %d runs of %s, median (min–max)\n",
		f.goroutines, f.streams, f.valueBytes, f.queue, f.policy, f.batch, f.linger, f.workers, len(runs), f.duration)
	fmt.Fprintf(out, "server: %s\n\n", server)
	pacing := "unpaced"
	if f.rate > 0 {
		pacing = fmt.Sprintf("paced to %.0f calls/s", f.rate)
	}
	fmt.Fprintf(out, "Send latency, caller side, %s: 1 call in %d of each goroutine (random gaps) timed with time.Now (timer floor %d ns, included in every figure)\n", pacing, f.sampleEvery, floor.Nanoseconds())
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measurement\tcalls/s\tp50\tp99\tp99.9\tmax\t")
	for _, row := range []struct {
		name string
		l    latStat
	}{{"chan send (baseline)", s.ChanSend}, {"Producer.Send", s.Send}} {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", row.name, row.l.CallsPerS.fmt(0),
			nsStat(row.l.P50ns), nsStat(row.l.P99ns), nsStat(row.l.P999ns), nsStat(row.l.MaxNs))
	}
	tw.Flush()
	fmt.Fprintf(out, "Producer.Send / chan send: p50 %s, p99 %s\n\n", s.SendP50VsChan.fmt(2), s.SendP99VsChan.fmt(2))
	fmt.Fprintln(out, "End to end: records OnBatch reported persisted / time from the first Send until Flush returned")
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measurement\trecords/s\tMB/s\tvs AppendBatch\t")
	fmt.Fprintf(tw, "AppendBatch (baseline, sync)\t%s\t%.1f\t1.00\t\n", s.AppendRecords.fmt(0), col(func(r produceRun) float64 { return r.appendRes.mbps }).Median)
	fmt.Fprintf(tw, "Producer\t%s\t%.1f\t%s\t\n", s.Records.fmt(0), s.MBps.Median, s.VsAppend.fmt(2))
	tw.Flush()
	fmt.Fprintf(out, "AppendBatch: ack p50 %s µs, p99 %s µs; retries after backpressure %s\n", s.AppendP50us.fmt(0), s.AppendP99us.fmt(0), s.AppendRetries.fmt(0))
	if f.rate > 0 {
		fmt.Fprintf(out, "(Send is paced to %.0f calls/s: the Producer's records/s is at most that, AppendBatch is not paced)\n", f.rate)
	}
	fmt.Fprintf(out, "Producer: dropped %s, loss rate %s, failed %s, retries %s; Flush took %s ms after the last Send\n",
		s.Dropped.fmt(0), s.LossRate.fmt(4), s.Failed.fmt(0), s.Retries.fmt(0), s.FlushMs.fmt(1))
	if s.FirstFailure != "" {
		fmt.Fprintf(out, "first failed batch: %s\n", s.FirstFailure)
	}
	return nil
}

// nsStat renders a stat of nanoseconds as "median (min–max)" in a unit
// that fits the median.
func nsStat(s stat) string {
	return fmt.Sprintf("%s (%s–%s)", fmtNs(s.Median), fmtNs(s.Min), fmtNs(s.Max))
}

func fmtNs(ns float64) string {
	switch {
	case ns < 1e3:
		return fmt.Sprintf("%.0f ns", ns)
	case ns < 1e7:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	}
	return fmt.Sprintf("%.1f ms", ns/1e6)
}
