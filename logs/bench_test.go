package logs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/obs-dev/obs/actors"
)

// BenchmarkReadParse measures the read + container-parse + batch path: 10
// files of 10,000 CRI lines of ~200 bytes (one in 10 split in P/F pieces),
// read from the start by a fresh tailer per op. "raw" is the default path
// (records encoded straight to OTLP protobuf, what the WAL stores);
// "pdata" forces the pdata path plus the marshal the WAL writer then does.
func BenchmarkReadParse(b *testing.B) {
	dir := b.TempDir()
	const files, perFile = 10, 10_000
	pad := strings.Repeat("x", 140)
	for k := range files {
		p := filepath.Join(dir, fmt.Sprintf("ns_pod-%d_0000-%04d", k, k), "app", "0.log")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		var sb strings.Builder
		for n := range perFile {
			if n%10 == 0 {
				fmt.Fprintf(&sb, "2024-03-01T10:11:12.123456789Z stdout P f=%d n=%06d %s", k, n, pad[:70])
				fmt.Fprintf(&sb, "\n2024-03-01T10:11:12.123456789Z stdout F %s\n", pad[:70])
				continue
			}
			fmt.Fprintf(&sb, "2024-03-01T10:11:12.123456789Z stdout F f=%d n=%06d %s\n", k, n, pad)
		}
		if err := os.WriteFile(p, []byte(sb.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for _, mode := range []string{"raw", "pdata"} {
		b.Run(mode, func(b *testing.B) {
			cfg := DefaultFilelogConfig()
			cfg.Include = []string{filepath.Join(dir, "*", "*", "*.log")}
			cfg.StartAt = "beginning"
			cfg.IncludeFilePath = true
			cfg.Operators = []OperatorConfig{{Type: "container"}}
			var m plog.ProtoMarshaler
			var buf []byte
			records := 0
			consume := func(_ context.Context, bt actors.Batch, _ []actors.KV) error {
				records += bt.Items()
				if !bt.Encoded() {
					buf = buf[:0]
					sz := m.LogsSize(bt.Logs)
					if cap(buf) < sz {
						buf = make([]byte, 0, sz)
					}
					var err error
					buf, err = m.MarshalLogs(bt.Logs)
					return err
				}
				return nil
			}
			r, err := NewFilelogReceiver("bench", cfg, consume, nil, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			r.raw = mode == "raw"
			b.ReportAllocs()
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			start := time.Now()
			for b.Loop() {
				t := newTailer(r)
				for more := true; more; {
					if more, err = t.poll(context.Background()); err != nil {
						b.Fatal(err)
					}
				}
				t.closeAll()
			}
			el := time.Since(start)
			runtime.ReadMemStats(&ms1)
			b.ReportMetric(float64(records)/el.Seconds(), "records/s")
			b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(records), "allocs/record")
			b.ReportMetric(float64(el.Nanoseconds())/float64(records), "ns/record")
		})
	}
}

// BenchmarkIdlePoll measures one poll over 300 pod log files with nothing
// new: the steady cost of an agent on a quiet node.
func BenchmarkIdlePoll(b *testing.B) {
	dir := b.TempDir()
	for k := range 300 {
		p := filepath.Join(dir, fmt.Sprintf("ns_pod-%d_0000-%04d", k, k), "app", "0.log")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, fmt.Appendf(nil, "2024-03-01T10:11:12Z stdout F pod %d\n", k), 0o644); err != nil {
			b.Fatal(err)
		}
		// A steady node: the directories changed a while ago.
		old := time.Now().Add(-time.Minute)
		for _, d := range []string{filepath.Dir(p), filepath.Dir(filepath.Dir(p))} {
			if err := os.Chtimes(d, old, old); err != nil {
				b.Fatal(err)
			}
		}
	}
	old := time.Now().Add(-time.Minute)
	if err := os.Chtimes(dir, old, old); err != nil {
		b.Fatal(err)
	}
	cfg := DefaultFilelogConfig()
	cfg.Include = []string{filepath.Join(dir, "*", "*", "*.log")}
	cfg.StartAt = "beginning"
	cfg.Operators = []OperatorConfig{{Type: "container"}}
	r, err := NewFilelogReceiver("bench", cfg, func(context.Context, actors.Batch, []actors.KV) error { return nil }, nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	t := newTailer(r)
	defer t.closeAll()
	if _, err := t.poll(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := t.poll(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
