package wal

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Entry is one appended payload handed out by Next.
type Entry struct {
	Seq uint64
	// Payload is uncompressed and read-only: it may be the appender's
	// Item.Payload itself (served from the in-memory tail) and is shared
	// with every other hand-out of the entry.
	Payload  []byte
	Records  int
	Appended time.Time
}

// QueueStats is a snapshot of a queue. Entries and Bytes count entries not
// yet Done (including those handed out); Bytes are stored bytes (as written: raw or s2).
type QueueStats struct {
	Entries     int64
	Bytes       int64
	OldestAge   time.Duration // age of the oldest entry not Done; 0 if none
	DeadEntries int64
	DeadBytes   int64
}

// Queue is one exporter's queue. Next/Done/Release/DeadLetter are safe for
// concurrent use by several consumers.
type Queue struct {
	db   *DB
	name string
	id   uint32
	high uint64 // highest seq assigned; owned by the committer after Open

	mu        sync.Mutex
	cursor    uint64           // next seq to look for
	committed uint64           // highest seq whose commit finished (or found at Open)
	entries   int64            // present and not Done
	bytes     int64            // accounted bytes of those
	dead      int64            // dead letters
	deadBytes int64            // accounted bytes of those
	inflight  map[uint64]int64 // handed out, not Done: accounted size
	released  []uint64         // sorted; handed out again before new entries
	deleting  map[uint64]bool  // Done, delete not yet committed
	wake      chan struct{}    // closed and replaced when entries appear

	tail map[uint64]tailEntry // in-memory tail; guarded by db.tailMu

	replayMu sync.Mutex
}

func newQueue(db *DB, name string, id uint32) *Queue {
	return &Queue{
		db:       db,
		name:     name,
		id:       id,
		inflight: map[uint64]int64{},
		deleting: map[uint64]bool{},
		wake:     make(chan struct{}),
	}
}

// Name returns the queue's name.
func (q *Queue) Name() string { return q.name }

// signal wakes every waiting Next.
func (q *Queue) signal() {
	q.mu.Lock()
	close(q.wake)
	q.wake = make(chan struct{})
	q.mu.Unlock()
}

func (q *Queue) appended(seq uint64, size int64) {
	q.mu.Lock()
	q.entries++
	q.bytes += size
	q.committed = max(q.committed, seq)
	q.mu.Unlock()
}

func (q *Queue) deleted(seq uint64) {
	q.mu.Lock()
	delete(q.deleting, seq)
	q.mu.Unlock()
}

func (q *Queue) isDeleting(seq uint64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.deleting[seq]
}

// Next blocks until an entry is available and hands it out: released
// entries first (lowest seq first), then the first entry beyond the last
// one handed out. Corrupted entries are moved to the dead-letter area,
// counted and skipped.
func (q *Queue) Next(ctx context.Context) (Entry, error) {
	for {
		if err := q.db.closedErr(); err != nil {
			return Entry{}, fmt.Errorf("next from wal queue %q: %w", q.name, err)
		}
		q.mu.Lock()
		if len(q.released) > 0 {
			seq := q.released[0]
			q.released = q.released[1:]
			if _, still := q.inflight[seq]; still {
				if e, _, ok := q.tailGet(seq); ok {
					q.mu.Unlock()
					return e, nil
				}
			}
			q.mu.Unlock()
			e, ok, err := q.read(seq)
			if err != nil {
				return Entry{}, err
			}
			if ok {
				q.mu.Lock()
				_, still := q.inflight[seq]
				q.mu.Unlock()
				if still {
					return e, nil
				}
			}
			continue
		}
		wake, from := q.wake, q.cursor
		if !q.deleting[from] {
			if e, size, ok := q.tailGet(from); ok {
				q.cursor = from + 1
				q.inflight[from] = size
				q.mu.Unlock()
				return e, nil
			}
		}
		// Nothing committed beyond the cursor: wait without a lookup (the
		// committer raises committed, then wakes us).
		empty := from > q.committed
		q.mu.Unlock()
		if empty {
			select {
			case <-wake:
			case <-ctx.Done():
				return Entry{}, ctx.Err()
			case <-q.db.closing:
			}
			continue
		}

		e, size, ok, err := q.seek(from)
		if err != nil {
			return Entry{}, err
		}
		if ok {
			q.mu.Lock()
			if q.cursor == from && !q.deleting[e.Seq] {
				q.cursor = e.Seq + 1
				q.inflight[e.Seq] = size
				q.mu.Unlock()
				return e, nil
			}
			q.mu.Unlock()
			continue // another consumer moved the cursor or it was Done meanwhile
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return Entry{}, ctx.Err()
		case <-q.db.closing:
		}
	}
}

// read fetches a released entry again; ok is false if it vanished or was
// corrupted.
func (q *Queue) read(seq uint64) (Entry, bool, error) {
	var e Entry
	var ok bool
	var raw []byte
	var cause error
	q.db.reads.Add(1)
	err := q.db.bdb.View(func(txn *badger.Txn) error {
		item, err := txn.Get(seqKey(prefixEntry, q.id, seq))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		e, _, raw, cause = q.db.decodeItem(item, seq)
		ok = cause == nil
		return nil
	})
	if err != nil {
		return Entry{}, false, fmt.Errorf("read wal entry %s/%d: %w", q.name, seq, err)
	}
	if cause != nil {
		q.quarantine(seq, raw, cause)
	}
	return e, ok, nil
}

// decodeItem reads an entry: its payload (from its segment when it points
// into one), checked against its CRC, and its accounted size. raw is the
// stored value when it cannot be decoded, for the dead-letter area.
func (db *DB) decodeItem(item *badger.Item, seq uint64) (e Entry, size int64, raw []byte, err error) {
	var (
		h entryHeader
		l loc
	)
	err = item.Value(func(v []byte) error {
		var err error
		size = storedSize(v)
		if h, err = decodeHeader(v); err == nil {
			if h.ext {
				l, err = decodeLoc(v[headerLen:])
			} else {
				e.Payload, err = decodeBody(h, v[headerLen:], true)
			}
		}
		if err != nil {
			raw = append([]byte(nil), v...)
		}
		return err
	})
	if err == nil && h.ext {
		var body []byte
		if body, err = db.segs.read(l); err == nil {
			e.Payload, err = decodeBody(h, body, false)
		}
		if err != nil {
			// The value decoded, so it re-encodes to the same bytes.
			raw = encodeExt(h.codec, h.records, h.crc, h.appended.UnixNano(), l)
		}
	}
	if err != nil {
		return Entry{}, size, raw, err
	}
	e.Seq, e.Records, e.Appended = seq, h.records, h.appended
	return e, size, nil, nil
}

// itemSize is the accounted size of an entry item; it reads the value only
// when it may point into a segment.
func itemSize(item *badger.Item) int64 {
	n := item.ValueSize()
	if n != headerLen+locLen {
		return n
	}
	_ = item.Value(func(v []byte) error {
		n = storedSize(v)
		return nil
	})
	return n
}

// seek finds the first entry with seq >= from that is not being deleted.
func (q *Queue) seek(from uint64) (Entry, int64, bool, error) {
	type bad struct {
		seq   uint64
		raw   []byte
		cause error
	}
	var (
		e     Entry
		size  int64
		found bool
		bads  []bad
	)
	q.db.reads.Add(1)
	err := q.db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: queuePrefix(prefixEntry, q.id)})
		defer it.Close()
		for it.Seek(seqKey(prefixEntry, q.id, from)); it.Valid(); it.Next() {
			item := it.Item()
			seq := seqOf(item.Key())
			if q.isDeleting(seq) {
				continue
			}
			got, n, raw, cause := q.db.decodeItem(item, seq)
			if cause != nil {
				bads = append(bads, bad{seq, raw, cause})
				continue
			}
			e, size, found = got, n, true
			return nil
		}
		return nil
	})
	for _, b := range bads {
		q.quarantine(b.seq, b.raw, b.cause)
	}
	if err != nil {
		return Entry{}, 0, false, fmt.Errorf("seek wal queue %q from %d: %w", q.name, from, err)
	}
	return e, size, found, nil
}

// quarantine moves a corrupted entry to the dead-letter area (raw bytes
// kept for inspection), logs and counts it. Concurrent callers for the same
// entry count it once.
func (q *Queue) quarantine(seq uint64, raw []byte, cause error) {
	cerr := &CorruptionError{Queue: q.name, Seq: seq, Err: cause}
	q.mu.Lock()
	defer q.mu.Unlock()
	key := seqKey(prefixEntry, q.id, seq)
	dv := encodeDead(raw, "corrupted: "+cause.Error(), time.Now())
	var size int64
	gone := false
	err := q.db.update(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			gone = true
			return nil
		}
		if err != nil {
			return err
		}
		size = itemSize(item)
		if err := txn.Set(seqKey(prefixDead, q.id, seq), dv); err != nil {
			return err
		}
		return txn.Delete(key)
	})
	if gone {
		return
	}
	if err != nil {
		q.db.log.Error("move corrupted wal entry to dead letters", "queue", q.name, "seq", seq, "err", err, "cause", cerr)
		return
	}
	dsize := accountedSize(len(dv))
	q.tailDrop(seq)
	if s, ok := q.inflight[seq]; ok {
		size = s
		delete(q.inflight, seq)
	}
	q.entries--
	q.bytes -= size
	q.dead++
	q.deadBytes += dsize
	q.db.used.Add(dsize - size)
	q.db.metrics.corrupted.WithLabelValues(q.name).Inc()
	q.db.log.Error("corrupted wal entry moved to dead letters", "queue", q.name, "seq", seq, "err", cerr)
}

// Done marks an entry delivered: it is deleted (deletes of many Done calls
// are committed together) and never handed out again. Done of an unknown
// or already Done seq is a no-op.
func (q *Queue) Done(seq uint64) error {
	if err := q.db.closedErr(); err != nil {
		return fmt.Errorf("done wal entry %s/%d: %w", q.name, seq, err)
	}
	q.mu.Lock()
	size, ok := q.inflight[seq]
	if ok {
		delete(q.inflight, seq)
		q.unrelease(seq)
	} else {
		if seq < q.cursor || q.deleting[seq] {
			q.mu.Unlock()
			return nil
		}
		// Not handed out yet: look it up so it is skipped and accounted.
		var err error
		if _, s, inTail := q.tailGet(seq); inTail {
			size = s
		} else {
			q.db.reads.Add(1)
			err = q.db.bdb.View(func(txn *badger.Txn) error {
				item, err := txn.Get(seqKey(prefixEntry, q.id, seq))
				if err != nil {
					return err
				}
				size = itemSize(item)
				return nil
			})
		}
		if errors.Is(err, badger.ErrKeyNotFound) {
			q.mu.Unlock()
			return nil
		}
		if err != nil {
			q.mu.Unlock()
			return fmt.Errorf("done wal entry %s/%d: %w", q.name, seq, err)
		}
	}
	q.deleting[seq] = true
	q.entries--
	q.bytes -= size
	q.mu.Unlock()
	q.tailDrop(seq)
	q.db.used.Add(-size)
	gen, err := q.db.done.record(q.id, seq)
	if err != nil {
		// The delete below still happens; only its crash window reopens.
		q.db.log.Warn("wal done log unusable; done marks wait for badger's commit", "err", err)
	}
	q.db.addDelete(q, seq, gen)
	return nil
}

func (q *Queue) unrelease(seq uint64) {
	if i, ok := slices.BinarySearch(q.released, seq); ok {
		q.released = slices.Delete(q.released, i, i+1)
	}
}

// Release hands a handed-out entry out again on the next Next (lowest seq
// first), e.g. for a retry by another consumer.
func (q *Queue) Release(seq uint64) {
	q.mu.Lock()
	if _, ok := q.inflight[seq]; !ok {
		q.mu.Unlock()
		return
	}
	if i, found := slices.BinarySearch(q.released, seq); !found {
		q.released = slices.Insert(q.released, i, seq)
	}
	q.mu.Unlock()
	q.signal()
}

// DeadLetter moves a handed-out entry to the dead-letter area with the
// reason and the time. It is committed (synced) before DeadLetter returns.
func (q *Queue) DeadLetter(seq uint64, reason string) error {
	if err := q.db.closedErr(); err != nil {
		return fmt.Errorf("dead-letter wal entry %s/%d: %w", q.name, seq, err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	size, ok := q.inflight[seq]
	if !ok {
		return fmt.Errorf("dead-letter wal entry %s/%d: not handed out", q.name, seq)
	}
	key := seqKey(prefixEntry, q.id, seq)
	var dsize int64
	err := q.db.update(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		raw, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		// Inline: a dead letter may stay for long and must not keep a
		// segment file.
		dv := encodeDead(q.db.inlineValue(raw), reason, time.Now())
		dsize = accountedSize(len(dv))
		if err := txn.Set(seqKey(prefixDead, q.id, seq), dv); err != nil {
			return err
		}
		return txn.Delete(key)
	})
	if err != nil {
		return fmt.Errorf("dead-letter wal entry %s/%d: %w", q.name, seq, err)
	}
	delete(q.inflight, seq)
	q.unrelease(seq)
	q.tailDrop(seq)
	q.entries--
	q.bytes -= size
	q.dead++
	q.deadBytes += dsize
	q.db.used.Add(dsize - size)
	return nil
}

// Stats returns a snapshot of the queue.
func (q *Queue) Stats() QueueStats {
	q.mu.Lock()
	s := QueueStats{Entries: q.entries, Bytes: q.bytes, DeadEntries: q.dead, DeadBytes: q.deadBytes}
	q.mu.Unlock()
	if s.Entries > 0 && q.db.closedErr() == nil {
		if t, ok := q.oldest(); ok {
			s.OldestAge = max(time.Since(t), 0)
		}
	}
	return s
}

// oldest reads the append time of the first entry not being deleted.
func (q *Queue) oldest() (time.Time, bool) {
	var t time.Time
	var ok bool
	_ = q.db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: queuePrefix(prefixEntry, q.id)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if q.isDeleting(seqOf(item.Key())) {
				continue
			}
			err := item.Value(func(v []byte) error {
				h, err := decodeHeader(v)
				if err != nil {
					return err
				}
				t, ok = h.appended, true
				return nil
			})
			if err == nil {
				return nil
			}
		}
		return nil
	})
	return t, ok
}
