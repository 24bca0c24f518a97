package actors

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrRefused marks a batch that was not accepted because the pipeline is
// full (memory limit, WAL size cap, mailbox wait deadline). Receivers turn it
// into gRPC RESOURCE_EXHAUSTED or HTTP 429 with Retry-After; the client keeps
// the data and retries.
var ErrRefused = errors.New("refused")

// RefusedError says why a batch was refused and when to retry.
type RefusedError struct {
	Reason     string        // e.g. "wal_full", "memory_limit"
	RetryAfter time.Duration // a hint for the client
}

func (e *RefusedError) Error() string { return "refused: " + e.Reason }

// Is makes errors.Is(err, ErrRefused) true for every RefusedError.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Ack follows one batch through the pipeline. It completes once every copy
// of the batch has been made durable (or failed): only then may a receiver
// confirm upstream. Add is called before a copy is handed on; each copy's
// holder calls Done exactly once.
type Ack struct {
	mu      sync.Mutex
	pending int
	err     error
	done    chan struct{}
	onDone  func(error)
}

// NewAck returns an ack with one pending holder.
func NewAck() *Ack { return &Ack{pending: 1, done: make(chan struct{})} }

// NewAckFunc returns an ack with one pending holder that calls f with the
// first error (or nil) when the last holder is done. A stage that merges
// envelopes uses it to complete the merged envelopes' acks.
func NewAckFunc(f func(error)) *Ack {
	return &Ack{pending: 1, done: make(chan struct{}), onDone: f}
}

// Add registers n more holders.
func (a *Ack) Add(n int) {
	if a == nil {
		return
	}
	a.mu.Lock()
	if a.pending <= 0 {
		a.mu.Unlock()
		panic("BUG: actors: Ack.Add after completion")
	}
	a.pending += n
	a.mu.Unlock()
}

// Done is called once by each holder; the first non-nil error wins.
func (a *Ack) Done(err error) {
	if a == nil {
		return
	}
	a.mu.Lock()
	if a.pending <= 0 {
		a.mu.Unlock()
		panic("BUG: actors: Ack.Done called too often")
	}
	if err != nil && a.err == nil {
		a.err = err
	}
	a.pending--
	last := a.pending == 0
	err = a.err
	a.mu.Unlock()
	if last {
		close(a.done)
		if a.onDone != nil {
			a.onDone(err)
		}
	}
}

// Wait blocks until the ack completes or ctx ends.
func (a *Ack) Wait(ctx context.Context) error {
	select {
	case <-a.done:
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Envelope carries a batch between actors. The payload changes hands with
// the envelope: the sender never touches it again.
type Envelope struct {
	Batch  Batch
	Origin string // the receiver's component id, for metrics and logs
	// Peer is the network address of the client that sent the batch
	// (host:port), when a receiver knows it; "" after merging batches of
	// different clients. k8sattributes associates pods by it.
	Peer string
	Ack  *Ack
	// Extra holds key/value pairs that must be written in the same WAL
	// transaction as the batch (a file tailer's offsets).
	Extra []KV
}

// KV is one key/value pair written beside a batch.
type KV struct {
	Key, Value []byte
}

type peerKey struct{}

// WithPeer returns ctx carrying the client address of the batch in hand.
func WithPeer(ctx context.Context, addr string) context.Context {
	if addr == "" {
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, addr)
}

// PeerFrom returns the client address WithPeer stored, or "".
func PeerFrom(ctx context.Context) string {
	s, _ := ctx.Value(peerKey{}).(string)
	return s
}
