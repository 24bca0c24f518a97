package wal

import (
	"sync/atomic"
	"time"
)

// The in-memory tail keeps the uncompressed payload of recently appended
// entries, so Next hands out what was just appended without a badger read
// and an s2 decode. It holds references to the callers' Item.Payload (no
// copy), up to Config.MemoryBytes for the whole DB; beyond that the oldest
// entries are dropped from memory and read from badger when their turn
// comes. After a restart the tail is empty.
//
// An entry enters the tail in the committer before its transaction is
// handed to badger, so nothing (Done, DeadLetter) can see the entry before
// it is in the tail; it is served only once its commit succeeded.

// tailEntry is one entry held in memory. Guarded by DB.tailMu.
type tailEntry struct {
	payload  []byte
	records  int
	appended int64 // unix ns, as in the stored header
	stored   int64 // accounted size of the stored value
	commit   *commitMark
}

// commitMark is shared by the entries of one commit.
type commitMark struct{ ok atomic.Bool }

// tailRef is a FIFO slot: entries in the order they entered the tail.
// Slots whose entry has left the tail already are skipped lazily.
type tailRef struct {
	q   *Queue
	seq uint64
}

// tailAdd puts the items of the requests of one commit (with seqs
// assigned) into the tail and drops the oldest entries above the budget.
func (db *DB) tailAdd(part []*request, mark *commitMark) {
	limit := db.cfg.MemoryBytes
	if limit <= 0 {
		return
	}
	db.tailMu.Lock()
	defer db.tailMu.Unlock()
	for _, r := range part {
		for i := range r.items {
			it := &r.items[i]
			n := int64(len(it.payload))
			if it.payload == nil || n > limit {
				continue
			}
			if it.q.tail == nil {
				it.q.tail = map[uint64]tailEntry{}
			}
			it.q.tail[it.seq] = tailEntry{
				payload:  it.payload,
				records:  it.records,
				appended: it.appended,
				stored:   it.size,
				commit:   mark,
			}
			db.tailBytes += n
			db.tailLive++
			db.tailFIFO = append(db.tailFIFO, tailRef{q: it.q, seq: it.seq})
		}
	}
	for db.tailBytes > limit && db.tailHead < len(db.tailFIFO) {
		ref := db.tailFIFO[db.tailHead]
		db.tailFIFO[db.tailHead] = tailRef{}
		db.tailHead++
		if e, ok := ref.q.tail[ref.seq]; ok {
			delete(ref.q.tail, ref.seq)
			db.tailBytes -= int64(len(e.payload))
			db.tailLive--
			db.tailEvicted++
		}
	}
	db.tailTrim()
}

// tailForget removes the items of a failed commit from the tail.
func (db *DB) tailForget(part []*request) {
	if db.cfg.MemoryBytes <= 0 {
		return
	}
	db.tailMu.Lock()
	defer db.tailMu.Unlock()
	for _, r := range part {
		for i := range r.items {
			db.tailDropLocked(r.items[i].q, r.items[i].seq)
		}
	}
	db.tailTrim()
}

// tailDropLocked removes one entry; db.tailMu is held.
func (db *DB) tailDropLocked(q *Queue, seq uint64) {
	if e, ok := q.tail[seq]; ok {
		delete(q.tail, seq)
		db.tailBytes -= int64(len(e.payload))
		db.tailLive--
	}
}

// tailTrim skips FIFO slots whose entry left the tail (Done in order makes
// that the common case) and compacts the FIFO when dropped slots behind a
// long-lived entry dominate it. db.tailMu is held.
func (db *DB) tailTrim() {
	for db.tailHead < len(db.tailFIFO) {
		ref := db.tailFIFO[db.tailHead]
		if _, ok := ref.q.tail[ref.seq]; ok {
			break
		}
		db.tailFIFO[db.tailHead] = tailRef{}
		db.tailHead++
	}
	live := len(db.tailFIFO) - db.tailHead
	switch {
	case live == 0:
		db.tailFIFO, db.tailHead = db.tailFIFO[:0], 0
	case db.tailHead > 1024 && db.tailHead > live:
		n := copy(db.tailFIFO, db.tailFIFO[db.tailHead:])
		clear(db.tailFIFO[n:])
		db.tailFIFO, db.tailHead = db.tailFIFO[:n], 0
	case live > 4096 && live > 4*db.tailLive:
		kept := db.tailFIFO[:0]
		for _, ref := range db.tailFIFO[db.tailHead:] {
			if _, ok := ref.q.tail[ref.seq]; ok {
				kept = append(kept, ref)
			}
		}
		clear(db.tailFIFO[len(kept):])
		db.tailFIFO, db.tailHead = kept, 0
	}
}

// tailGet returns an entry of q from the tail if its commit succeeded.
func (q *Queue) tailGet(seq uint64) (Entry, int64, bool) {
	if q.db.cfg.MemoryBytes <= 0 {
		return Entry{}, 0, false
	}
	q.db.tailMu.Lock()
	e, ok := q.tail[seq]
	q.db.tailMu.Unlock()
	if !ok || !e.commit.ok.Load() {
		return Entry{}, 0, false
	}
	p := e.payload[:len(e.payload):len(e.payload)]
	return Entry{Seq: seq, Payload: p, Records: e.records, Appended: time.Unix(0, e.appended)}, e.stored, true
}

// tailDrop removes an entry of q from the tail (Done, dead-lettered).
func (q *Queue) tailDrop(seq uint64) {
	if q.db.cfg.MemoryBytes <= 0 {
		return
	}
	q.db.tailMu.Lock()
	q.db.tailDropLocked(q, seq)
	q.db.tailTrim()
	q.db.tailMu.Unlock()
}
