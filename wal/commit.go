package wal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Item is one payload appended to one queue.
type Item struct {
	Queue   *Queue
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
	q       *Queue
	value   []byte
	records int
	seq     uint64 // assigned by the committer
}

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
	now := time.Now()
	r := &request{err: make(chan error, 1)}
	r.items = make([]encItem, 0, len(items))
	var seen map[*Queue]bool
	for i, it := range items {
		if it.Queue == nil || it.Queue.db != db {
			return fmt.Errorf("append to wal: item %d: queue not of this db", i)
		}
		if it.Records < 0 {
			return fmt.Errorf("append to wal: item %d: negative records %d", i, it.Records)
		}
		v := encodeEntry(it.Payload, it.Records, now)
		r.items = append(r.items, encItem{q: it.Queue, value: v, records: it.Records})
		r.reserved += accountedSize(len(v))
		r.est.add(seqKeyLen, len(v))
		if !seen[it.Queue] {
			if seen == nil {
				seen = map[*Queue]bool{}
			}
			seen[it.Queue] = true
			r.est.add(5, 8) // high-water mark
		}
	}
	for i, kv := range extra {
		if len(kv.Key) == 0 {
			return fmt.Errorf("append to wal: extra kv %d: empty key", i)
		}
		r.kvs = append(r.kvs, KV{Key: kvKey(kv.Key), Value: kv.Value})
		r.est.add(len(kv.Key)+1, len(kv.Value))
	}
	if lim := db.txnLimit(); r.est.count >= lim.count || r.est.size >= lim.size {
		return fmt.Errorf("append %d items to wal: %w", len(items), badger.ErrTxnTooBig)
	}
	if db.used.Add(r.reserved) > db.cfg.MaxBytes {
		db.used.Add(-r.reserved)
		for _, it := range r.items {
			db.metrics.refused.WithLabelValues(it.q.name, "full").Inc()
		}
		return fmt.Errorf("append %d items to wal (%d bytes, cap %d): %w", len(items), r.reserved, db.cfg.MaxBytes, ErrFull)
	}
	return db.submit(ctx, r)
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
	for {
		group = group[:0]
		select {
		case <-ctx.Done():
			db.commitGroup(nil)
			return
		case r := <-db.reqCh:
			group = append(group, r)
		gather:
			for len(group) < maxGroup {
				select {
				case r := <-db.reqCh:
					group = append(group, r)
				default:
					break gather
				}
			}
		case <-db.delWake:
		}
		db.commitGroup(group)
	}
}

func (db *DB) addDelete(q *Queue, seq uint64) {
	db.delMu.Lock()
	db.dels = append(db.dels, pendingDelete{q: q, seq: seq})
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
		db.commitPart(part, dels[:m])
		dels = dels[m:]
	}
}

func (db *DB) commitPart(part []*request, dels []pendingDelete) {
	txn := db.bdb.NewTransaction(true)
	defer txn.Discard()
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
	records, appends := 0, 0
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
			set(seqKey(prefixEntry, it.q.id, it.seq), it.value)
			records += it.records
		}
		for _, kv := range r.kvs {
			if kv.Value == nil {
				del(kv.Key)
			} else {
				set(kv.Key, kv.Value)
			}
		}
		for _, seq := range r.deadDels {
			del(seqKey(prefixDead, r.items[0].q.id, seq))
		}
	}
	for q := range saved {
		set(highKey(q.id), binary.BigEndian.AppendUint64(nil, q.high))
	}
	for _, d := range dels {
		del(seqKey(prefixEntry, d.q.id, d.seq))
	}
	start := time.Now()
	db.writeMu.RLock()
	before := db.syncErrs.Load()
	if err == nil {
		err = txn.Commit()
		if err == nil && db.syncErrs.Load() != before {
			err = errors.New("sync value log: failed (reported by badger)")
		}
	}
	db.writeMu.RUnlock()
	m := db.metrics
	m.commitSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		for q, h := range saved {
			q.high = h
		}
		err = fmt.Errorf("commit wal: %w", err)
		if !errors.Is(err, badger.ErrTxnTooBig) {
			db.setUnhealthy(err)
		}
		m.commitFailures.Inc()
		for _, r := range part {
			db.used.Add(-r.reserved)
			r.err <- err
		}
		return
	}
	m.commits.Inc()
	if appends > 0 {
		m.commitBatches.Observe(float64(appends))
	}
	for _, d := range dels {
		d.q.deleted(d.seq)
	}
	for _, r := range part {
		for _, it := range r.items {
			size := accountedSize(len(it.value))
			it.q.appended(size)
			m.appendedRecords.WithLabelValues(it.q.name).Add(float64(it.records))
			m.appendedBytes.WithLabelValues(it.q.name).Add(float64(size))
		}
		if r.onCommit != nil {
			r.onCommit()
		}
		r.err <- nil
	}
	for q := range saved {
		q.signal()
	}
}
