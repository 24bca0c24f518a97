package wal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testDB is a DB with Run running; stop stops Run and closes the DB.
type testDB struct {
	*DB
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan struct{}
	runErr error
}

func (d *testDB) stop(t testing.TB) {
	t.Helper()
	d.cancel()
	<-d.done
	require.NoError(t, d.runErr)
	require.NoError(t, d.Close())
}

func openRunning(t testing.TB, cfg Config) *testDB {
	t.Helper()
	reg := prometheus.NewRegistry()
	db, err := Open(cfg, nil, reg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	d := &testDB{DB: db, reg: reg, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		d.runErr = db.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-d.done
		_ = db.Close()
	})
	return d
}

func mustQueue(t testing.TB, db *DB, name string) *Queue {
	t.Helper()
	q, err := db.Queue(name)
	require.NoError(t, err)
	return q
}

func next(t testing.TB, q *Queue) Entry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e, err := q.Next(ctx)
	require.NoError(t, err)
	return e
}

// drainInOrder takes len(want) entries, checks each payload against want in
// order and marks it done.
func drainInOrder(t testing.TB, q *Queue, want [][]byte) {
	t.Helper()
	for i := range want {
		e := next(t, q)
		require.Equal(t, want[i], e.Payload, "entry %d", i)
		require.NoError(t, q.Done(e.Seq))
	}
}

// requireEmpty asserts Next finds nothing within a short wait.
func requireEmpty(t testing.TB, q *Queue) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	e, err := q.Next(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded, "unexpected entry %d %q", e.Seq, e.Payload)
}

// logBatch returns n OTLP-log-like records of ~200 bytes each, varied
// enough that compression ratios are realistic (ids, numbers, timestamps).
func logBatch(r *rand.Rand, n int) []byte {
	services := []string{"checkout", "cart", "payment", "frontend", "shipping", "recommendation"}
	levels := []string{"INFO", "WARN", "ERROR", "DEBUG"}
	msgs := []string{"request completed", "cache miss for product", "retrying upstream call",
		"user session refreshed", "order placed", "inventory reserved", "slow query detected"}
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"ts":"2026-05-01T12:%02d:%02d.%06dZ","sev":"%s","svc":"%s","trace_id":"%016x%016x","span_id":"%016x","msg":"%s","http.status":%d,"latency_ms":%d,"user":%d}`+"\n",
			r.IntN(60), r.IntN(60), r.IntN(1000000), levels[r.IntN(len(levels))], services[r.IntN(len(services))],
			r.Uint64(), r.Uint64(), r.Uint64(), msgs[r.IntN(len(msgs))], 200+r.IntN(4)*100, r.IntN(5000), r.IntN(1000000))
	}
	return b.Bytes()
}

func TestConfigValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  Config
		want string
	}{
		"ok":          {DefaultConfig("/x"), ""},
		"no dir":      {DefaultConfig(""), "dir"},
		"no max":      {Config{Dir: "/x", GCInterval: time.Second}, "max_bytes"},
		"no interval": {Config{Dir: "/x", MaxBytes: 1}, "gc_interval"},
		"no tail":     {Config{Dir: "/x", MaxBytes: 1, GCInterval: time.Second}, ""},
		"neg memory":  {Config{Dir: "/x", MaxBytes: 1, GCInterval: time.Second, MemoryBytes: -1}, "memory_bytes"},
		"bad codec":   {Config{Dir: "/x", MaxBytes: 1, GCInterval: time.Second, Compression: "zip"}, "compression"},
		"s2":          {Config{Dir: "/x", MaxBytes: 1, GCInterval: time.Second, Compression: CompressS2}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestAppendNextDoneOrderAcrossQueues(t *testing.T) {
	db := openRunning(t, DefaultConfig(t.TempDir()))
	names := []string{"otlp/a", "otlp/b", "debug"}
	qs := make([]*Queue, len(names))
	for i, n := range names {
		qs[i] = mustQueue(t, db.DB, n)
	}
	same, err := db.Queue("otlp/a")
	require.NoError(t, err)
	require.Same(t, qs[0], same)

	ctx := context.Background()
	for i := range 10 {
		// One append fans out to all queues, another to the first only.
		var items []Item
		for _, q := range qs {
			items = append(items, Item{Queue: q, Payload: fmt.Appendf(nil, "%s-%d", q.Name(), i), Records: i})
		}
		require.NoError(t, db.Append(ctx, items))
		require.NoError(t, db.Append(ctx, []Item{{Queue: qs[0], Payload: fmt.Appendf(nil, "extra-%d", i), Records: 1}}))
	}
	for qi, q := range qs {
		t.Run(q.Name(), func(t *testing.T) {
			var want []string
			for i := range 10 {
				want = append(want, fmt.Sprintf("%s-%d", q.Name(), i))
				if qi == 0 {
					want = append(want, fmt.Sprintf("extra-%d", i))
				}
			}
			require.Equal(t, int64(len(want)), q.Stats().Entries)
			var got []string
			var last uint64
			for range want {
				e := next(t, q)
				require.Greater(t, e.Seq, last)
				last = e.Seq
				require.WithinDuration(t, time.Now(), e.Appended, time.Minute)
				got = append(got, string(e.Payload))
				require.NoError(t, q.Done(e.Seq))
			}
			require.Equal(t, want, got)
			requireEmpty(t, q)
			s := q.Stats()
			require.Zero(t, s.Entries)
			require.Zero(t, s.Bytes)
		})
	}
	require.Equal(t, []*Queue{qs[2], qs[0], qs[1]}, db.Queues())
	require.InDelta(t, 10+45*3, testutil.ToFloat64(db.metrics.appendedRecords.WithLabelValues("otlp/a"))+
		testutil.ToFloat64(db.metrics.appendedRecords.WithLabelValues("otlp/b"))+
		testutil.ToFloat64(db.metrics.appendedRecords.WithLabelValues("debug")), 0)
}

func TestNextWaitsForAppend(t *testing.T) {
	db := openRunning(t, DefaultConfig(t.TempDir()))
	q := mustQueue(t, db.DB, "q")
	got := make(chan Entry, 1)
	go func() {
		e, err := q.Next(context.Background())
		if err == nil {
			got <- e
		}
		close(got)
	}()
	select {
	case e := <-got:
		t.Fatalf("Next returned %v before any append", e)
	case <-time.After(50 * time.Millisecond):
	}
	require.NoError(t, db.Append(context.Background(), []Item{{Queue: q, Payload: []byte("hello"), Records: 1}}))
	select {
	case e := <-got:
		require.Equal(t, "hello", string(e.Payload))
	case <-time.After(5 * time.Second):
		t.Fatal("Next not woken by Append")
	}
}

func TestExtraKVAtomicWithItems(t *testing.T) {
	cfg := DefaultConfig(t.TempDir())
	cfg.MaxBytes = 4 << 10
	db := openRunning(t, cfg)
	q := mustQueue(t, db.DB, "files")
	ctx := context.Background()

	v, err := db.Get([]byte("offset/a.log"))
	require.NoError(t, err)
	require.Nil(t, v)

	require.NoError(t, db.Append(ctx, []Item{{Queue: q, Payload: []byte("line 1\nline 2\n"), Records: 2}},
		KV{Key: []byte("offset/a.log"), Value: []byte("14")}, KV{Key: []byte("offset/b.log"), Value: []byte("7")}))
	v, err = db.Get([]byte("offset/a.log"))
	require.NoError(t, err)
	require.Equal(t, "14", string(v))

	// KV keys do not collide with queue entries or names.
	v, err = db.Get([]byte("files"))
	require.NoError(t, err)
	require.Nil(t, v)

	// A refused append writes neither its items nor its KVs.
	big := make([]byte, 8<<10)
	for i := range big {
		big[i] = byte(rand.Uint32())
	}
	err = db.Append(ctx, []Item{{Queue: q, Payload: big, Records: 1}}, KV{Key: []byte("offset/a.log"), Value: []byte("9999")})
	require.ErrorIs(t, err, ErrFull)
	v, err = db.Get([]byte("offset/a.log"))
	require.NoError(t, err)
	require.Equal(t, "14", string(v))
	require.Equal(t, int64(1), q.Stats().Entries)

	// A nil value deletes; KV-only appends work.
	require.NoError(t, db.Append(ctx, nil, KV{Key: []byte("offset/b.log")}))
	v, err = db.Get([]byte("offset/b.log"))
	require.NoError(t, err)
	require.Nil(t, v)
}

func TestReopenRedeliversNotDone(t *testing.T) {
	dir := t.TempDir()
	db := openRunning(t, DefaultConfig(dir))
	q := mustQueue(t, db.DB, "otlp/backend")
	other := mustQueue(t, db.DB, "other")
	r := rand.New(rand.NewPCG(1, 2))
	var payloads [][]byte
	for i := range 6 {
		p := logBatch(r, 5+i) // some under, some over the 1 KiB value threshold
		if i == 0 {
			p = []byte("tiny")
		}
		payloads = append(payloads, p)
		require.NoError(t, db.Append(context.Background(), []Item{{Queue: q, Payload: p, Records: i + 1}, {Queue: other, Payload: p}}))
	}
	e1, e2, e3 := next(t, q), next(t, q), next(t, q)
	require.NoError(t, q.Done(e2.Seq)) // out of order
	_ = e1
	_ = e3
	require.NoError(t, other.Done(payloadSeq(t, other)))
	before := q.Stats()
	beforeOther := other.Stats()
	require.Equal(t, int64(5), before.Entries)
	db.stop(t)

	db2 := openRunning(t, DefaultConfig(dir))
	qs := db2.Queues()
	require.Len(t, qs, 2)
	q2 := mustQueue(t, db2.DB, "otlp/backend")
	after := q2.Stats()
	require.Equal(t, before.Entries, after.Entries)
	require.Equal(t, before.Bytes, after.Bytes, "byte accounting must survive restart")
	require.Equal(t, beforeOther.Bytes, mustQueue(t, db2.DB, "other").Stats().Bytes)
	require.Equal(t, db.used.Load(), db2.used.Load())
	for _, i := range []int{0, 2, 3, 4, 5} {
		e := next(t, q2)
		require.Equal(t, payloads[i], e.Payload, "entry %d", i)
		require.Equal(t, i+1, e.Records)
	}
	requireEmpty(t, q2)
	// New appends continue after the highest seq ever used.
	require.NoError(t, db2.Append(context.Background(), []Item{{Queue: q2, Payload: []byte("new")}}))
	e := next(t, q2)
	require.Equal(t, "new", string(e.Payload))
	require.Greater(t, e.Seq, uint64(6))
}

func payloadSeq(t *testing.T, q *Queue) uint64 {
	t.Helper()
	return next(t, q).Seq
}

func TestReleaseRedelivers(t *testing.T) {
	db := openRunning(t, DefaultConfig(t.TempDir()))
	q := mustQueue(t, db.DB, "q")
	for i := range 4 {
		require.NoError(t, db.Append(context.Background(), []Item{{Queue: q, Payload: fmt.Appendf(nil, "p%d", i)}}))
	}
	a, b, c := next(t, q), next(t, q), next(t, q)
	q.Release(c.Seq)
	q.Release(a.Seq)
	q.Release(a.Seq) // twice is once
	require.Equal(t, a, next(t, q), "released entries come back lowest seq first")
	require.Equal(t, c, next(t, q))
	d := next(t, q)
	require.Equal(t, "p3", string(d.Payload))
	requireEmpty(t, q)

	// Done after Release: not handed out again.
	q.Release(b.Seq)
	require.NoError(t, q.Done(b.Seq))
	requireEmpty(t, q)
	// Release of a Done or unknown seq is ignored.
	q.Release(b.Seq)
	q.Release(999)
	requireEmpty(t, q)
	require.Equal(t, int64(3), q.Stats().Entries)
}

func TestDoneBeforeNextSkips(t *testing.T) {
	db := openRunning(t, DefaultConfig(t.TempDir()))
	q := mustQueue(t, db.DB, "q")
	for i := range 3 {
		require.NoError(t, db.Append(context.Background(), []Item{{Queue: q, Payload: fmt.Appendf(nil, "p%d", i)}}))
	}
	require.NoError(t, q.Done(2))
	require.NoError(t, q.Done(2))
	require.Equal(t, "p0", string(next(t, q).Payload))
	require.Equal(t, "p2", string(next(t, q).Payload))
	requireEmpty(t, q)
	require.Equal(t, int64(2), q.Stats().Entries)
}

func TestConcurrentAppendsGroupCommit(t *testing.T) {
	db := openRunning(t, DefaultConfig(t.TempDir()))
	q := mustQueue(t, db.DB, "q")
	const writers, per = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if err := db.Append(context.Background(), []Item{{Queue: q, Payload: fmt.Appendf(nil, "%d/%d", w, i), Records: 1}}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	lastOf := map[int]int{}
	seen := map[string]bool{}
	for range writers * per {
		e := next(t, q)
		var w, i int
		_, err := fmt.Sscanf(string(e.Payload), "%d/%d", &w, &i)
		require.NoError(t, err)
		require.False(t, seen[string(e.Payload)], "duplicate %s", e.Payload)
		seen[string(e.Payload)] = true
		if prev, ok := lastOf[w]; ok {
			require.Greater(t, i, prev, "one writer's appends stay in order")
		}
		lastOf[w] = i
	}
	requireEmpty(t, q)
	commits := testutil.ToFloat64(db.metrics.commits)
	t.Logf("%d appends in %.0f commits", writers*per, commits)
	require.Less(t, commits, float64(writers*per)*3/4, "concurrent appends share commits")
}

func TestErrFull(t *testing.T) {
	cfg := DefaultConfig(t.TempDir())
	cfg.MaxBytes = 64 << 10
	db := openRunning(t, cfg)
	q := mustQueue(t, db.DB, "q")
	r := rand.New(rand.NewPCG(3, 4))
	payload := func() []byte { // incompressible, ~10 KiB
		p := make([]byte, 10<<10)
		for i := range p {
			p[i] = byte(r.Uint32())
		}
		return p
	}
	ctx := context.Background()
	n := 0
	var err error
	for range 20 {
		if err = db.Append(ctx, []Item{{Queue: q, Payload: payload(), Records: 1}}); err != nil {
			break
		}
		n++
	}
	require.ErrorIs(t, err, ErrFull)
	require.Equal(t, 6, n, "6 x ~10 KiB fit in 64 KiB")
	require.InDelta(t, 1, testutil.ToFloat64(db.metrics.refused.WithLabelValues("q", "full")), 0)
	require.NoError(t, db.Healthy(), "full is not unhealthy")

	// Drain: Append works again.
	for range n {
		require.NoError(t, q.Done(next(t, q).Seq))
	}
	require.NoError(t, db.Append(ctx, []Item{{Queue: q, Payload: payload(), Records: 1}}))
	require.Equal(t, int64(1), q.Stats().Entries)
}

// CompressAuto stores raw while the queues are short and s2 once they hold
// more than compressAutoAbove; either way Next returns the payload as
// appended, also when read back from disk after a reopen.
func TestCompressAutoCompressesOnceQueued(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig(dir)
	cfg.Compression = CompressAuto
	cfg.MaxBytes = 64 << 20 // compressAutoAbove: 16 MiB
	cfg.MemoryBytes = 0
	require.Equal(t, int64(16<<20), cfg.compressAutoAbove())
	db := openRunning(t, cfg)
	q := mustQueue(t, db.DB, "q")
	r := rand.New(rand.NewPCG(5, 6))
	var payloads [][]byte
	var grew []int64 // accounted bytes each append added
	for range 100 {
		p := logBatch(r, 1000) // ~220 KB, compresses about 2.4x
		before := q.Stats().Bytes
		require.NoError(t, db.Append(context.Background(), []Item{{Queue: q, Payload: p, Records: 1000}}))
		payloads = append(payloads, p)
		grew = append(grew, q.Stats().Bytes-before)
		if db.used.Load() > 20<<20 {
			break
		}
	}
	n := len(grew)
	require.Greater(t, n, 10)
	first, last := payloads[0], payloads[n-1]
	require.Equal(t, int64(headerLen+len(first)), grew[0], "short queue: stored raw")
	require.Less(t, grew[n-1], int64(len(last))/2, "queue above 16 MiB: stored compressed")
	db.stop(t)

	cfg.Compression = CompressNone
	db = openRunning(t, cfg)
	q = mustQueue(t, db.DB, "q")
	drainInOrder(t, q, payloads[:n])
	p := logBatch(r, 1000)
	before := q.Stats().Bytes
	require.NoError(t, db.Append(context.Background(), []Item{{Queue: q, Payload: p, Records: 1000}}))
	require.Equal(t, int64(headerLen+len(p)), q.Stats().Bytes-before, "none: raw")
}

func TestCorruptedEntryIsSkippedAndCounted(t *testing.T) {
	for name, corrupt := range map[string]func(v []byte) []byte{
		"bad crc":       func(v []byte) []byte { v[len(v)-1] ^= 0xff; return v },
		"short value":   func(v []byte) []byte { return v[:5] },
		"unknown codec": func(v []byte) []byte { v[0] = 9; return v },
	} {
		t.Run(name, func(t *testing.T) {
			// Without the in-memory tail: it would hand out the intact
			// copy the append kept, and the disk is what is corrupted here.
			cfg := DefaultConfig(t.TempDir())
			cfg.MemoryBytes = 0
			db := openRunning(t, cfg)
			q := mustQueue(t, db.DB, "q")
			ctx := context.Background()
			r := rand.New(rand.NewPCG(5, 6))
			for i := range 3 {
				require.NoError(t, db.Append(ctx, []Item{{Queue: q, Payload: append(fmt.Appendf(nil, "p%d ", i), logBatch(r, 20)...)}}))
			}
			// Seam: overwrite entry 2's stored value directly in badger.
			key := seqKey(prefixEntry, q.id, 2)
			require.NoError(t, db.bdb.Update(func(txn *badger.Txn) error {
				item, err := txn.Get(key)
				if err != nil {
					return err
				}
				v, err := item.ValueCopy(nil)
				if err != nil {
					return err
				}
				return txn.Set(key, corrupt(v))
			}))
			e := next(t, q)
			require.True(t, bytes.HasPrefix(e.Payload, []byte("p0 ")))
			e = next(t, q)
			require.True(t, bytes.HasPrefix(e.Payload, []byte("p2 ")), "corrupted entry skipped")
			requireEmpty(t, q)
			require.InDelta(t, 1, testutil.ToFloat64(db.metrics.corrupted.WithLabelValues("q")), 0)
			s := q.Stats()
			require.Equal(t, int64(2), s.Entries)
			require.Equal(t, int64(1), s.DeadEntries)
			dead, err := db.DeadLetters("q")
			require.NoError(t, err)
			require.Len(t, dead, 1)
			require.Equal(t, uint64(2), dead[0].Seq)
			require.Contains(t, dead[0].Reason, "corrupted")
			require.NoError(t, db.Healthy())
		})
	}
}

func TestDeadLetterAndReplay(t *testing.T) {
	db := openRunning(t, DefaultConfig(t.TempDir()))
	q := mustQueue(t, db.DB, "otlp/backend")
	ctx := context.Background()
	r := rand.New(rand.NewPCG(7, 8))
	var payloads [][]byte
	for i := range 4 {
		p := logBatch(r, 10)
		payloads = append(payloads, p)
		require.NoError(t, db.Append(ctx, []Item{{Queue: q, Payload: p, Records: 10 + i}}))
	}
	usedBefore := db.used.Load()
	e0, e1, e2 := next(t, q), next(t, q), next(t, q)
	require.NoError(t, q.DeadLetter(e0.Seq, "permanent: 400 bad request"))
	require.NoError(t, q.DeadLetter(e2.Seq, "permanent: schema"))
	require.Error(t, q.DeadLetter(e0.Seq, "again"), "not handed out any more")
	require.NoError(t, q.Done(e1.Seq))
	s := q.Stats()
	require.Equal(t, int64(1), s.Entries)
	require.Equal(t, int64(2), s.DeadEntries)

	dead, err := db.DeadLetters("otlp/backend")
	require.NoError(t, err)
	require.Len(t, dead, 2)
	require.Equal(t, e0.Seq, dead[0].Seq)
	require.Equal(t, "permanent: 400 bad request", dead[0].Reason)
	require.Equal(t, 10, dead[0].Records)
	require.Equal(t, 12, dead[1].Records)
	require.Positive(t, dead[0].Bytes)
	require.WithinDuration(t, time.Now(), dead[0].Time, time.Minute)
	_, err = db.DeadLetters("nope")
	require.Error(t, err)

	// Replay one, then the rest.
	n, err := db.ReplayDead("otlp/backend", e2.Seq, 12345)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	e3 := next(t, q)
	require.Equal(t, payloads[3], e3.Payload)
	e := next(t, q)
	require.Equal(t, payloads[2], e.Payload)
	require.Equal(t, 12, e.Records)
	require.Greater(t, e.Seq, e3.Seq, "replayed at the end with a new seq")
	n, err = db.ReplayDead("otlp/backend")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	e = next(t, q)
	require.Equal(t, payloads[0], e.Payload)
	dead, err = db.DeadLetters("otlp/backend")
	require.NoError(t, err)
	require.Empty(t, dead)
	s = q.Stats()
	require.Zero(t, s.DeadEntries)
	require.Zero(t, s.DeadBytes)
	require.Equal(t, int64(3), s.Entries)
	require.Less(t, db.used.Load(), usedBefore, "entry 1 is done")
}

func TestSyncFailureMakesUnhealthy(t *testing.T) {
	db := openRunning(t, DefaultConfig(t.TempDir()))
	q := mustQueue(t, db.DB, "q")
	require.NoError(t, db.Append(context.Background(), []Item{{Queue: q, Payload: []byte("ok")}}))
	require.NoError(t, db.Healthy())
	require.InDelta(t, 1, testutil.ToFloat64(db.metrics.healthy), 0)

	// What badger does when a value-log fsync fails: log it and carry on.
	lg := &badgerLogger{log: db.log, db: db.DB}
	lg.Errorf("Error while curlf sync: %v\n", errors.New("input/output error"))

	require.ErrorContains(t, db.Healthy(), "sync")
	err := db.Append(context.Background(), []Item{{Queue: q, Payload: []byte("after")}})
	require.Error(t, err)
	require.ErrorContains(t, err, "sync")
	require.InDelta(t, 0, testutil.ToFloat64(db.metrics.healthy), 0)
	// Reading and Done still work so exporters can drain.
	e := next(t, q)
	require.Equal(t, "ok", string(e.Payload))
	require.NoError(t, q.Done(e.Seq))
}

func TestSyncFailureDuringCommitFailsIt(t *testing.T) {
	db := openRunning(t, DefaultConfig(t.TempDir()))
	q := mustQueue(t, db.DB, "q")
	require.NoError(t, db.Append(context.Background(), []Item{{Queue: q, Payload: []byte("ok")}}))
	// A sync failure reported while a commit runs fails that commit, even
	// though badger returns nil: report it from inside the transaction.

	err := db.update(func(txn *badger.Txn) error {
		(&badgerLogger{log: db.log, db: db.DB}).Errorf("Error while curlf sync: %v", "EIO")
		return txn.Set(kvKey([]byte("x")), []byte("y"))
	})
	require.ErrorContains(t, err, "sync value log")
}

func TestCloseIdempotentAndAppendAfterClose(t *testing.T) {
	db, err := Open(DefaultConfig(t.TempDir()), nil, nil)
	require.NoError(t, err)
	q := mustQueue(t, db, "q")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- db.Run(ctx) }()
	require.NoError(t, db.Append(context.Background(), []Item{{Queue: q, Payload: []byte("x")}}))
	cancel()
	require.NoError(t, <-done)
	require.ErrorIs(t, db.Append(context.Background(), []Item{{Queue: q, Payload: []byte("y")}}), ErrClosed)
	require.Error(t, db.Run(context.Background()), "Run only once")
	require.NoError(t, db.Close())
	require.NoError(t, db.Close())
	_, err = q.Next(context.Background())
	require.ErrorIs(t, err, ErrClosed)
	_, err = db.Get([]byte("k"))
	require.ErrorIs(t, err, ErrClosed)

	// Close while Run runs stops Run.
	db2, err := Open(DefaultConfig(t.TempDir()), nil, nil)
	require.NoError(t, err)
	go func() { done <- db2.Run(context.Background()) }()
	require.NoError(t, db2.Close())
	if err := <-done; err != nil { // Close may win the race and Run never starts
		require.ErrorIs(t, err, ErrClosed)
	}
}

func TestOpenRejectsSecondRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	db, err := Open(DefaultConfig(t.TempDir()), nil, reg)
	require.NoError(t, err)
	defer db.Close()
	_, err = Open(DefaultConfig(t.TempDir()), nil, reg)
	require.ErrorContains(t, err, "register wal metrics")
}

func TestMetricsExposeQueueState(t *testing.T) {
	db := openRunning(t, DefaultConfig(t.TempDir()))
	q := mustQueue(t, db.DB, "otlp/x")
	require.NoError(t, db.Append(context.Background(), []Item{{Queue: q, Payload: []byte("abc"), Records: 3}}))
	n, err := testutil.GatherAndCount(db.reg, "obs_wal_entries", "obs_wal_bytes", "obs_wal_oldest_entry_age_seconds",
		"obs_wal_dead_entries", "obs_wal_disk_bytes", "obs_wal_commits_total", "obs_wal_commit_batches",
		"obs_wal_commit_seconds", "obs_wal_healthy", "obs_wal_refused_total", "otelcol_exporter_queue_size")
	require.NoError(t, err)
	require.Equal(t, 14, n) // obs_wal_disk_bytes has four kinds: lsm, vlog, segments, other
	mfs, err := db.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "obs_wal_entries" {
			require.InDelta(t, 1, mf.GetMetric()[0].GetGauge().GetValue(), 0)
		}
	}
	require.Positive(t, db.DiskBytes())
}

func TestAppendWaitsForRun(t *testing.T) {
	db, err := Open(DefaultConfig(t.TempDir()), nil, nil)
	require.NoError(t, err)
	defer db.Close()
	q := mustQueue(t, db, "q")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = db.Append(ctx, []Item{{Queue: q, Payload: []byte("x")}})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Zero(t, db.used.Load(), "reservation released")
	require.Zero(t, q.Stats().Entries)
}
