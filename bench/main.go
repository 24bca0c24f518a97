// Command bench runs obs and its peers on the same workload in one run on
// one machine and prints a table. Scenarios:
//
//	go run ./bench [-records 10000000] [-senders 4] [-batch 1000]
//
// (default, -scenario otlp, issue 3) an OTLP gateway receiving logs from
// concurrent gRPC senders and exporting them to a sink: obs and a real
// OpenTelemetry Collector without and with a persistent (file_storage)
// queue.
//
//	go run ./bench -scenario scrape [-targets 200] [-series 1000] [-interval 5s] [-duration 2m]
//
// (issue 5) Prometheus scraping of loopback targets: obs and otelcol with
// their prometheus receivers exporting OTLP to a sink, vmagent
// remote-writing to a sink; CPU-seconds per million samples, peak RSS.
//
//	go run ./bench -scenario filelog [-lines 1000000] [-files 10]
//
// (issue 6) CRI pod logs written up front, tailed into an OTLP sink: obs
// (WAL fsync'd) and otelcol's filelog receiver with and without
// file_storage; lines/s, CPU-seconds per million lines, peak RSS.
//
//	go run ./bench -scenario hostmetrics [-hm-interval 5s] [-hm-duration 2m]
//
// (issue 8) the hostmetrics receiver with every scraper on this machine:
// obs and otelcol's hostmetricsreceiver; CPU per collection, peak RSS.
//
// For every system it starts the same in-process OTLP gRPC sink (it counts
// log records and answers success), starts the system as a real process
// exporting to the sink, sends the pre-generated requests and measures the
// wall time from the first send until the sink holds every record, the
// system's CPU time (utime+stime from /proc) and its peak RSS (VmHWM).
// Everything listens on 127.0.0.1.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

type options struct {
	records  int64
	senders  int
	batch    int
	distinct int
	systems  []string
	timeout  time.Duration
	obsBin   string
	otelBin  string
	// otelContribBin is the Collector with the contrib receivers.
	otelContribBin string
	workDir        string
	otelBatch      bool
	perf           string
	keep           bool
	scenario       string
	smaps          bool
}

// result is one row of the table.
type result struct {
	key, name  string
	err        error
	wall       time.Duration // first send → sink has every record
	ackWall    time.Duration // first send → every request answered
	cpu        float64       // seconds of the system's CPU during the run
	benchCPU   float64       // seconds of this process (senders + sink)
	rss        int64
	received   int64
	requests   int64 // requests the sink got
	throttled  int64
	otherErrs  int64
	recordsPer float64
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == promFloorCommand {
		if err := runPromFloor(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		o           options
		systemsFlag string
		so          scrapeOptions
		fo          filelogOptions
	)
	ho := hostMetricsFlags()
	flag.StringVar(&o.scenario, "scenario", "otlp", "otlp (issue 3 gateway), scrape (issue 5), filelog (issue 6) or hostmetrics (issue 8)")
	flag.IntVar(&so.targets, "targets", 200, "scrape: loopback targets")
	flag.IntVar(&so.series, "series", 1000, "scrape: series per target")
	flag.DurationVar(&so.interval, "interval", 5*time.Second, "scrape: scrape interval")
	flag.DurationVar(&so.duration, "duration", 2*time.Minute, "scrape: measured window per system, after warm-up")
	flag.StringVar(&so.vmBin, "vmagent", "", "scrape: vmagent binary (default: $OBS_VMAGENT, else scripts/build-vmagent.sh)")
	flag.IntVar(&fo.lines, "lines", 1_000_000, "filelog: CRI lines to write")
	flag.IntVar(&fo.files, "files", 10, "filelog: pod log files the lines are spread over")
	flag.BoolVar(&o.smaps, "smaps", false, "scrape, filelog: log each system's largest resident mappings at the end of its row")
	flag.Int64Var(&o.records, "records", 10_000_000, "log records to send to each system")
	flag.IntVar(&o.senders, "senders", 4, "concurrent gRPC senders, each waiting for its answer")
	flag.IntVar(&o.batch, "batch", 1000, "log records per export request")
	flag.IntVar(&o.distinct, "distinct", 64, "distinct pre-generated requests, sent round robin")
	flag.StringVar(&systemsFlag, "systems", "",
		"comma-separated systems; otlp: obs, otelcol-noqueue, otelcol-filestorage, otelcol-filestorage-fsync; "+
			"scrape: obs, vmagent, otelcol, promfloor (Prometheus' scrape loop alone); filelog: obs, obs-wal64m, otelcol-filestorage, otelcol-nostorage (default: obs and the scenario's peers, without the -fsync and -wal64m variants)")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "per-system limit; a row that exceeds it is aborted")
	flag.StringVar(&o.obsBin, "obs", "", "obs binary (default: go build the module into the work dir)")
	flag.StringVar(&o.otelBin, "otelcol", "", "otlp: otelcol binary (default: $OBS_OTELCOL, else scripts/build-otelcol.sh)")
	flag.StringVar(&o.otelContribBin, "otelcol-contrib", "",
		"scrape, filelog, hostmetrics: otelcol with the prometheus, filelog and hostmetrics receivers (default: $OBS_OTELCOL_CONTRIB, else scripts/build-otelcol-contrib.sh)")
	flag.StringVar(&o.workDir, "workdir", "", "directory for binaries, configs and data (default: a new temp dir)")
	flag.BoolVar(&o.otelBatch, "otelcol-batch", true, "put the batch processor in the Collector's pipeline (obs always has it)")
	flag.StringVar(&o.perf, "perf", "", "write a `perf record -g` profile of obs during its run to this file")
	flag.BoolVar(&o.keep, "keep", false, "keep the work dir (configs, logs, data) after the run")
	flag.Parse()
	if o.scenario == "hostmetrics" && systemsFlag == "" {
		systemsFlag = "obs,otelcol"
	}
	if scenarioSystems(o.scenario) == "" && o.scenario != "hostmetrics" {
		return fmt.Errorf("unknown -scenario %q: want otlp, scrape, filelog or hostmetrics", o.scenario)
	}
	if systemsFlag == "" {
		systemsFlag = scenarioSystems(o.scenario)
	}
	o.systems = strings.Split(systemsFlag, ",")
	if o.records <= 0 || o.senders <= 0 || o.batch <= 0 || o.distinct <= 0 {
		return errors.New("-records, -senders, -batch and -distinct must be positive")
	}
	if so.targets <= 0 || so.series <= 0 || so.interval <= 0 || so.duration <= 0 || fo.lines <= 0 || fo.files <= 0 {
		return errors.New("-targets, -series, -interval, -duration, -lines and -files must be positive")
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if o.workDir == "" {
		d, err := os.MkdirTemp("", "obs-bench-")
		if err != nil {
			return fmt.Errorf("create work dir: %w", err)
		}
		o.workDir = d
	}
	if !o.keep {
		defer os.RemoveAll(o.workDir)
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if o.obsBin == "" && slices.Contains(o.systems, "obs") {
		o.obsBin = filepath.Join(o.workDir, "bin", "obs")
		log.Info("building obs", "out", o.obsBin)
		if err := command(ctx, root, "go", "build", "-o", o.obsBin, "github.com/obs-dev/obs"); err != nil {
			return fmt.Errorf("build obs: %w", err)
		}
	}
	wantOtelcol := slices.ContainsFunc(o.systems, func(s string) bool { return strings.HasPrefix(s, "otelcol") })
	switch {
	case o.scenario == "otlp" && o.otelBin == "" && wantOtelcol:
		if o.otelBin, err = otelcolBinary(ctx, root); err != nil {
			return err
		}
	case o.scenario != "otlp":
		// The scrape and filelog peers need the contrib receivers.
		o.otelBin = o.otelContribBin
		if o.otelBin == "" && wantOtelcol {
			if o.otelBin, err = peerBinary(ctx, root, "OBS_OTELCOL_CONTRIB", "build-otelcol-contrib.sh"); err != nil {
				return err
			}
		}
	}
	switch o.scenario {
	case "scrape":
		if so.vmBin == "" && slices.Contains(o.systems, "vmagent") {
			if so.vmBin, err = peerBinary(ctx, root, "OBS_VMAGENT", "build-vmagent.sh"); err != nil {
				return err
			}
		}
		return runScrape(ctx, log, o, so)
	case "filelog":
		return runFilelog(ctx, log, o, fo)
	case "hostmetrics":
		return runHostMetrics(ctx, log, o, *ho)
	}
	all := systems(o.obsBin, o.otelBin, o.otelBatch)
	for _, k := range o.systems {
		if _, ok := all[k]; !ok {
			return fmt.Errorf("unknown system %q", k)
		}
	}

	genStart := time.Now()
	payloads, err := genPayloads(0, o.distinct, o.batch, 1)
	if err != nil {
		return err
	}
	w := &work{payloads: payloads, full: o.records / int64(o.batch)}
	if rem := int(o.records % int64(o.batch)); rem > 0 {
		t, err := genPayloads(o.distinct, 1, rem, 2)
		if err != nil {
			return err
		}
		w.tail = &t[0]
	}
	var bytesTotal int
	for _, p := range payloads {
		bytesTotal += len(p.body)
	}
	perRecord := float64(bytesTotal) / float64(o.distinct*o.batch)
	log.Info("payloads ready", "requests", o.distinct, "records_each", o.batch,
		"bytes_per_record", fmt.Sprintf("%.0f", perRecord), "took", time.Since(genStart).Round(time.Millisecond))

	var results []result
	for _, k := range o.systems {
		if ctx.Err() != nil {
			break
		}
		w.next.Store(0)
		log.Info("running", "system", k, "records", o.records)
		r := runOne(ctx, log, o, k, all[k], w)
		if r.err != nil {
			log.Error("row aborted", "system", k, "err", r.err)
		} else {
			log.Info("done", "system", k, "records_per_s", int64(r.recordsPer), "cpu_s", r.cpu)
		}
		results = append(results, r)
	}
	printTable(os.Stdout, o, perRecord, results)
	return nil
}

// runOne measures one system. Every wait in it is bounded by o.timeout.
func runOne(parent context.Context, log *slog.Logger, o options, key string, sys system, w *work) result {
	res := result{key: key, name: sys.name}
	ctx, cancel := context.WithTimeout(parent, o.timeout)
	defer cancel()
	sk, stopSink, err := startSink(log)
	if err != nil {
		res.err = err
		return res
	}
	defer stopSink()

	recvAddr, err := freeAddr()
	if err != nil {
		res.err = err
		return res
	}
	p, stop, err := startRow(ctx, log, key, sys, filepath.Join(o.workDir, key), recvAddr, sk.addr())
	if err != nil {
		res.err = err
		return res
	}
	defer stop()
	pid := strconv.Itoa(p.pid())

	var perf *perfRecorder
	if o.perf != "" && key == "obs" {
		perf = startPerf(log, pid, o.perf)
	}

	cpu0, err := cpuSeconds(pid)
	if err != nil {
		res.err = err
		return res
	}
	self0, _ := cpuSeconds("self")
	reached := sk.expect(o.records)

	start := time.Now()
	st, sendErr := sendAll(ctx, recvAddr, o.senders, w)
	res.ackWall = st.acked.Sub(start)
	res.throttled, res.otherErrs = st.throttled, st.otherErrors
	if sendErr == nil {
		select {
		case <-reached:
		case <-ctx.Done():
			sendErr = fmt.Errorf("sink has %d of %d records after %s: %w", sk.records.Load(), o.records, o.timeout, ctx.Err())
		case <-p.done:
			sendErr = fmt.Errorf("process exited: %v\n%s", p.err, p.output(2000))
		}
	}
	cpu1, cerr := cpuSeconds(pid)
	self1, _ := cpuSeconds("self")
	rss, rerr := peakRSS(pid)
	perf.stop()
	res.received, res.requests = sk.records.Load(), sk.requests.Load()
	if bad := sk.bad.Load(); bad > 0 && sendErr == nil {
		sendErr = fmt.Errorf("sink got %d unparsable requests", bad)
	}
	if err := errors.Join(sendErr, cerr, rerr); err != nil {
		res.err = err
		return res
	}
	res.wall = sk.reachedAt().Sub(start)
	res.cpu = cpu1 - cpu0
	res.benchCPU = self1 - self0
	res.rss = rss
	res.recordsPer = float64(o.records) / res.wall.Seconds()
	return res
}

func printTable(out io.Writer, o options, perRecord float64, rs []result) {
	fmt.Fprintf(out, "\nlogs end to end: %d records of ~%.0f B (OTLP proto) in requests of %d from %d senders; %d CPUs (%s); load average %s; %s\n\n",
		o.records, perRecord, o.batch, o.senders, runtime.NumCPU(), cpuModel(), loadAvg(), time.Now().UTC().Format(time.RFC3339))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\trecords/s\twall s\tack s\tCPU-s\tCPU-s per M\tpeak RSS MiB\tthrottled\tother errs\tsink requests\tbench CPU-s\t")
	byKey := map[string]result{}
	for _, r := range rs {
		if r.err != nil {
			fmt.Fprintf(tw, "%s\taborted: %s\t\t\t\t\t\t\t\t\t\t\n", r.name, firstLine(r.err.Error()))
			continue
		}
		byKey[r.key] = r
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%.2f\t%.2f\t%.3f\t%.0f\t%d\t%d\t%d\t%.2f\t\n",
			r.name, r.recordsPer, r.wall.Seconds(), r.ackWall.Seconds(), r.cpu, r.cpu/(float64(o.records)/1e6),
			float64(r.rss)/(1<<20), r.throttled, r.otherErrs, r.requests, r.benchCPU)
	}
	tw.Flush()
	for _, r := range rs {
		if r.err == nil && r.received != o.records {
			fmt.Fprintf(out, "note: the sink got %d records from %s, %d sent (duplicates on retry?)\n", r.received, r.name, o.records)
		}
	}
	ob, ok1 := byKey["obs"]
	nq, ok2 := byKey["otelcol-noqueue"]
	fmt.Fprintln(out)
	if ok1 && ok2 {
		ratio := ob.recordsPer / nq.recordsPer
		cpm := ob.cpu / (float64(o.records) / 1e6)
		fmt.Fprintf(out, "obs / otelcol-noqueue throughput: %.2fx (bar >= 1.00x: %s)\n", ratio, verdict(ratio >= 1))
		fmt.Fprintf(out, "obs CPU-s per million records: %.3f (bar <= 1.5: %s); otelcol-noqueue: %.3f; ratio %.2fx\n",
			cpm, verdict(cpm <= 1.5), nq.cpu/(float64(o.records)/1e6), ob.cpu/nq.cpu)
	}
	for _, k := range []string{"otelcol-filestorage", "otelcol-filestorage-fsync"} {
		if fs, ok := byKey[k]; ok && ok1 {
			fmt.Fprintf(out, "obs / %s throughput: %.2fx; CPU ratio %.2fx\n", k, ob.recordsPer/fs.recordsPer, ob.cpu/fs.cpu)
		}
	}
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// loadAvg is the 1, 5 and 15 minute load average: other work on the
// machine skews throughput far more than CPU-seconds per record.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// moduleRoot walks up from the working directory to the directory of
// go.mod that holds scripts/build-otelcol.sh.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("get working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "scripts", "build-otelcol.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find module root: no scripts/build-otelcol.sh above the working directory")
		}
		dir = parent
	}
}

// otelcolBinary returns $OBS_OTELCOL or what scripts/build-otelcol.sh
// prints last (it only prints the cached path when already built).
func otelcolBinary(ctx context.Context, root string) (string, error) {
	if p := os.Getenv("OBS_OTELCOL"); p != "" {
		return p, nil
	}
	out, err := scriptOutput(ctx, root, "build-otelcol.sh")
	if err != nil {
		return "", fmt.Errorf("build otelcol: %w", err)
	}
	return out, nil
}

// scriptOutput runs scripts/<name> (at most 30 minutes) and returns the
// last line of its stdout.
func scriptOutput(ctx context.Context, root, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", name))
	cmd.Dir = root
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("run %s: %w", name, err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	return strings.TrimSpace(lines[len(lines)-1]), nil
}

func command(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}
