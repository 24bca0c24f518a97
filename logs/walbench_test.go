package logs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/obs-dev/obs/wal"
)

// BenchmarkTailIntoWAL tails 10 files of 20,000 CRI lines of ~200 bytes
// (written up front) into a real, fsync'd WAL, as roles/ wires it minus
// the actor hop: records/s and CPU-seconds per million records (user+sys
// of the whole process, so the WAL's commit and compression count too).
func BenchmarkTailIntoWAL(b *testing.B) {
	const files, perFile = 10, 20_000
	logDir := b.TempDir()
	pad := strings.Repeat("x", 150)
	for k := range files {
		p := filepath.Join(logDir, fmt.Sprintf("ns_pod-%d_0000-%04d", k, k), "app", "0.log")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		var sb strings.Builder
		for n := range perFile {
			fmt.Fprintf(&sb, "2024-03-01T10:11:12.123456789Z stdout F f=%d n=%06d %s\n", k, n, pad)
		}
		if err := os.WriteFile(p, []byte(sb.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	var records int
	var cpu, wall time.Duration
	for b.Loop() {
		db, err := wal.Open(wal.DefaultConfig(b.TempDir()), nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = db.Run(ctx) }()
		q, err := db.Queue("logs")
		if err != nil {
			b.Fatal(err)
		}
		cfg := DefaultFilelogConfig()
		cfg.Include = []string{filepath.Join(logDir, "*", "*", "*.log")}
		cfg.StartAt = "beginning"
		cfg.Operators = []OperatorConfig{{Type: "container"}}
		r, err := NewFilelogReceiver("bench", cfg, walConsume(db, q), db.Get, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		var ru0, ru1 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
		start := time.Now()
		t := newTailer(r)
		for more := true; more; {
			if more, err = t.poll(ctx); err != nil {
				b.Fatal(err)
			}
		}
		wall += time.Since(start)
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		cpu += time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
		t.closeAll()
		if got := int(testutil.ToFloat64(r.m.linesRead)); got != files*perFile {
			b.Fatalf("read %d records, want %d", got, files*perFile)
		}
		records += files * perFile
		cancel()
		<-done
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(records)/wall.Seconds(), "records/s")
	b.ReportMetric(cpu.Seconds()/float64(records)*1e6, "cpu-s/M-records")
}
