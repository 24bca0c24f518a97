package wal

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDiskReclaim appends ~200 MiB (stored), drains it with Done and checks
// that value-log GC (run by Run's loop) gives the disk back.
func TestDiskReclaim(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 200 MiB")
	}
	cfg := DefaultConfig(t.TempDir())
	cfg.GCInterval = 50 * time.Millisecond
	db := openRunning(t, cfg)
	q := mustQueue(t, db.DB, "otlp/backend")
	ctx := context.Background()

	// ~256 KiB stored per entry: half compressible log lines, half random.
	r := rand.New(rand.NewPCG(9, 9))
	payloads := make([][]byte, 8)
	for i := range payloads {
		p := logBatch(r, 700)
		noise := make([]byte, 128<<10)
		for j := range noise {
			noise[j] = byte(r.Uint32())
		}
		payloads[i] = append(p, noise...)
	}
	const target = 200 << 20
	var stored int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := make([]error, 0)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				mu.Lock()
				done := stored >= target
				mu.Unlock()
				if done {
					return
				}
				if err := db.Append(ctx, []Item{{Queue: q, Payload: payloads[(w+i)%len(payloads)], Records: 700}}); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				mu.Lock()
				stored = db.used.Load()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Empty(t, errs)
	require.GreaterOrEqual(t, stored, int64(target))
	peak := db.DiskBytes()
	t.Logf("appended %d entries, %d MiB stored, disk %d MiB", q.Stats().Entries, stored>>20, peak>>20)
	require.Greater(t, peak, int64(target)*9/10)

	for n := q.Stats().Entries; n > 0; n-- {
		require.NoError(t, q.Done(next(t, q).Seq))
	}
	require.Zero(t, q.Stats().Bytes)

	deadline := time.Now().Add(60 * time.Second) // generous: shared 2-core machine, -race
	var now int64
	for time.Now().Before(deadline) {
		now = db.DiskBytes()
		if now < peak*30/100 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("disk after drain and gc: %d MiB (peak %d MiB)", now>>20, peak>>20)
	require.Less(t, now, peak*30/100, "disk must fall below 30%% of peak")
}
