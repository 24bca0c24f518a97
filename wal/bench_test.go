package wal

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

// BenchmarkAppend: 4 concurrent writers, each Append one batch of 1,000
// OTLP-log-like records of ~200 bytes, fsync on every commit (the DB's
// only mode). b.N counts batches.
func BenchmarkAppend(b *testing.B) {
	const writers, records = 4, 1000
	cfg := DefaultConfig(b.TempDir())
	cfg.MaxBytes = 1 << 40
	db := openRunning(b, cfg)
	q := mustQueue(b, db.DB, "otlp/backend")
	r := rand.New(rand.NewPCG(11, 12))
	payloads := make([][]byte, 32)
	var raw int
	for i := range payloads {
		payloads[i] = logBatch(r, records)
		raw += len(payloads[i])
	}
	b.SetBytes(int64(raw / len(payloads)))
	b.ReportAllocs()
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	b.ResetTimer()
	start := time.Now()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := db.Append(ctx, []Item{{Queue: q, Payload: payloads[(int(i)+w)%len(payloads)], Records: records}}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		require.NoError(b, err)
	}
	b.ReportMetric(float64(b.N*records)/elapsed.Seconds(), "records/s")
	commits := 0.0
	if c := db.metrics.commits; c != nil {
		commits = testCounterValue(c)
	}
	if commits > 0 {
		b.ReportMetric(float64(b.N)/commits, "batches/commit")
	}
	var hm dto.Metric
	if err := db.metrics.commitSeconds.Write(&hm); err == nil && hm.GetHistogram().GetSampleCount() > 0 {
		b.ReportMetric(hm.GetHistogram().GetSampleSum()/float64(hm.GetHistogram().GetSampleCount())*1000, "ms/commit")
	}
	if s := q.Stats(); s.Entries > 0 {
		b.ReportMetric(float64(raw/len(payloads))*float64(s.Entries)/float64(s.Bytes), "compression")
	}
}

func testCounterValue(c interface{ Write(*dto.Metric) error }) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}
