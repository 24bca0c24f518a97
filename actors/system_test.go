package actors

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// protoactor's process registry and throttlers keep background goroutines.
		goleak.IgnoreAnyFunction("github.com/asynkron/protoactor-go/actor.NewThrottleWithLogger.func1"),
		goleak.IgnoreTopFunction("time.Sleep"),
	)
}

func logsEnvelope(n int) *Envelope {
	l := plog.NewLogs()
	sl := l.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty()
	for i := 0; i < n; i++ {
		sl.LogRecords().AppendEmpty().Body().SetStr("line")
	}
	return &Envelope{Batch: LogsBatch(l), Ack: NewAck()}
}

// sink completes acks and counts records.
type sink struct {
	records atomic.Int64
	block   chan struct{} // when set, Consume waits on it
}

func (s *sink) Consume(ctx context.Context, env *Envelope, _ Emit) {
	if s.block != nil {
		<-s.block
	}
	s.records.Add(int64(env.Batch.Items()))
	env.Ack.Done(nil)
}

func TestPipelineAckAfterSink(t *testing.T) {
	sys := NewSystem(Options{}, nil, prometheus.NewRegistry())
	snk := &sink{}
	end, err := sys.Spawn("sink", snk, nil)
	require.NoError(t, err)
	var seen atomic.Int64
	proc, err := sys.Spawn("proc", Processor{Fn: func(_ context.Context, b Batch) error {
		seen.Add(int64(b.Items()))
		return nil
	}}, end)
	require.NoError(t, err)

	env := logsEnvelope(10)
	require.NoError(t, proc.Send(context.Background(), env))
	require.NoError(t, env.Ack.Wait(context.Background()))
	require.EqualValues(t, 10, snk.records.Load())
	require.EqualValues(t, 10, seen.Load())
	require.NoError(t, sys.Stop(context.Background(), proc, end))
}

func TestBackpressureBoundsMailbox(t *testing.T) {
	sys := NewSystem(Options{Mailbox: 2}, nil, nil)
	snk := &sink{block: make(chan struct{})}
	end, err := sys.Spawn("sink", snk, nil)
	require.NoError(t, err)

	ctx := context.Background()
	// One envelope is being consumed (blocked), two fill the mailbox.
	for i := 0; i < 3; i++ {
		require.NoError(t, end.Send(ctx, logsEnvelope(1)))
	}
	require.Eventually(t, func() bool { return end.Len() == 2 }, 5*time.Second, time.Millisecond)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err = end.Send(short, logsEnvelope(1))
	require.ErrorIs(t, err, context.DeadlineExceeded, "a full mailbox must make the sender wait, not grow")
	close(snk.block)
	require.NoError(t, end.Send(ctx, logsEnvelope(1)))
	require.NoError(t, sys.Stop(ctx, end))
	require.EqualValues(t, 4, snk.records.Load(), "stop drains the mailbox")
}

type panicky struct {
	mu     sync.Mutex
	panics int // panic on the first N envelopes
}

func (p *panicky) Consume(ctx context.Context, env *Envelope, emit Emit) {
	p.mu.Lock()
	if p.panics > 0 {
		p.panics--
		p.mu.Unlock()
		panic("boom")
	}
	p.mu.Unlock()
	env.Ack.Done(nil)
}

func TestPanicRestartsAndFailsAck(t *testing.T) {
	reg := prometheus.NewRegistry()
	sys := NewSystem(Options{InitialBackoff: time.Millisecond, MaxFailures: 3}, nil, reg)
	p := &panicky{panics: 1}
	ref, err := sys.Spawn("flaky", p, nil)
	require.NoError(t, err)
	other, err := sys.Spawn("other", &sink{}, nil)
	require.NoError(t, err)

	ctx := context.Background()
	env := logsEnvelope(1)
	require.NoError(t, ref.Send(ctx, env))
	var pe *PanicError
	require.ErrorAs(t, env.Ack.Wait(ctx), &pe)
	require.Equal(t, "flaky", pe.Component)

	// Restarted: the next envelope goes through; the other stage never stopped.
	env = logsEnvelope(1)
	require.NoError(t, ref.Send(ctx, env))
	require.NoError(t, env.Ack.Wait(ctx))
	env = logsEnvelope(1)
	require.NoError(t, other.Send(ctx, env))
	require.NoError(t, env.Ack.Wait(ctx))
	require.Equal(t, 1.0, testutil.ToFloat64(sys.metrics.restarts.WithLabelValues("flaky")))
	require.Empty(t, sys.Unhealthy())

	// Keeps failing: reported unhealthy by name.
	p.mu.Lock()
	p.panics = 3
	p.mu.Unlock()
	for i := 0; i < 3; i++ {
		env := logsEnvelope(1)
		require.NoError(t, ref.Send(ctx, env))
		require.Error(t, env.Ack.Wait(ctx))
	}
	require.Equal(t, []string{"flaky"}, sys.Unhealthy())
	require.NoError(t, sys.Stop(ctx))
}

func TestFanoutAcksAfterEveryBranch(t *testing.T) {
	sys := NewSystem(Options{}, nil, nil)
	a := &sink{block: make(chan struct{})}
	b := &sink{}
	ra, _ := sys.Spawn("a", a, nil)
	rb, _ := sys.Spawn("b", b, nil)
	fan, err := sys.Spawn("fan", &Fanout{Next: []*Ref{ra, rb}}, nil)
	require.NoError(t, err)
	ctx := context.Background()
	env := logsEnvelope(5)
	require.NoError(t, fan.Send(ctx, env))
	require.Eventually(t, func() bool { return b.records.Load() == 5 }, 5*time.Second, time.Millisecond)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, env.Ack.Wait(short), context.DeadlineExceeded, "one branch still holds the batch")
	close(a.block)
	require.NoError(t, env.Ack.Wait(ctx))
	require.EqualValues(t, 5, a.records.Load())
	require.NoError(t, sys.Stop(ctx, fan))
}

func TestProcessorErrorFailsAck(t *testing.T) {
	sys := NewSystem(Options{}, nil, nil)
	end, _ := sys.Spawn("sink", &sink{}, nil)
	bad := errors.New("bad batch")
	p, _ := sys.Spawn("p", Processor{Fn: func(context.Context, Batch) error { return bad }}, end)
	env := logsEnvelope(1)
	require.NoError(t, p.Send(context.Background(), env))
	require.ErrorIs(t, env.Ack.Wait(context.Background()), bad)
	require.NoError(t, sys.Stop(context.Background()))
}
