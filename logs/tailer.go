package logs

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/obs-dev/obs/actors"
)

// tracked is one file the receiver knows, identified by its fingerprint.
type tracked struct {
	key    string // stable id in checkpoint keys
	fp     []byte // the file's first bytes (up to fingerprint_size)
	offset int64  // committed: where reading resumes after a restart
	read   int64  // next byte to read now (past what is in the batch)

	path, name                 string
	resolvedPath, resolvedName string
	metaPath                   string // path the file was first found at
	res                        pcommon.Map

	f         *os.File
	fi        os.FileInfo // of the open (or last open) handle
	size      int64       // largest size seen
	statSize  int64       // size at this poll's stat (-1 unknown)
	seen      uint64      // poll generation it was last found by the globs
	missing   int         // polls it went unseen
	truncated bool        // truncated in place: only a copy may continue it
	finishing bool        // about to be forgotten: flush what waits
	persisted bool        // its key was written

	lastData  time.Time
	tailSize  int64 // file end when an unterminated tail was first seen; -1 none
	tailSince time.Time

	join joiner
	ml   struct {
		active bool
		start  int64
		buf    []byte
	}

	// batch state, valid while batchGen equals the tailer's
	batchGen uint64
	inBatch  bool
	records  plog.LogRecordSlice
	batchRes pcommon.Map
	ckpt     int64 // offset written with the batch in flight

	rawRes     []byte // the encoded Resource content (raw path)
	rawRecords []byte // encoded log_records of the batch (raw path)
}

func (f *tracked) pendingAny() bool {
	if f.ml.active {
		return true
	}
	_, ok := f.join.pendingStart()
	return ok
}

// checkpoint is where to resume: before any record not yet complete.
func (f *tracked) checkpoint() int64 {
	off := f.read
	if f.ml.active && f.ml.start < off {
		off = f.ml.start
	}
	if s, ok := f.join.pendingStart(); ok && s < off {
		off = s
	}
	return off
}

// maxRawPool bounds the record buffers kept between batches.
const maxRawPool = 4

// tailer is the state of one Run.
type tailer struct {
	r        *FilelogReceiver
	files    []*tracked
	gen      uint64
	firstRun bool

	buf    []byte
	fpBuf  []byte
	paths  []string
	dirs   *dirCache
	docker dockerParser
	cur    *tracked // the file emitJoined writes for
	logtag string   // set while a CRI line's records are emitted

	batch      plog.Logs
	batchGen   uint64
	batchN     int
	batchBytes int
	drops      int
	touched    []*tracked
	attrCap    int
	nowTS      pcommon.Timestamp
	nowTime    time.Time

	inodes     map[inode]*tracked
	scratch    plog.LogRecord
	scratchRes pcommon.Map

	// rawPool holds emptied per-file record buffers between batches, so
	// busy files reuse them while idle files hold none (bounded memory).
	rawPool [][]byte

	lastFileWarn time.Time

	behind   []fileLag // setGauges' scratch
	lagShown []string  // paths with an obs_logs_file_lag_bytes series

	indexDirty bool
	deletes    []string // keys of forgotten files
	extra      []actors.KV
}

func newTailer(r *FilelogReceiver) *tailer {
	t := &tailer{
		r:          r,
		buf:        make([]byte, 64<<10),
		fpBuf:      make([]byte, r.cfg.FingerprintSize),
		batch:      plog.NewLogs(),
		batchGen:   1,
		inodes:     map[inode]*tracked{},
		dirs:       newDirCache(),
		scratch:    plog.NewLogRecord(),
		scratchRes: pcommon.NewMap(),
	}
	t.attrCap = len(r.cfg.Attributes)
	for _, b := range []bool{r.cfg.IncludeFileName, r.cfg.IncludeFilePath, r.cfg.IncludeFileNameResolved, r.cfg.IncludeFilePathResolved, r.container != nil} {
		if b {
			t.attrCap++
		}
	}
	// Series of files from an earlier Run of this receiver are stale.
	r.m.fileLag.Reset()
	return t
}

func (t *tailer) indexKey() []byte { return []byte(t.r.prefix + "index") }

func (t *tailer) fileKey(id string) []byte { return []byte(t.r.prefix + "f/" + id) }

// restore reads the index and every file checkpoint it lists.
func (t *tailer) restore() error {
	if t.r.get == nil {
		t.firstRun = true
		return nil
	}
	idx, err := t.r.get(t.indexKey())
	if err != nil {
		return fmt.Errorf("read checkpoint index: %w", err)
	}
	if idx == nil {
		t.firstRun = true
		return nil
	}
	for len(idx) >= 16 {
		id := string(idx[:16])
		idx = idx[16:]
		v, err := t.r.get(t.fileKey(id))
		if err != nil {
			return fmt.Errorf("read checkpoint %s: %w", id, err)
		}
		if v == nil {
			continue
		}
		f, err := decodeCheckpoint(v)
		if err != nil {
			t.r.log.Warn("ignoring damaged file checkpoint", "key", id, "err", err)
			continue
		}
		f.key = id
		f.persisted = true
		if len(f.fp) > len(t.fpBuf) { // fingerprint_size was lowered
			f.fp = f.fp[:len(t.fpBuf)]
		}
		t.initFile(f, f.metaPath)
		t.files = append(t.files, f)
	}
	return nil
}

func encodeCheckpoint(dst []byte, f *tracked, offset int64) []byte {
	dst = append(dst, 1)
	dst = binary.AppendUvarint(dst, uint64(offset))
	dst = binary.AppendUvarint(dst, uint64(len(f.fp)))
	dst = append(dst, f.fp...)
	dst = binary.AppendUvarint(dst, uint64(len(f.metaPath)))
	return append(dst, f.metaPath...)
}

func decodeCheckpoint(v []byte) (*tracked, error) {
	if len(v) == 0 || v[0] != 1 {
		return nil, errors.New("unknown checkpoint version")
	}
	v = v[1:]
	off, n := binary.Uvarint(v)
	if n <= 0 || off > 1<<62 {
		return nil, errors.New("bad offset")
	}
	v = v[n:]
	l, n := binary.Uvarint(v)
	if n <= 0 || l > uint64(len(v)-n) {
		return nil, errors.New("bad fingerprint")
	}
	fp := bytes.Clone(v[n : n+int(l)])
	v = v[n+int(l):]
	l, n = binary.Uvarint(v)
	if n <= 0 || l != uint64(len(v)-n) {
		return nil, errors.New("bad path")
	}
	return &tracked{fp: fp, offset: int64(off), read: int64(off), metaPath: string(v[n:]), tailSize: -1}, nil
}

// initFile sets the per-file constants: resource from the path, names.
func (t *tailer) initFile(f *tracked, path string) {
	f.metaPath = path
	f.res = pcommon.NewMap()
	for k, v := range t.r.cfg.Resource {
		f.res.PutStr(k, v)
	}
	f.join.maxSize = int(t.r.cfg.MaxLogSize)
	if c := t.r.container; c != nil {
		f.join.maxSize = c.maxSize
		if c.addMeta {
			if m, ok := parsePodPath(path); ok {
				f.res.EnsureCapacity(5)
				f.res.PutStr("k8s.namespace.name", m.namespace)
				f.res.PutStr("k8s.pod.name", m.pod)
				f.res.PutStr("k8s.pod.uid", m.uid)
				f.res.PutStr("k8s.container.name", m.container)
				f.res.PutStr("k8s.container.restart_count", m.restart)
			}
		}
	}
	if t.r.raw {
		f.rawRes = rawResource(f.res)
	}
	t.setPath(f, path)
}

func (t *tailer) setPath(f *tracked, path string) {
	if f.path == path {
		return
	}
	f.path = path
	f.name = filepath.Base(path)
	if t.r.cfg.IncludeFilePathResolved || t.r.cfg.IncludeFileNameResolved {
		rp, err := filepath.EvalSymlinks(path)
		if err != nil {
			rp = path
		}
		if abs, err := filepath.Abs(rp); err == nil {
			rp = abs
		}
		f.resolvedPath, f.resolvedName = rp, filepath.Base(rp)
	}
}

// newKey gives a new file a stable id unique among the tracked files.
func (t *tailer) newKey(fp []byte) string {
	h := fnv.New64a()
	_, _ = h.Write(fp)
	for salt := byte(0); ; salt++ {
		id := hex.EncodeToString(h.Sum(nil))
		if !slices.ContainsFunc(t.files, func(f *tracked) bool { return f.key == id }) && !slices.Contains(t.deletes, id) {
			return id
		}
		_, _ = h.Write([]byte{salt})
	}
}

// discover lists the included, not excluded regular files.
func (t *tailer) discover() []string {
	t.paths = t.paths[:0]
	t.dirs.prune()
	for _, g := range t.r.cfg.Include {
		t.paths = t.dirs.glob(g, t.nowTime, t.paths)
	}
	sort.Strings(t.paths)
	t.paths = slices.Compact(t.paths)
	out := t.paths[:0]
	for _, p := range t.paths {
		if !slices.ContainsFunc(t.r.cfg.Exclude, func(g string) bool { return matchGlob(g, p) }) {
			out = append(out, p)
		}
	}
	t.paths = out
	return out
}

type candidate struct {
	path string
	fi   os.FileInfo
}

// poll finds files, reads every open one and commits what it read.
func (t *tailer) poll(ctx context.Context) (more bool, err error) {
	r := t.r
	t.nowTime = r.now()
	t.nowTS = pcommon.NewTimestampFromTime(t.nowTime)
	t.gen++
	first := t.gen == 1
	defer t.setGauges()

	// Pass 1: paths whose file we know by identity (same inode).
	t.indexInodes()
	var rest []candidate
	for _, p := range t.discover() {
		fi, err := os.Stat(p)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				t.fileFailed(&fileError{op: "stat", path: p, err: err})
			}
			continue
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		if d := r.cfg.ExcludeOlderThan; d > 0 && t.nowTime.Sub(fi.ModTime()) > d {
			continue
		}
		f := t.byInode(fi)
		if f == nil {
			rest = append(rest, candidate{p, fi})
			continue
		}
		if f.seen == t.gen {
			continue // a second link to a file already found
		}
		reopened := false
		if f.f == nil { // closed by max_concurrent_files: reopen by path
			if fh, err := os.Open(p); err == nil {
				if hfi, err := fh.Stat(); err == nil && os.SameFile(hfi, fi) {
					f.f, f.fi, reopened = fh, hfi, true
				} else {
					fh.Close()
				}
			}
		}
		if !t.stillSame(f, fi, reopened) {
			// Truncated in place: the content is gone; only a copy
			// (copytruncate) may continue it. The path is new content.
			r.m.truncations.Inc()
			r.log.Debug("file truncated", "path", p)
			f.truncated = true
			t.closeFile(f)
			rest = append(rest, candidate{p, fi})
			continue
		}
		if f.path != p {
			r.m.rotations.Inc()
			t.setPath(f, p)
		}
		f.seen, f.missing = t.gen, 0
		f.statSize = fi.Size()
	}

	// Pass 2: other paths, matched by fingerprint.
	for _, c := range rest {
		t.matchNew(c, first)
	}

	// Files not found: drain the open ones, forget the others.
	for _, f := range t.files {
		if f.seen == t.gen {
			continue
		}
		if f.missing == 0 && f.f != nil {
			r.m.rotations.Inc()
		}
		f.missing++
		if f.f != nil && !f.truncated {
			if fi, err := f.f.Stat(); err == nil && fi.Size() < f.read {
				r.m.truncations.Inc()
				f.truncated = true
				t.closeFile(f)
			}
		}
		if f.missing > missingPolls {
			f.finishing = true
		}
	}

	// Read.
	for _, f := range t.files {
		if f.f == nil || f.truncated {
			continue
		}
		if f.seen == t.gen && f.statSize == f.read && f.tailSize < 0 && !f.pendingAny() {
			continue // nothing new: save the read syscall
		}
		m, err := t.readFile(ctx, f)
		var fe *fileError
		if errors.As(err, &fe) {
			// The complete lines before the error stay in the batch; the
			// file is reopened by path next poll.
			t.fileFailed(fe)
			t.closeFile(f)
			continue
		}
		if err != nil {
			t.rollback()
			return false, err
		}
		more = more || m
	}
	if err := t.flush(ctx); err != nil {
		return false, err
	}

	t.forget()
	t.limitOpen()
	return more, nil
}

// fileFailed counts a failure on one file and logs at most one every
// 30 seconds.
func (t *tailer) fileFailed(e *fileError) {
	t.r.m.fileErrors.WithLabelValues(e.op).Inc()
	if t.nowTime.Sub(t.lastFileWarn) >= 30*time.Second {
		t.lastFileWarn = t.nowTime
		t.r.log.Warn("file error", "op", e.op, "path", e.path, "err", e.err)
	}
}

// setGauges sets the files-watched and lag gauges, after every poll.
func (t *tailer) setGauges() {
	var lag int64
	t.behind = t.behind[:0]
	for _, f := range t.files {
		if l := f.lag(); l > 0 {
			lag += l
			t.behind = append(t.behind, fileLag{f.path, l})
		}
	}
	m := t.r.m
	m.lagBytes.Set(float64(lag))
	m.filesBehind.Set(float64(len(t.behind)))
	m.filesWatched.Set(float64(len(t.files)))

	// The laggingFiles furthest behind get a series; the others lose theirs.
	slices.SortFunc(t.behind, func(a, b fileLag) int {
		if c := cmp.Compare(b.bytes, a.bytes); c != 0 {
			return c
		}
		return strings.Compare(a.path, b.path)
	})
	top := t.behind[:min(len(t.behind), laggingFiles)]
	for _, p := range t.lagShown {
		if !slices.ContainsFunc(top, func(l fileLag) bool { return l.path == p }) {
			m.fileLag.DeleteLabelValues(p)
		}
	}
	t.lagShown = t.lagShown[:0]
	for _, l := range top {
		m.fileLag.WithLabelValues(l.path).Set(float64(l.bytes))
		t.lagShown = append(t.lagShown, l.path)
	}
}

// fileLag is how far one file is behind.
type fileLag struct {
	path  string
	bytes int64
}

// lag is how many bytes of the open file are not yet committed: up to the
// larger of the size seen while reading and the size at this poll's stat
// (reading stops at a full batch, short of the end).
func (f *tracked) lag() int64 {
	if f.f == nil || f.truncated {
		return 0
	}
	return max(f.size, f.statSize, f.offset) - f.offset
}

// inode identifies a file on its device.
type inode struct{ dev, ino uint64 }

func inodeOf(fi os.FileInfo) (inode, bool) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return inode{uint64(st.Dev), st.Ino}, true
	}
	return inode{}, false
}

// indexInodes maps the last handle of every tracked file to it.
func (t *tailer) indexInodes() {
	clear(t.inodes)
	for _, f := range t.files {
		if f.fi != nil && !f.truncated {
			if id, ok := inodeOf(f.fi); ok {
				t.inodes[id] = f
			}
		}
	}
}

// byInode finds the tracked file whose last handle is fi's file.
func (t *tailer) byInode(fi os.FileInfo) *tracked {
	if id, ok := inodeOf(fi); ok {
		if f := t.inodes[id]; f != nil && f.fi != nil && !f.truncated && os.SameFile(f.fi, fi) {
			return f
		}
		return nil
	}
	for _, f := range t.files {
		if f.fi != nil && !f.truncated && os.SameFile(f.fi, fi) {
			return f
		}
	}
	return nil
}

// stillSame reports whether f's file still starts with f's fingerprint
// and is not shorter than what was read. A fingerprint shorter than
// fingerprint_size grows with the file.
func (t *tailer) stillSame(f *tracked, fi os.FileInfo, force bool) bool {
	if fi.Size() < f.read {
		return false
	}
	if f.f == nil || (fi.Size() == f.size && !force) {
		return true
	}
	n := int(min(int64(len(t.fpBuf)), fi.Size()))
	got, err := f.f.ReadAt(t.fpBuf[:n], 0)
	if err != nil && got < n {
		if got < len(f.fp) {
			return true // unreadable now; decide next poll
		}
		n = got
	}
	if !bytes.HasPrefix(t.fpBuf[:n], f.fp[:min(n, len(f.fp))]) {
		return false
	}
	if n > len(f.fp) {
		f.fp = bytes.Clone(t.fpBuf[:n])
	}
	return true
}

// matchNew handles a path whose inode is not tracked: a known file under
// a new name or a copy of one (same fingerprint), or a new file.
func (t *tailer) matchNew(c candidate, first bool) {
	r := t.r
	fh, err := os.Open(c.path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			t.fileFailed(&fileError{op: "open", path: c.path, err: err})
		}
		return
	}
	keep := false
	defer func() {
		if !keep {
			fh.Close()
		}
	}()
	hfi, err := fh.Stat()
	if err != nil || !hfi.Mode().IsRegular() {
		return
	}
	n, _ := fh.ReadAt(t.fpBuf, 0)
	if n == 0 {
		return // empty: identity unknown until the first bytes arrive
	}
	fp := t.fpBuf[:n]
	for _, f := range t.files {
		switch {
		case bytes.HasPrefix(fp, f.fp):
			// Same content start: f, moved or copied.
		case bytes.HasPrefix(f.fp, fp) && !(f.truncated && os.SameFile(f.fi, hfi)):
			return // a prefix of a known file: a copy in progress, wait
		default:
			continue
		}
		if f.truncated && f.fi != nil && os.SameFile(f.fi, hfi) {
			continue // the truncated file itself, rewritten with the same start
		}
		if f.seen == t.gen {
			return // its file was already found this poll (a copy or link)
		}
		if f.path != "" && f.path != c.path {
			r.m.rotations.Inc()
		}
		t.closeFile(f)
		f.f, f.fi, keep = fh, hfi, true
		f.truncated = false
		f.seen, f.missing, f.finishing = t.gen, 0, false
		f.statSize = -1
		if len(fp) > len(f.fp) {
			f.fp = bytes.Clone(fp)
		}
		if f.res == (pcommon.Map{}) {
			t.initFile(f, c.path)
		}
		t.setPath(f, c.path)
		return
	}
	f := &tracked{fp: bytes.Clone(fp), f: fh, fi: hfi, seen: t.gen, tailSize: -1, statSize: -1, lastData: t.nowTime}
	keep = true
	f.key = t.newKey(f.fp)
	t.initFile(f, c.path)
	if first && t.firstRun && r.cfg.StartAt == "end" {
		f.read, f.offset, f.size = hfi.Size(), hfi.Size(), hfi.Size()
	}
	t.files = append(t.files, f)
	t.indexDirty = true
	r.log.Debug("tailing new file", "path", c.path, "offset", f.read)
}

func (t *tailer) closeFile(f *tracked) {
	if f.f != nil {
		f.f.Close()
		f.f = nil
	}
}

// forget drops files unseen for missingPolls polls once everything read
// from them is committed; their checkpoints are deleted with the next
// batch.
func (t *tailer) forget() {
	kept := t.files[:0]
	for _, f := range t.files {
		done := f.missing > missingPolls && (f.f == nil || f.truncated || (f.offset >= f.size && !f.pendingAny() && f.tailSize < 0))
		if done {
			switch {
			case f.truncated && f.size > f.offset:
				t.r.m.lostBytes.WithLabelValues("truncated").Add(float64(f.size - f.offset))
				t.r.log.Warn("file truncated before it was read to its end; no copy found", "path", f.path, "lost_bytes", f.size-f.offset)
			case f.fi == nil:
				t.r.log.Info("checkpointed file not found again; forgetting it", "path", f.metaPath, "offset", f.offset)
			}
			t.closeFile(f)
			if f.persisted {
				t.deletes = append(t.deletes, f.key)
			}
			t.indexDirty = true
			continue
		}
		kept = append(kept, f)
	}
	clear(t.files[len(kept):])
	t.files = kept
	if t.r.cfg.DeleteAfterRead {
		kept = t.files[:0]
		for _, f := range t.files {
			if f.f != nil && f.seen == t.gen && f.offset >= f.size && f.size > 0 && !f.pendingAny() && f.tailSize < 0 {
				if err := os.Remove(f.path); err != nil {
					t.r.log.Warn("delete after read", "path", f.path, "err", err)
				} else {
					t.closeFile(f)
					if f.persisted {
						t.deletes = append(t.deletes, f.key)
					}
					t.indexDirty = true
					continue
				}
			}
			kept = append(kept, f)
		}
		clear(t.files[len(kept):])
		t.files = kept
	}
}

// limitOpen closes the handles of idle files found by the globs (they are
// reopened by path) while more than max_concurrent_files are open.
func (t *tailer) limitOpen() {
	open := 0
	for _, f := range t.files {
		if f.f != nil {
			open++
		}
	}
	if open <= t.r.cfg.MaxConcurrentFiles {
		return
	}
	idle := make([]*tracked, 0, open)
	for _, f := range t.files {
		if f.f != nil && f.seen == t.gen && f.offset >= f.size && !f.pendingAny() {
			idle = append(idle, f)
		}
	}
	sort.Slice(idle, func(i, j int) bool { return idle[i].lastData.Before(idle[j].lastData) })
	for _, f := range idle {
		if open <= t.r.cfg.MaxConcurrentFiles {
			break
		}
		t.closeFile(f)
		open--
	}
}

func (t *tailer) closeAll() {
	for _, f := range t.files {
		t.closeFile(f)
	}
}

// markRead records that f's read offset moves in this batch.
func (t *tailer) markRead(f *tracked) {
	if f.batchGen != t.batchGen || !f.inBatch {
		f.batchGen = t.batchGen
		f.inBatch = true
		f.records = plog.LogRecordSlice{}
		t.touched = append(t.touched, f)
		if t.r.raw && f.rawRecords == nil && len(t.rawPool) > 0 {
			f.rawRecords = t.rawPool[len(t.rawPool)-1]
			t.rawPool = t.rawPool[:len(t.rawPool)-1]
		}
	}
}

// recordsOf returns f's record slice in the current batch.
func (t *tailer) recordsOf(f *tracked) plog.LogRecordSlice {
	t.markRead(f)
	if f.records == (plog.LogRecordSlice{}) {
		rl := t.batch.ResourceLogs().AppendEmpty()
		f.res.CopyTo(rl.Resource().Attributes())
		f.batchRes = rl.Resource().Attributes()
		f.records = rl.ScopeLogs().AppendEmpty().LogRecords()
	}
	return f.records
}

// recordsWithResource returns a record slice of f whose resource is res,
// starting a new one when res differs from f's current one.
func (t *tailer) recordsWithResource(f *tracked, res pcommon.Map) plog.LogRecordSlice {
	t.markRead(f)
	if f.records == (plog.LogRecordSlice{}) || !f.batchRes.Equal(res) {
		rl := t.batch.ResourceLogs().AppendEmpty()
		res.CopyTo(rl.Resource().Attributes())
		f.batchRes = rl.Resource().Attributes()
		f.records = rl.ScopeLogs().AppendEmpty().LogRecords()
	}
	return f.records
}

func (t *tailer) full() bool {
	return t.batchN >= maxBatchRecords || t.batchBytes >= maxBatchBytes
}

// flush hands the batch, with the checkpoints of every file it read from,
// to consume. Offsets advance only when consume returned nil. When the set
// of files changed (a new file, a forgotten one) the checkpoints go even
// without records, so start_at: end offsets hold across an early crash.
func (t *tailer) flush(ctx context.Context) error {
	r := t.r
	if t.batchN == 0 && !t.indexDirty {
		if t.drops > 0 {
			t.resetBatch()
		}
		return nil
	}
	extra := t.extra[:0]
	for _, f := range t.touched {
		f.ckpt = f.checkpoint()
		extra = append(extra, actors.KV{Key: t.fileKey(f.key), Value: encodeCheckpoint(nil, f, f.ckpt)})
	}
	if t.indexDirty {
		idx := make([]byte, 0, 16*len(t.files))
		for _, f := range t.files {
			idx = append(idx, f.key...)
			if !f.persisted && !f.inBatchNow(t.batchGen) {
				extra = append(extra, actors.KV{Key: t.fileKey(f.key), Value: encodeCheckpoint(nil, f, f.offset)})
			}
		}
		for _, k := range t.deletes {
			extra = append(extra, actors.KV{Key: t.fileKey(k)})
		}
		extra = append(extra, actors.KV{Key: t.indexKey(), Value: idx})
	}
	t.extra = extra
	if t.drops > 0 {
		t.batch.ResourceLogs().RemoveIf(func(rl plog.ResourceLogs) bool {
			sls := rl.ScopeLogs()
			for i := 0; i < sls.Len(); i++ {
				sls.At(i).LogRecords().RemoveIf(func(lr plog.LogRecord) bool { return lr.Flags() == dropFlag })
			}
			return sls.Len() == 0 || sls.At(0).LogRecords().Len() == 0
		})
	}
	n := t.batchN
	b := actors.LogsBatch(t.batch)
	if r.raw {
		size := 0
		for _, f := range t.touched {
			if len(f.rawRecords) > 0 {
				size += lenField(rawResourceLogsSize(f.rawRes, f.rawRecords))
			}
		}
		// One byte in front for the signal, as the OTLP receiver frames
		// its requests: the WAL stores this array instead of a copy.
		raw := make([]byte, 1, 1+size)
		raw[0] = byte(actors.SignalLogs)
		for _, f := range t.touched {
			if len(f.rawRecords) > 0 {
				raw = appendRawResourceLogs(raw, f.rawRes, f.rawRecords)
			}
		}
		b = actors.RawFramedBatch(actors.SignalLogs, raw, n)
	}
	err := r.consume(ctx, b, extra)
	clear(extra)
	if err != nil {
		r.m.refused.WithLabelValues(refusedReason(err)).Inc()
		r.m.failed.Add(float64(n))
		t.rollback()
		return fmt.Errorf("store %d log records: %w", n, err)
	}
	var bytesRead int64
	for _, f := range t.touched {
		bytesRead += f.ckpt - f.offset
		f.offset = f.ckpt
		f.persisted = true
	}
	if t.indexDirty {
		for _, f := range t.files {
			f.persisted = true
		}
		t.indexDirty = false
		t.deletes = t.deletes[:0]
	}
	r.m.accepted.Add(float64(n))
	r.m.linesRead.Add(float64(n))
	r.m.bytesRead.Add(float64(bytesRead))
	t.resetBatch()
	return nil
}

func (f *tracked) inBatchNow(gen uint64) bool { return f.inBatch && f.batchGen == gen }

func (t *tailer) resetBatch() {
	for _, f := range t.touched {
		f.inBatch = false
		f.records = plog.LogRecordSlice{}
		if f.rawRecords != nil && len(t.rawPool) < maxRawPool && cap(f.rawRecords) <= 2*maxBatchBytes {
			t.rawPool = append(t.rawPool, f.rawRecords[:0])
		}
		f.rawRecords = nil
	}
	clear(t.touched)
	t.touched = t.touched[:0]
	if !t.r.raw { // on the raw path t.batch stays empty
		t.batch = plog.NewLogs()
	}
	t.batchGen++
	t.batchN, t.batchBytes, t.drops = 0, 0, 0
}

// rollback forgets the batch: every file it read from goes back to its
// committed offset, to be read again.
func (t *tailer) rollback() {
	for _, f := range t.touched {
		f.read = f.offset
		f.ml.active = false
		f.join.reset()
		f.tailSize = -1
	}
	t.resetBatch()
}
