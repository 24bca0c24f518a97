package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

	"github.com/obs-dev/obs/test/otelpeer"
)

// countLogIDs counts the "id" attribute of every log record the sink holds.
func countLogIDs(v []plog.Logs) map[string]int {
	ids := map[string]int{}
	for _, ld := range v {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			sls := ld.ResourceLogs().At(i).ScopeLogs()
			for j := 0; j < sls.Len(); j++ {
				lrs := sls.At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					if id, ok := lrs.At(k).Attributes().Get("id"); ok {
						ids[id.Str()]++
					}
				}
			}
		}
	}
	return ids
}

// TestDurabilityAcrossKills sends 100,000 log records from 4 concurrent
// clients that retry every batch until obs acks it, SIGKILLs obs three
// times during the run (restarting it on the same data dir), and checks
// that the real backend got every record.
func TestDurabilityAcrossKills(t *testing.T) {
	const (
		batches   = 200
		batchSize = 500
		total     = batches * batchSize
		senders   = 4
		kills     = 3
		// obs side: the exporter merges queued entries up to maxMerged
		// records and sends with `consumers` in parallel.
		maxMerged = 1000
		consumers = 2
	)
	// A kill can duplicate (a) the batches clients had in flight: obs may
	// have committed them without the ack reaching the client, so the
	// client sends them again: senders*batchSize; (b) what the exporter had
	// sent to the backend but not yet marked done in the WAL: per consumer
	// one merged send in flight plus one confirmed whose delete was not yet
	// flushed: 2*consumers*maxMerged.
	const dupBound = kills * (senders*batchSize + 2*consumers*maxMerged)

	sink := otelpeer.StartSink(t)
	exp := otlpExporter("otlp/sink", sink.GRPCAddr) + fmt.Sprintf("    sending_queue:\n      num_consumers: %d\n", consumers)
	obs := newObs(t, obsConfig{
		Exporters:    exp,
		ExporterIDs:  []string{"otlp/sink"},
		Processors:   fmt.Sprintf("  batch:\n    send_batch_size: %d\n    send_batch_max_size: %d\n", maxMerged, maxMerged),
		ProcessorIDs: []string{"batch"},
	})
	obs.Start()
	client := plogotlp.NewGRPCClient(dial(t, obs.Addr("grpc")))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	work := make(chan int, batches)
	for b := range batches {
		work <- b
	}
	close(work)
	var acked, failures atomic.Int64
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				req := plogotlp.NewExportRequestFromLogs(makeLogs(b, batchSize))
				for ctx.Err() == nil {
					cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
					_, err := client.Export(cctx, req)
					ccancel()
					if err == nil {
						acked.Add(1)
						break
					}
					failures.Add(1)
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	allDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(allDone)
	}()
	defer func() {
		cancel()
		<-allDone
	}()

	// Kill at a quarter, half and three quarters of the acked batches.
	killedAt := make([]int64, 0, kills)
	for k := 1; k <= kills; k++ {
		threshold := int64(k * batches / (kills + 1))
		for acked.Load() < threshold {
			select {
			case <-allDone:
				t.Fatalf("senders finished before kill %d (acked %d)", k, acked.Load())
			case <-ctx.Done():
				t.Fatalf("no progress to %d acked batches before kill %d: %v", threshold, k, ctx.Err())
			case <-time.After(time.Millisecond):
			}
		}
		obs.Kill()
		killedAt = append(killedAt, acked.Load())
		time.Sleep(300 * time.Millisecond) // clients see connection refused
		obs.Start()
	}
	select {
	case <-allDone:
	case <-ctx.Done():
		t.Fatalf("senders did not finish: %d of %d batches acked", acked.Load(), batches)
	}
	require.Equal(t, int64(batches), acked.Load())
	require.Positive(t, failures.Load(), "the kills must have failed some client requests")

	sink.WaitLogRecords(t, total, 2*time.Minute)
	time.Sleep(time.Second) // let late duplicates land before counting
	ids := countLogIDs(sink.Logs(t))
	missing, dups := 0, 0
	for b := range batches {
		for i := range batchSize {
			if ids[fmt.Sprintf("%d-%d", b, i)] == 0 {
				missing++
			}
		}
	}
	for _, n := range ids {
		dups += n - 1
	}
	t.Logf("kills at %v acked batches; client retries %d; records at the backend: %d unique, %d duplicates (bound %d)",
		killedAt, failures.Load(), len(ids), dups, dupBound)
	require.Zero(t, missing, "records lost")
	require.Len(t, ids, total)
	require.LessOrEqual(t, dups, dupBound)
}
