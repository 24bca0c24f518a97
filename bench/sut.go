package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// system is one system under test: how to configure and start it.
type system struct {
	name string
	// config returns the config file text for a receiver on recvAddr
	// exporting to sinkAddr, with its data under dir.
	config func(recvAddr, sinkAddr, dir string) string
	// args returns the command line after the binary.
	args func(configPath, dir, adminAddr string) []string
	bin  string
	// readyURL, when set, must answer 200 before the run starts.
	readyURL func(adminAddr string) string
}

// systems returns every known system; bins are the binaries' paths.
func systems(obsBin, otelcolBin string, otelBatch bool) map[string]system {
	collectorBatch := ""
	collectorProcessors := ""
	if otelBatch {
		collectorBatch = "processors:\n  batch: {}\n"
		collectorProcessors = "      processors: [batch]\n"
	}
	collector := func(queue, extensions, serviceExt string) func(string, string, string) string {
		return func(recv, sinkAddr, dir string) string {
			return fmt.Sprintf(`%sreceivers:
  otlp:
    protocols:
      grpc:
        endpoint: %q
%sexporters:
  otlp_grpc:
    endpoint: %q
    tls:
      insecure: true
    compression: none
    sending_queue:
%s
service:
%s  telemetry:
    metrics:
      level: none
    logs:
      level: warn
  pipelines:
    logs:
      receivers: [otlp]
%s      exporters: [otlp_grpc]
`, strings.ReplaceAll(extensions, "DIR", dir), recv, collectorBatch, sinkAddr, queue, serviceExt, collectorProcessors)
		}
	}
	collectorArgs := func(configPath, _, _ string) []string { return []string{"--config", "file:" + configPath} }
	fileStorage := func(fsync bool) string {
		return fmt.Sprintf("extensions:\n  file_storage:\n    directory: \"DIR\"\n    fsync: %t\n", fsync)
	}
	return map[string]system{
		"obs": {
			name: "obs (WAL, fsync)",
			bin:  obsBin,
			config: func(recv, sinkAddr, _ string) string {
				return fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %q
processors:
  batch: {}
exporters:
  otlp:
    endpoint: %q
    tls:
      insecure: true
    compression: none
service:
  pipelines:
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp]
`, recv, sinkAddr)
			},
			args: func(configPath, dir, admin string) []string {
				return []string{"run", "--role", "gateway", "--config", configPath, "--data-dir", dir,
					"--admin-addr", admin, "--no-cluster", "--log-level", "warn"}
			},
			readyURL: func(admin string) string { return "http://" + admin + "/readyz" },
		},
		"otelcol-noqueue": {
			name:   "otelcol, no queue",
			bin:    otelcolBin,
			config: collector("      enabled: false", "", ""),
			args:   collectorArgs,
		},
		"otelcol-filestorage": {
			name:   "otelcol, file_storage queue",
			bin:    otelcolBin,
			config: collector("      enabled: true\n      storage: file_storage", fileStorage(false), "  extensions: [file_storage]\n"),
			args:   collectorArgs,
		},
		"otelcol-filestorage-fsync": {
			name:   "otelcol, file_storage fsync",
			bin:    otelcolBin,
			config: collector("      enabled: true\n      storage: file_storage", fileStorage(true), "  extensions: [file_storage]\n"),
			args:   collectorArgs,
		},
	}
}

// process is a running system under test.
type process struct {
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
	logPath string
}

// startProcess starts sys with its config in dir and waits until its
// receiver accepts connections (unless recvAddr is empty) and its ready
// URL answers 200.
func startProcess(ctx context.Context, sys system, dir, recvAddr, sinkAddr, adminAddr string) (*process, error) {
	cfgPath := filepath.Join(dir, "config.yaml")
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if err := os.WriteFile(cfgPath, []byte(sys.config(recvAddr, sinkAddr, dataDir)), 0o600); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	p := &process{done: make(chan struct{}), logPath: filepath.Join(dir, "output.log")}
	logf, err := os.Create(p.logPath)
	if err != nil {
		return nil, fmt.Errorf("create log file: %w", err)
	}
	p.cmd = exec.Command(sys.bin, sys.args(cfgPath, dataDir, adminAddr)...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.Env = append(os.Environ(), "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", sys.bin, err)
	}
	// The reaper: stop and kill wait for it.
	go func() {
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	if err := p.waitReady(ctx, recvAddr, sys, adminAddr); err != nil {
		p.kill()
		return nil, fmt.Errorf("%w\noutput:\n%s", err, p.output(4000))
	}
	return p, nil
}

func (p *process) waitReady(ctx context.Context, recvAddr string, sys system, adminAddr string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ready := func() bool {
		if recvAddr != "" {
			c, err := net.DialTimeout("tcp", recvAddr, time.Second)
			if err != nil {
				return false
			}
			c.Close()
		}
		if sys.readyURL == nil {
			return true
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, sys.readyURL(adminAddr), nil)
		if err != nil {
			return false
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !ready() {
		select {
		case <-p.done:
			return fmt.Errorf("process exited before it was ready: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to be ready: %w", recvAddr, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// startRow starts sys for one row of a table in dir, on a fresh admin
// address, and waits as startProcess does. stop ends the process and logs
// a failure to stop; every scenario defers it.
func startRow(ctx context.Context, log *slog.Logger, key string, sys system, dir, recvAddr, sinkAddr string) (p *process, stop func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("create dir: %w", err)
	}
	adminAddr, err := freeAddr()
	if err != nil {
		return nil, nil, err
	}
	p, err = startProcess(ctx, sys, dir, recvAddr, sinkAddr, adminAddr)
	if err != nil {
		return nil, nil, err
	}
	return p, func() {
		if err := p.stop(30 * time.Second); err != nil {
			log.Warn("stop", "system", key, "err", err)
		}
	}, nil
}

// stop sends SIGTERM and waits up to grace, then kills.
func (p *process) stop(grace time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
		p.kill()
		return fmt.Errorf("stop pid %d: no exit %s after SIGTERM, killed", p.pid(), grace)
	}
}

func (p *process) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *process) output(max int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", p.logPath, err)
	}
	if len(b) > max {
		b = append([]byte("..."), b[len(b)-max:]...)
	}
	return string(b)
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat;
// Linux fixes it at 100 for user space on every architecture obs targets.
const clockTicks = 100

// cpuSeconds reads utime+stime of pid from /proc/PID/stat ("self" works).
func cpuSeconds(pid string) (float64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read cpu time: %w", err)
	}
	return parseStatCPU(b)
}

// parseStatCPU returns (utime+stime)/USER_HZ from a /proc/PID/stat line.
// The command name (field 2) may hold spaces and parentheses, so fields
// are counted after its last ')'.
func parseStatCPU(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("parse /proc stat: no ')' after the command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc stat: %d fields after the command name, want at least 13", len(f))
	}
	u, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse /proc stat utime: %w", err)
	}
	s, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse /proc stat stime: %w", err)
	}
	return float64(u+s) / clockTicks, nil
}

// peakRSS reads VmHWM of pid from /proc/PID/status, in bytes.
func peakRSS(pid string) (int64, error) {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0, fmt.Errorf("read peak rss: %w", err)
	}
	defer f.Close()
	return parseVmHWM(f)
}

func parseVmHWM(r io.Reader) (int64, error) {
	v, err := parseStatusKB(r, "VmHWM")
	if err != nil {
		return 0, err
	}
	return v["VmHWM"], nil
}

// rssSplit reads RssAnon and RssFile (+ RssShmem) of pid, in bytes: the
// heap and stacks versus mapped files (badger's tables and value logs).
func rssSplit(pid string) (anon, file int64, err error) {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0, 0, fmt.Errorf("read rss: %w", err)
	}
	defer f.Close()
	v, err := parseStatusKB(f, "RssAnon", "RssFile", "RssShmem")
	if err != nil {
		return 0, 0, err
	}
	return v["RssAnon"], v["RssFile"] + v["RssShmem"], nil
}

// parseStatusKB returns the given "Key:  N kB" lines of /proc/PID/status
// in bytes; each key must be present.
func parseStatusKB(r io.Reader, keys ...string) (map[string]int64, error) {
	out := make(map[string]int64, len(keys))
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || !slices.Contains(keys, k) {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return nil, fmt.Errorf("parse %s line %q", k, sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", k, err)
		}
		out[k] = kb << 10
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scan status: %w", err)
	}
	for _, k := range keys {
		if _, ok := out[k]; !ok {
			return nil, fmt.Errorf("parse status: no %s line", k)
		}
	}
	return out, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// perfRecorder is a `perf record -g` of one process; nil records nothing.
type perfRecorder struct{ cmd *exec.Cmd }

// startPerf starts perf on pid writing to out; on failure it logs and
// returns nil.
func startPerf(log *slog.Logger, pid, out string) *perfRecorder {
	cmd := exec.Command("perf", "record", "-g", "-F", "199", "-p", pid, "-o", out)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		log.Warn("perf not started", "err", err)
		return nil
	}
	return &perfRecorder{cmd: cmd}
}

// stop interrupts perf and waits until it wrote its file.
func (p *perfRecorder) stop() {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	_ = p.cmd.Wait()
}

// mapping is one entry of /proc/PID/smaps.
type mapping struct {
	name string // file path, [heap], [anon] ...
	rss  int64  // bytes
}

// topMappings returns the n mappings of pid with the most resident
// memory, those of one file summed, largest first.
func topMappings(pid string, n int) ([]mapping, error) {
	f, err := os.Open("/proc/" + pid + "/smaps")
	if err != nil {
		return nil, fmt.Errorf("read smaps: %w", err)
	}
	defer f.Close()
	return parseSmaps(f, n)
}

func parseSmaps(r io.Reader, n int) ([]mapping, error) {
	byName := map[string]int64{}
	cur := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if k, ok := strings.CutSuffix(f[0], ":"); ok && !strings.Contains(k, "-") {
			if k == "Rss" && len(f) == 3 {
				kb, err := strconv.ParseInt(f[1], 10, 64)
				if err != nil {
					return nil, fmt.Errorf("parse smaps Rss: %w", err)
				}
				byName[cur] += kb << 10
			}
			continue
		}
		// A mapping header: address perms offset dev inode [path].
		cur = "[anon]"
		if len(f) >= 6 {
			cur = strings.Join(f[5:], " ")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scan smaps: %w", err)
	}
	out := make([]mapping, 0, len(byName))
	for k, v := range byName {
		out = append(out, mapping{k, v})
	}
	slices.SortFunc(out, func(a, b mapping) int { return int(b.rss - a.rss) })
	return out[:min(n, len(out))], nil
}

// logMappings logs the largest mappings of pid (for -smaps).
func logMappings(log *slog.Logger, key, pid string) {
	ms, err := topMappings(pid, 6)
	if err != nil {
		log.Warn("smaps", "system", key, "err", err)
		return
	}
	for _, m := range ms {
		log.Info("rss by mapping", "system", key, "mapping", m.name, "rss_mib", fmt.Sprintf("%.1f", float64(m.rss)/(1<<20)))
	}
}
