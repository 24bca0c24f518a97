package wal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Item is one payload appended to one queue.
type Item struct {
	Queue *Queue
	// Payload is kept by Append (without a copy) in the in-memory tail and
	// handed out by Next; the caller must not modify it after Append.
	// Several items may share one payload.
	Payload []byte
	Records int // records in the payload, for metrics and Entry.Records
}

// maxGroup caps how many appends one commit gathers.
const maxGroup = 64

// request is one Append (or dead-letter replay) waiting for the committer.
type request struct {
	items    []encItem
	kvs      []KV
	deadDels []uint64 // dead-letter seqs of items[0].q to delete (replay)
	reserved int64    // bytes added to db.used before submit
	est      estimate
	onCommit func() // runs in the committer after a successful commit
	err      chan error
}

type encItem struct {
	q *Queue
	// value is the stored value: set by the committer once body is in a
	// segment, or given (a replayed dead letter, stored inline).
	value   []byte
	codec   byte   // of body: codecRaw or codecS2
	body    []byte // what goes to the segment: the payload, or s2 of it in buf
	crc     uint32 // of body
	size    int64  // accounted size
	records int
	seq     uint64  // assigned by the committer
	buf     *[]byte // s2 buffer; back to db.bufs (via this pointer) once committed
	// payload (uncompressed, the caller's) and appended (unix ns) feed the
	// in-memory tail; payload is nil for replayed dead letters.
	payload  []byte
	appended int64
}

// recycle returns the s2 buffers of a finished request to the pool; the
// segment has the bodies by the time a commit completes.
func (db *DB) recycle(r *request) {
	for i := range r.items {
		if it := &r.items[i]; it.buf != nil {
			if cap(*it.buf) <= maxPooledBuf {
				*it.buf = (*it.buf)[:0]
				db.bufs.Put(it.buf)
			}
			it.buf, it.body = nil, nil
		}
	}
}

// maxPooledBuf keeps unusually large buffers out of the pool.
const maxPooledBuf = 8 << 20

// Append writes every item, and the extra key/values, in one transaction:
// all or none. It returns after the commit is durable (fsync). Concurrent
// appends are committed together by the committer that Run owns, so Append
// waits for Run. It fails with an error wrapping ErrFull when the cap would
// be exceeded, and with the health error once the DB is unhealthy.
func (db *DB) Append(ctx context.Context, items []Item, extra ...KV) error {
	if len(items) == 0 && len(extra) == 0 {
		return nil
	}
	if err := db.usable(); err != nil {
		return fmt.Errorf("append %d items to wal: %w", len(items), err)
	}
	db.preparing.Add(1)
	sent := false
	defer func() {
		if !sent {
			db.preparing.Add(-1)
		}
	}()
	now := time.Now()
	compress := db.compress()
	r := db.newRequest(len(items))
	for i, it := range items {
		if it.Queue == nil || it.Queue.db != db {
			db.putRequest(r)
			return fmt.Errorf("append to wal: item %d: queue not of this db", i)
		}
		if it.Records < 0 {
			db.putRequest(r)
			return fmt.Errorf("append to wal: item %d: negative records %d", i, it.Records)
		}
		ei := encItem{q: it.Queue, records: it.Records, payload: it.Payload, appended: now.UnixNano()}
		if j := samePayload(items[:i], it.Payload); j >= 0 {
			// Fan-out: one body, written once, for every queue.
			prev := &r.items[j]
			ei.codec, ei.body, ei.crc = prev.codec, prev.body, prev.crc
		} else {
			var bp *[]byte
			if compress {
				if bp, _ = db.bufs.Get().(*[]byte); bp == nil {
					bp = new([]byte)
				}
			}
			ei.codec, ei.body = storeBody(bp, it.Payload, compress)
			if ei.codec == codecS2 {
				ei.buf = bp
			} else if bp != nil {
				db.bufs.Put(bp)
			}
			ei.crc = crc32.Checksum(ei.body, castagnoli)
		}
		ei.size = int64(headerLen + len(ei.body))
		r.items = append(r.items, ei)
		r.reserved += ei.size
		r.est.add(seqKeyLen, headerLen+locLen)
		first := true
		for _, prev := range r.items[:len(r.items)-1] {
			if prev.q == it.Queue {
				first = false
				break
			}
		}
		if first {
			r.est.add(5, 8) // high-water mark
		}
	}
	for i, kv := range extra {
		if len(kv.Key) == 0 {
			db.putRequest(r)
			return fmt.Errorf("append to wal: extra kv %d: empty key", i)
		}
		r.kvs = append(r.kvs, KV{Key: kvKey(kv.Key), Value: kv.Value})
		r.est.add(len(kv.Key)+1, len(kv.Value))
	}
	if lim := db.txnLimit(); r.est.count >= lim.count || r.est.size >= lim.size {
		db.putRequest(r)
		return fmt.Errorf("append %d items to wal: %w", len(items), badger.ErrTxnTooBig)
	}
	if db.used.Add(r.reserved) > db.cfg.MaxBytes {
		db.used.Add(-r.reserved)
		for _, it := range r.items {
			db.metrics.refused.WithLabelValues(it.q.name, "full").Inc()
		}
		reserved := r.reserved
		db.putRequest(r)
		return fmt.Errorf("append %d items to wal (%d bytes, cap %d): %w", len(items), reserved, db.cfg.MaxBytes, ErrFull)
	}
	sent = true
	db.preparing.Add(-1)
	err := db.submit(ctx, r)
	db.putRequest(r) // the committer is done with r once submit returned
	return err
}

// samePayload returns the index of the first item whose payload is p
// (same array, same length), or -1.
func samePayload(items []Item, p []byte) int {
	for i, it := range items {
		if len(it.Payload) == len(p) && (len(p) == 0 || &it.Payload[0] == &p[0]) {
			return i
		}
	}
	return -1
}

// writeBodies writes the bodies of a commit's new entries to the active
// segment (a body shared by several items once) and syncs it, then sets
// each item's value to point at its body.
func (db *DB) writeBodies(part []*request) error {
	type ref struct {
		it   *encItem
		body int
	}
	var (
		bodies [][]byte
		refs   []ref
		index  map[*byte]int
	)
	for _, r := range part {
		for i := range r.items {
			it := &r.items[i]
			if it.value != nil {
				continue
			}
			b := -1
			if len(it.body) > 0 && index != nil {
				if j, ok := index[&it.body[0]]; ok && len(bodies[j]) == len(it.body) {
					b = j
				}
			}
			if b < 0 {
				b = len(bodies)
				bodies = append(bodies, it.body)
				if len(it.body) > 0 {
					if index == nil {
						index = map[*byte]int{}
					}
					index[&it.body[0]] = b
				}
			}
			refs = append(refs, ref{it, b})
		}
	}
	if len(bodies) == 0 {
		return nil
	}
	locs, err := db.segs.write(bodies)
	if err != nil {
		return err
	}
	for _, rf := range refs {
		rf.it.value = encodeExt(rf.it.codec, rf.it.records, rf.it.crc, rf.it.appended, locs[rf.body])
	}
	return nil
}

// compress says whether an Append now stores its payloads s2-compressed.
func (db *DB) compress() bool {
	switch db.cfg.Compression {
	case CompressS2:
		return true
	case CompressNone:
		return false
	}
	return db.used.Load() > db.cfg.compressAutoAbove()
}

// newRequest takes a request from the pool, or makes one.
func (db *DB) newRequest(items int) *request {
	r, _ := db.reqs.Get().(*request)
	if r == nil {
		r = &request{err: make(chan error, 1)}
	}
	if cap(r.items) < items {
		r.items = make([]encItem, 0, items)
	}
	return r
}

// putRequest returns an Append's request to the pool, its encode buffers
// to theirs, and drops its references to payloads.
func (db *DB) putRequest(r *request) {
	db.recycle(r)
	clear(r.items)
	clear(r.kvs)
	*r = request{items: r.items[:0], kvs: r.kvs[:0], err: r.err}
	db.reqs.Put(r)
}

// submit hands r to the committer and waits for the outcome. Once the
// committer took r, the outcome is awaited regardless of ctx: the commit is
// bounded by one fsync, and giving up early would hide whether it happened.
func (db *DB) submit(ctx context.Context, r *request) error {
	select {
	case db.reqCh <- r:
	case <-ctx.Done():
		db.used.Add(-r.reserved)
		return fmt.Errorf("append to wal: %w", ctx.Err())
	case <-db.stopped:
		db.used.Add(-r.reserved)
		return fmt.Errorf("append to wal: %w", ErrClosed)
	}
	return <-r.err
}

// txnLimit is 90% of what badger accepts in one transaction.
func (db *DB) txnLimit() estimate {
	return estimate{count: db.bdb.MaxBatchCount() * 9 / 10, size: db.bdb.MaxBatchSize() * 9 / 10}
}

func (e estimate) over(lim estimate) bool { return e.count >= lim.count || e.size >= lim.size }

// commitLoop is the single committer: it gathers every append waiting at
// the moment (they queue up while the previous commit syncs) and commits
// them, plus pending deletes, with one sync.
func (db *DB) commitLoop(ctx context.Context) {
	defer close(db.stopped)
	group := make([]*request, 0, maxGroup)
	expect := 0 // appends in the previous group
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()
	for {
		group = group[:0]
		select {
		case <-ctx.Done():
			db.commitGroup(nil)
			db.commitWG.Wait()
			return
		case r := <-db.reqCh:
			group = append(group, r)
			// Gather only once the previous commit is done: the writers it
			// releases are about to append again and join this group.
			db.commitWG.Wait()
			group = db.gather(group, expect, linger)
			expect = len(group)
		case <-db.delWake:
		}
		db.commitGroup(group)
	}
}

// maxLinger bounds how long the committer waits for appends that are
// being encoded (Append was called, the request is not sent yet).
const maxLinger = time.Millisecond

// gather adds the appends waiting now and, while other appends are still
// being encoded or fewer arrived than in the previous group, waits up to
// maxLinger for them: one sync then covers all concurrent writers instead
// of every other one.
func (db *DB) gather(group []*request, expect int, linger *time.Timer) []*request {
	linger.Reset(maxLinger)
	defer linger.Stop()
	for len(group) < maxGroup {
		select {
		case r := <-db.reqCh:
			group = append(group, r)
			continue
		default:
		}
		if db.preparing.Load() == 0 && len(group) >= expect {
			return group
		}
		select {
		case r := <-db.reqCh:
			group = append(group, r)
		case <-linger.C:
			return group
		}
	}
	return group
}

func (db *DB) addDelete(q *Queue, seq, gen uint64) {
	db.delMu.Lock()
	db.dels = append(db.dels, pendingDelete{q: q, seq: seq, gen: gen})
	db.delMu.Unlock()
	select {
	case db.delWake <- struct{}{}:
	default:
	}
}

func (db *DB) takeDeletes() []pendingDelete {
	db.delMu.Lock()
	defer db.delMu.Unlock()
	d := db.dels
	db.dels = nil
	return d
}

// deleted completes deletes badger has committed.
func (db *DB) deleted(dels []pendingDelete) {
	if len(dels) == 0 {
		return
	}
	db.delsCommitted.Add(uint64(len(dels)))
	gens := make([]uint64, 0, len(dels))
	for _, d := range dels {
		d.q.deleted(d.seq)
		gens = append(gens, d.gen)
	}
	if err := db.done.settled(gens); err != nil {
		db.log.Warn("wal done log", "err", err)
	}
}

// commitGroup splits the group into transactions badger accepts (never
// splitting one request) and commits them in order.
func (db *DB) commitGroup(group []*request) {
	dels := db.takeDeletes()
	lim := db.txnLimit()
	for len(group) > 0 || len(dels) > 0 {
		var est estimate
		n := 0
		for n < len(group) && (n == 0 || !est.plus(group[n].est).over(lim)) {
			est = est.plus(group[n].est)
			n++
		}
		part := group[:n]
		group = group[n:]
		m := 0
		for m < len(dels) {
			var d estimate
			d.add(seqKeyLen, 0)
			if est.plus(d).over(lim) {
				break
			}
			est = est.plus(d)
			m++
		}
		if n == 0 && m == 0 {
			m = 1 // cannot happen with sane limits; make progress anyway
		}
		db.commitPart(slices.Clone(part), dels[:m]) // group's array is reused while this commits
		dels = dels[m:]
	}
}

func (db *DB) commitPart(part []*request, dels []pendingDelete) {
	// The payloads are durable before any entry points at them.
	if err := db.writeBodies(part); err != nil {
		db.finish(part, dels, nil, 0, err, time.Now())
		return
	}
	txn := db.bdb.NewTransaction(true)
	saved := map[*Queue]uint64{}
	var err error
	set := func(k, v []byte) {
		if err == nil {
			err = txn.SetEntry(badger.NewEntry(k, v))
		}
	}
	del := func(k []byte) {
		if err == nil {
			err = txn.Delete(k)
		}
	}
	// One array for the entry keys of this transaction; badger copies keys
	// into its memtable and drops its references once the commit is done.
	n := len(dels)
	for _, r := range part {
		n += len(r.items) + len(r.deadDels)
	}
	keys := make([]byte, 0, n*seqKeyLen)
	key := func(prefix byte, qid uint32, seq uint64) []byte {
		keys = appendSeqKey(keys, prefix, qid, seq)
		return keys[len(keys)-seqKeyLen : len(keys) : len(keys)]
	}
	appends := 0
	for _, r := range part {
		if len(r.items) > 0 {
			appends++
		}
		for i := range r.items {
			it := &r.items[i]
			if _, ok := saved[it.q]; !ok {
				saved[it.q] = it.q.high
			}
			it.q.high++
			it.seq = it.q.high
			set(key(prefixEntry, it.q.id, it.seq), it.value)
		}
		for _, kv := range r.kvs {
			if kv.Value == nil {
				del(kv.Key)
			} else {
				set(kv.Key, kv.Value)
			}
		}
		for _, seq := range r.deadDels {
			del(key(prefixDead, r.items[0].q.id, seq))
		}
	}
	for q := range saved {
		set(highKey(q.id), binary.BigEndian.AppendUint64(nil, q.high))
	}
	for _, d := range dels {
		del(key(prefixEntry, d.q.id, d.seq))
	}
	if err != nil {
		txn.Discard()
		db.finish(part, dels, saved, 0, fmt.Errorf("build wal transaction: %w", err), time.Now())
		return
	}
	// Commit asynchronously so the next group is gathered while this one
	// syncs; badger's writer folds commits that queue up meanwhile into one
	// write and one sync. commitSem bounds how many are in flight.
	db.commitSem <- struct{}{}
	db.commitWG.Add(1)
	// Into the tail before badger can make the entries visible, so a Done
	// or DeadLetter always finds them there; served once mark is set.
	mark := &commitMark{}
	db.tailAdd(part, mark)
	db.writeMu.RLock()
	start := time.Now()
	before := db.syncErrs.Load()
	txn.CommitWith(func(err error) {
		// A sync failure reported while this commit was in flight fails it
		// (and every other commit in flight then): badger only logs those.
		if err == nil && db.syncErrs.Load() != before {
			err = errors.New("sync value log: failed (reported by badger)")
		}
		db.writeMu.RUnlock()
		if err == nil {
			mark.ok.Store(true) // before finish wakes the readers
		}
		db.finish(part, dels, saved, appends, err, start)
		<-db.commitSem
		db.commitWG.Done()
	})
}

// finish completes the requests of one commit.
func (db *DB) finish(part []*request, dels []pendingDelete, saved map[*Queue]uint64, appends int, err error, start time.Time) {
	m := db.metrics
	m.commitSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		err = fmt.Errorf("commit wal: %w", err)
		if !errors.Is(err, badger.ErrTxnTooBig) {
			db.setUnhealthy(err)
		}
		m.commitFailures.Inc()
		db.tailForget(part)
		for _, r := range part {
			db.used.Add(-r.reserved)
			db.recycle(r)
			r.err <- err
		}
		return
	}
	m.commits.Inc()
	if appends > 0 {
		m.commitBatches.Observe(float64(appends))
	}
	db.deleted(dels)
	for _, r := range part {
		for _, it := range r.items {
			size := it.size
			it.q.appended(it.seq, size)
			m.appendedRecords.WithLabelValues(it.q.name).Add(float64(it.records))
			m.appendedBytes.WithLabelValues(it.q.name).Add(float64(size))
		}
		if r.onCommit != nil {
			r.onCommit()
		}
		db.recycle(r)
		r.err <- nil
	}
	for q := range saved {
		q.signal()
	}
}
