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
				// A copy: appends of one array in one commit share a body.
				p := append([]byte(nil), payloads[(w+i)%len(payloads)]...)
				if err := db.Append(ctx, []Item{{Queue: q, Payload: p, Records: 700}}); err != nil {
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

// TestSmallValueLogFilesReclaimedWhileWriting streams 24 MiB through a
// queue that its exporter keeps up with. With small files (the agent's
// settings: segments rotate at the value-log file size) and prompt
// collection, the payload files on disk stay a fraction of what was
// written; with files as large as what was written they would hold all.
func TestSmallValueLogFilesReclaimedWhileWriting(t *testing.T) {
	cfg := DefaultConfig(t.TempDir())
	cfg.ValueLogFileBytes = 1 << 20
	cfg.GCInterval = 50 * time.Millisecond
	cfg.ReclaimInterval = 200 * time.Millisecond
	cfg.Compression = CompressNone
	db := openRunning(t, cfg)
	q := mustQueue(t, db.DB, "otlp/gateway")
	ctx := context.Background()

	r := rand.New(rand.NewPCG(6, 6))
	payload := make([]byte, 64<<10)
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	const entries = 384 // 24 MiB
	var peak int64
	deadline := time.Now().Add(2 * time.Minute)
	for i := 0; i < entries && time.Now().Before(deadline); i++ {
		require.NoError(t, db.Append(ctx, []Item{{Queue: q, Payload: payload, Records: 1}}))
		require.NoError(t, q.Done(next(t, q).Seq))
		u := diskUsage(cfg.Dir)
		peak = max(peak, u.vlog+u.segments)
		time.Sleep(4 * time.Millisecond) // about 12 MiB/s at most
	}
	require.Zero(t, q.Stats().Entries)
	t.Logf("value log and segments peak %.1f MiB on disk while writing %d MiB", float64(peak)/(1<<20), entries*len(payload)>>20)
	require.Less(t, peak, int64(12<<20))
}

func TestValueLogConfigValidate(t *testing.T) {
	ok := DefaultConfig("/x")
	for name, tc := range map[string]struct {
		fileBytes int64
		reclaim   time.Duration
		want      string
	}{
		"defaults":         {0, 0, ""},
		"agent":            {4 << 20, time.Second, ""},
		"file under 1 MiB": {512 << 10, 0, "value_log_file_bytes"},
		"file of 1 GiB":    {1 << 30, 0, "value_log_file_bytes"},
		"negative reclaim": {0, -time.Second, "reclaim_interval"},
		"file of 1 MiB":    {1 << 20, 0, ""},
		"file under 1 GiB": {1<<30 - 1, 0, ""},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := ok
			cfg.ValueLogFileBytes, cfg.ReclaimInterval = tc.fileBytes, tc.reclaim
			err := cfg.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
	require.Equal(t, int64(16<<20), ok.vlogFileSize(), "derived from the 1 GiB cap, at most 16 MiB")
	require.Equal(t, int64(4<<20), Config{MaxBytes: 16 << 20}.vlogFileSize(), "a quarter of a small cap")
	require.Equal(t, 2*time.Second, ok.reclaimInterval(), "four GC intervals")
}
