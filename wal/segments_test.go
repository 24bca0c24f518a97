package wal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// segFiles lists the segment files of a WAL directory with their sizes.
func segFiles(t testing.TB, dir string) map[string]int64 {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, segDirName))
	require.NoError(t, err)
	out := map[string]int64{}
	for _, e := range ents {
		if _, ok := segID(e.Name()); !ok {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // collected between ReadDir and Info: the GC loop runs meanwhile
		}
		require.NoError(t, err)
		out[e.Name()] = info.Size()
	}
	return out
}

// sealWritten makes the segment written last a sealed one: a 2 MiB entry
// fills the active segment (1 MiB files in these tests), the next append
// rotates; both are done at once. q must hold no other entry not handed out.
func sealWritten(t testing.TB, db *DB, q *Queue) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, db.Append(ctx, []Item{{Queue: q, Payload: bytes.Repeat([]byte("x"), 2<<20), Records: 1}}))
	require.NoError(t, q.Done(next(t, q).Seq))
	require.NoError(t, db.Append(ctx, []Item{{Queue: q, Payload: []byte("tail"), Records: 1}}))
	require.NoError(t, q.Done(next(t, q).Seq))
}

func TestFanOutWritesPayloadOnce(t *testing.T) {
	cfg := DefaultConfig(t.TempDir())
	cfg.Compression = CompressNone
	db := openRunning(t, cfg)
	a, b := mustQueue(t, db.DB, "a"), mustQueue(t, db.DB, "b")
	p := logBatch(rand.New(rand.NewPCG(1, 2)), 200)
	require.NoError(t, db.Append(context.Background(), []Item{{Queue: a, Payload: p, Records: 200}, {Queue: b, Payload: p, Records: 200}}))
	var total int64
	for _, n := range segFiles(t, cfg.Dir) {
		total += n
	}
	require.Equal(t, int64(len(p)), total, "one body for both queues")
	require.Equal(t, p, next(t, a).Payload)
	require.Equal(t, p, next(t, b).Payload)
}

// TestPayloadsReadFromSegmentsAfterRestart reopens the WAL (the in-memory
// tail is gone) and reads every entry back from its segment, compressed or
// not.
func TestPayloadsReadFromSegmentsAfterRestart(t *testing.T) {
	for _, c := range []Compression{CompressNone, CompressS2} {
		t.Run(string(c), func(t *testing.T) {
			cfg := DefaultConfig(t.TempDir())
			cfg.Compression = c
			cfg.ValueLogFileBytes = 1 << 20 // several segments
			db := openRunning(t, cfg)
			q := mustQueue(t, db.DB, "q")
			r := rand.New(rand.NewPCG(3, 4))
			var want [][]byte
			for i := range 40 {
				p := append(fmt.Appendf(nil, "p%d ", i), logBatch(r, 300)...)
				want = append(want, p)
				require.NoError(t, db.Append(context.Background(), []Item{{Queue: q, Payload: p, Records: 300}}))
			}
			db.stop(t)
			require.GreaterOrEqual(t, len(segFiles(t, cfg.Dir)), 2, "entries span segments")

			db = openRunning(t, cfg)
			q = mustQueue(t, db.DB, "q")
			drainInOrder(t, q, want)
			requireEmpty(t, q)
		})
	}
}

// TestSegmentsCollected: segments nothing points into go (an orphan left
// by a crash between the segment write and badger's commit among them);
// a segment with one live entry stays until that entry is done.
func TestSegmentsCollected(t *testing.T) {
	cfg := DefaultConfig(t.TempDir())
	cfg.Compression = CompressNone
	cfg.ValueLogFileBytes = 1 << 20
	cfg.GCInterval = 20 * time.Millisecond
	orphan := filepath.Join(cfg.Dir, segDirName, segName(1<<40))
	require.NoError(t, os.MkdirAll(filepath.Dir(orphan), 0o755))
	require.NoError(t, os.WriteFile(orphan, bytes.Repeat([]byte{7}, 4096), 0o644))

	db := openRunning(t, cfg)
	q := mustQueue(t, db.DB, "q")
	r := rand.New(rand.NewPCG(5, 6))
	ctx := context.Background()
	keep := append([]byte("keep "), logBatch(r, 300)...)
	require.NoError(t, db.Append(ctx, []Item{{Queue: q, Payload: keep, Records: 1}}))
	for range 30 {
		require.NoError(t, db.Append(ctx, []Item{{Queue: q, Payload: logBatch(r, 300), Records: 1}}))
	}
	first := next(t, q)
	require.Equal(t, keep, first.Payload)
	for range 30 {
		require.NoError(t, q.Done(next(t, q).Seq))
	}
	sealWritten(t, db.DB, q)

	require.Eventually(t, func() bool { return len(segFiles(t, cfg.Dir)) == 2 }, 10*time.Second, 20*time.Millisecond,
		"left: the segment of the live entry and the active one; got %v", segFiles(t, cfg.Dir))
	_, err := os.Stat(orphan)
	require.ErrorIs(t, err, os.ErrNotExist, "orphan collected")

	// The live entry is still readable from disk after a restart.
	db.stop(t)
	db = openRunning(t, cfg)
	q = mustQueue(t, db.DB, "q")
	e := next(t, q)
	require.Equal(t, keep, e.Payload)
	require.NoError(t, q.Done(e.Seq))
	require.Eventually(t, func() bool { return len(segFiles(t, cfg.Dir)) == 1 }, 10*time.Second, 20*time.Millisecond,
		"only the active segment is left; got %v", segFiles(t, cfg.Dir))
}

// TestSegmentCorruptionIsQuarantined flips a byte of a payload on disk:
// the entry goes to the dead-letter area, counted, and the others arrive.
func TestSegmentCorruptionIsQuarantined(t *testing.T) {
	cfg := DefaultConfig(t.TempDir())
	cfg.Compression = CompressNone
	db := openRunning(t, cfg)
	q := mustQueue(t, db.DB, "q")
	r := rand.New(rand.NewPCG(7, 8))
	var sizes []int
	for i := range 3 {
		p := append(fmt.Appendf(nil, "p%d ", i), logBatch(r, 50)...)
		sizes = append(sizes, len(p))
		require.NoError(t, db.Append(context.Background(), []Item{{Queue: q, Payload: p, Records: 50}}))
	}
	db.stop(t)
	files := segFiles(t, cfg.Dir)
	require.Len(t, files, 1)
	for name := range files {
		path := filepath.Join(cfg.Dir, segDirName, name)
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		b[sizes[0]+10] ^= 0xff // inside the second payload
		require.NoError(t, os.WriteFile(path, b, 0o644))
	}

	db = openRunning(t, cfg)
	q = mustQueue(t, db.DB, "q")
	require.True(t, bytes.HasPrefix(next(t, q).Payload, []byte("p0 ")))
	require.True(t, bytes.HasPrefix(next(t, q).Payload, []byte("p2 ")), "corrupted entry skipped")
	require.InDelta(t, 1, testutil.ToFloat64(db.metrics.corrupted.WithLabelValues("q")), 0)
	dead, err := db.DeadLetters("q")
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Contains(t, dead[0].Reason, "crc")
}

// TestDeadLetterKeepsPayloadInline: a dead letter holds its payload itself,
// so its segment can go, and a replay still delivers it.
func TestDeadLetterKeepsPayloadInline(t *testing.T) {
	cfg := DefaultConfig(t.TempDir())
	cfg.Compression = CompressNone
	cfg.ValueLogFileBytes = 1 << 20
	cfg.GCInterval = 20 * time.Millisecond
	db := openRunning(t, cfg)
	q := mustQueue(t, db.DB, "q")
	ctx := context.Background()
	p := append([]byte("dead "), logBatch(rand.New(rand.NewPCG(9, 9)), 300)...)
	require.NoError(t, db.Append(ctx, []Item{{Queue: q, Payload: p, Records: 300}}))
	require.NoError(t, q.DeadLetter(next(t, q).Seq, "permanent: 400"))
	sealWritten(t, db.DB, q)
	require.Eventually(t, func() bool { return len(segFiles(t, cfg.Dir)) == 1 }, 10*time.Second, 20*time.Millisecond,
		"the dead letter keeps no segment; got %v", segFiles(t, cfg.Dir))

	n, err := db.ReplayDead("q")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	e := next(t, q)
	require.Equal(t, p, e.Payload)
	require.Equal(t, 300, e.Records)
}
