package wal

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

const benchRecords = 1000 // records per appended batch, ~200 B each

// benchPayloads returns 32 OTLP-log-like batches of benchRecords records
// and their mean size.
func benchPayloads() ([][]byte, int) {
	r := rand.New(rand.NewPCG(11, 12))
	payloads := make([][]byte, 32)
	raw := 0
	for i := range payloads {
		payloads[i] = logBatch(r, benchRecords)
		raw += len(payloads[i])
	}
	return payloads, raw / len(payloads)
}

// appendLoop runs writers goroutines that together Append n batches, one
// batch per Append, and returns the first error.
func appendLoop(ctx context.Context, db *DB, q *Queue, payloads [][]byte, writers, n int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				if err := db.Append(ctx, []Item{{Queue: q, Payload: payloads[(int(i)+w)%len(payloads)], Records: benchRecords}}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// BenchmarkAppend: concurrent writers, each Append one batch of 1,000
// OTLP-log-like records of ~200 bytes, fsync on every commit (the DB's
// only mode). 16 writers is how obs drives the WAL (its writer stage keeps
// up to 16 appends in flight). b.N counts batches. Nothing consumes, so
// with compression=auto the queue passes the level where s2 starts after
// about 300 batches; none and s2 are the two ends.
func BenchmarkAppend(b *testing.B) {
	for _, c := range []Compression{CompressNone, CompressS2} {
		for _, writers := range []int{4, 16, 64} {
			b.Run(fmt.Sprintf("compression=%s/writers=%d", c, writers), func(b *testing.B) { benchAppend(b, c, writers) })
		}
	}
}

func benchAppend(b *testing.B, c Compression, writers int) {
	cfg := DefaultConfig(b.TempDir())
	cfg.Compression = c
	cfg.MaxBytes = 1 << 40
	db := openRunning(b, cfg)
	q := mustQueue(b, db.DB, "otlp/backend")
	payloads, size := benchPayloads()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu := time.Now(), cpuSeconds()
	err := appendLoop(context.Background(), db.DB, q, payloads, writers, b.N)
	elapsed, cpu := time.Since(start), cpuSeconds()-cpu
	b.StopTimer()
	require.NoError(b, err)
	b.ReportMetric(float64(b.N*benchRecords)/elapsed.Seconds(), "records/s")
	b.ReportMetric(cpu/float64(b.N*benchRecords)*1e6, "cpu-s/Mrec")
	reportCommits(b, db.DB)
	if s := q.Stats(); s.Entries > 0 {
		b.ReportMetric(float64(size)*float64(s.Entries)/float64(s.Bytes), "compression")
	}
}

// BenchmarkAppendNextDone is the full queue cycle: 16 writers append
// batches while 4 consumers (an exporter's default) take them with Next
// and mark them Done. The clock stops when every batch was Done. b.N
// counts batches. tail=off reads every entry back from badger, as after a
// restart or when consumers lag beyond Config.MemoryBytes.
func BenchmarkAppendNextDone(b *testing.B) {
	for _, tc := range []struct {
		name   string
		memory int64
	}{{"tail=64MiB", 64 << 20}, {"tail=off", 0}} {
		b.Run(tc.name, func(b *testing.B) { benchAppendNextDone(b, tc.memory) })
	}
}

func benchAppendNextDone(b *testing.B, memory int64) {
	const writers, consumers = 16, 4
	cfg := DefaultConfig(b.TempDir())
	cfg.MaxBytes = 1 << 40
	cfg.MemoryBytes = memory
	db := openRunning(b, cfg)
	q := mustQueue(b, db.DB, "otlp/backend")
	payloads, size := benchPayloads()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var done atomic.Int64
	var wg sync.WaitGroup
	cerrs := make(chan error, consumers)
	b.ResetTimer()
	start, cpu := time.Now(), cpuSeconds()
	for range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done.Load() < int64(b.N) {
				e, err := q.Next(ctx)
				if err != nil {
					if done.Load() < int64(b.N) {
						cerrs <- err
					}
					return
				}
				if err := q.Done(e.Seq); err != nil {
					cerrs <- err
					return
				}
				if done.Add(1) == int64(b.N) {
					cancel() // wakes the other consumers
				}
			}
		}()
	}
	err := appendLoop(ctx, db.DB, q, payloads, writers, b.N)
	wg.Wait()
	elapsed, cpu := time.Since(start), cpuSeconds()-cpu
	b.StopTimer()
	require.NoError(b, err)
	close(cerrs)
	require.NoError(b, <-cerrs)
	require.Equal(b, int64(b.N), done.Load())
	b.ReportMetric(float64(b.N*benchRecords)/elapsed.Seconds(), "records/s")
	b.ReportMetric(cpu/float64(b.N*benchRecords)*1e6, "cpu-s/Mrec")
	reportCommits(b, db.DB)
	reportReads(b, db.DB)
}

func reportCommits(b *testing.B, db *DB) {
	if commits := testCounterValue(db.metrics.commits); commits > 0 {
		b.ReportMetric(float64(b.N)/commits, "batches/commit")
	}
	var hm dto.Metric
	if err := db.metrics.commitSeconds.Write(&hm); err == nil && hm.GetHistogram().GetSampleCount() > 0 {
		b.ReportMetric(hm.GetHistogram().GetSampleSum()/float64(hm.GetHistogram().GetSampleCount())*1000, "ms/commit")
	}
}

// reportReads reports badger reads by Next and Done per batch (0 when the
// in-memory tail serves everything).
func reportReads(b *testing.B, db *DB) {
	b.ReportMetric(float64(db.reads.Load())/float64(b.N), "reads/batch")
}

// cpuSeconds is the user+system CPU time of this process (badger's
// goroutines included): stable on a shared machine, unlike wall time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func testCounterValue(c interface{ Write(*dto.Metric) error }) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}
