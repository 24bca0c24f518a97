package otelpeer

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// pollInterval is how often the Wait helpers re-read the sink's files.
const pollInterval = 50 * time.Millisecond

// Sink is an otelcol with the OTLP receiver (gRPC and HTTP on loopback) and
// one file exporter per signal writing OTLP JSON, one export request per
// line. The file exporter has no queue, so a request the sink acknowledged
// is in its file buffer, and on disk within FlushInterval.
type Sink struct {
	*Collector
	// LogsPath, MetricsPath and TracesPath are the files the file exporters
	// write to.
	LogsPath, MetricsPath, TracesPath string
}

// FlushInterval is the sink's file exporter flush interval.
const FlushInterval = 100 * time.Millisecond

// SinkConfig returns the collector config StartSink uses, with the OTLP
// receiver on grpcAddr and httpAddr and the files in dir.
func SinkConfig(grpcAddr, httpAddr, dir string) string {
	file := func(name string) string {
		return fmt.Sprintf(`  file/%s:
    path: %q
    format: json
    flush_interval: %s
`, name, filepath.Join(dir, name+".jsonl"), FlushInterval)
	}
	return fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %q
      http:
        endpoint: %q
exporters:
%s%s%sservice:
  telemetry:
    metrics:
      level: none
    logs:
      level: info
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [file/logs]
    metrics:
      receivers: [otlp]
      exporters: [file/metrics]
    traces:
      receivers: [otlp]
      exporters: [file/traces]
`, grpcAddr, httpAddr, file("logs"), file("metrics"), file("traces"))
}

// StartSink starts a Sink on free loopback ports and waits until both
// receivers accept connections.
func StartSink(t testing.TB) *Sink {
	t.Helper()
	bin := Binary(t)
	out := t.TempDir()
	var lastErr error
	for range startAttempts {
		grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
		c, err := start(t, bin, SinkConfig(grpcAddr, httpAddr, out), []string{grpcAddr, httpAddr})
		if err != nil {
			lastErr = err
			if isAddrInUse(err) {
				continue
			}
			break
		}
		c.GRPCAddr, c.HTTPAddr = grpcAddr, httpAddr
		return &Sink{
			Collector:   c,
			LogsPath:    filepath.Join(out, "logs.jsonl"),
			MetricsPath: filepath.Join(out, "metrics.jsonl"),
			TracesPath:  filepath.Join(out, "traces.jsonl"),
		}
	}
	t.Fatalf("otelpeer: start sink: %v", lastErr)
	return nil
}

func isAddrInUse(err error) bool {
	return strings.Contains(err.Error(), "address already in use")
}

// readLines returns the complete lines of path: a last line without its
// newline is still being written and is left out. A missing file is empty.
func readLines(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	} else {
		return nil, nil
	}
	var lines [][]byte
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		if len(bytes.TrimSpace(line)) > 0 {
			lines = append(lines, line)
		}
	}
	return lines, nil
}

func parseFile[T any](path string, unmarshal func([]byte) (T, error)) ([]T, error) {
	lines, err := readLines(path)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(lines))
	for i, line := range lines {
		v, err := unmarshal(line)
		if err != nil {
			return nil, fmt.Errorf("parse %s line %d: %w", path, i+1, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func (s *Sink) logs() ([]plog.Logs, error) {
	var u plog.JSONUnmarshaler
	return parseFile(s.LogsPath, u.UnmarshalLogs)
}

func (s *Sink) metrics() ([]pmetric.Metrics, error) {
	var u pmetric.JSONUnmarshaler
	return parseFile(s.MetricsPath, u.UnmarshalMetrics)
}

func (s *Sink) traces() ([]ptrace.Traces, error) {
	var u ptrace.JSONUnmarshaler
	return parseFile(s.TracesPath, u.UnmarshalTraces)
}

// Logs returns the log requests written so far, one per export request.
func (s *Sink) Logs(t testing.TB) []plog.Logs {
	t.Helper()
	v, err := s.logs()
	if err != nil {
		t.Fatalf("otelpeer: %v", err)
	}
	return v
}

// Metrics returns the metric requests written so far.
func (s *Sink) Metrics(t testing.TB) []pmetric.Metrics {
	t.Helper()
	v, err := s.metrics()
	if err != nil {
		t.Fatalf("otelpeer: %v", err)
	}
	return v
}

// Traces returns the trace requests written so far.
func (s *Sink) Traces(t testing.TB) []ptrace.Traces {
	t.Helper()
	v, err := s.traces()
	if err != nil {
		t.Fatalf("otelpeer: %v", err)
	}
	return v
}

func countLogRecords(v []plog.Logs) int {
	n := 0
	for _, l := range v {
		n += l.LogRecordCount()
	}
	return n
}

func countDataPoints(v []pmetric.Metrics) int {
	n := 0
	for _, m := range v {
		n += m.DataPointCount()
	}
	return n
}

func countSpans(v []ptrace.Traces) int {
	n := 0
	for _, tr := range v {
		n += tr.SpanCount()
	}
	return n
}

// LogRecordCount returns the number of log records written so far.
func (s *Sink) LogRecordCount(t testing.TB) int {
	t.Helper()
	return countLogRecords(s.Logs(t))
}

// DataPointCount returns the number of metric data points written so far.
func (s *Sink) DataPointCount(t testing.TB) int {
	t.Helper()
	return countDataPoints(s.Metrics(t))
}

// SpanCount returns the number of spans written so far.
func (s *Sink) SpanCount(t testing.TB) int {
	t.Helper()
	return countSpans(s.Traces(t))
}

// waitFor polls read until count(read()) >= n, failing the test after
// timeout or when the collector exits.
func waitFor[T any](t testing.TB, s *Sink, what string, n int, timeout time.Duration, read func() ([]T, error), count func([]T) int) []T {
	t.Helper()
	deadline := time.Now().Add(timeout)
	timer := time.NewTimer(pollInterval)
	defer timer.Stop()
	for {
		v, err := read()
		if err != nil {
			t.Fatalf("otelpeer: %v", err)
		}
		got := count(v)
		if got >= n {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("otelpeer: sink holds %d %s after %s, want %d", got, what, timeout, n)
		}
		timer.Reset(pollInterval)
		select {
		case <-timer.C:
		case <-s.Done():
			t.Fatalf("otelpeer: sink exited while waiting for %d %s (have %d): %v", n, what, got, s.err)
		}
	}
}

// WaitLogRecords waits until the sink holds at least n log records and
// returns the requests read at that moment; it fails the test after timeout.
func (s *Sink) WaitLogRecords(t testing.TB, n int, timeout time.Duration) []plog.Logs {
	t.Helper()
	return waitFor(t, s, "log records", n, timeout, s.logs, countLogRecords)
}

// WaitDataPoints waits until the sink holds at least n metric data points.
func (s *Sink) WaitDataPoints(t testing.TB, n int, timeout time.Duration) []pmetric.Metrics {
	t.Helper()
	return waitFor(t, s, "data points", n, timeout, s.metrics, countDataPoints)
}

// WaitSpans waits until the sink holds at least n spans.
func (s *Sink) WaitSpans(t testing.TB, n int, timeout time.Duration) []ptrace.Traces {
	t.Helper()
	return waitFor(t, s, "spans", n, timeout, s.traces, countSpans)
}
