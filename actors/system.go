package actors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
)

// Stage is the contract every component implements to run as an actor.
// Consume owns env: it either passes it on with emit (which blocks while
// the next stage is full: that is the backpressure) or completes env.Ack.
// Consume is never called concurrently for one stage.
type Stage interface {
	Consume(ctx context.Context, env *Envelope, emit Emit)
}

// Emit hands an envelope to the next stage. It fails only when the system
// is shutting down; the envelope then still belongs to the caller.
type Emit func(*Envelope) error

// Flusher is a Stage that holds envelopes (a batcher): Flush is called
// when the stage stops, before its downstream stops.
type Flusher interface {
	Flush(ctx context.Context, emit Emit)
}

// Ticker is a Stage that wants Tick calls every TickInterval (timeouts).
type Ticker interface {
	TickInterval() time.Duration
	Tick(ctx context.Context, emit Emit)
}

// PanicError completes the ack of an envelope whose stage panicked; the
// receiver answers with a retryable error and the client sends it again.
type PanicError struct {
	Component string
	Value     any
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("component %s panicked: %v", e.Component, e.Value)
}

// Options tune a System. Zero values take the defaults.
type Options struct {
	// Mailbox is the bound on queued envelopes per stage (default 64).
	Mailbox int
	// FailureWindow and MaxFailures decide when a restarting stage is
	// unhealthy: MaxFailures panics within FailureWindow (default 5 in 1m).
	FailureWindow time.Duration
	MaxFailures   int
	// InitialBackoff and MaxBackoff bound the restart delay (100ms, 30s).
	InitialBackoff, MaxBackoff time.Duration
}

func (o Options) withDefaults() Options {
	if o.Mailbox <= 0 {
		o.Mailbox = 64
	}
	if o.FailureWindow <= 0 {
		o.FailureWindow = time.Minute
	}
	if o.MaxFailures <= 0 {
		o.MaxFailures = 5
	}
	if o.InitialBackoff <= 0 {
		o.InitialBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	return o
}

// System runs stages as protoactor-go actors, each with a bounded mailbox
// and a restarting supervisor.
type System struct {
	opts    Options
	log     *slog.Logger
	as      *actor.ActorSystem
	sup     *supervisor
	metrics *metrics

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // tickers

	mu   sync.Mutex
	refs map[string]*Ref
}

// NewSystem creates an actor system. reg may be nil.
func NewSystem(opts Options, log *slog.Logger, reg prometheus.Registerer) *System {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	opts = opts.withDefaults()
	libLog := log.With("lib", "protoactor")
	as := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		// protoactor logs every dead letter and supervision step at Info;
		// ours are counted in metrics, so only its warnings pass.
		return slog.New(levelFilter{min: slog.LevelWarn, h: libLog.Handler()})
	}))
	ctx, cancel := context.WithCancel(context.Background())
	s := &System{
		opts:    opts,
		log:     log,
		as:      as,
		ctx:     ctx,
		cancel:  cancel,
		refs:    map[string]*Ref{},
		metrics: newMetrics(reg),
	}
	s.sup = &supervisor{sys: s, byPID: map[string]*Ref{}}
	s.metrics.system = s
	return s
}

// Ref addresses a running stage. Send blocks while its mailbox is full.
type Ref struct {
	name  string
	sys   *System
	pid   *actor.PID
	slots chan struct{} // one token per queued envelope: the mailbox bound
	stage Stage

	tickPending atomic.Bool
	stopTicker  chan struct{}
	stopped     atomic.Bool

	failures []time.Time // guarded by sys.sup.mu
	restarts uint64      // guarded by sys.sup.mu
}

// Name is the component id the stage was spawned with.
func (r *Ref) Name() string { return r.name }

// Len is the number of envelopes queued for the stage.
func (r *Ref) Len() int { return len(r.slots) }

// Cap is the mailbox bound.
func (r *Ref) Cap() int { return cap(r.slots) }

// Send queues env for the stage, waiting while the mailbox is full until
// ctx ends. After an error env still belongs to the caller.
func (r *Ref) Send(ctx context.Context, env *Envelope) error {
	if r.stopped.Load() {
		return fmt.Errorf("send to %s: %w", r.name, errStopped)
	}
	select {
	case r.slots <- struct{}{}:
	default:
		start := time.Now()
		select {
		case r.slots <- struct{}{}:
			r.sys.metrics.sendWait.WithLabelValues(r.name).Add(time.Since(start).Seconds())
		case <-ctx.Done():
			r.sys.metrics.sendWait.WithLabelValues(r.name).Add(time.Since(start).Seconds())
			return fmt.Errorf("send to %s: %w", r.name, ctx.Err())
		case <-r.sys.ctx.Done():
			return fmt.Errorf("send to %s: %w", r.name, errStopped)
		}
	}
	r.sys.as.Root.Send(r.pid, env)
	return nil
}

var errStopped = errors.New("stage stopped")

type tick struct{}

// Spawn starts stage as an actor named name whose emit goes to next (nil
// for a sink). Build pipelines from the exporter end back to the receiver.
func (s *System) Spawn(name string, stage Stage, next *Ref) (*Ref, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.refs[name]; ok {
		return nil, fmt.Errorf("spawn %s: name in use", name)
	}
	r := &Ref{
		name:       name,
		sys:        s,
		slots:      make(chan struct{}, s.opts.Mailbox),
		stage:      stage,
		stopTicker: make(chan struct{}),
	}
	emit := func(env *Envelope) error {
		if next == nil {
			panic("BUG: actors: stage " + name + " emitted without a next stage")
		}
		return next.Send(s.ctx, env)
	}
	a := &stageActor{ref: r, emit: emit, log: s.log.With("component", name)}
	props := actor.PropsFromProducer(func() actor.Actor { return a },
		// The ring buffer holds the slot-bounded envelopes plus ticks.
		actor.WithMailbox(actor.Bounded(s.opts.Mailbox+4)),
		actor.WithGuardian(s.sup),
	)
	pid, err := s.as.Root.SpawnNamed(props, name)
	if err != nil {
		return nil, fmt.Errorf("spawn %s: %w", name, err)
	}
	r.pid = pid
	s.refs[name] = r
	s.sup.register(r)
	if t, ok := stage.(Ticker); ok && t.TickInterval() > 0 {
		s.wg.Add(1)
		go s.runTicker(r, t.TickInterval())
	}
	return r, nil
}

func (s *System) runTicker(r *Ref, every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			// One pending tick at most: a slow stage is not flooded.
			if r.tickPending.CompareAndSwap(false, true) {
				s.as.Root.Send(r.pid, tick{})
			}
		case <-r.stopTicker:
			return
		case <-s.ctx.Done():
			return
		}
	}
}

// Stop drains and stops the given stages one after another, in the order
// given (upstream first), so each flushes into a downstream that still
// runs. Stages not named are stopped afterwards.
func (s *System) Stop(ctx context.Context, order ...*Ref) error {
	// Past the deadline, stages blocked on downstream or on I/O are
	// cancelled: their envelopes fail and the clients, never answered
	// yes, send them again.
	stopWatch := context.AfterFunc(ctx, s.cancel)
	defer stopWatch()
	var errs []error
	stopped := map[*Ref]bool{}
	stop := func(r *Ref) {
		if stopped[r] {
			return
		}
		stopped[r] = true
		r.stopped.Store(true)
		close(r.stopTicker)
		// Poison is queued behind the envelopes already in the mailbox, so
		// they are processed first; then Stopping flushes the stage.
		if err := s.as.Root.PoisonFuture(r.pid).Wait(); err != nil && ctx.Err() == nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", r.name, err))
		}
	}
	for _, r := range order {
		stop(r)
	}
	s.mu.Lock()
	rest := make([]*Ref, 0, len(s.refs))
	for _, r := range s.refs {
		rest = append(rest, r)
	}
	s.mu.Unlock()
	sort.Slice(rest, func(i, j int) bool { return rest[i].name < rest[j].name })
	for _, r := range rest {
		stop(r)
	}
	s.cancel()
	s.wg.Wait()
	s.as.Shutdown()
	return errors.Join(errs...)
}

// Unhealthy names the stages that failed MaxFailures times within
// FailureWindow; /readyz reports them.
func (s *System) Unhealthy() []string {
	return s.sup.unhealthy(time.Now())
}

// Refs lists the running stages, sorted by name.
func (s *System) Refs() []*Ref {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Ref, 0, len(s.refs))
	for _, r := range s.refs {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

type stageActor struct {
	ref  *Ref
	emit Emit
	log  *slog.Logger
}

func (a *stageActor) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *Envelope:
		<-a.ref.slots
		a.consume(m)
	case tick:
		a.ref.tickPending.Store(false)
		if t, ok := a.ref.stage.(Ticker); ok {
			t.Tick(a.ref.sys.ctx, a.emit)
		}
	case *actor.Stopping:
		if f, ok := a.ref.stage.(Flusher); ok {
			f.Flush(a.ref.sys.ctx, a.emit)
		}
	}
}

func (a *stageActor) consume(env *Envelope) {
	defer func() {
		if v := recover(); v != nil {
			// The envelope is lost to this stage: fail its ack so the
			// receiver tells the client to retry, then let the supervisor
			// restart us.
			env.Ack.Done(&PanicError{Component: a.ref.name, Value: v})
			panic(v)
		}
	}()
	a.ref.sys.metrics.processed.WithLabelValues(a.ref.name).Inc()
	a.ref.stage.Consume(a.ref.sys.ctx, env, a.emit)
}

// supervisor restarts a failed stage after an exponential backoff and
// keeps the failure history that decides health.
type supervisor struct {
	sys   *System
	mu    sync.Mutex
	byPID map[string]*Ref
}

func (s *supervisor) register(r *Ref) {
	s.mu.Lock()
	s.byPID[r.pid.Id] = r
	s.mu.Unlock()
}

func (s *supervisor) HandleFailure(_ *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, _ *actor.RestartStatistics, reason, _ any) {
	now := time.Now()
	s.mu.Lock()
	r := s.byPID[child.Id]
	var recent int
	if r != nil {
		r.failures = append(pruneBefore(r.failures, now.Add(-s.sys.opts.FailureWindow)), now)
		r.restarts++
		recent = len(r.failures)
	}
	s.mu.Unlock()
	name := child.Id
	if r != nil {
		name = r.name
	}
	s.sys.metrics.restarts.WithLabelValues(name).Inc()
	delay := s.sys.opts.InitialBackoff << min(max(recent-1, 0), 16)
	if delay > s.sys.opts.MaxBackoff || delay <= 0 {
		delay = s.sys.opts.MaxBackoff
	}
	s.sys.log.Error("component panicked; restarting", "component", name, "err", fmt.Sprint(reason),
		"failures_in_window", recent, "backoff", delay)
	time.AfterFunc(delay, func() { sup.RestartChildren(child) })
}

func (s *supervisor) unhealthy(now time.Time) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.byPID {
		r.failures = pruneBefore(r.failures, now.Add(-s.sys.opts.FailureWindow))
		if len(r.failures) >= s.sys.opts.MaxFailures {
			out = append(out, r.name)
		}
	}
	sort.Strings(out)
	return out
}

func pruneBefore(ts []time.Time, cut time.Time) []time.Time {
	i := 0
	for i < len(ts) && ts[i].Before(cut) {
		i++
	}
	return ts[i:]
}

type levelFilter struct {
	min slog.Level
	h   slog.Handler
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.h.Enabled(ctx, l)
}
func (f levelFilter) Handle(ctx context.Context, r slog.Record) error { return f.h.Handle(ctx, r) }
func (f levelFilter) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFilter{min: f.min, h: f.h.WithAttrs(a)}
}
func (f levelFilter) WithGroup(g string) slog.Handler {
	return levelFilter{min: f.min, h: f.h.WithGroup(g)}
}
