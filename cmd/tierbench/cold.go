package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"os"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/spf13/cobra"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/cold/pqfile"
	"github.com/tierd/tierd/server"
	"github.com/tierd/tierd/tiers"
	"github.com/tierd/tierd/warm"
)

type coldFlags struct {
	endpoint string
	bucket   string
	records  int
	level    int
	runs     int
	output   string
}

func newColdCmd() *cobra.Command {
	var f coldFlags
	cmd := &cobra.Command{
		Use:   "cold",
		Short: "Parquet conversion, upload and pruned reads vs. zstd, raw PUT and full GET",
		Long: `cold measures the cold tier against baselines taken in the same run:
  conversion  pqfile.Write of a segment  vs  zstd EncodeAll of the same records as NDJSON (same level)
  size        the Parquet object         vs  the zstd-compressed NDJSON
  format 2    pqfile.Write as format 2.0 vs  as format 1.2 (Options.Version 1): speed
              (wall and CPU time) and size, three ways: from a warm segment file
              written from the records as an NDJSON append parsed them
              (server.ParseNDJSON, whose JSON hints the file keeps), as tierd's
              mover converts; from the same segment without hints (binary
              batches, value_b64, WAL replays), which format 2 must check
              itself; and from the records in memory without hints; and that
              check (pqfile.IsJSON vs utf8.Valid && json.Valid over every value)
  upload      objstore Put (minio-go)    vs  a raw minio-go PutObject of as many random bytes
  1% read     a cold read of 1% of the offsets through ranged GETs (cold cache empty)
              vs  a full GET of the object + decoding every row
against the MinIO at --endpoint (credentials from AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY). 'make bench' starts one with testenv/minio.sh.`,
		Example: "  AWS_ACCESS_KEY_ID=tierd AWS_SECRET_ACCESS_KEY=tierd-secret tierbench cold --endpoint http://127.0.0.1:9000",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCold(cmd.Context(), cmd.OutOrStdout(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.endpoint, "endpoint", "", "MinIO/S3 endpoint, e.g. http://127.0.0.1:9000 (required)")
	fl.StringVar(&f.bucket, "bucket", "tierbench", "bucket to use (created if missing)")
	fl.IntVar(&f.records, "records", 300_000, "records in the segment")
	fl.IntVar(&f.level, "level", 3, "zstd level for both Parquet and the baseline")
	fl.IntVar(&f.runs, "runs", 5, "repetitions; medians are reported")
	fl.StringVarP(&f.output, "output", "o", "table", "table or json")
	cmd.MarkFlagRequired("endpoint")
	return cmd
}

// benchRecords makes a segment of trading-like records (recordGen's), with
// offsets from 0.
func benchRecords(n int) []tiers.Record {
	out := newRecordGen(7).batch(n)
	for i := range out {
		out[i].Offset = uint64(i)
	}
	return out
}

// ndjson renders records as tierd's read API does.
func ndjson(recs []tiers.Record) []byte {
	var b bytes.Buffer
	for i := range recs {
		r := &recs[i]
		line, _ := json.Marshal(map[string]any{
			"offset": r.Offset, "ts": time.Unix(0, r.TS).UTC().Format(time.RFC3339Nano),
			"key": r.Key, "tags": r.Tags, "value": json.RawMessage(r.Value),
		})
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func seq(recs []tiers.Record) iter.Seq2[tiers.Record, error] {
	return func(yield func(tiers.Record, error) bool) {
		for _, r := range recs {
			if !yield(r, nil) {
				return
			}
		}
	}
}

type coldRun struct {
	zstdMBps, convMBps     float64
	v1MBps, v1Bytes        float64 // format 1.2, same records
	v2CPU, v1CPU           time.Duration
	warm                   [2]versionPair // the same from warm segments: [0] without hints, [1] with
	isJSONMs, stdJSONMs    float64        // CPU ms of the JSON check over every value
	jsonValues             int
	zstdBytes, pqBytes     int64
	rawPutMBps, putMBps    float64
	fullRead, partRead     time.Duration
	fetched, objectBytes   int64
	partRecords, rowGroups int
}

// versionPair is one conversion of the same records as format 2.0 and 1.2.
type versionPair struct {
	v2MBps, v1MBps float64
	v2CPU, v1CPU   time.Duration
}

func runCold(ctx context.Context, out io.Writer, f coldFlags) error {
	recs := benchRecords(f.records)
	text := ndjson(recs)
	creds := credentials.NewEnvAWS()
	raw, err := minio.New(trimScheme(f.endpoint), &minio.Options{Creds: creds, Secure: isHTTPS(f.endpoint)})
	if err != nil {
		return err
	}
	if ok, err := raw.BucketExists(ctx, f.bucket); err != nil {
		return fmt.Errorf("bucket %s at %s: %w (are AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set?)", f.bucket, f.endpoint, err)
	} else if !ok {
		if err := raw.MakeBucket(ctx, f.bucket, minio.MakeBucketOptions{}); err != nil {
			return err
		}
	}
	storeURL := fmt.Sprintf("s3://%s/bench?endpoint=%s&region=us-east-1&driver=minio", f.bucket, f.endpoint)
	bucket, err := objstore.Open(ctx, storeURL, objstore.Options{})
	if err != nil {
		return err
	}
	defer bucket.Close()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(f.level)))
	if err != nil {
		return err
	}
	defer enc.Close()
	warmDir, err := os.MkdirTemp("", "tierbench-cold-warm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(warmDir)
	ws, err := warm.Open(warmDir, warm.Options{})
	if err != nil {
		return err
	}
	defer ws.Close()
	seg, err := ingestedSegment(ctx, ws, "hinted", recs, true)
	if err != nil {
		return err
	}
	defer seg.Release()
	plainSeg, err := ingestedSegment(ctx, ws, "plain", recs, false)
	if err != nil {
		return err
	}
	defer plainSeg.Release()

	var runs []coldRun
	for run := 0; run < f.runs; run++ {
		var r coldRun
		// Conversion vs plain zstd of the same records as NDJSON.
		t0 := time.Now()
		z := enc.EncodeAll(text, make([]byte, 0, len(text)/4))
		r.zstdMBps = float64(len(text)) / time.Since(t0).Seconds() / 1e6
		r.zstdBytes = int64(len(z))
		// Format 1.2 and 2.0 of the same records, in alternating order so
		// that neither always runs first.
		var pq, pq1 bytes.Buffer
		pq.Grow(len(text) / 3)
		pq1.Grow(len(text) / 3)
		var info pqfile.Info
		for _, version := range [][]int{{2, 1}, {1, 2}}[run%2] {
			buf := &pq
			if version == 1 {
				buf = &pq1
			}
			inf, mbps, cpu, err := timedWrite(ctx, buf, seq(recs), pqfile.Options{Level: f.level, Version: version}, len(text))
			if err != nil {
				return err
			}
			if version == 1 {
				r.v1MBps, r.v1CPU, r.v1Bytes = mbps, cpu, float64(buf.Len())
			} else {
				r.convMBps, r.v2CPU, info = mbps, cpu, inf
			}
		}
		// The same two conversions from the warm segments, as the mover
		// does: without hints (warm[0]) and with those ingest gave the
		// records (warm[1]), each pair in alternating order.
		for h, from := range []*warm.Reader{plainSeg, seg} {
			for _, version := range [][]int{{1, 2}, {2, 1}}[(run+h)%2] {
				var out bytes.Buffer
				out.Grow(len(text) / 3)
				inf, mbps, cpu, err := timedWrite(ctx, &out, from.Scan(tiers.AllRecords()), pqfile.Options{Level: f.level, Version: version}, len(text))
				if err != nil {
					return err
				}
				if inf.Meta.Digest != info.Meta.Digest || (version == 2 && !bytes.Equal(parquetPages(out.Bytes()), parquetPages(pq.Bytes()))) {
					return fmt.Errorf("format %d from a warm segment (hints %v) is not the file converted from memory", version, h == 1)
				}
				if w := &r.warm[h]; version == 1 {
					w.v1MBps, w.v1CPU = mbps, cpu
				} else {
					w.v2MBps, w.v2CPU = mbps, cpu
				}
			}
		}
		r.pqBytes = int64(pq.Len())
		r.rowGroups = info.RowGroups
		// What format 2's choice between value and value_bin costs, and
		// what encoding/json would have.
		c0 := cpuTime()
		for i := range recs {
			if pqfile.IsJSON(recs[i].Value) {
				r.jsonValues++
			}
		}
		c1 := cpuTime()
		for i := range recs {
			_ = utf8.Valid(recs[i].Value) && json.Valid(recs[i].Value)
		}
		r.isJSONMs, r.stdJSONMs = float64(c1-c0)/1e6, float64(cpuTime()-c1)/1e6

		// Upload vs a raw PUT of as many random bytes.
		noise := make([]byte, pq.Len())
		rand.Read(noise)
		t0 = time.Now()
		if _, err := raw.PutObject(ctx, f.bucket, fmt.Sprintf("raw/%d", run), bytes.NewReader(noise), int64(len(noise)), minio.PutObjectOptions{}); err != nil {
			return err
		}
		r.rawPutMBps = float64(len(noise)) / time.Since(t0).Seconds() / 1e6
		m := info.Meta
		m.Stream = "bench"
		key := cold.ObjectKey(m)
		t0 = time.Now()
		if err := bucket.Put(ctx, key, bytes.NewReader(pq.Bytes()), int64(pq.Len())); err != nil {
			return err
		}
		r.putMBps = float64(pq.Len()) / time.Since(t0).Seconds() / 1e6
		r.objectBytes = int64(pq.Len())

		// 1 % of the offsets through the cold tier (fresh cache) vs a full
		// GET and decode.
		tier, err := cold.New(cold.Options{Bucket: nopClose{bucket}, SpoolDir: os.TempDir()})
		if err != nil {
			return err
		}
		q := tiers.AllRecords()
		q.From = m.Base + m.Count/2
		q.To = q.From + m.Count/100 - 1
		t0 = time.Now()
		for _, err := range tier.Scan(ctx, m, q) {
			if err != nil {
				return err
			}
			r.partRecords++
		}
		r.partRead = time.Since(t0)
		r.fetched = tier.FetchedBytes()
		t0 = time.Now()
		rc, err := bucket.Get(ctx, key)
		if err != nil {
			return err
		}
		all, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		rd, err := pqfile.Open(ctx, bytes.NewReader(all), int64(len(all)), key)
		if err != nil {
			return err
		}
		n := 0
		for _, err := range rd.Scan(ctx, tiers.AllRecords()) {
			if err != nil {
				return err
			}
			n++
		}
		r.fullRead = time.Since(t0)
		if n != len(recs) || r.partRecords != int(m.Count/100) {
			return fmt.Errorf("read %d of %d records in full, %d of %d partially", n, len(recs), r.partRecords, m.Count/100)
		}
		bucket.Delete(ctx, key)
		raw.RemoveObject(ctx, f.bucket, fmt.Sprintf("raw/%d", run), minio.RemoveObjectOptions{})
		runs = append(runs, r)
	}
	return reportCold(out, f, len(recs), len(text), runs)
}

func reportCold(out io.Writer, f coldFlags, n, textBytes int, runs []coldRun) error {
	col := func(fn func(r coldRun) float64) float64 {
		var xs []float64
		for _, r := range runs {
			xs = append(xs, fn(r))
		}
		return median(xs)
	}
	res := map[string]float64{
		"zstd_ndjson_mb_per_s":    col(func(r coldRun) float64 { return r.zstdMBps }),
		"parquet_mb_per_s":        col(func(r coldRun) float64 { return r.convMBps }),
		"conversion_ratio":        col(func(r coldRun) float64 { return r.convMBps / r.zstdMBps }),
		"zstd_ndjson_bytes":       col(func(r coldRun) float64 { return float64(r.zstdBytes) }),
		"parquet_bytes":           col(func(r coldRun) float64 { return float64(r.pqBytes) }),
		"size_ratio":              col(func(r coldRun) float64 { return float64(r.pqBytes) / float64(r.zstdBytes) }),
		"raw_put_mb_per_s":        col(func(r coldRun) float64 { return r.rawPutMBps }),
		"upload_mb_per_s":         col(func(r coldRun) float64 { return r.putMBps }),
		"upload_ratio":            col(func(r coldRun) float64 { return r.putMBps / r.rawPutMBps }),
		"read_1pct_fetched_bytes": col(func(r coldRun) float64 { return float64(r.fetched) }),
		"read_1pct_fetch_ratio":   col(func(r coldRun) float64 { return float64(r.fetched) / float64(r.objectBytes) }),
		"read_1pct_ms":            col(func(r coldRun) float64 { return float64(r.partRead.Microseconds()) / 1000 }),
		"full_get_decode_ms":      col(func(r coldRun) float64 { return float64(r.fullRead.Microseconds()) / 1000 }),
		"read_time_ratio":         col(func(r coldRun) float64 { return r.partRead.Seconds() / r.fullRead.Seconds() }),
		"row_groups":              col(func(r coldRun) float64 { return float64(r.rowGroups) }),
		"v1_parquet_mb_per_s":     col(func(r coldRun) float64 { return r.v1MBps }),
		"v1_parquet_bytes":        col(func(r coldRun) float64 { return r.v1Bytes }),
		"v2_v1_speed_ratio":       col(func(r coldRun) float64 { return r.convMBps / r.v1MBps }),
		"v2_v1_cpu_ratio":         col(func(r coldRun) float64 { return r.v2CPU.Seconds() / r.v1CPU.Seconds() }),
		"v2_v1_size_ratio":        col(func(r coldRun) float64 { return float64(r.pqBytes) / r.v1Bytes }),
		"v2_cpu_ms":               col(func(r coldRun) float64 { return float64(r.v2CPU.Microseconds()) / 1000 }),
		"v1_cpu_ms":               col(func(r coldRun) float64 { return float64(r.v1CPU.Microseconds()) / 1000 }),
		"isjson_cpu_ms":           col(func(r coldRun) float64 { return r.isJSONMs }),
		"stdlib_json_cpu_ms":      col(func(r coldRun) float64 { return r.stdJSONMs }),
		"json_values":             col(func(r coldRun) float64 { return float64(r.jsonValues) }),
	}
	for h, name := range []string{"warm_nohint", "warm"} {
		res[name+"_v2_mb_per_s"] = col(func(r coldRun) float64 { return r.warm[h].v2MBps })
		res[name+"_v1_mb_per_s"] = col(func(r coldRun) float64 { return r.warm[h].v1MBps })
		res[name+"_v2_v1_speed_ratio"] = col(func(r coldRun) float64 { return r.warm[h].v2MBps / r.warm[h].v1MBps })
		res[name+"_v2_v1_cpu_ratio"] = col(func(r coldRun) float64 { return r.warm[h].v2CPU.Seconds() / r.warm[h].v1CPU.Seconds() })
		res[name+"_v2_cpu_ms"] = col(func(r coldRun) float64 { return float64(r.warm[h].v2CPU.Microseconds()) / 1000 })
		res[name+"_v1_cpu_ms"] = col(func(r coldRun) float64 { return float64(r.warm[h].v1CPU.Microseconds()) / 1000 })
	}
	if f.output == "json" {
		return json.NewEncoder(out).Encode(map[string]any{"records": n, "ndjson_bytes": textBytes, "level": f.level, "runs": f.runs, "results": res})
	}
	fmt.Fprintf(out, "cold: %d records (%.1f MB as NDJSON), zstd level %d, %d runs, medians (ratios are medians of per-run ratios)\n",
		n, float64(textBytes)/1e6, f.level, f.runs)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "conversion\tParquet %.1f MB/s\tzstd(NDJSON) %.1f MB/s\tratio %.2f\t(goal ≥ 0.60)\n", res["parquet_mb_per_s"], res["zstd_ndjson_mb_per_s"], res["conversion_ratio"])
	fmt.Fprintf(tw, "size\tParquet %.2f MB (%d row groups)\tzstd(NDJSON) %.2f MB\tratio %.3f\t(goal ≤ 1.05)\n", res["parquet_bytes"]/1e6, int(res["row_groups"]), res["zstd_ndjson_bytes"]/1e6, res["size_ratio"])
	for _, row := range []struct{ label, prefix, note string }{
		{"format 2 speed, warm, hints", "warm_", "goal ≥ 0.90; NDJSON appends"},
		{"format 2 speed, warm, no hints", "warm_nohint_", "goal ≥ 0.90; binary batches, value_b64, WAL replays"},
		{"format 2 speed, memory, no hints", "", "records in memory, every value checked"},
	} {
		v2, v1 := row.prefix+"v2_mb_per_s", row.prefix+"v1_mb_per_s"
		if row.prefix == "" {
			v2, v1 = "parquet_mb_per_s", "v1_parquet_mb_per_s"
		}
		fmt.Fprintf(tw, "%s\t2.0 %.1f MB/s, %.0f ms CPU\t1.2 %.1f MB/s, %.0f ms CPU\tratio %.2f (CPU %.2f)\t(%s)\n", row.label,
			res[v2], res[row.prefix+"v2_cpu_ms"], res[v1], res[row.prefix+"v1_cpu_ms"],
			res[row.prefix+"v2_v1_speed_ratio"], 1/res[row.prefix+"v2_v1_cpu_ratio"], row.note)
	}
	fmt.Fprintf(tw, "format 2 size\t2.0 %.3f MB\t1.2 %.3f MB\tratio %.3f\t(goal ≤ 1.10)\n", res["parquet_bytes"]/1e6, res["v1_parquet_bytes"]/1e6, res["v2_v1_size_ratio"])
	fmt.Fprintf(tw, "JSON check\tIsJSON %.1f ms CPU\tutf8+json.Valid %.1f ms CPU\tof 2.0's %.0f ms: %.1f %%\t(%d of %d values JSON)\n",
		res["isjson_cpu_ms"], res["stdlib_json_cpu_ms"], res["v2_cpu_ms"], 100*res["isjson_cpu_ms"]/res["v2_cpu_ms"], int(res["json_values"]), n)
	fmt.Fprintf(tw, "upload\tobjstore Put %.1f MB/s\traw PutObject %.1f MB/s\tratio %.2f\t(goal ≥ 0.60)\n", res["upload_mb_per_s"], res["raw_put_mb_per_s"], res["upload_ratio"])
	fmt.Fprintf(tw, "1%% read bytes\tfetched %.2f MB\tobject %.2f MB\tratio %.3f\t(goal ≤ 0.10)\n", res["read_1pct_fetched_bytes"]/1e6, res["parquet_bytes"]/1e6, res["read_1pct_fetch_ratio"])
	fmt.Fprintf(tw, "1%% read time\tcold read %.1f ms\tfull GET+decode %.1f ms\tratio %.3f\t(goal ≤ 0.30)\n", res["read_1pct_ms"], res["full_get_decode_ms"], res["read_time_ratio"])
	return tw.Flush()
}

// cpuTime is the CPU time (user + system) the process has used so far: on
// a shared machine it measures a conversion's work better than the wall
// clock does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// nopClose keeps the cold tier from closing the bucket the benchmark shares.
type nopClose struct{ objstore.Bucket }

func (nopClose) Close() error { return nil }

func trimScheme(endpoint string) string {
	for _, p := range []string{"http://", "https://"} {
		if len(endpoint) > len(p) && endpoint[:len(p)] == p {
			return endpoint[len(p):]
		}
	}
	return endpoint
}

func isHTTPS(endpoint string) bool { return len(endpoint) > 8 && endpoint[:8] == "https://" }

// ingestedSegment writes recs to a warm segment of stream in ws the way
// tierd does with an append of them: each record rendered as a line of an
// NDJSON append and parsed by the server's parser (which sets the JSON hint
// on values it checked), then written by the warm store, whose format keeps
// the hints; with hints false they are cleared first, as a segment written
// by an older tierd or from a WAL replay has none. It returns a reader of
// the segment.
func ingestedSegment(ctx context.Context, ws *warm.Store, stream string, recs []tiers.Record, hints bool) (*warm.Reader, error) {
	var body bytes.Buffer
	for i := range recs {
		r := &recs[i]
		line, err := json.Marshal(map[string]any{"key": r.Key, "ts": r.TS, "tags": r.Tags, "value": json.RawMessage(r.Value)})
		if err != nil {
			return nil, err
		}
		body.Write(line)
		body.WriteByte('\n')
	}
	parsed, err := server.ParseNDJSON(&body, server.ParseOptions{})
	if err != nil {
		return nil, fmt.Errorf("parse the bench records as an append: %w", err)
	}
	w, err := ws.Create(stream, 0)
	if err != nil {
		return nil, err
	}
	defer w.Abort()
	for i := range parsed {
		parsed[i].Offset = uint64(i)
		if !parsed[i].Equal(&recs[i]) || !parsed[i].JSON {
			return nil, fmt.Errorf("record %d parsed as %+v (JSON hint %v), want %+v", i, parsed[i], parsed[i].JSON, recs[i])
		}
		parsed[i].JSON = hints
		if err := w.Append(&parsed[i]); err != nil {
			return nil, err
		}
	}
	if _, err := w.Commit(ctx); err != nil {
		return nil, err
	}
	return ws.Acquire(stream, 0)
}

// timedWrite converts records to w with pqfile.Write and returns, beside
// Write's answer, its speed in MB/s of inBytes (the NDJSON the records
// make) and the CPU time it took.
func timedWrite(ctx context.Context, w io.Writer, records iter.Seq2[tiers.Record, error], opts pqfile.Options, inBytes int) (pqfile.Info, float64, time.Duration, error) {
	t0, c0 := time.Now(), cpuTime()
	info, err := pqfile.Write(ctx, w, "bench", records, opts)
	return info, float64(inBytes) / time.Since(t0).Seconds() / 1e6, cpuTime() - c0, err
}

// parquetPages is a Parquet file's bytes before its footer: two writes of
// the same records have the same pages, though not the same footer.
func parquetPages(file []byte) []byte {
	n := len(file) - 8 - int(binary.LittleEndian.Uint32(file[len(file)-8:]))
	return file[:n]
}
