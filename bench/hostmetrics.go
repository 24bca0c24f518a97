package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"text/tabwriter"
	"time"
)

// The hostmetrics scenario (issue 8 §6): obs and otelcol each run the
// hostmetrics receiver with every scraper on this machine's /proc and
// /sys, one after the other in the same run, collecting every interval
// for a fixed window into the OTLP sink. A collection's cost is the
// process' CPU over the window divided by the collections in it: idle
// time between collections is part of what an agent costs a node.

type hostMetricsOptions struct {
	interval time.Duration
	duration time.Duration
	procs    int
}

// hostMetricsFlags registers the scenario's flags (before flag.Parse).
func hostMetricsFlags() *hostMetricsOptions {
	var ho hostMetricsOptions
	flag.DurationVar(&ho.interval, "hm-interval", 5*time.Second, "hostmetrics: collection_interval")
	flag.DurationVar(&ho.duration, "hm-duration", 2*time.Minute, "hostmetrics: measured window per system, after the first collection")
	flag.IntVar(&ho.procs, "hm-procs", 0, "hostmetrics: idle processes (sleep) to start first, so the machine has as many as a busy node (~300)")
	return &ho
}

type hostMetricsResult struct {
	key, name   string
	err         error
	window      time.Duration
	collections float64
	cpu         float64
	rss         int64
	points      int64 // data points at the sink during the window
	procs       int   // processes on the machine at the window's start
}

func (r hostMetricsResult) cpuPerCollection() float64 { return r.cpu / r.collections }

// hostMetricsScrapers is every scraper, with the process errors muted as
// the seed does (a process that exits mid-read is not an error).
const hostMetricsScrapers = `    scrapers:
      cpu: {}
      load: {}
      memory: {}
      paging: {}
      filesystem: {}
      disk: {}
      network: {}
      processes: {}
      process:
        mute_process_name_error: true
        mute_process_exe_error: true
        mute_process_io_error: true
        mute_process_user_error: true
`

func hostMetricsSystems(obsBin, otelBin string, interval time.Duration) map[string]system {
	return map[string]system{
		"obs": {
			name: "obs (hostmetrics)",
			bin:  obsBin,
			config: func(_, sinkAddr, _ string) string {
				return fmt.Sprintf(`receivers:
  hostmetrics:
    collection_interval: %s
%sexporters:
  otlp:
    endpoint: %q
    tls:
      insecure: true
    compression: none
service:
  pipelines:
    metrics:
      receivers: [hostmetrics]
      exporters: [otlp]
`, interval, hostMetricsScrapers, sinkAddr)
			},
			args: func(configPath, dir, admin string) []string {
				return []string{"run", "--role", "agent", "--config", configPath, "--data-dir", dir,
					"--admin-addr", admin, "--no-cluster", "--log-level", "warn"}
			},
		},
		"otelcol": {
			name: "otelcol (hostmetricsreceiver)",
			bin:  otelBin,
			config: func(_, sinkAddr, _ string) string {
				return fmt.Sprintf(`receivers:
  hostmetrics:
    collection_interval: %s
%sprocessors:
  batch: {}
exporters:
  otlp_grpc:
    endpoint: %q
    tls:
      insecure: true
    compression: none
service:
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
  pipelines:
    metrics:
      receivers: [hostmetrics]
      processors: [batch]
      exporters: [otlp_grpc]
`, interval, hostMetricsScrapers, sinkAddr)
			},
			args: func(configPath, _, _ string) []string { return []string{"--config", "file:" + configPath} },
		},
	}
}

func runHostMetrics(ctx context.Context, log *slog.Logger, o options, ho hostMetricsOptions) error {
	if ho.interval <= 0 || ho.duration < ho.interval {
		return errors.New("-hm-interval must be positive and -hm-duration at least one interval")
	}
	if ho.procs < 0 || ho.procs > 2000 {
		return errors.New("-hm-procs must be between 0 and 2000")
	}
	stopIdle, err := startIdleProcesses(ctx, ho.procs)
	defer stopIdle()
	if err != nil {
		return err
	}
	sk, stopSink, err := startSink(log)
	if err != nil {
		return err
	}
	defer stopSink()
	all := hostMetricsSystems(o.obsBin, o.otelBin, ho.interval)
	for _, k := range o.systems {
		if _, ok := all[k]; !ok {
			return fmt.Errorf("unknown system %q for the hostmetrics scenario (want obs, otelcol)", k)
		}
	}
	var rs []hostMetricsResult
	for _, k := range o.systems {
		if ctx.Err() != nil {
			break
		}
		log.Info("running", "system", k, "interval", ho.interval, "window", ho.duration)
		r := hostMetricsOne(ctx, log, o, ho, k, all[k], sk)
		if r.err != nil {
			log.Error("row aborted", "system", k, "err", r.err)
		} else {
			log.Info("done", "system", k, "cpu_ms_per_collection", fmt.Sprintf("%.1f", 1000*r.cpuPerCollection()))
		}
		rs = append(rs, r)
	}
	printHostMetricsTable(os.Stdout, ho, rs)
	return nil
}

// hostMetricsOne starts the system, waits for its first points at the
// sink (the first collection, which also reads every process once), then
// measures CPU over the window. Every wait is bounded by o.timeout.
func hostMetricsOne(parent context.Context, log *slog.Logger, o options, ho hostMetricsOptions, key string, sys system, sk *sink) hostMetricsResult {
	res := hostMetricsResult{key: key, name: sys.name}
	ctx, cancel := context.WithTimeout(parent, o.timeout)
	defer cancel()
	sk.expect(0)
	p, stop, err := startRow(ctx, log, key, sys, filepath.Join(o.workDir, "hostmetrics-"+key), "", sk.addr())
	if err != nil {
		res.err = err
		return res
	}
	defer stop()
	pid := strconv.Itoa(p.pid())
	deadline := time.Now().Add(2*ho.interval + time.Minute)
	for sk.records.Load() == 0 {
		if time.Now().After(deadline) {
			res.err = fmt.Errorf("no points at the sink %s after start\n%s", 2*ho.interval+time.Minute, p.output(3000))
			return res
		}
		if err := sleepCtx(ctx, p, 100*time.Millisecond); err != nil {
			res.err = err
			return res
		}
	}
	// Start the window half an interval after a collection's points
	// arrived, so that it holds whole collections.
	if err := sleepCtx(ctx, p, ho.interval/2); err != nil {
		res.err = err
		return res
	}
	var perf *perfRecorder
	if o.perf != "" && key == "obs" {
		perf = startPerf(log, pid, o.perf)
	}
	res.procs = countProcesses()
	sk.expect(0)
	cpu0, err := cpuSeconds(pid)
	if err != nil {
		res.err = err
		return res
	}
	start := time.Now()
	err = sleepCtx(ctx, p, ho.duration)
	cpu1, cerr := cpuSeconds(pid)
	res.window = time.Since(start)
	res.points = sk.records.Load()
	rss, rerr := peakRSS(pid)
	perf.stop()
	if bad := sk.bad.Load(); bad > 0 && err == nil {
		err = fmt.Errorf("sink got %d unparsable requests", bad)
	}
	if err := errors.Join(err, cerr, rerr); err != nil {
		res.err = err
		return res
	}
	res.cpu, res.rss = cpu1-cpu0, rss
	res.collections = float64(res.window / ho.interval)
	return res
}

// startIdleProcesses starts n sleeping processes (each ends by itself
// after an hour at most); stop kills and reaps them.
func startIdleProcesses(ctx context.Context, n int) (stop func(), err error) {
	var cmds []*exec.Cmd
	stop = func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}
	for range n {
		c := exec.CommandContext(ctx, "sleep", "3600")
		if err := c.Start(); err != nil {
			return stop, fmt.Errorf("start idle process: %w", err)
		}
		cmds = append(cmds, c)
	}
	return stop, nil
}

// countProcesses is the number of processes on the machine: the process
// scraper's work grows with it.
func countProcesses() int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err == nil && e.IsDir() {
			n++
		}
	}
	return n
}

func printHostMetricsTable(out io.Writer, ho hostMetricsOptions, rs []hostMetricsResult) {
	fmt.Fprintf(out, "\nhostmetrics, every scraper, collection_interval %s, window %s per system; %d CPUs (%s); load average %s; %s\n\n",
		ho.interval, ho.duration, runtime.NumCPU(), cpuModel(), loadAvg(), time.Now().UTC().Format(time.RFC3339))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\tprocesses\tcollections\tCPU-s\tCPU-ms per collection\tpoints per collection\tpeak RSS MiB\t")
	byKey := map[string]hostMetricsResult{}
	for _, r := range rs {
		if r.err != nil {
			fmt.Fprintf(tw, "%s\taborted: %s\t\t\t\t\t\t\n", r.name, firstLine(r.err.Error()))
			continue
		}
		byKey[r.key] = r
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.3f\t%.1f\t%.0f\t%.0f\t\n", r.name, r.procs, r.collections, r.cpu,
			1000*r.cpuPerCollection(), float64(r.points)/r.collections, float64(r.rss)/(1<<20))
	}
	tw.Flush()
	fmt.Fprintln(out)
	ob, ok1 := byKey["obs"]
	oc, ok2 := byKey["otelcol"]
	if ok1 && ok2 {
		fmt.Fprintf(out, "obs / otelcol CPU per collection: %.2fx; peak RSS: %.2fx\n",
			ob.cpuPerCollection()/oc.cpuPerCollection(), float64(ob.rss)/float64(oc.rss))
	}
}
