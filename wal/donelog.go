package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	badger "github.com/dgraph-io/badger/v4"
)

// The done log makes a Done survive a crash of the process the moment Done
// returns. A delete in badger waits for the committer and then behind
// every commit in flight, each with its fsync: milliseconds on a busy
// disk, and an exporter killed in that gap sends the batch again after the
// restart although the backend had confirmed it. Done therefore first
// appends (queue id, seq) to a plain file with one write(2): the page
// cache keeps it when the process dies. It is not synced; after a power
// loss the badger delete may be missing and the entry is sent again, as
// before (at least once).
//
// Open deletes, in one synced batch, every entry a done log names and then
// removes the logs. While running, writes go to one file; past
// doneLogRotateBytes the next file is started, and a file is removed once
// badger has committed every delete it recorded.

const (
	doneLogPrefix      = "obs-done-"
	doneLogSuffix      = ".log"
	doneRecordLen      = 16 // queue id u32, seq u64, crc32 of both u32
	doneLogRotateBytes = 1 << 20
)

type doneLog struct {
	dir string

	mu      sync.Mutex
	f       *os.File // nil once broken or closed: Done falls back to badger alone
	gen     uint64   // generation of f
	size    int64
	pending map[uint64]int // generation -> deletes recorded, not yet committed
	rec     [doneRecordLen]byte
}

func doneLogName(gen uint64) string {
	return fmt.Sprintf("%s%08d%s", doneLogPrefix, gen, doneLogSuffix)
}

// doneLogs lists the done logs in dir by generation.
func doneLogs(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var gens []uint64
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, doneLogPrefix) || !strings.HasSuffix(n, doneLogSuffix) {
			continue
		}
		var g uint64
		if _, err := fmt.Sscanf(strings.TrimSuffix(strings.TrimPrefix(n, doneLogPrefix), doneLogSuffix), "%d", &g); err == nil {
			gens = append(gens, g)
		}
	}
	slices.Sort(gens)
	return gens, nil
}

// readDoneLog returns the entry keys a done log records. A record cut short
// or with a bad CRC (a write torn by a crash) ends the file.
func readDoneLog(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var keys [][]byte
	for ; len(b) >= doneRecordLen; b = b[doneRecordLen:] {
		if crc32.ChecksumIEEE(b[:12]) != binary.BigEndian.Uint32(b[12:16]) {
			break
		}
		keys = append(keys, seqKey(prefixEntry, binary.BigEndian.Uint32(b[:4]), binary.BigEndian.Uint64(b[4:12])))
	}
	return keys, nil
}

// applyDoneLogs deletes, in one synced batch, the entries the done logs in
// dir name that are still present, removes the logs and returns how many
// entries it deleted and the generation the next log takes.
func applyDoneLogs(bdb *badger.DB, dir string) (int, uint64, error) {
	gens, err := doneLogs(dir)
	if err != nil || len(gens) == 0 {
		return 0, 1, err
	}
	var present [][]byte
	err = bdb.View(func(txn *badger.Txn) error {
		for _, g := range gens {
			keys, err := readDoneLog(filepath.Join(dir, doneLogName(g)))
			if err != nil {
				return err
			}
			for _, k := range keys {
				if _, err := txn.Get(k); err == nil {
					present = append(present, k)
				} else if !errors.Is(err, badger.ErrKeyNotFound) {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("read wal done log: %w", err)
	}
	if len(present) > 0 {
		wb := bdb.NewWriteBatch()
		for _, k := range present {
			if err := wb.Delete(k); err != nil {
				wb.Cancel()
				return 0, 0, fmt.Errorf("apply wal done log: %w", err)
			}
		}
		if err := wb.Flush(); err != nil { // synced: SyncWrites is on
			return 0, 0, fmt.Errorf("apply wal done log: %w", err)
		}
	}
	for _, g := range gens {
		if err := os.Remove(filepath.Join(dir, doneLogName(g))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return 0, 0, fmt.Errorf("remove applied wal done log: %w", err)
		}
	}
	return len(present), gens[len(gens)-1] + 1, nil
}

func openDoneLog(dir string, gen uint64) (*doneLog, error) {
	d := &doneLog{dir: dir, gen: gen, pending: map[uint64]int{}}
	f, err := os.OpenFile(filepath.Join(dir, doneLogName(gen)), os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open wal done log: %w", err)
	}
	d.f = f
	return d, nil
}

// record appends one done mark and returns the generation its delete
// settles (0 when the log is unusable: nothing to settle).
func (d *doneLog) record(qid uint32, seq uint64) (uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return 0, nil
	}
	if d.size >= doneLogRotateBytes {
		if err := d.rotate(); err != nil {
			d.broken()
			return 0, err
		}
	}
	binary.BigEndian.PutUint32(d.rec[:4], qid)
	binary.BigEndian.PutUint64(d.rec[4:12], seq)
	binary.BigEndian.PutUint32(d.rec[12:16], crc32.ChecksumIEEE(d.rec[:12]))
	n, err := d.f.Write(d.rec[:])
	d.size += int64(n)
	if err != nil {
		d.broken()
		return 0, fmt.Errorf("write wal done log: %w", err)
	}
	d.pending[d.gen]++
	return d.gen, nil
}

// rotate starts the next file; the current one is removed once its
// deletes are committed (at once if they are). d.mu is held.
func (d *doneLog) rotate() error {
	f, err := os.OpenFile(filepath.Join(d.dir, doneLogName(d.gen+1)), os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("rotate wal done log: %w", err)
	}
	old := d.gen
	_ = d.f.Close()
	d.f, d.gen, d.size = f, old+1, 0
	if d.pending[old] == 0 {
		delete(d.pending, old)
		return d.remove(old)
	}
	return nil
}

func (d *doneLog) remove(gen uint64) error {
	if err := os.Remove(filepath.Join(d.dir, doneLogName(gen))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove wal done log: %w", err)
	}
	return nil
}

// broken stops recording: Done then relies on badger alone. The files
// stay and are applied at the next Open. d.mu is held.
func (d *doneLog) broken() {
	if d.f != nil {
		_ = d.f.Close()
		d.f = nil
	}
}

// settled notes that badger committed the deletes of these generations
// and removes the files that no longer hold an uncommitted one.
func (d *doneLog) settled(gens []uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for _, g := range gens {
		if g == 0 {
			continue
		}
		d.pending[g]--
		if d.pending[g] <= 0 && g != d.gen {
			delete(d.pending, g)
			errs = append(errs, d.remove(g))
		}
	}
	return errors.Join(errs...)
}

// close closes the current file and, when badger closed cleanly with
// every recorded delete committed, removes every done log.
func (d *doneLog) close(closedClean bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.broken()
	for _, n := range d.pending {
		if n > 0 {
			closedClean = false
		}
	}
	if !closedClean {
		return nil
	}
	gens, err := doneLogs(d.dir)
	if err != nil {
		return fmt.Errorf("remove wal done logs: %w", err)
	}
	var errs []error
	for _, g := range gens {
		errs = append(errs, d.remove(g))
	}
	return errors.Join(errs...)
}
