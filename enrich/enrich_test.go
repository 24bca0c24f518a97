package enrich

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/obs-dev/obs/actors"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
)

func logsEnv(n int) *actors.Envelope {
	l := plog.NewLogs()
	sl := l.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty()
	for i := 0; i < n; i++ {
		sl.LogRecords().AppendEmpty().Body().SetStr("x")
	}
	return &actors.Envelope{Batch: actors.LogsBatch(l), Ack: actors.NewAck()}
}

type collect struct{ envs []*actors.Envelope }

func (c *collect) emit(e *actors.Envelope) error { c.envs = append(c.envs, e); return nil }

func TestBatchMergesWhatIsQueued(t *testing.T) {
	queued := 2
	b, err := NewBatch(BatchConfig{SendBatchSize: 100, Timeout: time.Second}, func() int { return queued }, nil)
	require.NoError(t, err)
	var out collect
	in := []*actors.Envelope{logsEnv(3), logsEnv(4), logsEnv(5)}
	for _, e := range in {
		b.Consume(context.Background(), e, out.emit)
		queued--
	}
	require.Len(t, out.envs, 1, "three queued envelopes become one batch")
	require.Equal(t, 12, out.envs[0].Batch.Items())

	merged := out.envs[0]
	short, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	require.Error(t, in[0].Ack.Wait(short), "no client is answered before the merged batch is durable")
	fail := errors.New("wal down")
	merged.Ack.Done(fail)
	for _, e := range in {
		require.ErrorIs(t, e.Ack.Wait(context.Background()), fail)
	}
}

func TestBatchRespectsSizes(t *testing.T) {
	cases := []struct {
		name      string
		cfg       BatchConfig
		sizes     []int
		wantItems []int
	}{
		{"flush at send_batch_size", BatchConfig{SendBatchSize: 5}, []int{3, 3, 3}, []int{6}},
		{"max size splits before overflow", BatchConfig{SendBatchSize: 5, SendBatchMaxSize: 5}, []int{3, 3, 3}, []int{3, 3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := NewBatch(tc.cfg, func() int { return 100 }, nil) // always more queued
			require.NoError(t, err)
			var out collect
			for _, n := range tc.sizes {
				b.Consume(context.Background(), logsEnv(n), out.emit)
			}
			var got []int
			for _, e := range out.envs {
				got = append(got, e.Batch.Items())
			}
			require.Equal(t, tc.wantItems, got)
			b.Flush(context.Background(), out.emit)
			total := 0
			for _, e := range out.envs {
				total += e.Batch.Items()
			}
			require.Equal(t, 9, total, "flush on stop keeps every record")
		})
	}
}

func TestBatchConfigValidate(t *testing.T) {
	require.Error(t, BatchConfig{SendBatchSize: 10, SendBatchMaxSize: 5}.Validate())
	require.NoError(t, DefaultBatchConfig().Validate())
}

func TestMemoryLimiterRefusesAboveSoftLimit(t *testing.T) {
	m, err := NewMemoryLimiter("memory_limiter", MemoryLimiterConfig{CheckInterval: time.Second, LimitMiB: 100, SpikeLimitMiB: 20}, nil, nil)
	require.NoError(t, err)
	used := uint64(10 << 20)
	m.usage = func() uint64 { return used }
	m.check(time.Now())
	var out collect
	e := logsEnv(2)
	m.Consume(context.Background(), e, out.emit)
	require.Len(t, out.envs, 1)

	used = 85 << 20 // above 100-20
	m.check(time.Now())
	e = logsEnv(2)
	m.Consume(context.Background(), e, out.emit)
	require.Len(t, out.envs, 1)
	err = e.Ack.Wait(context.Background())
	require.ErrorIs(t, err, actors.ErrRefused)
	var re *actors.RefusedError
	require.ErrorAs(t, err, &re)
	require.Equal(t, time.Second, re.RetryAfter)

	used = 50 << 20
	m.check(time.Now())
	m.Consume(context.Background(), logsEnv(1), out.emit)
	require.Len(t, out.envs, 2, "accepts again once below the soft limit")
}

func TestMemoryLimiterConfig(t *testing.T) {
	for _, c := range []MemoryLimiterConfig{
		{},
		{CheckInterval: time.Second},
		{CheckInterval: time.Second, LimitMiB: 10, SpikeLimitMiB: 10},
		{CheckInterval: time.Second, LimitPercentage: 80, SpikeLimitPercentage: 90},
	} {
		require.Error(t, c.Validate(), "%+v", c)
	}
	m, err := NewMemoryLimiter("m", MemoryLimiterConfig{CheckInterval: time.Second, LimitPercentage: 80, SpikeLimitPercentage: 15}, nil, nil)
	require.NoError(t, err)
	require.Greater(t, m.hard, m.soft)
}

func TestBatchKeepsRawConcatenation(t *testing.T) {
	enc := func(e *actors.Envelope) []byte {
		b, err := plogotlpRequest(e.Batch.Logs)
		require.NoError(t, err)
		return b
	}
	queued := 1
	b, err := NewBatch(BatchConfig{SendBatchSize: 100}, func() int { return queued }, nil)
	require.NoError(t, err)
	var out collect
	e1, e2 := logsEnv(2), logsEnv(3)
	e1.Batch.Raw, e2.Batch.Raw = enc(e1), enc(e2)
	b.Consume(context.Background(), e1, out.emit)
	queued = 0
	b.Consume(context.Background(), e2, out.emit)
	require.Len(t, out.envs, 1)
	raw := out.envs[0].Batch.Raw
	require.NotNil(t, raw)
	got, err := decodeLogsRequest(raw)
	require.NoError(t, err)
	require.Equal(t, 5, got.LogRecordCount(), "concatenated requests decode to every record")

	// One envelope without Raw: the merged batch has none either.
	queued = 1
	e3, e4 := logsEnv(1), logsEnv(1)
	e3.Batch.Raw = enc(e3)
	b.Consume(context.Background(), e3, out.emit)
	queued = 0
	b.Consume(context.Background(), e4, out.emit)
	require.Nil(t, out.envs[1].Batch.Raw)
}

func plogotlpRequest(l plog.Logs) ([]byte, error) {
	return plogotlp.NewExportRequestFromLogs(l).MarshalProto()
}

func decodeLogsRequest(b []byte) (plog.Logs, error) {
	r := plogotlp.NewExportRequest()
	err := r.UnmarshalProto(b)
	return r.Logs(), err
}

func TestBatchStaysEncodedUntilAChangedEnvelope(t *testing.T) {
	queued := 2
	b, err := NewBatch(BatchConfig{SendBatchSize: 1000}, func() int { return queued }, nil)
	require.NoError(t, err)
	var out collect
	raw := func(n int) *actors.Envelope {
		e := logsEnv(n)
		p, err := plogotlpRequest(e.Batch.Logs)
		require.NoError(t, err)
		e.Batch = actors.RawBatch(actors.SignalLogs, p, n)
		return e
	}
	b.Consume(context.Background(), raw(2), out.emit)
	queued--
	b.Consume(context.Background(), raw(3), out.emit)
	queued--
	b.Consume(context.Background(), raw(4), out.emit)
	require.Len(t, out.envs, 1)
	got := out.envs[0].Batch
	require.True(t, got.Encoded(), "only encoded envelopes: nothing was decoded")
	require.Equal(t, 9, got.Items())
	require.NoError(t, got.Decode())
	require.Equal(t, 9, got.Logs.LogRecordCount())

	// Encoded, then an envelope some processor changed (no Raw): the
	// merged batch is decoded and holds both.
	queued = 1
	b.Consume(context.Background(), raw(2), out.emit)
	queued = 0
	b.Consume(context.Background(), logsEnv(5), out.emit)
	require.Len(t, out.envs, 2)
	got = out.envs[1].Batch
	require.False(t, got.Encoded())
	require.Nil(t, got.Raw)
	require.Equal(t, 7, got.Logs.LogRecordCount())
}

// A framed envelope (signal byte, then the request: the receiver's own
// buffer) leaves the stage framed, alone or merged, so the WAL writer
// stores it without copying (export.encodePayload); merging never writes
// into an envelope's buffer.
func TestBatchKeepsFraming(t *testing.T) {
	framed := func(n int) (*actors.Envelope, []byte) {
		e := logsEnv(n)
		p, err := plogotlpRequest(e.Batch.Logs)
		require.NoError(t, err)
		f := append(make([]byte, 1, 1+len(p)+64), p...) // spare capacity a careless merge would write into
		f[0] = byte(actors.SignalLogs)
		e.Batch = actors.RawFramedBatch(actors.SignalLogs, f, n)
		return e, f
	}
	queued := 0
	b, err := NewBatch(BatchConfig{SendBatchSize: 1000}, func() int { return queued }, nil)
	require.NoError(t, err)
	var out collect

	e, f := framed(2)
	b.Consume(context.Background(), e, out.emit)
	require.Len(t, out.envs, 1)
	require.NotNil(t, out.envs[0].Batch.FramedRaw(), "a lone envelope leaves framed")
	require.Same(t, &f[0], &out.envs[0].Batch.FramedRaw()[0], "a lone envelope passes with its receive buffer")

	queued = 2
	e1, f1 := framed(2)
	before := append([]byte(nil), f1[:cap(f1)]...)
	b.Consume(context.Background(), e1, out.emit)
	queued--
	e2, _ := framed(3)
	b.Consume(context.Background(), e2, out.emit)
	queued--
	e3 := logsEnv(1)
	p, err := plogotlpRequest(e3.Batch.Logs)
	require.NoError(t, err)
	e3.Batch = actors.RawBatch(actors.SignalLogs, p, 1) // unframed joins too
	b.Consume(context.Background(), e3, out.emit)
	require.Len(t, out.envs, 2)
	got := out.envs[1].Batch
	fr := got.FramedRaw()
	require.NotNil(t, fr, "merged envelopes leave framed")
	require.Equal(t, byte(actors.SignalLogs), fr[0])
	require.Equal(t, before, f1[:cap(f1)], "the first envelope's buffer is untouched")
	logs, err := decodeLogsRequest(got.Raw)
	require.NoError(t, err)
	require.Equal(t, 6, logs.LogRecordCount())
}
