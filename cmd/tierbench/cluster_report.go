package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// clusterRow is one measurement's medians (min–max) over the runs.
type clusterRow struct {
	Name         string `json:"name"`
	Nodes        int    `json:"nodes"`
	Records      stat   `json:"records_per_s"`
	MBps         stat   `json:"value_mb_per_s"`
	P50us        stat   `json:"ack_p50_us"`
	P99us        stat   `json:"ack_p99_us"`
	VsLocal      stat   `json:"vs_local"`
	Retries      stat   `json:"retries_after_503"`
	PutsPerNodeS stat   `json:"journal_puts_per_s_per_node,omitzero"`
	PutsPerGiB   stat   `json:"journal_puts_per_gib,omitzero"`
	USDPerGiB    stat   `json:"put_usd_per_gib,omitzero"`
	USDNodeMonth stat   `json:"put_usd_per_node_month,omitzero"`
	VsOneNode    stat   `json:"vs_one_node,omitzero"`
}

type clusterSummary struct {
	Tierd         string       `json:"tierd"`
	Writers       int          `json:"writers"`
	Streams       int          `json:"streams"`
	Batch         int          `json:"batch"`
	ValueBytes    int          `json:"value_bytes"`
	FlushInterval string       `json:"flush_interval"`
	Runs          int          `json:"runs"`
	Duration      string       `json:"duration"`
	Price         string       `json:"put_price"`
	Rows          []clusterRow `json:"results"`
}

func reportCluster(out io.Writer, f clusterFlags, bin string, runs []clusterRun) error {
	col := func(fn func(r clusterRun) float64) stat {
		var xs []float64
		for _, r := range runs {
			xs = append(xs, fn(r))
		}
		return statOf(xs)
	}
	row := func(name string, nodes int, m func(r clusterRun) clusterMeasure) clusterRow {
		cr := clusterRow{
			Name: name, Nodes: nodes,
			Records: col(func(r clusterRun) float64 { return m(r).res.records }),
			MBps:    col(func(r clusterRun) float64 { return m(r).res.mbps }),
			P50us:   col(func(r clusterRun) float64 { return float64(m(r).res.p50.Microseconds()) }),
			P99us:   col(func(r clusterRun) float64 { return float64(m(r).res.p99.Microseconds()) }),
			VsLocal: col(func(r clusterRun) float64 { return m(r).res.records / r.local.res.records }),
			Retries: col(func(r clusterRun) float64 { return float64(m(r).retries) }),
		}
		if name != "local" {
			cr.PutsPerNodeS = col(func(r clusterRun) float64 { return m(r).putsPerNodeSecond() })
			cr.PutsPerGiB = col(func(r clusterRun) float64 { return m(r).putsPerGiB() })
			cr.USDPerGiB = col(func(r clusterRun) float64 { return m(r).putsPerGiB() * s3PutUSDPer1000 / 1000 })
			cr.USDNodeMonth = col(func(r clusterRun) float64 {
				return m(r).putsPerNodeSecond() * secondsPerMonth * s3PutUSDPer1000 / 1000
			})
			cr.VsOneNode = col(func(r clusterRun) float64 { return m(r).res.records / r.one.res.records })
		}
		return cr
	}
	s := clusterSummary{
		Tierd: bin, Writers: f.writers, Streams: f.streams, Batch: f.batch, ValueBytes: f.valueBytes,
		FlushInterval: f.flushInterval.String(), Runs: len(runs), Duration: f.duration.String(), Price: s3PriceSource,
		Rows: []clusterRow{
			row("local", 1, func(r clusterRun) clusterMeasure { return r.local }),
			row("cluster", 1, func(r clusterRun) clusterMeasure { return r.one }),
			row("cluster", f.nodes, func(r clusterRun) clusterMeasure { return r.many }),
		},
	}
	if f.output == "json" {
		return json.NewEncoder(out).Encode(s)
	}
	fmt.Fprintf(out, "cluster: %d writers (synchronous AppendBatch of %d records, %d B values) over %d streams; %d runs of %s, median (min–max)\n",
		f.writers, f.batch, f.valueBytes, f.streams, len(runs), f.duration)
	fmt.Fprintf(out, "tierd: %s; local mode wal.sync always; cluster mode flush_interval %s, MinIO and PostgreSQL on this machine\n\n", bin, f.flushInterval)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measurement\tnodes\trecords/s\tMB/s\tack p50 µs\tack p99 µs\tvs local\t503 retries\t")
	for _, r := range s.Rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.1f\t%s\t%s\t%s\t%s\t\n", r.Name, r.Nodes, r.Records.fmt(0), r.MBps.Median,
			r.P50us.fmt(0), r.P99us.fmt(0), r.VsLocal.fmt(2), r.Retries.fmt(0))
	}
	tw.Flush()
	fmt.Fprintf(out, "ack p99 goal: flush_interval + 100 ms = %s\n\n", f.flushInterval+100*time.Millisecond)
	fmt.Fprintf(out, "Journal PUTs (objects under _journal/ when the load stopped), priced at %s\n", s3PriceSource)
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measurement\tnodes\tPUTs/s per node\tPUTs per GiB of values\t$ per GiB\t$ per node-month at this rate\tvs 1 node\t")
	for _, r := range s.Rows[1:] {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t\n", r.Name, r.Nodes, r.PutsPerNodeS.fmt(1), r.PutsPerGiB.fmt(0),
			r.USDPerGiB.fmt(4), r.USDNodeMonth.fmt(0), r.VsOneNode.fmt(2))
	}
	tw.Flush()
	fmt.Fprintf(out, "(a writing node flushes once per flush_interval unless flush_bytes fill first: %.0f PUTs/s, $%.0f a month at the price above, whatever it ingests)\n",
		1/f.flushInterval.Seconds(), 1/f.flushInterval.Seconds()*secondsPerMonth*s3PutUSDPer1000/1000)
	fmt.Fprintf(out, "The %d nodes run on this machine's cores beside MinIO, PostgreSQL and the client: the %d-node row measures the cost of\n"+
		"sequencing through one PostgreSQL from %d processes, not the capacity of %d machines.\n", f.nodes, f.nodes, f.nodes, f.nodes)
	return nil
}
