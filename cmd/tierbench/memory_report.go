package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// memSummary is one workload's figures over the runs, sizes in MiB.
type memSummary struct {
	Workload   string  `json:"workload"`
	BudgetMiB  stat    `json:"hot_budget_mib"`
	IdleRSS    stat    `json:"idle_rss_mib"`
	PeakRSS    stat    `json:"peak_rss_mib"` // VmHWM
	PeakAnon   stat    `json:"peak_rss_anon_mib"`
	PeakFile   stat    `json:"peak_rss_file_mib"`
	SteadyRSS  stat    `json:"steady_rss_mib"`
	SteadyAnon stat    `json:"steady_rss_anon_mib"`
	SteadyFile stat    `json:"steady_rss_file_mib"`
	PeakRatio  stat    `json:"peak_rss_per_budget"`
	SteadyPer  stat    `json:"steady_rss_per_budget"`
	PerStream  stat    `json:"steady_rss_above_idle_per_stream_bytes,omitempty"`
	Records    stat    `json:"records"`
	AppendMiB  stat    `json:"appended_value_mib"`
	Reads      stat    `json:"reads"`
	Seconds    stat    `json:"workload_s"`
	Cold       stat    `json:"cold_segments_at_end"`
	Warm       stat    `json:"warm_segments_at_end"`
	Streams    int     `json:"streams,omitempty"`
	WallS      float64 `json:"wall_s"`
}

type memReport struct {
	Tierd   string       `json:"tierd"`
	Runs    int          `json:"runs"`
	Results []memSummary `json:"results"`
}

func (rep *memReport) add(w string, f memoryFlags, runs []memRun, wall time.Duration) {
	const mib = 1 << 20
	col := func(fn func(r memRun) float64) stat {
		var xs []float64
		for _, r := range runs {
			xs = append(xs, fn(r))
		}
		return statOf(xs)
	}
	m := func(n int64) float64 { return float64(n) / mib }
	s := memSummary{
		Workload:   w,
		BudgetMiB:  col(func(r memRun) float64 { return m(r.budget) }),
		IdleRSS:    col(func(r memRun) float64 { return m(r.idle.rss) }),
		PeakRSS:    col(func(r memRun) float64 { return m(r.peak.rss) }),
		PeakAnon:   col(func(r memRun) float64 { return m(r.peak.anon) }),
		PeakFile:   col(func(r memRun) float64 { return m(r.peak.file) }),
		SteadyRSS:  col(func(r memRun) float64 { return m(r.steady.rss) }),
		SteadyAnon: col(func(r memRun) float64 { return m(r.steady.anon) }),
		SteadyFile: col(func(r memRun) float64 { return m(r.steady.file) }),
		PeakRatio:  col(func(r memRun) float64 { return float64(r.peak.rss) / float64(r.budget) }),
		SteadyPer:  col(func(r memRun) float64 { return float64(r.steady.rss) / float64(r.budget) }),
		Records:    col(func(r memRun) float64 { return float64(r.records) }),
		AppendMiB:  col(func(r memRun) float64 { return m(r.bytes) }),
		Reads:      col(func(r memRun) float64 { return float64(r.reads) }),
		Seconds:    col(func(r memRun) float64 { return r.secs }),
		Cold:       col(func(r memRun) float64 { return float64(r.cold) }),
		Warm:       col(func(r memRun) float64 { return float64(r.warm) }),
		WallS:      wall.Seconds(),
	}
	if w == "streams" {
		s.Streams = f.streams
		s.PerStream = col(func(r memRun) float64 { return float64(r.steady.rss-r.idle.rss) / float64(f.streams) })
	}
	rep.Results = append(rep.Results, s)
}

func (rep *memReport) write(out io.Writer, format string) error {
	if format == "json" {
		return json.NewEncoder(out).Encode(rep)
	}
	fmt.Fprintf(out, "memory: %s; %d runs per workload, each on a fresh tierd; MiB, median (min–max); peak RSS is VmHWM\n", rep.Tierd, rep.Runs)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "workload\thot budget\tidle RSS\tpeak RSS\tpeak anon\tpeak file\tsteady RSS\tsteady anon\tsteady file\tpeak/budget\tsteady/budget\t")
	for _, s := range rep.Results {
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%s\t%.1f\t%.1f\t%s\t%.1f\t%.1f\t%.2f\t%.2f\t\n", s.Workload, s.BudgetMiB.Median, s.IdleRSS.Median,
			s.PeakRSS.fmt(1), s.PeakAnon.Median, s.PeakFile.Median, s.SteadyRSS.fmt(1), s.SteadyAnon.Median, s.SteadyFile.Median,
			s.PeakRatio.Median, s.SteadyPer.Median)
	}
	tw.Flush()
	for _, s := range rep.Results {
		fmt.Fprintf(out, "%s: %.0f records, %.1f MiB of values appended in %.1f s, %.0f reads; at the end %.0f warm and %.0f cold segments; %.0f s wall for %d runs",
			s.Workload, s.Records.Median, s.AppendMiB.Median, s.Seconds.Median, s.Reads.Median, s.Warm.Median, s.Cold.Median, s.WallS, rep.Runs)
		if s.Streams > 0 {
			fmt.Fprintf(out, "; %d streams: steady RSS above idle %s B per stream", s.Streams, s.PerStream.fmt(0))
		}
		fmt.Fprintln(out)
	}
	return nil
}
