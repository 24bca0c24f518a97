package export

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/obs-dev/obs/actors"
	"github.com/obs-dev/obs/wal"
)

// A WAL payload is one byte naming the signal followed by the OTLP
// protobuf export request. Concatenated requests of one signal are still
// one valid request (repeated fields append), which lets an exporter merge
// queued entries without decoding them.
func encodePayload(b actors.Batch) ([]byte, error) {
	if f := b.FramedRaw(); f != nil && f[0] == byte(b.Signal) {
		return f, nil // the receiver framed Raw already: no copy
	}
	p := b.Raw
	if p == nil {
		var err error
		if p, err = encodeProto(b); err != nil {
			return nil, err
		}
	}
	out := make([]byte, 0, len(p)+1)
	out = append(out, byte(b.Signal))
	return append(out, p...), nil
}

func decodePayload(p []byte) (actors.Signal, []byte, error) {
	if len(p) == 0 {
		return 0, nil, errors.New("empty wal payload")
	}
	s := actors.Signal(p[0])
	if s < actors.SignalLogs || s > actors.SignalTraces {
		return 0, nil, fmt.Errorf("wal payload names unknown signal %d", p[0])
	}
	return s, p[1:], nil
}

// QueueWriter is the last stage of a pipeline: it appends each batch to
// the WAL queue of every exporter of the pipeline in one transaction and
// completes the envelope's ack only when that commit is durable.
type QueueWriter struct {
	db       *wal.DB
	queues   []*wal.Queue
	inflight chan struct{}
	wg       sync.WaitGroup
	refused  *prometheus.CounterVec
	pipeline string
}

// NewQueueWriter returns the stage. maxInFlight bounds the appends waiting
// for a commit at once (they share fsyncs: that is the group commit).
func NewQueueWriter(pipeline string, db *wal.DB, queues []*wal.Queue, maxInFlight int, refused *prometheus.CounterVec) *QueueWriter {
	if maxInFlight <= 0 {
		maxInFlight = 16
	}
	return &QueueWriter{db: db, queues: queues, inflight: make(chan struct{}, maxInFlight), refused: refused, pipeline: pipeline}
}

// NewRefusedCounter is the counter QueueWriters share for WAL refusals.
func NewRefusedCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "obs_export_wal_refused_items_total",
		Help: "Items refused at the WAL (full or unhealthy); the client was told to retry.",
	}, []string{"pipeline", "reason"})
	if reg != nil {
		reg.MustRegister(c)
	}
	return c
}

// Consume implements actors.Stage.
func (w *QueueWriter) Consume(ctx context.Context, env *actors.Envelope, _ actors.Emit) {
	records := env.Batch.Items()
	var items []wal.Item
	// A batch a filter emptied is not queued; its checkpoints still are.
	if records > 0 {
		payload, err := encodePayload(env.Batch)
		if err != nil {
			env.Ack.Done(fmt.Errorf("encode batch for wal: %w", err))
			return
		}
		items = make([]wal.Item, len(w.queues))
		for i, q := range w.queues {
			items[i] = wal.Item{Queue: q, Payload: payload, Records: records}
		}
	}
	extra := make([]wal.KV, len(env.Extra))
	for i, kv := range env.Extra {
		extra[i] = wal.KV{Key: kv.Key, Value: kv.Value}
	}
	// Waiting here is the backpressure: the mailbox fills behind us.
	select {
	case w.inflight <- struct{}{}:
	case <-ctx.Done():
		env.Ack.Done(ctx.Err())
		return
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		err := w.db.Append(ctx, items, extra...)
		<-w.inflight
		if err != nil {
			reason := "unhealthy"
			if errors.Is(err, wal.ErrFull) {
				reason = "wal_full"
			}
			w.refused.WithLabelValues(w.pipeline, reason).Add(float64(records))
			err = &actors.RefusedError{Reason: reason, RetryAfter: 5 * time.Second}
		}
		env.Ack.Done(err)
	}()
}

// Flush implements actors.Flusher: wait for the appends in flight.
func (w *QueueWriter) Flush(context.Context, actors.Emit) { w.wg.Wait() }

// ExporterConfig tunes how an exporter drains its queue.
type ExporterConfig struct {
	// Consumers send in parallel (sending_queue.num_consumers; default 4).
	Consumers int
	// BatchSize: records at which a merged send goes out (default 8192).
	BatchSize int
	// MaxBatchSize: upper bound on a merged send; 0 = BatchSize*2.
	MaxBatchSize int
	// MaxBatchBytes: upper bound on a merged request's size (default
	// 3 MiB), below the 4 MiB that gRPC servers, the Collector's among
	// them, accept by default.
	MaxBatchBytes int
	// Timeout: how long a partial batch waits for more entries (200ms).
	Timeout time.Duration
	Retry   RetryConfig
}

// Exporter drains one WAL queue into a Sender. The queue is its mailbox:
// bounded by wal.max_bytes, durable, and shared by every pipeline that
// names the exporter. Entries are deleted only after the backend took
// them; a permanent rejection moves them to the dead-letter area.
type Exporter struct {
	id      string
	q       *wal.Queue
	sender  Sender
	cfg     ExporterConfig
	log     *slog.Logger
	metrics *exporterMetrics
}

type exporterMetrics struct {
	sent, failed, dead, retries *prometheus.CounterVec
}

// NewExporterMetrics registers the exporter metrics every Exporter shares.
func NewExporterMetrics(reg prometheus.Registerer) *exporterMetrics {
	m := &exporterMetrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "otelcol_exporter_sent_items_total",
			Help: "Items (log records, data points, spans) the backend accepted.",
		}, []string{"exporter", "signal"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "otelcol_exporter_send_failed_items_total",
			Help: "Items in send attempts that failed; they stay in the WAL and are retried.",
		}, []string{"exporter", "signal"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obs_export_dead_lettered_items_total",
			Help: "Items moved to the dead-letter area (permanent rejection or retries exhausted); `obs wal replay` re-sends them.",
		}, []string{"exporter", "signal", "reason"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obs_export_retries_total",
			Help: "Send attempts that were retried after a retryable error.",
		}, []string{"exporter"}),
	}
	if reg != nil {
		reg.MustRegister(m.sent, m.failed, m.dead, m.retries)
	}
	return m
}

// NewExporter returns an exporter of queue q through s.
func NewExporter(id string, q *wal.Queue, s Sender, cfg ExporterConfig, m *exporterMetrics, log *slog.Logger) *Exporter {
	if cfg.Consumers <= 0 {
		cfg.Consumers = 4
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 8192
	}
	if cfg.MaxBatchSize <= 0 {
		cfg.MaxBatchSize = 2 * cfg.BatchSize
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = 3 << 20
	}
	if cfg.Timeout < 0 {
		cfg.Timeout = 0
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Exporter{id: id, q: q, sender: s, cfg: cfg, log: log.With("exporter", id), metrics: m}
}

// Run sends until ctx ends; entries not confirmed then stay in the WAL and
// are sent again after a restart. It closes the sender before returning.
func (e *Exporter) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := 0; i < e.cfg.Consumers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.consume(ctx)
		}()
	}
	wg.Wait()
	return e.sender.Close()
}

type pendingSend struct {
	signal  actors.Signal
	seqs    []uint64
	records int
	// parts are the queued requests merged into this send, in order;
	// concatenated they are one export request. They are the WAL's
	// read-only payloads, not copies.
	parts [][]byte
	size  int
}

// send sends the request: parts joined, unless s sends parts as they are.
func (p *pendingSend) send(ctx context.Context, s Sender) (SendResult, error) {
	if ps, ok := s.(PartsSender); ok {
		return ps.SendParts(ctx, p.signal, p.parts)
	}
	if len(p.parts) == 1 {
		return s.Send(ctx, p.signal, p.parts[0])
	}
	body := make([]byte, 0, p.size)
	for _, part := range p.parts {
		body = append(body, part...)
	}
	return s.Send(ctx, p.signal, body)
}

func (e *Exporter) consume(ctx context.Context) {
	var carry *wal.Entry // an entry taken but left for the next send
	for {
		var first wal.Entry
		if carry != nil {
			first, carry = *carry, nil
		} else {
			var err error
			if first, err = e.q.Next(ctx); err != nil {
				return // ctx ended or the WAL closed
			}
		}
		p, err := e.start(first)
		if err != nil {
			continue
		}
		// Merge what else is queued, up to BatchSize records or Timeout.
		gctx, cancel := context.WithTimeout(ctx, max(e.cfg.Timeout, time.Millisecond))
		for p.records < e.cfg.BatchSize {
			next, err := e.q.Next(gctx)
			if err != nil {
				break
			}
			s, body, derr := decodePayload(next.Payload)
			if derr != nil {
				e.deadLetter(next.Seq, 0, next.Records, "undecodable payload: "+derr.Error())
				continue
			}
			if s != p.signal || p.records+next.Records > e.cfg.MaxBatchSize || p.size+len(body) > e.cfg.MaxBatchBytes {
				carry = &next
				break
			}
			p.seqs = append(p.seqs, next.Seq)
			p.records += next.Records
			p.parts = append(p.parts, body)
			p.size += len(body)
		}
		cancel()
		if !e.send(ctx, p) {
			// Stopping: hand the entries back; a restart sends them.
			for _, s := range p.seqs {
				e.q.Release(s)
			}
			if carry != nil {
				e.q.Release(carry.Seq)
			}
			return
		}
	}
}

func (e *Exporter) start(en wal.Entry) (*pendingSend, error) {
	s, body, err := decodePayload(en.Payload)
	if err != nil {
		e.deadLetter(en.Seq, 0, en.Records, "undecodable payload: "+err.Error())
		return nil, err
	}
	return &pendingSend{signal: s, seqs: []uint64{en.Seq}, records: en.Records, parts: [][]byte{body}, size: len(body)}, nil
}

// send delivers p with retries; it returns false only when ctx ended
// before the backend confirmed.
func (e *Exporter) send(ctx context.Context, p *pendingSend) bool {
	sig := p.signal.String()
	bo := e.cfg.Retry.Backoff()
	for {
		res, err := p.send(ctx, e.sender)
		if err == nil {
			e.metrics.sent.WithLabelValues(e.id, sig).Add(float64(int64(p.records) - res.Rejected))
			if res.Rejected > 0 {
				e.log.Warn("backend rejected part of a batch", "signal", sig, "rejected", res.Rejected, "message", res.Message)
			}
			for _, s := range p.seqs {
				if derr := e.q.Done(s); derr != nil {
					e.log.Error("mark wal entry done", "seq", s, "err", derr)
				}
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		e.metrics.failed.WithLabelValues(e.id, sig).Add(float64(p.records))
		wait, ok := bo.Next(err)
		if !ok {
			reason := "permanent: " + err.Error()
			if !IsPermanent(err) {
				reason = "retries exhausted: " + err.Error()
			}
			e.log.Error("dead-lettering batch", "signal", sig, "records", p.records, "err", err)
			for _, s := range p.seqs {
				e.deadLetter(s, p.signal, 0, reason)
			}
			e.metrics.dead.WithLabelValues(e.id, sig, deadReason(err)).Add(float64(p.records))
			return true
		}
		e.metrics.retries.WithLabelValues(e.id).Inc()
		e.log.Warn("send failed; retrying", "signal", sig, "records", p.records, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
}

func deadReason(err error) string {
	if IsPermanent(err) {
		return "permanent"
	}
	return "retries_exhausted"
}

func (e *Exporter) deadLetter(seq uint64, s actors.Signal, records int, reason string) {
	if err := e.q.DeadLetter(seq, reason); err != nil {
		e.log.Error("dead-letter wal entry", "seq", seq, "err", err)
	}
	if records > 0 {
		e.metrics.dead.WithLabelValues(e.id, s.String(), "undecodable").Add(float64(records))
	}
}
