package wal

import (
	"context"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// DeadEntry describes one entry in a queue's dead-letter area.
type DeadEntry struct {
	Seq     uint64
	Reason  string
	Time    time.Time // when it was dead-lettered
	Records int
	Bytes   int64 // stored bytes (as written: raw or s2) of the entry
}

type deadRecord struct {
	DeadEntry
	value []byte // original stored entry value
}

// DeadLetters lists a queue's dead letters in seq order.
func (db *DB) DeadLetters(queue string) ([]DeadEntry, error) {
	q, err := db.queue(queue)
	if err != nil {
		return nil, err
	}
	recs, err := q.readDead(nil, false)
	if err != nil {
		return nil, err
	}
	out := make([]DeadEntry, len(recs))
	for i, r := range recs {
		out[i] = r.DeadEntry
	}
	return out, nil
}

// readDead reads the given dead letters (all when seqs is empty).
func (q *Queue) readDead(seqs []uint64, withValue bool) ([]deadRecord, error) {
	if err := q.db.closedErr(); err != nil {
		return nil, fmt.Errorf("read wal dead letters of %q: %w", q.name, err)
	}
	var out []deadRecord
	decode := func(item *badger.Item) error {
		return item.Value(func(v []byte) error {
			reason, at, value, err := decodeDead(v)
			if err != nil {
				reason = "undecodable dead letter: " + err.Error()
			}
			r := deadRecord{DeadEntry: DeadEntry{Seq: seqOf(item.Key()), Reason: reason, Time: at, Bytes: int64(len(value))}}
			if h, err := decodeHeader(value); err == nil {
				r.Records = h.records
			}
			if withValue {
				r.value = append([]byte(nil), value...)
			}
			out = append(out, r)
			return nil
		})
	}
	err := q.db.bdb.View(func(txn *badger.Txn) error {
		if len(seqs) > 0 {
			for _, seq := range seqs {
				item, err := txn.Get(seqKey(prefixDead, q.id, seq))
				if errors.Is(err, badger.ErrKeyNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if err := decode(item); err != nil {
					return err
				}
			}
			return nil
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: queuePrefix(prefixDead, q.id)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := decode(it.Item()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read wal dead letters of %q: %w", q.name, err)
	}
	return out, nil
}

// ReplayDead re-enqueues dead letters of a queue (all when no seq is given)
// at the end of the queue, with new seqs, and removes them from the
// dead-letter area in the same transaction. Unknown seqs are skipped. It
// returns how many were re-enqueued. Like Append, it needs Run.
func (db *DB) ReplayDead(queue string, seqs ...uint64) (int, error) {
	q, err := db.queue(queue)
	if err != nil {
		return 0, err
	}
	if err := db.usable(); err != nil {
		return 0, fmt.Errorf("replay wal dead letters of %q: %w", queue, err)
	}
	q.replayMu.Lock()
	defer q.replayMu.Unlock()
	recs, err := q.readDead(seqs, true)
	if err != nil {
		return 0, err
	}
	lim := db.txnLimit()
	done := 0
	for len(recs) > 0 {
		r := &request{err: make(chan error, 1)}
		r.est.add(5, 8)
		var deadBytes int64
		for len(recs) > 0 {
			var e estimate
			e.add(seqKeyLen, len(recs[0].value))
			e.add(seqKeyLen, 0)
			if len(r.items) > 0 && r.est.plus(e).over(lim) {
				break
			}
			rec := recs[0]
			recs = recs[1:]
			r.est = r.est.plus(e)
			size := storedSize(rec.value)
			r.items = append(r.items, encItem{q: q, value: rec.value, records: rec.Records, size: size})
			r.deadDels = append(r.deadDels, rec.Seq)
			r.reserved += size
			deadBytes += accountedSize(len(encodeDead(nil, rec.Reason, rec.Time)) + len(rec.value))
		}
		n := len(r.items)
		r.onCommit = func() {
			q.mu.Lock()
			q.dead -= int64(n)
			q.deadBytes -= deadBytes
			q.mu.Unlock()
			db.used.Add(-deadBytes)
		}
		db.used.Add(r.reserved)
		if err := db.submit(context.Background(), r); err != nil {
			return done, fmt.Errorf("replay wal dead letters of %q: %w", queue, err)
		}
		done += n
	}
	return done, nil
}
