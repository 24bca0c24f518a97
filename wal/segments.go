package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	badger "github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"
)

// Payloads live outside badger, in append-only segment files written with
// write(2) and fdatasync; badger keeps a small value per entry that points
// into them (a loc). Badger would put a payload in its value log,
// which it writes through a shared mapping of a fresh, sparse file: every
// page written faults, and the kernel zeroes it first. In the raw-payload
// WAL benchmark those faults were 45% of the CPU, more than the copy and the
// sync together; they are why s2 used to pay for itself. write(2) copies
// into the page cache with no fault, and the pages do not count in the
// process' RSS. A segment file is deleted once no entry points into it, so
// disk space returns without badger's value-log GC rewriting anything.
//
// Ordering: the committer writes and syncs a group's payloads before badger
// commits the entries that point at them, so a durable entry always finds
// its payload. Bytes written but never committed (a crash in between, a
// failed commit) are unreferenced and go with their file.

const (
	segDirName = "payload"
	segSuffix  = ".seg"
)

// loc is where a stored payload lives: segment id, offset, length.
type loc struct {
	seg uint64
	off uint64
	n   uint32
}

const locLen = 8 + 8 + 4

func (l loc) append(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, l.seg)
	b = binary.BigEndian.AppendUint64(b, l.off)
	return binary.BigEndian.AppendUint32(b, l.n)
}

func decodeLoc(b []byte) (loc, error) {
	if len(b) != locLen {
		return loc{}, fmt.Errorf("decode payload location: %d bytes, want %d", len(b), locLen)
	}
	return loc{seg: binary.BigEndian.Uint64(b), off: binary.BigEndian.Uint64(b[8:]), n: binary.BigEndian.Uint32(b[16:])}, nil
}

// segments is the set of segment files of one DB. The committer is the
// only writer; readers and the collector take mu. Only the active segment
// holds a file descriptor: a backlog of a large max_bytes spans thousands
// of sealed segments, and a sealed one is read only when the in-memory tail
// missed (one open per entry read back).
type segments struct {
	dir      string
	rotateAt int64

	mu     sync.RWMutex
	ids    map[uint64]struct{} // every segment, the active one included
	active *os.File
	id     uint64 // of active
	size   int64  // bytes written to the active segment; committer only
	nextID uint64
}

// openSegments opens the segment directory, notes every existing file and
// starts a new active segment; old files are collected once no entry points
// into them.
func openSegments(dir string, rotateAt int64) (*segments, error) {
	s := &segments{dir: filepath.Join(dir, segDirName), rotateAt: rotateAt, ids: map[uint64]struct{}{}, nextID: 1}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("open wal segments: %w", err)
	}
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("open wal segments: %w", err)
	}
	for _, e := range ents {
		id, ok := segID(e.Name())
		if !ok {
			continue
		}
		s.ids[id] = struct{}{}
		s.nextID = max(s.nextID, id+1)
	}
	if err := s.rotate(); err != nil {
		return nil, err
	}
	return s, nil
}

func segName(id uint64) string { return fmt.Sprintf("%016x%s", id, segSuffix) }

func segID(name string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(hex) != 16 {
		return 0, false
	}
	id, err := strconv.ParseUint(hex, 16, 64)
	return id, err == nil
}

// rotate starts a new active segment. The directory is synced so the new
// file survives a crash along with the entries about to point into it.
func (s *segments) rotate() error {
	id := s.nextID
	f, err := os.OpenFile(filepath.Join(s.dir, segName(id)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("create wal segment: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		_ = f.Close()
		return fmt.Errorf("create wal segment: %w", err)
	}
	s.mu.Lock()
	old := s.active
	s.ids[id] = struct{}{}
	s.active, s.id = f, id
	s.nextID = id + 1
	s.mu.Unlock()
	s.size = 0
	if old != nil {
		// Sealed: fully written and synced; readers open it by name.
		_ = old.Close()
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// write appends the bodies to the active segment (rotating first when it
// is full) and syncs it; it returns each body's location. Committer only.
func (s *segments) write(bodies [][]byte) ([]loc, error) {
	if s.size >= s.rotateAt {
		if err := s.rotate(); err != nil {
			return nil, err
		}
	}
	f := s.active // only rotate, in this goroutine, replaces it
	locs := make([]loc, len(bodies))
	for i, b := range bodies {
		if len(b) > 1<<31 {
			return nil, fmt.Errorf("write wal segment: payload of %d bytes", len(b))
		}
		if _, err := f.WriteAt(b, s.size); err != nil {
			return nil, fmt.Errorf("write wal segment %s: %w", segName(s.id), err)
		}
		locs[i] = loc{seg: s.id, off: uint64(s.size), n: uint32(len(b))}
		s.size += int64(len(b))
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return nil, fmt.Errorf("sync wal segment %s: %w", segName(s.id), err)
	}
	return locs, nil
}

// read returns a copy of the stored body at l.
func (s *segments) read(l loc) ([]byte, error) {
	// Held while reading: remove waits, so the file cannot go meanwhile.
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.ids[l.seg]; !ok {
		return nil, fmt.Errorf("read wal segment %s: %w", segName(l.seg), fs.ErrNotExist)
	}
	f := s.active
	if f == nil {
		return nil, fmt.Errorf("read wal segment %s: %w", segName(l.seg), ErrClosed)
	}
	if l.seg != s.id {
		var err error
		if f, err = os.Open(filepath.Join(s.dir, segName(l.seg))); err != nil {
			return nil, fmt.Errorf("read wal segment: %w", err)
		}
		defer f.Close()
	}
	buf := make([]byte, l.n)
	if _, err := f.ReadAt(buf, int64(l.off)); err != nil {
		return nil, fmt.Errorf("read wal segment %s at %d: %w", segName(l.seg), l.off, err)
	}
	return buf, nil
}

// sealed lists the segments other than the active one, in id order.
func (s *segments) sealed() []uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]uint64, 0, len(s.ids))
	for id := range s.ids {
		if id != s.id {
			out = append(out, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// remove deletes sealed segments; the caller made sure no entry points
// into them.
func (s *segments) remove(ids []uint64) error {
	var errs []error
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if _, ok := s.ids[id]; !ok || id == s.id {
			continue
		}
		delete(s.ids, id)
		if err := os.Remove(filepath.Join(s.dir, segName(id))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *segments) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active != nil {
		_ = s.active.Close()
		s.active = nil
	}
}

// collectSegments deletes the sealed segments no entry or dead letter
// points into. An entry points only into the segment that was active when
// it was written, and the committer seals a segment only after every commit
// that wrote to it took writeMu: holding writeMu once after listing the
// sealed segments waits those commits out, so the scan sees their entries.
// It scans only when a delete was committed or a segment sealed since the
// last scan.
func (db *DB) collectSegments() error {
	dels := db.delsCommitted.Load()
	// Decide without the write lock, which would stall commits every GC
	// round for nothing; only the list a scan works from needs it.
	if n := len(db.segs.sealed()); n == 0 || (dels == db.segScan.dels && n == db.segScan.sealed) {
		return nil
	}
	db.writeMu.Lock()
	sealed := db.segs.sealed()
	db.writeMu.Unlock()
	used := map[uint64]bool{}
	err := db.bdb.View(func(txn *badger.Txn) error {
		for _, prefix := range []byte{prefixEntry, prefixDead} {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefix}})
			for it.Rewind(); it.Valid(); it.Next() {
				item := it.Item()
				if prefix == prefixEntry && item.ValueSize() != headerLen+locLen {
					continue // inline
				}
				// A value that cannot be read stops the collection: its
				// segment might be one of those about to go.
				err := item.Value(func(v []byte) error {
					if prefix == prefixDead {
						if _, _, dv, err := decodeDead(v); err == nil {
							v = dv
						}
					}
					if len(v) == headerLen+locLen && v[0]&extBit != 0 {
						if l, err := decodeLoc(v[headerLen:]); err == nil {
							used[l.seg] = true
						}
					}
					return nil
				})
				if err != nil {
					it.Close()
					return err
				}
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("scan wal entries for segments: %w", err)
	}
	free := sealed[:0]
	for _, id := range sealed {
		if !used[id] {
			free = append(free, id)
		}
	}
	db.segScan.dels, db.segScan.sealed = dels, len(sealed)-len(free)
	return db.segs.remove(free)
}

// inlineValue returns v with its body inline when it points into a segment
// (a dead letter must not keep a segment file); v itself when the body
// cannot be read, which then replays as corrupted.
func (db *DB) inlineValue(v []byte) []byte {
	h, err := decodeHeader(v)
	if err != nil || !h.ext {
		return v
	}
	l, err := decodeLoc(v[headerLen:])
	if err != nil {
		return v
	}
	body, err := db.segs.read(l)
	if err != nil {
		return v
	}
	out := make([]byte, 0, headerLen+len(body))
	out = appendHeader(out, h.codec, h.records, h.crc, h.appended.UnixNano())
	return append(out, body...)
}
