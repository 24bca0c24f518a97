package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// The scrape scenario (issue 5): targets × series samples every interval,
// scraped by obs, vmagent and otelcol one after the other, each exporting
// to a counting sink in this process.

// scrapeOptions are the flags of the scrape scenario.
type scrapeOptions struct {
	targets  int
	series   int
	interval time.Duration
	duration time.Duration // the measured window
	vmBin    string
}

// scrapeResult is one row of the scrape table.
type scrapeResult struct {
	key, name   string
	err         error
	window      time.Duration
	scrapes     int64 // answered at the targets during the window
	sinkSamples int64 // arrived at the sink during the window
	sinkBad     int64
	cpu         float64
	benchCPU    float64
	rss         int64
	anon, file  int64 // RSS split at the end
}

// samples is what the targets served during the window.
func (r scrapeResult) samples(series int) float64 { return float64(r.scrapes) * float64(series) }

func (r scrapeResult) cpuPerM(series int) float64 { return r.cpu / (r.samples(series) / 1e6) }

// exposition is the fixed text every target serves: series samples in
// families of 50, counters and gauges alternating, with HELP and TYPE.
// Every sample is one Prometheus sample and one OTLP data point.
func exposition(series int) []byte {
	var b strings.Builder
	methods := []string{"GET", "POST", "PUT", "DELETE"}
	codes := []string{"200", "201", "400", "404", "500"}
	for i := 0; i < series; {
		fam := i / 50
		counter := fam%2 == 0
		name := fmt.Sprintf("bench_http_requests_%02d", fam)
		typ := "gauge"
		if counter {
			name += "_total"
			typ = "counter"
		}
		fmt.Fprintf(&b, "# HELP %s Synthetic series of family %d for the scrape benchmark.\n# TYPE %s %s\n", name, fam, name, typ)
		for j := 0; j < 50 && i < series; j++ {
			fmt.Fprintf(&b, "%s{handler=\"/api/v1/resource/%d\",method=%q,code=%q} %d.%03d\n",
				name, j, methods[j%len(methods)], codes[j%len(codes)], 1000+i*37, i%1000)
			i++
		}
	}
	return []byte(b.String())
}

// targets are one HTTP server per target on its own loopback address
// (127.0.0.2, 127.0.0.3, ...), all serving the same exposition text.
type targets struct {
	addrs   []string
	servers []*http.Server
	scrapes atomic.Int64
	wg      sync.WaitGroup
}

func startTargets(n int, body []byte) (*targets, error) {
	if n > 250*256 {
		return nil, fmt.Errorf("start targets: %d is more than the loopback addresses used", n)
	}
	t := &targets{}
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if _, err := w.Write(body); err == nil {
			t.scrapes.Add(1)
		}
	})
	for i := range n {
		ip := fmt.Sprintf("127.0.%d.%d", i/250, 2+i%250)
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.stop()
			return nil, fmt.Errorf("listen for target %d: %w", i, err)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		t.addrs = append(t.addrs, ln.Addr().String())
		t.servers = append(t.servers, srv)
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			_ = srv.Serve(ln)
		}()
	}
	return t, nil
}

func (t *targets) stop() {
	for _, s := range t.servers {
		_ = s.Close()
	}
	t.wg.Wait()
}

// promScrapeConfig is the Prometheus scrape configuration of every
// system, indented by indent spaces.
func promScrapeConfig(addrs []string, interval time.Duration, indent int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\nscrape_configs:\n  - job_name: bench\n    static_configs:\n      - targets:\n",
		interval, interval)
	for _, a := range addrs {
		fmt.Fprintf(&b, "          - %q\n", a)
	}
	pad := strings.Repeat(" ", indent)
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	return pad + strings.Join(lines, "\n"+pad) + "\n"
}

// scrapeSystems returns the systems of the scrape scenario. The OTLP sink
// is passed to config; rwURL is vmagent's remote-write sink; floorBin is
// this bench binary (see promfloor.go).
func scrapeSystems(obsBin, otelBin, vmBin, floorBin string, addrs []string, interval time.Duration, rwURL string) map[string]system {
	return map[string]system{
		"obs": {
			name: "obs (prometheus → otlp)",
			bin:  obsBin,
			config: func(_, sinkAddr, _ string) string {
				return fmt.Sprintf(`receivers:
  prometheus:
    sharding: none
    config:
%sprocessors:
  batch: {}
exporters:
  otlp:
    endpoint: %q
    tls:
      insecure: true
    compression: none
service:
  pipelines:
    metrics:
      receivers: [prometheus]
      processors: [batch]
      exporters: [otlp]
`, promScrapeConfig(addrs, interval, 6), sinkAddr)
			},
			args: func(configPath, dir, admin string) []string {
				return []string{"run", "--role", "gateway", "--config", configPath, "--data-dir", dir,
					"--admin-addr", admin, "--no-cluster", "--log-level", "warn"}
			},
			readyURL: func(admin string) string { return "http://" + admin + "/readyz" },
		},
		"vmagent": {
			name: "vmagent v1.151.0 (remote write)",
			bin:  vmBin,
			config: func(_, _, _ string) string {
				return promScrapeConfig(addrs, interval, 0)
			},
			args: func(configPath, dir, admin string) []string {
				return []string{"-promscrape.config=" + configPath, "-remoteWrite.url=" + rwURL,
					"-remoteWrite.forcePromProto=true", "-remoteWrite.tmpDataPath=" + filepath.Join(dir, "vmagent-data"),
					"-httpListenAddr=" + admin, "-loggerLevel=WARN"}
			},
			readyURL: func(admin string) string { return "http://" + admin + "/health" },
		},
		promFloorCommand: {
			name: "Prometheus' scrape loop alone (discards)",
			bin:  floorBin,
			config: func(_, _, _ string) string {
				return promScrapeConfig(addrs, interval, 0)
			},
			args: func(configPath, _, _ string) []string {
				return []string{promFloorCommand, "-config", configPath}
			},
		},
		"otelcol": {
			name: "otelcol (prometheus → otlp)",
			bin:  otelBin,
			config: func(_, sinkAddr, _ string) string {
				return fmt.Sprintf(`receivers:
  prometheus:
    config:
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
      receivers: [prometheus]
      processors: [batch]
      exporters: [otlp_grpc]
`, promScrapeConfig(addrs, interval, 6), sinkAddr)
			},
			args: func(configPath, _, _ string) []string { return []string{"--config", "file:" + configPath} },
		},
	}
}

// runScrape runs the scrape scenario for every system of o and prints
// the table.
func runScrape(ctx context.Context, log *slog.Logger, o options, so scrapeOptions) error {
	body := exposition(so.series)
	tg, err := startTargets(so.targets, body)
	if err != nil {
		return err
	}
	defer tg.stop()
	sk, err := newSink(log)
	if err != nil {
		return err
	}
	rw, err := newRWSink(log)
	if err != nil {
		return err
	}
	var serveWG sync.WaitGroup
	serveWG.Add(2)
	go func() {
		defer serveWG.Done()
		if err := sk.serve(); err != nil {
			log.Error("sink", "err", err)
		}
	}()
	go func() {
		defer serveWG.Done()
		if err := rw.serve(); err != nil {
			log.Error("remote-write sink", "err", err)
		}
	}()
	defer func() {
		sk.stop()
		rw.stop()
		serveWG.Wait()
	}()
	log.Info("targets up", "targets", so.targets, "series_each", so.series, "bytes_each", len(body), "interval", so.interval)

	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the bench binary for the %s row: %w", promFloorCommand, err)
	}
	all := scrapeSystems(o.obsBin, o.otelBin, so.vmBin, self, tg.addrs, so.interval, rw.url())
	for _, k := range o.systems {
		if _, ok := all[k]; !ok {
			return fmt.Errorf("unknown system %q for the scrape scenario", k)
		}
	}
	var rs []scrapeResult
	for _, k := range o.systems {
		if ctx.Err() != nil {
			break
		}
		log.Info("running", "system", k, "window", so.duration)
		r := scrapeOne(ctx, log, o, so, k, all[k], tg, sk, rw)
		if r.err != nil {
			log.Error("row aborted", "system", k, "err", r.err)
		} else {
			log.Info("done", "system", k, "cpu_s_per_M", fmt.Sprintf("%.3f", r.cpuPerM(so.series)), "rss_mib", r.rss>>20)
		}
		rs = append(rs, r)
	}
	printScrapeTable(os.Stdout, so, rs)
	return nil
}

// sinkSamples is what the system's sink holds: data points at the OTLP
// sink, samples at the remote-write sink.
func sinkSamples(key string, sk *sink, rw *rwSink) (n, bad int64) {
	if key == "vmagent" {
		return rw.samples.Load(), rw.bad.Load()
	}
	return sk.records.Load(), sk.bad.Load()
}

// scrapeOne starts the system, waits until its first samples reach the
// sink plus two intervals (every target is then scraped in steady state),
// and measures its CPU over the window. Every wait is bounded.
func scrapeOne(parent context.Context, log *slog.Logger, o options, so scrapeOptions, key string, sys system,
	tg *targets, sk *sink, rw *rwSink) scrapeResult {
	res := scrapeResult{key: key, name: sys.name}
	ctx, cancel := context.WithTimeout(parent, o.timeout)
	defer cancel()
	sk.expect(0)
	rw.reset()
	tg.scrapes.Store(0)
	p, stop, err := startRow(ctx, log, key, sys, filepath.Join(o.workDir, "scrape-"+key), "", sk.addr())
	if err != nil {
		res.err = err
		return res
	}
	defer stop()
	pid := strconv.Itoa(p.pid())

	// Wait for the first samples at the sink (the floor sends none: its
	// first scrape), then two intervals.
	first := time.NewTicker(100 * time.Millisecond)
	defer first.Stop()
	firstWait := 2*so.interval + time.Minute
	deadline := time.Now().Add(firstWait)
	for {
		if n, _ := sinkSamples(key, sk, rw); n > 0 || (key == promFloorCommand && tg.scrapes.Load() > 0) {
			break
		}
		if time.Now().After(deadline) {
			res.err = fmt.Errorf("no samples at the sink %s after start\n%s", firstWait, p.output(3000))
			return res
		}
		select {
		case <-first.C:
		case <-ctx.Done():
			res.err = ctx.Err()
			return res
		case <-p.done:
			res.err = fmt.Errorf("process exited: %v\n%s", p.err, p.output(3000))
			return res
		}
	}
	if err := sleepCtx(ctx, p, 2*so.interval); err != nil {
		res.err = err
		return res
	}

	var perf *perfRecorder
	if o.perf != "" && key == "obs" {
		perf = startPerf(log, pid, o.perf)
	}
	sk.expect(0)
	rw.reset()
	tg.scrapes.Store(0)
	cpu0, err := cpuSeconds(pid)
	if err != nil {
		res.err = err
		return res
	}
	self0, _ := cpuSeconds("self")
	start := time.Now()
	err = sleepCtx(ctx, p, so.duration)
	cpu1, cerr := cpuSeconds(pid)
	self1, _ := cpuSeconds("self")
	res.window = time.Since(start)
	res.scrapes = tg.scrapes.Load()
	res.sinkSamples, res.sinkBad = sinkSamples(key, sk, rw)
	rss, rerr := peakRSS(pid)
	anon, file, serr := rssSplit(pid)
	if o.smaps {
		logMappings(log, key, pid)
	}
	perf.stop()
	if err := errors.Join(err, cerr, rerr, serr); err != nil {
		res.err = err
		return res
	}
	res.cpu, res.benchCPU, res.rss, res.anon, res.file = cpu1-cpu0, self1-self0, rss, anon, file
	return res
}

// sleepCtx waits d, failing early when ctx ends or the process exits.
func sleepCtx(ctx context.Context, p *process, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-p.done:
		return fmt.Errorf("process exited: %v\n%s", p.err, p.output(3000))
	}
}

func printScrapeTable(out io.Writer, so scrapeOptions, rs []scrapeResult) {
	fmt.Fprintf(out, "\nscrape: %d targets × %d series every %s, measured over %s after warm-up; %d CPUs (%s); load average %s; %s\n\n",
		so.targets, so.series, so.interval, so.duration, runtime.NumCPU(), cpuModel(), loadAvg(), time.Now().UTC().Format(time.RFC3339))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\tscrapes\tsamples/s scraped\tsink samples/s\tCPU-s\tCPU-s per M samples\tpeak RSS MiB\tRSS anon/file MiB at end\tbench CPU-s\t")
	byKey := map[string]scrapeResult{}
	for _, r := range rs {
		if r.err != nil {
			fmt.Fprintf(tw, "%s\taborted: %s\t\t\t\t\t\t\t\t\n", r.name, firstLine(r.err.Error()))
			continue
		}
		byKey[r.key] = r
		w := r.window.Seconds()
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.2f\t%.3f\t%.0f\t%s\t%.2f\t\n", r.name, r.scrapes, r.samples(so.series)/w,
			float64(r.sinkSamples)/w, r.cpu, r.cpuPerM(so.series), float64(r.rss)/(1<<20), mibPair(r.anon, r.file), r.benchCPU)
	}
	tw.Flush()
	want := float64(so.targets) * float64(so.series) / so.interval.Seconds()
	fmt.Fprintf(out, "\nexpected samples/s scraped: %.0f (sink counts add up, scrape_* series; vmagent's are remote-write samples, the others' OTLP data points)\n", want)
	for _, r := range rs {
		if r.err == nil && r.sinkBad > 0 {
			fmt.Fprintf(out, "note: the sink got %d unparsable requests from %s\n", r.sinkBad, r.name)
		}
	}
	ob, ok1 := byKey["obs"]
	vm, ok2 := byKey["vmagent"]
	if ok1 && ok2 {
		cpu := ob.cpuPerM(so.series) / vm.cpuPerM(so.series)
		rss := float64(ob.rss) / float64(vm.rss)
		fmt.Fprintf(out, "obs / vmagent CPU per sample: %.2fx (bar <= 1.0x: %s)\n", cpu, verdict(cpu <= 1))
		fmt.Fprintf(out, "obs / vmagent peak RSS: %.2fx (bar <= 1.5x: %s)\n", rss, verdict(rss <= 1.5))
	}
	if fl, ok := byKey[promFloorCommand]; ok && ok2 {
		fmt.Fprintf(out, "Prometheus' scrape loop alone / vmagent: CPU per sample %.2fx, peak RSS %.2fx (the floor under obs' receiver)\n",
			fl.cpuPerM(so.series)/vm.cpuPerM(so.series), float64(fl.rss)/float64(vm.rss))
		if ok1 {
			fmt.Fprintf(out, "obs above that floor: %.2f CPU-s per M samples, %.0f MiB peak RSS\n",
				ob.cpuPerM(so.series)-fl.cpuPerM(so.series), float64(ob.rss-fl.rss)/(1<<20))
		}
	}
	if oc, ok := byKey["otelcol"]; ok && ok1 {
		fmt.Fprintf(out, "obs / otelcol CPU per sample: %.2fx; peak RSS %.2fx\n",
			ob.cpuPerM(so.series)/oc.cpuPerM(so.series), float64(ob.rss)/float64(oc.rss))
	}
}
