package actors

import "context"

// Fanout is the stage at a branch of the pipeline graph: it hands the
// envelope to every next stage, cloning the payload for all but the last,
// and the ack completes only when every branch has completed it.
type Fanout struct {
	Next []*Ref
}

// Consume implements Stage.
func (f *Fanout) Consume(ctx context.Context, env *Envelope, _ Emit) {
	n := len(f.Next)
	if n == 0 {
		env.Ack.Done(nil)
		return
	}
	env.Ack.Add(n - 1)
	for i, r := range f.Next {
		e := env
		if i < n-1 {
			e = &Envelope{Batch: env.Batch.Clone(), Origin: env.Origin, Peer: env.Peer, Ack: env.Ack, Extra: env.Extra}
		}
		if err := r.Send(ctx, e); err != nil {
			e.Ack.Done(err)
		}
	}
}

// ProcessFunc changes a batch in place; an error fails the envelope (the
// client is told, the data is not silently lost).
type ProcessFunc func(ctx context.Context, b Batch) error

// Processor runs a ProcessFunc as a stage that forwards to the next stage.
type Processor struct {
	Fn ProcessFunc
}

// Consume implements Stage.
func (p Processor) Consume(ctx context.Context, env *Envelope, emit Emit) {
	if err := env.Batch.Decode(); err != nil {
		env.Ack.Done(err)
		return
	}
	env.Batch.Raw, env.Batch.Framed = nil, nil // the func may change the payload
	if err := p.Fn(WithPeer(ctx, env.Peer), env.Batch); err != nil {
		env.Ack.Done(err)
		return
	}
	if err := emit(env); err != nil {
		env.Ack.Done(err)
	}
}
