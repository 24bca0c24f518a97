package logs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/obs-dev/obs/actors"
)

const (
	// maxBatchRecords and maxBatchBytes bound one consume call.
	maxBatchRecords = 1000
	maxBatchBytes   = 1 << 20
	// maxReadPerPoll bounds what one file may read in one poll, so new
	// files are found while a large backlog drains; the next poll then
	// starts at once.
	maxReadPerPoll = 16 << 20
	// missingPolls is how many polls a file may go unseen by the globs
	// (renamed out of them, deleted, truncated) before it is forgotten;
	// an open one is read to its end first.
	missingPolls = 3
	// maxBackoff caps the wait after a refused batch.
	maxBackoff = 5 * time.Second
	// errorAttr holds why a line did not parse; the line is sent as it is.
	errorAttr = "obs.parse_error"
)

// FilelogReceiver tails files into log records (the Collector's filelog
// receiver). Its file offsets are checkpointed in the same consume call,
// hence the same WAL transaction, as the records they produced.
type FilelogReceiver struct {
	id      string
	prefix  string // checkpoint key prefix: "filelog/<id>/"
	cfg     FilelogConfig
	consume func(ctx context.Context, b actors.Batch, extra []actors.KV) error
	get     func(key []byte) ([]byte, error)
	log     *slog.Logger
	m       *metrics

	container *operator // the first operator when it is "container"
	ops       []operator
	resOps    bool
	lineStart *regexp.Regexp
	lineEnd   *regexp.Regexp
	nop       bool
	attrs     [][2]string // static attributes, sorted
	// raw: no operator needs pdata, so records are encoded straight to
	// OTLP protobuf (encode.go) and sent as actors.RawBatch.
	raw bool

	running atomic.Bool
	now     func() time.Time // test seam
}

// NewFilelogReceiver validates cfg and builds the receiver. consume must
// return only once the batch and extra are durable (an error wrapping
// actors.ErrRefused means "pushed back": reading pauses and the same lines
// are read again later). get reads back a key written through extra
// ((nil, nil) when absent); nil means no checkpoints are read at start.
func NewFilelogReceiver(id string, cfg FilelogConfig, consume func(ctx context.Context, b actors.Batch, extra []actors.KV) error,
	get func(key []byte) ([]byte, error), log *slog.Logger, reg prometheus.Registerer) (*FilelogReceiver, error) {
	if id == "" {
		return nil, errors.New("new filelog receiver: empty id")
	}
	if consume == nil {
		return nil, fmt.Errorf("new filelog receiver %s: nil consume", id)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new filelog receiver %s: %w", id, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ops, err := compileOperators(cfg.Operators)
	if err != nil {
		return nil, fmt.Errorf("new filelog receiver %s: %w", id, err)
	}
	r := &FilelogReceiver{
		id:      id,
		prefix:  "filelog/" + id + "/",
		cfg:     cfg,
		consume: consume,
		get:     get,
		log:     log.With("component", "receivers."+id),
		nop:     strings.EqualFold(cfg.Encoding, "nop"),
		now:     time.Now,
	}
	if len(ops) > 0 && ops[0].kind == opContainer {
		r.container = &ops[0]
		if r.container.maxSize == 0 {
			r.container.maxSize = int(cfg.MaxLogSize)
		}
		ops = ops[1:]
	}
	r.ops = ops
	for k, v := range cfg.Attributes {
		r.attrs = append(r.attrs, [2]string{k, v})
	}
	slices.SortFunc(r.attrs, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	r.resOps = touchesResource(ops)
	r.raw = len(ops) == 0
	if p := cfg.Multiline.LineStartPattern; p != "" {
		r.lineStart = regexp.MustCompile(p) // compiled in Validate
	}
	if p := cfg.Multiline.LineEndPattern; p != "" {
		r.lineEnd = regexp.MustCompile(p)
	}
	if r.m, err = newMetrics(id, reg); err != nil {
		return nil, fmt.Errorf("new filelog receiver %s: register metrics: %w", id, err)
	}
	return r, nil
}

// Run tails until ctx ends. It reads back the checkpoints first; it
// returns only an error that makes tailing impossible.
func (r *FilelogReceiver) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("run filelog receiver %s: already running", r.id)
	}
	defer r.running.Store(false)
	t := newTailer(r)
	defer t.closeAll()
	if err := t.restore(); err != nil {
		return fmt.Errorf("run filelog receiver %s: %w", r.id, err)
	}
	r.log.Info("filelog receiver started", "include", r.cfg.Include, "files_restored", len(t.files), "first_start", t.firstRun)
	timer := time.NewTimer(0)
	defer timer.Stop()
	var backoff time.Duration
	var lastWarn time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		more, err := t.poll(ctx)
		next := r.cfg.PollInterval
		switch {
		case err == nil:
			r.m.paused.Set(0)
			backoff = 0
			if more {
				next = 0
			}
		case ctx.Err() != nil:
			return nil
		default:
			r.m.paused.Set(1)
			backoff = min(max(2*backoff, r.cfg.PollInterval), maxBackoff)
			next = backoff
			var re *actors.RefusedError
			if errors.As(err, &re) && re.RetryAfter > next {
				next = min(re.RetryAfter, 6*maxBackoff)
			}
			if now := time.Now(); now.Sub(lastWarn) > 30*time.Second {
				lastWarn = now
				r.log.Warn("pausing file reading: batch not stored", "err", err, "retry_in", next)
			}
		}
		timer.Reset(next)
	}
}

// refusedReason names a consume error for the refused metric.
func refusedReason(err error) string {
	var re *actors.RefusedError
	switch {
	case errors.As(err, &re) && re.Reason != "":
		return re.Reason
	case errors.Is(err, actors.ErrRefused):
		return "refused"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	}
	return "error"
}

// record appends one record for body to the batch and runs the operators.
func (t *tailer) record(f *tracked, ts int64, stream string, body []byte, parseErr string) {
	r := t.r
	if r.raw {
		t.rawRecord(f, ts, stream, body, parseErr)
		return
	}
	var lr plog.LogRecord
	var res pcommon.Map
	if r.resOps {
		lr = t.scratch
		res = t.scratchRes
		f.res.CopyTo(res)
	} else {
		lr = t.recordsOf(f).AppendEmpty()
	}
	lr.SetObservedTimestamp(t.nowTS)
	if ts != 0 {
		lr.SetTimestamp(pcommon.Timestamp(ts))
	}
	switch {
	case r.nop:
		lr.Body().SetEmptyBytes().FromRaw(body)
	default:
		lr.Body().SetStr(toValidString(body))
	}
	attrs := lr.Attributes()
	attrs.EnsureCapacity(t.attrCap)
	if r.cfg.IncludeFileName {
		attrs.PutStr("log.file.name", f.name)
	}
	if r.cfg.IncludeFilePath {
		attrs.PutStr("log.file.path", f.path)
	}
	if r.cfg.IncludeFileNameResolved {
		attrs.PutStr("log.file.name_resolved", f.resolvedName)
	}
	if r.cfg.IncludeFilePathResolved {
		attrs.PutStr("log.file.path_resolved", f.resolvedPath)
	}
	if stream != "" {
		attrs.PutStr("log.iostream", stream)
	}
	if t.logtag != "" {
		attrs.PutStr("logtag", t.logtag)
	}
	for _, kv := range r.attrs {
		attrs.PutStr(kv[0], kv[1])
	}
	if parseErr != "" {
		attrs.PutStr(errorAttr, parseErr)
	}
	t.batchN++
	t.batchBytes += len(body)
	drop := false
	if len(r.ops) > 0 {
		e := entry{lr: lr, res: res}
		if !r.resOps {
			e.res = f.batchRes
		}
		for i := range r.ops {
			op := &r.ops[i]
			if err := op.apply(&e); err != nil {
				r.m.parseErrors.WithLabelValues(op.id).Inc()
				if op.onError.drops() {
					drop = true
					break
				}
				if op.onError == onErrorSend {
					attrs.PutStr(errorAttr, op.id+": "+err.Error())
				}
			}
		}
	}
	if drop {
		r.m.dropped.WithLabelValues("parse_error").Inc()
		t.batchN--
		if r.resOps {
			lr.Attributes().Clear()
			plog.NewLogRecord().CopyTo(lr)
		} else {
			lr.SetFlags(dropFlag)
			t.drops++
		}
		return
	}
	if r.resOps {
		dst := t.recordsWithResource(f, res)
		lr.MoveTo(dst.AppendEmpty())
	}
}

// rawRecord encodes one record of f on the raw path.
func (t *tailer) rawRecord(f *tracked, ts int64, stream string, body []byte, parseErr string) {
	r := t.r
	t.markRead(f)
	var a rawAttrs
	if r.cfg.IncludeFileName {
		a.add("log.file.name", f.name)
	}
	if r.cfg.IncludeFilePath {
		a.add("log.file.path", f.path)
	}
	if r.cfg.IncludeFileNameResolved {
		a.add("log.file.name_resolved", f.resolvedName)
	}
	if r.cfg.IncludeFilePathResolved {
		a.add("log.file.path_resolved", f.resolvedPath)
	}
	if stream != "" {
		a.add("log.iostream", stream)
	}
	if t.logtag != "" {
		a.add("logtag", t.logtag)
	}
	if parseErr != "" {
		a.add(errorAttr, parseErr)
	}
	f.rawRecords = appendRawRecord(f.rawRecords, ts, int64(t.nowTS), body, r.nop, &a, r.attrs)
	t.batchN++
	t.batchBytes += len(body)
}

// dropFlag marks a record dropped by an operator; flush removes them.
const dropFlag = plog.LogRecordFlags(0xFFFFFFFF)

func toValidString(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// containerEntry runs the container operator on one entry.
func (t *tailer) containerEntry(f *tracked, line []byte, start int64) {
	op := t.r.container
	format := op.format
	if format == formatAuto {
		format = formatCRI
		if len(line) > 0 && line[0] == '{' {
			format = formatDocker
		}
	}
	var l containerLine
	var err error
	if format == formatDocker {
		l, err = t.docker.parse(line)
	} else {
		l, err = parseCRI(line)
	}
	if err != nil {
		t.r.m.parseErrors.WithLabelValues(op.id).Inc()
		if op.onError.drops() {
			t.r.m.dropped.WithLabelValues("parse_error").Inc()
			return
		}
		msg := ""
		if op.onError == onErrorSend {
			msg = op.id + ": " + err.Error()
		}
		t.record(f, 0, "", line, msg)
		return
	}
	t.cur = f
	if format == formatCRI {
		t.logtag = "F" // as the Collector: the tag of the (last) piece
	}
	f.join.add(l, start, t.emitJoined)
	t.logtag = ""
}

func (t *tailer) emitJoined(ts int64, stream string, body []byte, split bool) {
	if split {
		t.r.m.linesSplit.Inc()
	}
	t.record(t.cur, ts, stream, body, "")
}

// fileError is a failure on one file; other files are still read.
type fileError struct {
	op, path string
	err      error
}

func (e *fileError) Error() string { return e.op + " " + e.path + ": " + e.err.Error() }
func (e *fileError) Unwrap() error { return e.err }

// readFile reads f from its read offset to EOF (or the per-poll cap),
// turning complete lines into records and flushing full batches.
func (t *tailer) readFile(ctx context.Context, f *tracked) (more bool, err error) {
	r := t.r
	buf := t.buf
	have := 0
	base := f.read
	maxLine := int(r.cfg.MaxLogSize)
	for {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if have == len(buf) {
			if len(buf) < maxLine+1 {
				nb := make([]byte, min(2*len(buf), maxLine+1))
				copy(nb, buf[:have])
				buf = nb
				t.buf = nb
			}
		}
		n, rerr := f.f.ReadAt(buf[have:], base+int64(have))
		have += n
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return false, &fileError{op: "read", path: f.path, err: rerr}
		}
		start := 0
		for start < have {
			i := indexByte(buf[start:have], '\n')
			if i < 0 {
				break
			}
			next := start + i + 1
			line := buf[start : start+i]
			if len(line) > 0 && line[len(line)-1] == '\r' {
				line = line[:len(line)-1]
			}
			for len(line) > maxLine {
				r.m.linesSplit.Inc()
				t.line(f, line[:maxLine], base+int64(start), base+int64(start+maxLine))
				start += maxLine
				line = line[maxLine:]
			}
			t.line(f, line, base+int64(start), base+int64(next))
			start = next
			if t.full() {
				if err := t.flush(ctx); err != nil {
					return false, err
				}
			}
		}
		if start == 0 && have > maxLine {
			// A line longer than max_log_size without its end yet: send
			// the first max_log_size bytes as one record.
			r.m.linesSplit.Inc()
			t.line(f, buf[:maxLine], base, base+int64(maxLine))
			start = maxLine
		}
		copy(buf, buf[start:have])
		have -= start
		base += int64(start)
		if base+int64(have) > f.size {
			f.size = base + int64(have)
			f.lastData = t.nowTime
		}
		if n == 0 || errors.Is(rerr, io.EOF) {
			break
		}
		if base-f.offset > maxReadPerPoll {
			return true, nil
		}
	}
	// At EOF: an unterminated tail waits force_flush_period unchanged.
	end := base + int64(have)
	if have > 0 {
		if f.tailSize != end {
			f.tailSize, f.tailSince = end, t.nowTime
		} else if ffp := r.cfg.ForceFlushPeriod; (ffp > 0 && t.nowTime.Sub(f.tailSince) >= ffp) || f.finishing {
			t.line(f, buf[:have], base, end)
			f.tailSize = -1
		}
	}
	// Pending joins and multiline records wait for more data likewise.
	if f.pendingAny() && (f.finishing || (r.cfg.ForceFlushPeriod > 0 && t.nowTime.Sub(f.lastData) >= r.cfg.ForceFlushPeriod)) {
		t.flushPending(f)
	}
	if t.full() {
		if err := t.flush(ctx); err != nil {
			return false, err
		}
	}
	return false, nil
}

// line handles one line of f (without its newline) spanning [start, end).
func (t *tailer) line(f *tracked, line []byte, start, end int64) {
	t.markRead(f)
	f.read = end
	r := t.r
	switch {
	case r.lineStart != nil:
		if f.ml.active && r.lineStart.Match(line) {
			t.entry(f, f.ml.buf, f.ml.start)
			f.ml.active = false
			f.shrinkML()
		}
		t.mlAppend(f, line, start)
	case r.lineEnd != nil:
		t.mlAppend(f, line, start)
		if r.lineEnd.Match(line) {
			t.entry(f, f.ml.buf, f.ml.start)
			f.ml.active = false
			f.shrinkML()
		}
	default:
		t.entry(f, line, start)
	}
}

func (f *tracked) shrinkML() {
	if cap(f.ml.buf) > 64<<10 {
		f.ml.buf = nil
	}
}

func (t *tailer) mlAppend(f *tracked, line []byte, start int64) {
	if !f.ml.active {
		f.ml.active = true
		f.ml.start = start
		f.ml.buf = append(f.ml.buf[:0], line...)
	} else {
		f.ml.buf = append(f.ml.buf, '\n')
		f.ml.buf = append(f.ml.buf, line...)
	}
	if max := int(t.r.cfg.MaxLogSize); len(f.ml.buf) > max {
		t.r.m.linesSplit.Inc()
		t.entry(f, f.ml.buf[:max], f.ml.start)
		n := copy(f.ml.buf, f.ml.buf[max:])
		f.ml.buf = f.ml.buf[:n]
		f.ml.start = start
	}
}

// entry is one line or joined multiline record, before operators.
func (t *tailer) entry(f *tracked, body []byte, start int64) {
	if t.r.container != nil {
		t.containerEntry(f, body, start)
		return
	}
	t.record(f, 0, "", body, "")
}

// flushPending sends the pending multiline record and partial container
// lines of f as they are.
func (t *tailer) flushPending(f *tracked) {
	t.markRead(f)
	if f.ml.active {
		f.ml.active = false
		t.entry(f, f.ml.buf, f.ml.start)
	}
	t.cur = f
	f.join.flush(t.emitJoined)
}
