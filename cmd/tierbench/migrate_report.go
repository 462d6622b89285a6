package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"
)

// statOf summarises one figure over the runs.
func statOf(xs []float64) stat {
	if len(xs) == 0 {
		return stat{}
	}
	return stat{Median: median(xs), Min: slices.Min(xs), Max: slices.Max(xs)}
}

// fmt renders "median (min–max)" with prec decimals.
func (s stat) fmt(prec int) string {
	return fmt.Sprintf("%.*f (%.*f–%.*f)", prec, s.Median, prec, s.Min, prec, s.Max)
}

type migSummary struct {
	Concurrency       int  `json:"concurrency"`
	UploadSegPerS     stat `json:"upload_segments_per_s"`
	UploadMiBps       stat `json:"upload_warm_mib_per_s"`
	ZstdMiBps         stat `json:"zstd_mib_per_s"`
	VsZstd            stat `json:"upload_vs_zstd"`
	VsRawPut          stat `json:"upload_vs_raw_put"`
	DropSegPerS       stat `json:"drop_warm_segments_per_s"`
	ColdWarm          stat `json:"cold_warm_ratio"`
	ZstdWarm          stat `json:"zstd_warm_ratio"`
	PutShare          stat `json:"put_share_of_worker_time"`
	CheckShare        stat `json:"check_share_of_worker_time"`
	UploadSeconds     stat `json:"upload_run_s"`
	DropWarmSeconds   stat `json:"drop_warm_run_s"`
	StorePutSeconds   stat `json:"store_put_s"`
	StoreCheckSeconds stat `json:"store_stat_and_get_s"`
}

func reportMigrate(out io.Writer, f migrateFlags, storeName string, tpl migTemplate, concs []int, runs []migRun) error {
	const mib = 1 << 20
	warmMiB := float64(tpl.warmBytes) / mib
	nseg := float64(len(tpl.segs))
	col := func(fn func(r migRun) float64) stat {
		var xs []float64
		for _, r := range runs {
			xs = append(xs, fn(r))
		}
		return statOf(xs)
	}
	rawMiBps := col(func(r migRun) float64 { return warmMiB / r.rawPut.Seconds() })
	var sums []migSummary
	for _, c := range concs {
		mc := func(fn func(r migRun, m *migMeasure) float64) stat {
			return col(func(r migRun) float64 { return fn(r, r.ms[c]) })
		}
		sums = append(sums, migSummary{
			Concurrency:   c,
			UploadSegPerS: mc(func(_ migRun, m *migMeasure) float64 { return nseg / m.upload.Seconds() }),
			UploadMiBps:   mc(func(_ migRun, m *migMeasure) float64 { return warmMiB / m.upload.Seconds() }),
			ZstdMiBps:     mc(func(_ migRun, m *migMeasure) float64 { return warmMiB / m.zstd.Seconds() }),
			VsZstd:        mc(func(_ migRun, m *migMeasure) float64 { return m.zstd.Seconds() / m.upload.Seconds() }),
			VsRawPut:      mc(func(r migRun, m *migMeasure) float64 { return r.rawPut.Seconds() / m.upload.Seconds() }),
			DropSegPerS:   mc(func(_ migRun, m *migMeasure) float64 { return nseg / m.drop.Seconds() }),
			ColdWarm:      mc(func(_ migRun, m *migMeasure) float64 { return float64(m.coldBytes) / float64(tpl.warmBytes) }),
			ZstdWarm:      mc(func(_ migRun, m *migMeasure) float64 { return float64(m.zstdBytes) / float64(tpl.warmBytes) }),
			PutShare: mc(func(_ migRun, m *migMeasure) float64 {
				return m.put.Seconds() / (m.upload.Seconds() * float64(m.c))
			}),
			CheckShare: mc(func(_ migRun, m *migMeasure) float64 {
				return (m.stat + m.get).Seconds() / (m.upload.Seconds() * float64(m.c))
			}),
			UploadSeconds:     mc(func(_ migRun, m *migMeasure) float64 { return m.upload.Seconds() }),
			DropWarmSeconds:   mc(func(_ migRun, m *migMeasure) float64 { return m.drop.Seconds() }),
			StorePutSeconds:   mc(func(_ migRun, m *migMeasure) float64 { return m.put.Seconds() }),
			StoreCheckSeconds: mc(func(_ migRun, m *migMeasure) float64 { return (m.stat + m.get).Seconds() }),
		})
	}
	// The single-threaded split of the upload work, per warm MiB: the
	// sampled conversion and local verify, and the store calls of the
	// concurrency-1 run when there is one.
	var conv, ver stat
	if f.sample > 0 {
		conv = col(func(r migRun) float64 { return r.convert.Seconds() / (float64(r.sampleWarm) / mib) * 1000 })
		ver = col(func(r migRun) float64 { return r.verify.Seconds() / (float64(r.sampleWarm) / mib) * 1000 })
	}
	type split struct {
		Convert, Verify, Put, Check, Other, Total float64 // ms per warm MiB
	}
	var sp *split
	if i := slices.Index(concs, 1); i >= 0 && f.sample > 0 {
		per := func(fn func(m *migMeasure) time.Duration) float64 {
			return col(func(r migRun) float64 { return fn(r.ms[1]).Seconds() / warmMiB * 1000 }).Median
		}
		s := split{Convert: conv.Median, Verify: ver.Median,
			Put:   per(func(m *migMeasure) time.Duration { return m.put }),
			Check: per(func(m *migMeasure) time.Duration { return m.stat + m.get }),
			Total: per(func(m *migMeasure) time.Duration { return m.upload })}
		s.Other = s.Total - s.Convert - s.Verify - s.Put - s.Check
		sp = &s
	}

	if f.output == "json" {
		return json.NewEncoder(out).Encode(map[string]any{
			"store": storeName, "mib": f.mib, "streams": f.streams, "segment_mib": f.segmentMiB, "level": f.level, "runs": f.runs,
			"segments": len(tpl.segs), "records": tpl.records, "warm_bytes": tpl.warmBytes, "ingest_s": tpl.ingest.Seconds(),
			"raw_put_mib_per_s": rawMiBps, "results": sums,
			"sample_convert_ms_per_warm_mib": conv, "sample_verify_ms_per_warm_mib": ver, "split_c1_ms_per_warm_mib": sp,
		})
	}
	fmt.Fprintf(out, "migrate: %s; %d segments, %d records, %.1f MiB warm across %d streams (ingest+flush %.1f s); zstd level %d; %d runs, median (min–max); ratios are medians of per-run ratios\n",
		storeName, len(tpl.segs), tpl.records, warmMiB, f.streams, tpl.ingest.Seconds(), f.level, f.runs)
	fmt.Fprintf(out, "raw PUT of %.1f MiB (one object, objstore Put): %s MiB/s\n", warmMiB, rawMiBps.fmt(1))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "conc\tupload seg/s\twarm MiB/s\tzstd MiB/s\tvs zstd\tvs raw PUT\tcold/warm\tdrop-warm seg/s\tPut share\tcheck share\t")
	for _, s := range sums {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%.2f\t%.2f\t%.3f\t%s\t%.0f%%\t%.0f%%\t\n", s.Concurrency,
			s.UploadSegPerS.fmt(1), s.UploadMiBps.fmt(1), s.ZstdMiBps.fmt(1), s.VsZstd.Median, s.VsRawPut.Median,
			s.ColdWarm.Median, s.DropSegPerS.fmt(1), 100*s.PutShare.Median, 100*s.CheckShare.Median)
	}
	tw.Flush()
	if len(sums) > 0 {
		fmt.Fprintf(out, "zstd(warm)/warm size: %.3f\n", sums[0].ZstdWarm.Median)
	}
	if f.sample > 0 {
		fmt.Fprintf(out, "sampled, 1 thread, ms per warm MiB: pqfile.Write %s, Open+Verify %s\n", conv.fmt(1), ver.fmt(1))
	}
	if sp != nil {
		fmt.Fprintf(out, "concurrency 1 upload run, ms per warm MiB (share): total %.1f = conversion %.1f (%.0f%%) + local verify %.1f (%.0f%%) + Put %.1f (%.0f%%) + remote check %.1f (%.0f%%) + other %.1f (%.0f%%)\n",
			sp.Total, sp.Convert, 100*sp.Convert/sp.Total, sp.Verify, 100*sp.Verify/sp.Total, sp.Put, 100*sp.Put/sp.Total,
			sp.Check, 100*sp.Check/sp.Total, sp.Other, 100*sp.Other/sp.Total)
	}
	return nil
}
