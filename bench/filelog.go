package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"text/tabwriter"
	"time"
)

// The filelog scenario (issue 6): lines CRI lines of about 200 bytes over
// files pod log files, written up front, read from the beginning by obs
// and by otelcol with and without storage, into the OTLP sink.

// filelogOptions are the flags of the filelog scenario.
type filelogOptions struct {
	lines int
	files int
}

// filelogResult is one row of the filelog table.
type filelogResult struct {
	key, name string
	err       error
	wall      time.Duration // process start → sink has every line
	cpu       float64       // the process' CPU from its start
	benchCPU  float64
	rss       int64
	anon      int64 // RSS split at the end
	file      int64
	received  int64
	requests  int64
}

func (r filelogResult) cpuPerM(lines int) float64 { return r.cpu / (float64(lines) / 1e6) }

// podLogPath is where the kubelet would put container log i:
// <root>/var/log/pods/<ns>_<pod>_<uid>/<container>/0.log.
func podLogPath(root string, i int) string {
	ns := []string{"shop", "payments", "search", "kube-system"}[i%4]
	pod := fmt.Sprintf("app-%d-7c9f8d5b6-x%04d", i, i*37%10000)
	uid := fmt.Sprintf("0f3c%04x-1a2b-4c5d-8e9f-%012x", i, 0xabc000+i)
	return filepath.Join(root, "var", "log", "pods", ns+"_"+pod+"_"+uid, "app", "0.log")
}

// criLine appends one CRI line of about 200 bytes (newline included) for
// line n of a file: time, stream, the F tag and a log-like message.
func criLine(b []byte, r *rand.Rand, ts time.Time, n int) []byte {
	stream := "stdout"
	if n%10 == 9 {
		stream = "stderr"
	}
	b = ts.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000000Z07:00")
	b = append(b, ' ')
	b = append(b, stream...)
	b = append(b, " F "...)
	levels := []string{"info", "info", "info", "warn", "error", "debug"}
	paths := []string{"/api/v1/orders", "/api/v1/users/42", "/healthz", "/api/v2/search?q=shoes", "/metrics"}
	start := len(b)
	b = fmt.Appendf(b, "level=%s ts=%s caller=handler.go:%d msg=\"request served\" path=%s status=%d dur_ms=%d req_id=%016x seq=%d",
		levels[r.IntN(len(levels))], ts.UTC().Format(time.RFC3339Nano), 100+r.IntN(400), paths[r.IntN(len(paths))],
		[]int{200, 200, 201, 404, 500}[r.IntN(5)], r.IntN(2000), r.Uint64(), n)
	// Pad the message to about 160 bytes so that a line is about 200.
	for len(b)-start < 160 {
		b = append(b, " k=v"...)
	}
	return append(b, '\n')
}

// writePodLogs writes lines lines round robin over files pod log files
// under root and returns their paths and total size.
func writePodLogs(root string, files, lines int) ([]string, int64, error) {
	paths := make([]string, files)
	ws := make([]*bufio.Writer, files)
	fs := make([]*os.File, files)
	closeAll := func() {
		for _, f := range fs {
			if f != nil {
				f.Close()
			}
		}
	}
	for i := range files {
		paths[i] = podLogPath(root, i)
		if err := os.MkdirAll(filepath.Dir(paths[i]), 0o755); err != nil {
			closeAll()
			return nil, 0, fmt.Errorf("create pod log dir: %w", err)
		}
		f, err := os.Create(paths[i])
		if err != nil {
			closeAll()
			return nil, 0, fmt.Errorf("create pod log: %w", err)
		}
		fs[i], ws[i] = f, bufio.NewWriterSize(f, 1<<20)
	}
	r := rand.New(rand.NewPCG(6, 6))
	ts := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	var total int64
	buf := make([]byte, 0, 512)
	for n := range lines {
		buf = criLine(buf[:0], r, ts.Add(time.Duration(n)*time.Microsecond), n)
		total += int64(len(buf))
		if _, err := ws[n%files].Write(buf); err != nil {
			closeAll()
			return nil, 0, fmt.Errorf("write pod log: %w", err)
		}
	}
	var errs []error
	for i := range files {
		errs = append(errs, ws[i].Flush(), fs[i].Close())
	}
	if err := errors.Join(errs...); err != nil {
		return nil, 0, fmt.Errorf("finish pod logs: %w", err)
	}
	return paths, total, nil
}

// filelogSystems returns the systems of the filelog scenario reading
// include (a glob).
func filelogSystems(obsBin, otelBin, include string) map[string]system {
	collector := func(storage bool) func(string, string, string) string {
		return func(_, sinkAddr, dir string) string {
			ext, recvStorage, queue, svcExt := "", "", "", ""
			if storage {
				ext = fmt.Sprintf("extensions:\n  file_storage:\n    directory: %q\n", dir)
				recvStorage = "    storage: file_storage\n"
				queue = "    sending_queue:\n      enabled: true\n      storage: file_storage\n"
				svcExt = "  extensions: [file_storage]\n"
			}
			return fmt.Sprintf(`%sreceivers:
  filelog:
    include: [%q]
    start_at: beginning
    include_file_path: true
%s    operators:
      - type: container
processors:
  batch: {}
exporters:
  otlp_grpc:
    endpoint: %q
    tls:
      insecure: true
    compression: none
%sservice:
%s  telemetry:
    metrics:
      level: none
    logs:
      level: warn
  pipelines:
    logs:
      receivers: [filelog]
      processors: [batch]
      exporters: [otlp_grpc]
`, ext, include, recvStorage, sinkAddr, queue, svcExt)
		}
	}
	collectorArgs := func(configPath, _, _ string) []string { return []string{"--config", "file:" + configPath} }
	obsArgs := func(configPath, dir, admin string) []string {
		return []string{"run", "--role", "agent", "--config", configPath, "--data-dir", dir,
			"--admin-addr", admin, "--no-cluster", "--log-level", "warn"}
	}
	obsConfig := func(wal string) func(string, string, string) string {
		return func(_, sinkAddr, _ string) string {
			return wal + fmt.Sprintf(`receivers:
  filelog:
    include: [%q]
    start_at: beginning
    include_file_path: true
    operators:
      - type: container
exporters:
  otlp:
    endpoint: %q
    tls:
      insecure: true
    compression: none
service:
  pipelines:
    logs:
      receivers: [filelog]
      exporters: [otlp]
`, include, sinkAddr)
		}
	}
	return map[string]system{
		"obs": {
			name:   "obs (filelog, WAL fsync)",
			bin:    obsBin,
			config: obsConfig(""),
			args:   obsArgs,
		},
		// A small WAL cap. Since the agent sizes its value-log files
		// itself (4 MiB, roles/run.go) the cap no longer changes them;
		// the row shows that a cap does not change memory either.
		"obs-wal64m": {
			name:   "obs, wal.max_bytes 64MiB",
			bin:    obsBin,
			config: obsConfig("wal:\n  max_bytes: 64MiB\n"),
			args:   obsArgs,
		},
		"otelcol-filestorage": {
			name:   "otelcol, file_storage + persistent queue",
			bin:    otelBin,
			config: collector(true),
			args:   collectorArgs,
		},
		"otelcol-nostorage": {
			name:   "otelcol, no storage",
			bin:    otelBin,
			config: collector(false),
			args:   collectorArgs,
		},
	}
}

// runFilelog writes the pod logs, runs every system of o over them and
// prints the table.
func runFilelog(ctx context.Context, log *slog.Logger, o options, fo filelogOptions) error {
	root := filepath.Join(o.workDir, "logs")
	genStart := time.Now()
	_, size, err := writePodLogs(root, fo.files, fo.lines)
	if err != nil {
		return err
	}
	perLine := float64(size) / float64(fo.lines)
	log.Info("pod logs written", "files", fo.files, "lines", fo.lines, "bytes", size,
		"bytes_per_line", fmt.Sprintf("%.0f", perLine), "took", time.Since(genStart).Round(time.Millisecond))
	include := filepath.Join(root, "var", "log", "pods", "*", "*", "*.log")

	sk, stopSink, err := startSink(log)
	if err != nil {
		return err
	}
	defer stopSink()

	all := filelogSystems(o.obsBin, o.otelBin, include)
	for _, k := range o.systems {
		if _, ok := all[k]; !ok {
			return fmt.Errorf("unknown system %q for the filelog scenario", k)
		}
	}
	var rs []filelogResult
	for _, k := range o.systems {
		if ctx.Err() != nil {
			break
		}
		log.Info("running", "system", k, "lines", fo.lines)
		r := filelogOne(ctx, log, o, fo, k, all[k], sk)
		if r.err != nil {
			log.Error("row aborted", "system", k, "err", r.err)
		} else {
			log.Info("done", "system", k, "lines_per_s", int64(float64(fo.lines)/r.wall.Seconds()),
				"cpu_s_per_M", fmt.Sprintf("%.3f", r.cpuPerM(fo.lines)))
		}
		rs = append(rs, r)
	}
	printFilelogTable(os.Stdout, fo, perLine, rs)
	return nil
}

// filelogOne starts the system and waits, bounded by o.timeout, until the
// sink has every line. CPU and wall time count from the process' start.
func filelogOne(parent context.Context, log *slog.Logger, o options, fo filelogOptions, key string, sys system, sk *sink) filelogResult {
	res := filelogResult{key: key, name: sys.name}
	ctx, cancel := context.WithTimeout(parent, o.timeout)
	defer cancel()
	dir := filepath.Join(o.workDir, "filelog-"+key)
	// A system named twice in -systems starts afresh: with the first
	// run's checkpoints it would resume at the files' ends and read nothing.
	if err := os.RemoveAll(dir); err != nil {
		res.err = fmt.Errorf("clear dir: %w", err)
		return res
	}
	reached := sk.expect(int64(fo.lines))
	self0, _ := cpuSeconds("self")
	start := time.Now()
	// No readiness wait: the run starts with the process, which starts
	// reading at once.
	p, stop, err := startRow(ctx, log, key, sys, dir, "", sk.addr())
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
	var runErr error
	select {
	case <-reached:
	case <-ctx.Done():
		runErr = fmt.Errorf("sink has %d of %d lines after %s: %w", sk.records.Load(), fo.lines, o.timeout, ctx.Err())
	case <-p.done:
		runErr = fmt.Errorf("process exited: %v\n%s", p.err, p.output(3000))
	}
	cpu, cerr := cpuSeconds(pid)
	self1, _ := cpuSeconds("self")
	rss, rerr := peakRSS(pid)
	anon, file, serr := rssSplit(pid)
	if o.smaps {
		logMappings(log, key, pid)
	}
	perf.stop()
	// Give a system a moment to send more than it read (duplicates).
	if runErr == nil {
		_ = sleepCtx(ctx, p, 2*time.Second)
	}
	res.received, res.requests = sk.records.Load(), sk.requests.Load()
	if bad := sk.bad.Load(); bad > 0 && runErr == nil {
		runErr = fmt.Errorf("sink got %d unparsable requests", bad)
	}
	if err := errors.Join(runErr, cerr, rerr, serr); err != nil {
		res.err = err
		return res
	}
	res.wall = sk.reachedAt().Sub(start)
	res.cpu, res.benchCPU, res.rss, res.anon, res.file = cpu, self1-self0, rss, anon, file
	return res
}

func printFilelogTable(out io.Writer, fo filelogOptions, perLine float64, rs []filelogResult) {
	fmt.Fprintf(out, "\nfilelog: %d CRI lines of ~%.0f B over %d files written up front, read from the beginning; %d CPUs (%s); load average %s; %s\n\n",
		fo.lines, perLine, fo.files, runtime.NumCPU(), cpuModel(), loadAvg(), time.Now().UTC().Format(time.RFC3339))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\tlines/s\twall s\tCPU-s\tCPU-s per M lines\tpeak RSS MiB\tRSS anon/file MiB at end\tsink records\tsink requests\tbench CPU-s\t")
	byKey := map[string]filelogResult{}
	for _, r := range rs {
		if r.err != nil {
			fmt.Fprintf(tw, "%s\taborted: %s\t\t\t\t\t\t\t\t\t\n", r.name, firstLine(r.err.Error()))
			continue
		}
		byKey[r.key] = r
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%.2f\t%.3f\t%.0f\t%s\t%d\t%d\t%.2f\t\n", r.name, float64(fo.lines)/r.wall.Seconds(),
			r.wall.Seconds(), r.cpu, r.cpuPerM(fo.lines), float64(r.rss)/(1<<20), mibPair(r.anon, r.file), r.received, r.requests, r.benchCPU)
	}
	tw.Flush()
	fmt.Fprintln(out)
	for _, r := range rs {
		if r.err == nil && r.received != int64(fo.lines) {
			fmt.Fprintf(out, "note: the sink got %d records from %s, %d lines written\n", r.received, r.name, fo.lines)
		}
	}
	ob, ok1 := byKey["obs"]
	fs, ok2 := byKey["otelcol-filestorage"]
	if ok1 && ok2 {
		ratio := ob.cpu / fs.cpu
		fmt.Fprintf(out, "obs / otelcol-filestorage CPU per line: %.2fx (bar <= 0.5x: %s)\n", ratio, verdict(ratio <= 0.5))
	}
	if ok1 {
		mib := float64(ob.rss) / (1 << 20)
		fmt.Fprintf(out, "obs peak RSS: %.0f MiB (bar <= 64 MiB: %s)\n", mib, verdict(mib <= 64))
	}
	if ns, ok := byKey["otelcol-nostorage"]; ok && ok1 {
		fmt.Fprintf(out, "obs / otelcol-nostorage CPU per line: %.2fx; throughput %.2fx\n", ob.cpu/ns.cpu, ns.wall.Seconds()/ob.wall.Seconds())
	}
}

// scenarioSystems is the default -systems of a scenario ("" if unknown).
func scenarioSystems(scenario string) string {
	switch scenario {
	case "otlp":
		return "obs,otelcol-noqueue,otelcol-filestorage"
	case "scrape":
		return "obs,vmagent,promfloor,otelcol"
	case "filelog":
		return "obs,otelcol-filestorage,otelcol-nostorage"
	}
	return ""
}

// peerBinary returns $env or what scripts/<script> prints last.
func peerBinary(ctx context.Context, root, env, script string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	return scriptOutput(ctx, root, script)
}

// mibPair prints two byte counts as "A/B" MiB.
func mibPair(a, b int64) string {
	return fmt.Sprintf("%.0f/%.0f", float64(a)/(1<<20), float64(b)/(1<<20))
}
