// Package enrich holds the processors: stages that batch, guard memory and
// change telemetry on its way from receivers to the WAL.
package enrich

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/obs-dev/obs/actors"
)

// BatchConfig is the Collector's `batch` processor configuration.
//
// obs acknowledges a client only after its data is in the WAL, so a batch
// that waited for `timeout` to fill would hold every client's answer that
// long. The in-pipeline batch therefore merges only what is already queued
// (never waits); the exporters read their WAL queue in batches of
// send_batch_size within timeout, which is where batching pays.
type BatchConfig struct {
	// SendBatchSize: items (log records, data points, spans) at which a
	// batch is sent. Default 8192.
	SendBatchSize int `yaml:"send_batch_size"`
	// SendBatchMaxSize: upper bound on a merged batch; 0 means no bound.
	SendBatchMaxSize int `yaml:"send_batch_max_size"`
	// Timeout: the longest a partial batch waits at the exporter. Default 200ms.
	Timeout time.Duration `yaml:"timeout"`
	// MetadataKeys and MetadataCardinalityLimit are accepted for
	// compatibility; obs does not split batches by client metadata.
	MetadataKeys             []string `yaml:"metadata_keys"`
	MetadataCardinalityLimit int      `yaml:"metadata_cardinality_limit"`
}

// DefaultBatchConfig returns the Collector's defaults.
func DefaultBatchConfig() BatchConfig {
	return BatchConfig{SendBatchSize: 8192, Timeout: 200 * time.Millisecond}
}

// Validate checks the configuration.
func (c BatchConfig) Validate() error {
	if c.SendBatchSize < 0 {
		return fmt.Errorf("send_batch_size: must not be negative")
	}
	if c.SendBatchMaxSize < 0 {
		return fmt.Errorf("send_batch_max_size: must not be negative")
	}
	if c.SendBatchMaxSize > 0 && c.SendBatchMaxSize < c.SendBatchSize {
		return fmt.Errorf("send_batch_max_size: must be at least send_batch_size (%d)", c.SendBatchSize)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("timeout: must not be negative")
	}
	return nil
}

// Batch merges envelopes that are queued together into one, keeping every
// merged envelope's ack, and completes them when the merged one completes.
type Batch struct {
	cfg    BatchConfig
	log    *slog.Logger
	queued func() int // envelopes waiting behind the current one

	// While every merged envelope carries its encoded request, the batch
	// stays encoded: raw is their concatenation (concatenated protobuf
	// messages of one type are one message with the repeated fields
	// appended) and nothing is decoded. The first envelope without Raw
	// turns it into decoded pdata in pending.
	signal actors.Signal
	raw    []byte
	// framed is raw behind one signal byte (actors.Batch.Framed), so the
	// WAL writer stores it without another copy; nil when the first
	// envelope came unframed and nothing was merged yet. owned: framed
	// is this stage's buffer (merges append in place), not an envelope's.
	framed       []byte
	owned        bool
	pending      actors.Batch
	decoded      bool
	pendingItems int
	acks         []*actors.Ack
	extra        []actors.KV
	origin       string
	peer         string // "" once envelopes of two clients were merged
	since        time.Time
}

// NewBatch validates cfg and returns the stage. queued reports how many
// envelopes wait in the stage's mailbox (actors.Ref.Len); nil means none.
func NewBatch(cfg BatchConfig, queued func() int, log *slog.Logger) (*Batch, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if queued == nil {
		queued = func() int { return 0 }
	}
	return &Batch{cfg: cfg, log: log, queued: queued}, nil
}

// SetQueued sets the mailbox-length probe after the stage was spawned.
func (b *Batch) SetQueued(f func() int) { b.queued = f }

// Consume implements actors.Stage.
func (b *Batch) Consume(ctx context.Context, env *actors.Envelope, emit actors.Emit) {
	n := env.Batch.Items()
	if b.acks != nil && (env.Batch.Signal != b.signal ||
		(b.cfg.SendBatchMaxSize > 0 && b.pendingItems+n > b.cfg.SendBatchMaxSize)) {
		b.flush(emit)
	}
	if err := b.add(env.Batch); err != nil {
		env.Ack.Done(err)
		return
	}
	if b.acks == nil {
		b.origin, b.peer = env.Origin, env.Peer
		b.since = time.Now()
	} else if b.peer != env.Peer {
		b.peer = ""
	}
	b.pendingItems += n
	b.acks = append(b.acks, env.Ack)
	b.extra = append(b.extra, env.Extra...)
	if b.queued() == 0 || (b.cfg.SendBatchSize > 0 && b.pendingItems >= b.cfg.SendBatchSize) {
		b.flush(emit)
	}
}

// add merges in into the pending batch, keeping it encoded while it can.
func (b *Batch) add(in actors.Batch) error {
	switch {
	case b.acks == nil && in.Raw != nil:
		b.signal, b.raw, b.decoded = in.Signal, in.Raw, false
		b.framed, b.owned = in.FramedRaw(), false
		return nil
	case b.acks == nil:
		b.signal, b.decoded = in.Signal, true
		b.pending = in.Empty()
	case !b.decoded && in.Raw != nil:
		if !b.owned {
			f := make([]byte, 1, 1+len(b.raw)+len(in.Raw))
			f[0] = byte(b.signal)
			b.framed, b.owned = append(f, b.raw...), true
		}
		b.framed = append(b.framed, in.Raw...)
		b.raw = b.framed[1:]
		return nil
	case !b.decoded:
		// The first envelope that was changed on its way: decode what
		// was merged so far and continue in pdata.
		p := actors.RawBatch(b.signal, b.raw, b.pendingItems)
		if err := p.Decode(); err != nil {
			return err
		}
		p.Raw = nil
		b.pending, b.raw, b.framed, b.owned, b.decoded = p, nil, nil, false, true
	}
	if err := in.Decode(); err != nil {
		return err
	}
	in.MoveTo(b.pending)
	return nil
}

// TickInterval implements actors.Ticker: a partial batch never waits
// longer than timeout, even if the mailbox probe is wrong.
func (b *Batch) TickInterval() time.Duration {
	if b.cfg.Timeout <= 0 {
		return 0
	}
	return b.cfg.Timeout
}

// Tick implements actors.Ticker.
func (b *Batch) Tick(_ context.Context, emit actors.Emit) {
	if b.acks != nil && time.Since(b.since) >= b.cfg.Timeout {
		b.flush(emit)
	}
}

// Flush implements actors.Flusher.
func (b *Batch) Flush(_ context.Context, emit actors.Emit) {
	if b.acks != nil {
		b.flush(emit)
	}
}

func (b *Batch) flush(emit actors.Emit) {
	acks := b.acks
	var ack *actors.Ack
	if len(acks) == 1 {
		ack = acks[0]
	} else {
		ack = actors.NewAckFunc(func(err error) {
			for _, a := range acks {
				a.Done(err)
			}
		})
	}
	batch := b.pending
	switch {
	case !b.decoded && b.framed != nil:
		batch = actors.RawFramedBatch(b.signal, b.framed, b.pendingItems)
	case !b.decoded:
		batch = actors.RawBatch(b.signal, b.raw, b.pendingItems)
	}
	env := &actors.Envelope{Batch: batch, Origin: b.origin, Peer: b.peer, Ack: ack, Extra: b.extra}
	b.pending, b.raw, b.decoded, b.pendingItems, b.acks, b.extra = actors.Batch{}, nil, false, 0, nil, nil
	b.framed, b.owned = nil, false
	if err := emit(env); err != nil {
		ack.Done(err)
	}
}
