// Package wal is the durable queue in front of every exporter: one badger
// database per node, one queue per exporter, group-committed appends that
// return only after fsync, redelivery of everything not marked done after a
// restart, a dead-letter area, and checkpoints written in the same
// transaction as the entries they describe. Payloads live in segment files
// beside badger (segments.go); badger holds the entries that point at them.
//
// wal stores opaque bytes; it knows nothing of pdata or actors.
package wal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/obs-dev/obs/filepages"
)

// ErrFull is returned (wrapped) by Append when the queued bytes would exceed
// Config.MaxBytes. The caller keeps the data and pushes back upstream.
var ErrFull = errors.New("wal full")

// ErrClosed is returned after Close, or by Append once Run has returned.
var ErrClosed = errors.New("wal closed")

// CorruptionError describes a stored value that failed its CRC or could not
// be decoded. The entry is moved to the dead-letter area; it is never handed
// out.
type CorruptionError struct {
	Queue string
	Seq   uint64
	Err   error
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("read wal entry %s/%d: corrupted: %v", e.Queue, e.Seq, e.Err)
}

func (e *CorruptionError) Unwrap() error { return e.Err }

// Config of the WAL.
type Config struct {
	// Dir is the badger directory. Required.
	Dir string `yaml:"dir"`
	// MaxBytes caps the stored bytes (as written: raw or s2) of all queues plus dead
	// letters; Append fails with ErrFull above it. Default 1 GiB.
	MaxBytes int64 `yaml:"max_bytes"`
	// GCInterval is the value-log GC period. Default 500ms.
	GCInterval time.Duration `yaml:"gc_interval"`
	// MemoryBytes bounds the in-memory tail: uncompressed payloads of
	// recently appended entries, kept so Next serves them without reading
	// badger. Beyond it the oldest are dropped from memory (still read
	// from disk). 0 turns the tail off. Default 64 MiB.
	MemoryBytes int64 `yaml:"memory_bytes"`
	// ValueLogFileBytes is the size at which payload segments rotate and
	// the size of badger's value-log files (which hold only dead letters
	// and large checkpoints now). A segment is deleted once no entry
	// points into it, so smaller files give disk back sooner. 0: a
	// quarter of MaxBytes, 1 to 16 MiB.
	ValueLogFileBytes int64 `yaml:"value_log_file_bytes"`
	// ReclaimInterval is the shortest time between two memtable flushes
	// forced to let value-log GC collect files whose entries are done.
	// Each flush stalls writes briefly. 0: four GC intervals.
	ReclaimInterval time.Duration `yaml:"reclaim_interval"`
	// Compression of stored payloads: CompressAuto (default), CompressS2
	// or CompressNone.
	Compression Compression `yaml:"compression"`
	// ReleaseValueLog unmaps the value log's resident pages after every
	// GC round (filepages.ReleaseShared): the page cache keeps them, the
	// process' RSS stops counting what was written since.
	ReleaseValueLog bool `yaml:"release_value_log"`
	// TableBytes is the size of badger's tables. Every memtable flush
	// (forced at most every ReclaimInterval) keeps a builder of twice
	// this in a pool. 0: badger's 2 MiB.
	TableBytes int64 `yaml:"table_bytes"`
}

// Compression says when the WAL compresses a payload it stores.
type Compression string

const (
	// CompressAuto stores payloads raw while the queues are short and
	// compresses them (s2) once they hold more than compressAutoAbove,
	// so that max_bytes holds about 2.4x more records when data piles up.
	// An entry sent within milliseconds gains nothing from s2, which was
	// a fifth of a gateway's CPU; written with write(2) into segments,
	// raw bytes cost no page faults (bench/RESULTS.md).
	CompressAuto Compression = "auto"
	CompressS2   Compression = "s2"
	CompressNone Compression = "none"
)

// compressAutoAbove is the used-bytes level above which CompressAuto
// compresses: the in-memory tail's budget (entries beyond it are read back
// from disk), at least 16 MiB, at most a quarter of the cap.
func (c Config) compressAutoAbove() int64 {
	return min(max(c.MemoryBytes, 16<<20), c.MaxBytes/4)
}

// DefaultConfig returns the default configuration for a directory.
func DefaultConfig(dir string) Config {
	// GC (value log and segments) every 500ms; the value log holds only
	// dead letters and large checkpoints, whose written pages are
	// released after every round: bench/RESULTS.md.
	return Config{Dir: dir, MaxBytes: 1 << 30, GCInterval: 500 * time.Millisecond, MemoryBytes: 64 << 20, Compression: CompressAuto,
		ReleaseValueLog: true}
}

// Validate names the first offending key.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("validate wal config: dir is required")
	case c.MaxBytes <= 0:
		return fmt.Errorf("validate wal config: max_bytes must be positive, got %d", c.MaxBytes)
	case c.GCInterval <= 0:
		return fmt.Errorf("validate wal config: gc_interval must be positive, got %s", c.GCInterval)
	case c.MemoryBytes < 0:
		return fmt.Errorf("validate wal config: memory_bytes must not be negative, got %d", c.MemoryBytes)
	case c.ValueLogFileBytes != 0 && (c.ValueLogFileBytes < 1<<20 || c.ValueLogFileBytes >= 1<<30):
		return fmt.Errorf("validate wal config: value_log_file_bytes must be 0 or from 1 MiB to under 1 GiB, got %d", c.ValueLogFileBytes)
	case c.TableBytes != 0 && (c.TableBytes < 64<<10 || c.TableBytes > 64<<20):
		return fmt.Errorf("validate wal config: table_bytes must be 0 or from 64 KiB to 64 MiB, got %d", c.TableBytes)
	case c.ReclaimInterval < 0:
		return fmt.Errorf("validate wal config: reclaim_interval must not be negative, got %s", c.ReclaimInterval)
	case c.Compression != "" && c.Compression != CompressAuto && c.Compression != CompressS2 && c.Compression != CompressNone:
		return fmt.Errorf("validate wal config: compression must be auto, s2 or none, got %q", c.Compression)
	}
	return nil
}

// KV is an extra key/value written in the same transaction as the items of
// an Append, e.g. a file offset. A nil Value deletes the key. Keys live in
// their own key space, apart from queue entries.
type KV struct {
	Key   []byte
	Value []byte
}

// DB is one badger database holding every queue of a node.
type DB struct {
	cfg     Config
	log     *slog.Logger
	bdb     *badger.DB
	segs    *segments
	done    *doneLog
	metrics *metrics

	// used counts the accounted bytes of all entries and dead letters plus
	// the reservations of appends not yet committed.
	used atomic.Int64

	health   atomic.Pointer[error]
	syncErrs atomic.Uint64 // value-log sync failures reported through badger's logger

	mu     sync.Mutex
	queues map[string]*Queue
	byID   map[uint32]*Queue
	nextID uint32

	// writeMu is held shared by every write and exclusively while badger
	// blocks writes (flushMemtable).
	writeMu sync.RWMutex

	bufs      sync.Pool      // *[]byte encode buffers
	reqs      sync.Pool      // *request of Append
	preparing atomic.Int64   // appends being encoded, about to reach the committer
	commitSem chan struct{}  // commits in flight
	commitWG  sync.WaitGroup // callbacks of commits in flight

	reqCh   chan *request // unbuffered: a send succeeds only when the committer takes it
	delMu   sync.Mutex
	dels    []pendingDelete
	delWake chan struct{} // capacity 1

	// The in-memory tail (tail.go); tailMu guards it and every Queue.tail,
	// and is taken after Queue.mu when both are held.
	tailMu      sync.Mutex
	tailBytes   int64     // payload bytes held
	tailLive    int       // entries held
	tailFIFO    []tailRef // entries in the order they entered
	tailHead    int       // first FIFO slot in use
	tailEvicted uint64    // entries dropped for the budget

	// delsCommitted counts committed deletes; collectSegments scans again
	// only after it moved or a segment was sealed (segScan: gcLoop only).
	delsCommitted atomic.Uint64
	segScan       struct {
		dels   uint64
		sealed int
	}

	// reads counts entry reads from badger by Next and Done (test seam).
	reads atomic.Int64

	ran       atomic.Bool
	closing   chan struct{} // closed by Close
	stopped   chan struct{} // closed when the committer has exited (or Run never will)
	runDone   chan struct{} // closed when Run returned
	closeOnce sync.Once
	closeErr  error
}

type pendingDelete struct {
	q   *Queue
	seq uint64
	gen uint64 // done log generation that recorded it (0: none)
}

// Open opens (or creates) the database, loads every queue and recomputes
// byte accounting from the keys. Every queue's read cursor starts at its
// first present entry. reg may be nil. Open starts no goroutine of its own
// (badger starts its internal ones); call Run.
func Open(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	log = log.With("component", "wal")
	db := &DB{
		cfg:       cfg,
		log:       log,
		queues:    map[string]*Queue{},
		byID:      map[uint32]*Queue{},
		nextID:    1,
		reqCh:     make(chan *request),
		commitSem: make(chan struct{}, 4),
		delWake:   make(chan struct{}, 1),
		closing:   make(chan struct{}),
		stopped:   make(chan struct{}),
		runDone:   make(chan struct{}),
	}
	opts := badger.DefaultOptions(cfg.Dir).
		WithLogger(&badgerLogger{log: log, db: db}).
		WithSyncWrites(true).
		WithValueThreshold(valueThreshold).
		WithNumVersionsToKeep(1).
		WithMemTableSize(1 << 20).
		WithNumLevelZeroTables(1).
		WithNumLevelZeroTablesStall(4).
		WithValueLogFileSize(cfg.vlogFileSize()).
		WithMetricsEnabled(false).
		WithDetectConflicts(false).
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithNumCompactors(2)
	if cfg.TableBytes > 0 {
		opts = opts.WithBaseTableSize(cfg.TableBytes)
	}
	bdb, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open wal %q: %w", cfg.Dir, err)
	}
	db.bdb = bdb
	applied, gen, err := applyDoneLogs(bdb, cfg.Dir)
	if err != nil {
		_ = bdb.Close()
		return nil, fmt.Errorf("open wal %q: %w", cfg.Dir, err)
	}
	if applied > 0 {
		log.Info("wal deleted entries the done log had marked done before the last stop", "entries", applied)
	}
	if db.done, err = openDoneLog(cfg.Dir, gen); err != nil {
		_ = bdb.Close()
		return nil, fmt.Errorf("open wal %q: %w", cfg.Dir, err)
	}
	if err := db.load(); err != nil {
		_ = db.done.close(false)
		_ = bdb.Close()
		return nil, err
	}
	if db.segs, err = openSegments(cfg.Dir, cfg.vlogFileSize()); err != nil {
		_ = db.done.close(false)
		_ = bdb.Close()
		return nil, fmt.Errorf("open wal %q: %w", cfg.Dir, err)
	}
	m, err := newMetrics(db, reg)
	if err != nil {
		db.segs.close()
		_ = db.done.close(false)
		_ = bdb.Close()
		return nil, err
	}
	db.metrics = m
	for _, q := range db.queues {
		m.initQueue(q.name)
	}
	m.healthy.Set(1)
	return db, nil
}

// load reads queue names, high-water marks and recomputes entry and dead
// counts and bytes from the keys (values are not read).
func (db *DB) load() error {
	return db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixName}})
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			v, err := item.ValueCopy(nil)
			if err != nil || len(v) != 4 {
				it.Close()
				return fmt.Errorf("load wal queue %q: bad id (%d bytes): %v", item.Key()[1:], len(v), err)
			}
			id := binary.BigEndian.Uint32(v)
			q := newQueue(db, string(item.KeyCopy(nil)[1:]), id)
			db.queues[q.name] = q
			db.byID[id] = q
			db.nextID = max(db.nextID, id+1)
		}
		it.Close()
		for _, q := range db.queues {
			if item, err := txn.Get(highKey(q.id)); err == nil {
				if err := item.Value(func(v []byte) error {
					if len(v) == 8 {
						q.high = binary.BigEndian.Uint64(v)
					}
					return nil
				}); err != nil {
					return fmt.Errorf("load wal queue %q: %w", q.name, err)
				}
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return fmt.Errorf("load wal queue %q: %w", q.name, err)
			}
			first := true
			scan := func(prefix byte, count *int64, bytes *int64) uint64 {
				var last uint64
				it := txn.NewIterator(badger.IteratorOptions{Prefix: queuePrefix(prefix, q.id)})
				defer it.Close()
				for it.Rewind(); it.Valid(); it.Next() {
					item := it.Item()
					seq := seqOf(item.Key())
					if prefix == prefixEntry && first {
						q.cursor, first = seq, false
					}
					*count++
					if prefix == prefixEntry {
						*bytes += itemSize(item)
					} else {
						*bytes += item.ValueSize()
					}
					last = seq
				}
				return last
			}
			lastEntry := scan(prefixEntry, &q.entries, &q.bytes)
			lastDead := scan(prefixDead, &q.dead, &q.deadBytes)
			q.high = max(q.high, lastEntry, lastDead)
			q.committed = q.high
			if first {
				q.cursor = q.high + 1
			}
			db.used.Add(q.bytes + q.deadBytes)
		}
		return nil
	})
}

// Queue returns the queue of that name, creating it (with a new persisted
// id) if needed.
func (db *DB) Queue(name string) (*Queue, error) {
	if name == "" {
		return nil, errors.New("open wal queue: empty name")
	}
	if err := db.usable(); err != nil {
		return nil, fmt.Errorf("open wal queue %q: %w", name, err)
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if q, ok := db.queues[name]; ok {
		return q, nil
	}
	id := db.nextID
	v := binary.BigEndian.AppendUint32(nil, id)
	if err := db.update(func(txn *badger.Txn) error { return txn.Set(nameKey(name), v) }); err != nil {
		return nil, fmt.Errorf("open wal queue %q: %w", name, err)
	}
	db.nextID++
	q := newQueue(db, name, id)
	q.cursor = 1
	db.queues[name] = q
	db.byID[id] = q
	db.metrics.initQueue(name)
	return q, nil
}

// Queues returns every known queue, sorted by name.
func (db *DB) Queues() []*Queue {
	db.mu.Lock()
	defer db.mu.Unlock()
	out := make([]*Queue, 0, len(db.queues))
	for _, q := range db.queues {
		out = append(out, q)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func (db *DB) queue(name string) (*Queue, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	q, ok := db.queues[name]
	if !ok {
		return nil, fmt.Errorf("find wal queue %q: no such queue", name)
	}
	return q, nil
}

// Get reads a key written through Append's extra KVs; (nil, nil) if absent.
func (db *DB) Get(key []byte) ([]byte, error) {
	if err := db.closedErr(); err != nil {
		return nil, err
	}
	var out []byte
	err := db.bdb.View(func(txn *badger.Txn) error {
		item, err := txn.Get(kvKey(key))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get wal key %q: %w", key, err)
	}
	return out, nil
}

// Healthy returns nil, or the first commit/sync failure. Once unhealthy,
// every Append fails; reading and Done keep working.
func (db *DB) Healthy() error {
	if p := db.health.Load(); p != nil {
		return *p
	}
	return nil
}

func (db *DB) setUnhealthy(err error) {
	if db.health.CompareAndSwap(nil, &err) {
		db.log.Error("wal unhealthy: appends refused from now on", "err", err)
		if db.metrics != nil {
			db.metrics.healthy.Set(0)
		}
	}
}

func (db *DB) closedErr() error {
	select {
	case <-db.closing:
		return ErrClosed
	default:
		return nil
	}
}

func (db *DB) usable() error {
	if err := db.closedErr(); err != nil {
		return err
	}
	return db.Healthy()
}

// update runs a synced badger update and fails it if badger reported a
// value-log sync failure meanwhile (badger only logs those).
func (db *DB) update(fn func(txn *badger.Txn) error) error {
	db.writeMu.RLock()
	defer db.writeMu.RUnlock()
	before := db.syncErrs.Load()
	err := db.bdb.Update(fn)
	if err == nil && db.syncErrs.Load() != before {
		err = errors.New("sync value log: failed (reported by badger)")
	}
	if err != nil {
		db.setUnhealthy(fmt.Errorf("commit wal: %w", err))
	}
	return err
}

// Run owns the background work: the group committer and the value-log GC
// loop. It returns when ctx is done (or Close is called) and both exited.
// Appends wait for Run; Run may be called once.
func (db *DB) Run(ctx context.Context) error {
	if !db.ran.CompareAndSwap(false, true) {
		if db.closedErr() != nil {
			return fmt.Errorf("run wal: %w", ErrClosed)
		}
		return errors.New("run wal: already running or ran")
	}
	defer close(db.runDone)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		select {
		case <-db.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	go func() {
		defer wg.Done()
		db.gcLoop(ctx)
	}()
	db.commitLoop(ctx) // closes db.stopped
	cancel()
	wg.Wait()
	return nil
}

// vlogFileSize is ValueLogFileBytes, or else sized from the cap: GC
// rewrites whole files and never the active one, so a cap smaller than one
// file would never give disk back. A quarter of the cap, 1 to 16 MiB:
// every page written stays resident until its file is collected.
func (c Config) vlogFileSize() int64 {
	if c.ValueLogFileBytes > 0 {
		return c.ValueLogFileBytes
	}
	return min(max(c.MaxBytes/4, 1<<20), 16<<20)
}

// reclaimSlack is how much more value-log disk than live bytes is tolerated
// before the GC loop forces a memtable flush: one and a half value-log
// files, since the active file can never be collected.
func (c Config) reclaimSlack() int64 { return c.vlogFileSize() * 3 / 2 }

// reclaimInterval is ReclaimInterval, by default four GC intervals.
func (c Config) reclaimInterval() time.Duration {
	if c.ReclaimInterval > 0 {
		return c.ReclaimInterval
	}
	return 4 * c.GCInterval
}

func (db *DB) gcLoop(ctx context.Context) {
	t := time.NewTimer(db.cfg.GCInterval)
	defer t.Stop()
	var lastFlush time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if db.cfg.ReleaseValueLog {
			if err := db.releaseValueLog(); err != nil {
				db.log.Warn("wal release value-log pages", "err", err)
			}
		}
		if err := db.collectSegments(); err != nil {
			db.log.Warn("wal collect segments", "err", err)
		}
		if db.runGC(ctx, 64) == 0 && time.Since(lastFlush) >= db.cfg.reclaimInterval() {
			// Value-log GC only sees deletes once their keys left the
			// memtable and were compacted. When little is written, the
			// memtable never fills: flush it when the value log holds far
			// more than the queues do.
			if u := diskUsage(db.cfg.Dir); u.vlog > db.used.Load()+db.cfg.reclaimSlack() {
				lastFlush = time.Now()
				if err := db.flushMemtable(); err != nil {
					db.log.Warn("wal flush memtable for gc", "err", err)
				} else {
					db.runGC(ctx, 64)
				}
			}
		}
		t.Reset(db.cfg.GCInterval)
	}
}

// releaseValueLog unmaps the resident pages of the value-log files while
// none of their mappings can go away: were one unmapped or moved meanwhile,
// another mapping (Go's heap) could take its addresses and the advice would
// discard that memory. Badger remaps a file when the writer rotates it and
// unmaps it when GC deletes it; writes wait on writeMu, GC runs in this
// goroutine, and a deletion GC deferred until the last iterator closes
// waits for the iterator held here.
func (db *DB) releaseValueLog() error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	txn := db.bdb.NewTransaction(false)
	defer txn.Discard()
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixScratch}})
	defer it.Close()
	_, err := filepages.ReleaseShared(db.cfg.Dir, ".vlog")
	return err
}

// flushMemtable makes badger flush its memtable and compact level 0, the
// only public way being DropPrefix of a key that exists. Writes are blocked
// meanwhile, so commits wait on writeMu instead of failing.
func (db *DB) flushMemtable() error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if err := db.bdb.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte{prefixScratch}, []byte{1})
	}); err != nil {
		return fmt.Errorf("flush wal memtable: %w", err)
	}
	if err := db.bdb.DropPrefix([]byte{prefixScratch}); err != nil {
		return fmt.Errorf("flush wal memtable: %w", err)
	}
	return nil
}

// runGC rewrites value-log files until badger has nothing to rewrite,
// at most rounds times. It returns the number of rewrites.
func (db *DB) runGC(ctx context.Context, rounds int) int {
	n := 0
	for ; n < rounds && ctx.Err() == nil; n++ {
		// Writes wait while one file is rewritten: badger's GC reads the
		// memtable's max version without the writer's synchronisation
		// (a data race inside badger v4.9.6). Mostly-deleted queue files
		// rewrite little, so the pause is short.
		db.writeMu.Lock()
		err := db.bdb.RunValueLogGC(0.5)
		db.writeMu.Unlock()
		if err != nil {
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				db.log.Warn("wal value-log gc", "err", err)
			}
			break
		}
	}
	if n > 0 {
		db.log.Debug("wal value-log gc rewrote files", "files", n)
	}
	return n
}

// Close flushes pending deletes and closes badger. If Run is running it is
// stopped first. Idempotent.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		close(db.closing)
		if db.ran.CompareAndSwap(false, true) {
			// Run never started and now never will.
			close(db.stopped)
			close(db.runDone)
		}
		<-db.runDone
		if err := db.flushDeletes(); err != nil {
			db.log.Warn("wal flush deletes on close", "err", err)
		}
		err := db.bdb.Close()
		if err != nil {
			db.closeErr = fmt.Errorf("close wal %q: %w", db.cfg.Dir, err)
		}
		if derr := db.done.close(err == nil); derr != nil {
			db.log.Warn("wal close done log", "err", derr)
		}
		db.segs.close()
	})
	return db.closeErr
}

// flushDeletes commits the pending deletes on their own (used when the
// committer is gone).
func (db *DB) flushDeletes() error {
	dels := db.takeDeletes()
	if len(dels) == 0 {
		return nil
	}
	db.writeMu.RLock()
	defer db.writeMu.RUnlock()
	wb := db.bdb.NewWriteBatch()
	for _, d := range dels {
		if err := wb.Delete(seqKey(prefixEntry, d.q.id, d.seq)); err != nil {
			wb.Cancel()
			return err
		}
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	db.deleted(dels)
	return nil
}

// badgerLogger adapts badger's logger to slog (warnings and errors only)
// and notices value-log sync failures, which badger logs instead of
// failing the commit.
type badgerLogger struct {
	log *slog.Logger
	db  *DB
}

func (l *badgerLogger) Errorf(f string, a ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(f, a...))
	if strings.Contains(strings.ToLower(msg), "sync") {
		l.db.syncErrs.Add(1)
		l.db.setUnhealthy(fmt.Errorf("sync wal: %s", msg))
	}
	l.log.Error("badger: "+msg, "source", "badger")
}

func (l *badgerLogger) Warningf(f string, a ...any) {
	l.log.Warn("badger: "+strings.TrimSpace(fmt.Sprintf(f, a...)), "source", "badger")
}

func (l *badgerLogger) Infof(string, ...any)  {}
func (l *badgerLogger) Debugf(string, ...any) {}
