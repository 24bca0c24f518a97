package wal

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func tailState(db *DB) (live int, bytes int64) {
	db.tailMu.Lock()
	defer db.tailMu.Unlock()
	return db.tailLive, db.tailBytes
}

func TestNextAfterAppendServedFromTail(t *testing.T) {
	db := openRunning(t, DefaultConfig(t.TempDir()))
	q := mustQueue(t, db.DB, "otlp/backend")
	other := mustQueue(t, db.DB, "debug")
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 4))
	var payloads [][]byte
	for i := range 5 {
		p := logBatch(r, 2+i*10) // under and over the value threshold
		payloads = append(payloads, p)
		require.NoError(t, db.Append(ctx, []Item{{Queue: q, Payload: p, Records: i + 1}, {Queue: other, Payload: p}}))
	}
	live, bytes := tailState(db.DB)
	require.Equal(t, 10, live)
	var sum int64
	for _, p := range payloads {
		sum += 2 * int64(len(p))
	}
	require.Equal(t, sum, bytes)

	reads := db.reads.Load()
	var got []Entry
	for i, p := range payloads {
		e := next(t, q)
		require.Equal(t, p, e.Payload)
		require.Same(t, &p[0], &e.Payload[0], "the appended payload itself, no copy")
		require.Equal(t, len(e.Payload), cap(e.Payload), "capped: appending to it cannot write into the caller's array")
		require.Equal(t, i+1, e.Records)
		got = append(got, e)
	}
	require.Equal(t, reads, db.reads.Load(), "Next after Append does not read badger")

	// Release and Next again: still from memory, same entry.
	q.Release(got[1].Seq)
	require.Equal(t, got[1], next(t, q))
	// Done of an entry not handed out yet needs no lookup either.
	require.NoError(t, other.Done(3))
	require.Equal(t, reads, db.reads.Load())

	for _, e := range got {
		require.NoError(t, q.Done(e.Seq))
	}
	live, _ = tailState(db.DB)
	require.Equal(t, 4, live, "Done drops entries from the tail")
	require.Zero(t, q.Stats().Bytes)
	require.Zero(t, q.Stats().Entries)
	requireEmpty(t, q)

	for _, i := range []int{0, 1, 3, 4} {
		e := next(t, other)
		require.Equal(t, payloads[i], e.Payload)
		if i == 4 {
			require.NoError(t, other.DeadLetter(e.Seq, "permanent"))
		} else {
			require.NoError(t, other.Done(e.Seq))
		}
	}
	require.Equal(t, reads+1, db.reads.Load(), "one seek over the gap that Done(3) left")
	live, bytes = tailState(db.DB)
	require.Zero(t, live, "dead-lettered entries leave the tail")
	require.Zero(t, bytes)
	dead, err := db.DeadLetters("debug")
	require.NoError(t, err)
	require.Len(t, dead, 1, "the dead letter holds the stored entry")
	n, err := db.ReplayDead("debug")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, payloads[4], next(t, other).Payload, "replayed entries are read from badger")
	require.Greater(t, db.reads.Load(), reads)
}

func TestTailBudgetEvictsOldest(t *testing.T) {
	const size, n, keep = 1000, 12, 4
	cfg := DefaultConfig(t.TempDir())
	cfg.MemoryBytes = keep * size
	db := openRunning(t, cfg)
	q := mustQueue(t, db.DB, "q")
	ctx := context.Background()
	payload := func(i int) []byte {
		p := make([]byte, size)
		copy(p, fmt.Sprintf("p%03d ", i))
		return p
	}
	for i := range n {
		require.NoError(t, db.Append(ctx, []Item{{Queue: q, Payload: payload(i), Records: 1}}))
		live, bytes := tailState(db.DB)
		require.LessOrEqual(t, bytes, cfg.MemoryBytes)
		require.Equal(t, min(i+1, keep), live)
	}
	// The oldest entries were dropped: read from badger; the newest not.
	for i := range n {
		before := db.reads.Load()
		e := next(t, q)
		require.Equal(t, payload(i), e.Payload)
		require.Equal(t, uint64(i+1), e.Seq)
		if i < n-keep {
			require.Greater(t, db.reads.Load(), before, "entry %d was evicted", i)
		} else {
			require.Equal(t, before, db.reads.Load(), "entry %d is in memory", i)
		}
		require.NoError(t, q.Done(e.Seq))
	}
	requireEmpty(t, q)
	live, bytes := tailState(db.DB)
	require.Zero(t, live)
	require.Zero(t, bytes)
	// A payload larger than the whole budget never enters the tail.
	require.NoError(t, db.Append(ctx, []Item{{Queue: q, Payload: make([]byte, keep*size+1)}}))
	live, _ = tailState(db.DB)
	require.Zero(t, live)
	require.Len(t, next(t, q).Payload, keep*size+1)
}

// TestTailConcurrentDrainInOrder: writers append while one consumer drains
// with a budget far below what is queued; every entry comes out once, in
// seq order, with the payload that was appended under that seq.
func TestTailConcurrentDrainInOrder(t *testing.T) {
	const writers, perWriter = 8, 150
	cfg := DefaultConfig(t.TempDir())
	cfg.MemoryBytes = 16 << 10
	db := openRunning(t, cfg)
	q := mustQueue(t, db.DB, "q")
	ctx := context.Background()
	var wg, head sync.WaitGroup // head: the first third is appended
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		head.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 9))
			for i := range perWriter {
				if i == perWriter/3 {
					head.Done()
				}
				p := append(fmt.Appendf(nil, "w=%d i=%d\n", w, i), logBatch(r, 1+r.IntN(8))...)
				if err := db.Append(ctx, []Item{{Queue: q, Payload: p, Records: 1}}); err != nil {
					errs <- err
					if i < perWriter/3 {
						head.Done()
					}
					return
				}
			}
		}()
	}
	head.Wait() // the consumer starts behind: the oldest entries were evicted
	seen := map[string]bool{}
	lastI := map[int]int{}
	var last uint64
	for range writers * perWriter {
		e := next(t, q)
		require.Greater(t, e.Seq, last)
		last = e.Seq
		var w, i int
		_, err := fmt.Sscanf(string(e.Payload), "w=%d i=%d\n", &w, &i)
		require.NoError(t, err)
		key := fmt.Sprint(w, i)
		require.False(t, seen[key], "duplicate %s", key)
		seen[key] = true
		if p, ok := lastI[w]; ok {
			require.Greater(t, i, p, "a writer's appends come out in order")
		}
		lastI[w] = i
		if e.Seq%7 == 0 {
			q.Release(e.Seq)
			require.Equal(t, e, next(t, q))
		}
		require.NoError(t, q.Done(e.Seq))
		_, bytes := tailState(db.DB)
		require.LessOrEqual(t, bytes, cfg.MemoryBytes)
	}
	wg.Wait()
	close(errs)
	require.NoError(t, <-errs)
	requireEmpty(t, q)
	require.Zero(t, q.Stats().Entries)
	require.Zero(t, q.Stats().Bytes)
	require.Zero(t, db.used.Load())
	require.Positive(t, db.reads.Load(), "a 16 KiB budget cannot hold everything")
	live, _ := tailState(db.DB)
	require.Zero(t, live)
}

func TestTailEmptyAfterReopen(t *testing.T) {
	dir := t.TempDir()
	db := openRunning(t, DefaultConfig(dir))
	q := mustQueue(t, db.DB, "q")
	for i := range 3 {
		require.NoError(t, db.Append(context.Background(), []Item{{Queue: q, Payload: fmt.Appendf(nil, "p%d", i), Records: 1}}))
	}
	require.Equal(t, "p0", string(next(t, q).Payload))
	db.stop(t)

	db2 := openRunning(t, DefaultConfig(dir))
	q2 := mustQueue(t, db2.DB, "q")
	live, _ := tailState(db2.DB)
	require.Zero(t, live)
	for i := range 3 {
		e := next(t, q2)
		require.Equal(t, fmt.Sprintf("p%d", i), string(e.Payload), "not Done: redelivered from disk")
		require.NoError(t, q2.Done(e.Seq))
	}
	require.Equal(t, int64(3), db2.reads.Load())
	// New appends are served from memory again.
	require.NoError(t, db2.Append(context.Background(), []Item{{Queue: q2, Payload: []byte("new")}}))
	require.Equal(t, "new", string(next(t, q2).Payload))
	require.Equal(t, int64(3), db2.reads.Load())
}

// TestTailFIFOBoundedBehindLongLivedEntry: one entry stays handed out
// (a send retrying for long) while thousands after it are appended and
// Done; the FIFO of the tail must not grow with them.
func TestTailFIFOBoundedBehindLongLivedEntry(t *testing.T) {
	db := openRunning(t, DefaultConfig(t.TempDir()))
	q := mustQueue(t, db.DB, "q")
	ctx := context.Background()
	require.NoError(t, db.Append(ctx, []Item{{Queue: q, Payload: []byte("held")}}))
	held := next(t, q)
	const rounds, per = 100, 100
	maxSlots := 0
	for range rounds {
		items := make([]Item, per)
		for i := range items {
			items[i] = Item{Queue: q, Payload: []byte("x"), Records: 1}
		}
		require.NoError(t, db.Append(ctx, items))
		for range per {
			require.NoError(t, q.Done(next(t, q).Seq))
		}
		db.tailMu.Lock()
		maxSlots = max(maxSlots, len(db.tailFIFO)-db.tailHead)
		db.tailMu.Unlock()
	}
	require.LessOrEqual(t, maxSlots, 4096+per, "stale FIFO slots are compacted")
	live, bytes := tailState(db.DB)
	require.Equal(t, 1, live)
	require.Equal(t, int64(len("held")), bytes)
	q.Release(held.Seq)
	require.Equal(t, held, next(t, q), "the held entry is still served from memory")
	require.NoError(t, q.Done(held.Seq))
	live, _ = tailState(db.DB)
	require.Zero(t, live)
	db.tailMu.Lock()
	require.Zero(t, len(db.tailFIFO)-db.tailHead)
	db.tailMu.Unlock()
}
