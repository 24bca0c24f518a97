package export

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/obs-dev/obs/actors"
	"github.com/obs-dev/obs/wal"
)

// openWAL runs a real WAL in a temp dir until the test ends.
func openWAL(t *testing.T, dir string) *wal.DB {
	t.Helper()
	db, err := wal.Open(wal.DefaultConfig(dir), nil, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = db.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		require.NoError(t, db.Close())
	})
	return db
}

// scripted answers each Send with the next error of its script (nil once
// the script is used up) and records what it accepted.
type scripted struct {
	mu      sync.Mutex
	script  []error
	records int
	sends   int
	sizes   []int
}

func (s *scripted) Send(_ context.Context, sig actors.Signal, payload []byte) (SendResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sends++
	if len(s.script) > 0 {
		err := s.script[0]
		s.script = s.script[1:]
		if err != nil {
			return SendResult{}, err
		}
	}
	b, err := decodeProto(sig, payload)
	if err != nil {
		return SendResult{}, Permanent(err)
	}
	s.records += b.Items()
	s.sizes = append(s.sizes, len(payload))
	return SendResult{}, nil
}

func (s *scripted) Close() error { return nil }

func (s *scripted) got() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.records
}

func writeBatches(t *testing.T, db *wal.DB, q *wal.Queue, n, size int, raw bool) {
	t.Helper()
	w := NewQueueWriter("logs", db, []*wal.Queue{q}, 4, NewRefusedCounter(nil))
	for i := 0; i < n; i++ {
		b := testBatch(actors.SignalLogs, size)
		if raw {
			b.Raw = mustProto(t, b)
		}
		env := &actors.Envelope{Batch: b, Ack: actors.NewAck()}
		w.Consume(context.Background(), env, nil)
		require.NoError(t, env.Ack.Wait(context.Background()))
	}
	w.Flush(context.Background(), nil)
}

func runExporter(t *testing.T, e *Exporter) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.Run(ctx)
	}()
	return func() { cancel(); <-done }
}

func fastRetry() RetryConfig {
	r := DefaultRetryConfig()
	r.InitialInterval, r.MaxInterval = time.Millisecond, 5*time.Millisecond
	return r
}

func TestExporterDeliversAndDeletes(t *testing.T) {
	for _, raw := range []bool{false, true} {
		db := openWAL(t, t.TempDir())
		q, err := db.Queue("otlp")
		require.NoError(t, err)
		writeBatches(t, db, q, 20, 10, raw)
		s := &scripted{script: []error{errors.New("unavailable"), &ThrottleError{After: 2 * time.Millisecond}}}
		reg := prometheus.NewRegistry()
		m := NewExporterMetrics(reg)
		stop := runExporter(t, NewExporter("otlp", q, s, ExporterConfig{Consumers: 1, BatchSize: 50, Timeout: 20 * time.Millisecond, Retry: fastRetry()}, m, nil))
		require.Eventually(t, func() bool { return s.got() == 200 }, 10*time.Second, 5*time.Millisecond)
		require.Eventually(t, func() bool { return q.Stats().Entries == 0 }, 5*time.Second, 5*time.Millisecond, "confirmed entries are deleted")
		stop()
		require.Equal(t, 2.0, testutil.ToFloat64(m.retries.WithLabelValues("otlp")))
		require.Equal(t, 200.0, testutil.ToFloat64(m.sent.WithLabelValues("otlp", "logs")))
		require.LessOrEqual(t, s.sends, 2+200/50+1, "entries are merged into sends of up to BatchSize records")
	}
}

func TestExporterCapsMergedBytes(t *testing.T) {
	db := openWAL(t, t.TempDir())
	q, err := db.Queue("otlp")
	require.NoError(t, err)
	writeBatches(t, db, q, 20, 10, true) // entries of about 900 bytes
	s := &scripted{}
	stop := runExporter(t, NewExporter("otlp", q, s, ExporterConfig{Consumers: 1, BatchSize: 100000, MaxBatchBytes: 3000, Timeout: 20 * time.Millisecond}, NewExporterMetrics(nil), nil))
	require.Eventually(t, func() bool { return s.got() == 200 }, 10*time.Second, 5*time.Millisecond)
	stop()
	for _, n := range s.sizes {
		require.LessOrEqual(t, n, 3000, "a send merges entries only while under MaxBatchBytes")
	}
	require.Greater(t, len(s.sizes), 1)
}

func TestExporterDeadLettersPermanentErrors(t *testing.T) {
	db := openWAL(t, t.TempDir())
	q, err := db.Queue("otlp")
	require.NoError(t, err)
	writeBatches(t, db, q, 1, 7, false)
	s := &scripted{script: []error{Permanent(errors.New("400 bad request"))}}
	m := NewExporterMetrics(nil)
	stop := runExporter(t, NewExporter("otlp", q, s, ExporterConfig{Consumers: 1, Retry: fastRetry()}, m, nil))
	require.Eventually(t, func() bool { return q.Stats().DeadEntries == 1 }, 10*time.Second, 5*time.Millisecond)
	stop()
	require.Equal(t, 7.0, testutil.ToFloat64(m.dead.WithLabelValues("otlp", "logs", "permanent")))
	dead, err := db.DeadLetters("otlp")
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Contains(t, dead[0].Reason, "400 bad request")
	require.Equal(t, 0, s.got(), "nothing was delivered")
}

func TestExporterStopKeepsUnsentInWAL(t *testing.T) {
	dir := t.TempDir()
	db := openWAL(t, dir)
	q, err := db.Queue("otlp")
	require.NoError(t, err)
	writeBatches(t, db, q, 3, 5, false)
	// The backend is down for good: the exporter keeps retrying until stopped.
	down := make([]error, 1000)
	for i := range down {
		down[i] = errors.New("connection refused")
	}
	s := &scripted{script: down}
	stop := runExporter(t, NewExporter("otlp", q, s, ExporterConfig{Consumers: 2, Retry: fastRetry()}, NewExporterMetrics(nil), nil))
	require.Eventually(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.sends > 3 }, 5*time.Second, time.Millisecond)
	stop()
	require.EqualValues(t, 3, q.Stats().Entries, "unsent entries stay queued")
	// A new exporter (as after a restart) gets them all.
	s2 := &scripted{}
	stop = runExporter(t, NewExporter("otlp", q, s2, ExporterConfig{Consumers: 1}, NewExporterMetrics(nil), nil))
	require.Eventually(t, func() bool { return s2.got() == 15 }, 10*time.Second, 5*time.Millisecond)
	stop()
}

func TestQueueWriterRefusesWhenFull(t *testing.T) {
	cfg := wal.DefaultConfig(t.TempDir())
	cfg.MaxBytes = 64 << 10
	db, err := wal.Open(cfg, nil, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = db.Run(ctx) }()
	defer func() { cancel(); <-done; _ = db.Close() }()
	q, err := db.Queue("otlp")
	require.NoError(t, err)
	refused := NewRefusedCounter(nil)
	w := NewQueueWriter("logs", db, []*wal.Queue{q}, 4, refused)
	var lastErr error
	for i := 0; i < 200 && lastErr == nil; i++ {
		env := &actors.Envelope{Batch: testBatch(actors.SignalLogs, 50), Ack: actors.NewAck()}
		w.Consume(context.Background(), env, nil)
		lastErr = env.Ack.Wait(context.Background())
	}
	w.Flush(context.Background(), nil)
	require.ErrorIs(t, lastErr, actors.ErrRefused)
	var re *actors.RefusedError
	require.ErrorAs(t, lastErr, &re)
	require.Equal(t, "wal_full", re.Reason)
	require.Greater(t, testutil.ToFloat64(refused.WithLabelValues("logs", "wal_full")), 0.0)
}

// The gRPC exporter sends entries merged into one request as the WAL's
// payloads side by side (PartsSender), and the backend receives them as
// one request holding every record in order.
func TestExporterSendsMergedPartsOverGRPC(t *testing.T) {
	var sk mdSink
	tr := startReceiver(t, sk.consumers(t), nil)
	cfg := DefaultOTLPExporterConfig()
	cfg.Endpoint = tr.grpcAddr
	cfg.TLS.Insecure = true
	cfg.Compression = "none"
	snd, err := NewOTLPSender(cfg, nil, prometheus.NewRegistry())
	require.NoError(t, err) // the exporter closes it when it stops
	var _ PartsSender = snd

	db := openWAL(t, t.TempDir())
	q, err := db.Queue("otlp")
	require.NoError(t, err)
	// Queued before the exporter starts, so its first send can merge them.
	var want []string
	w := NewQueueWriter("logs", db, []*wal.Queue{q}, 4, NewRefusedCounter(nil))
	for i := range 5 {
		b := testBatch(actors.SignalLogs, 10)
		lrs := b.Logs.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords()
		for j := range lrs.Len() {
			body := fmt.Sprintf("entry %d record %d", i, j)
			lrs.At(j).Body().SetStr(body)
			want = append(want, body)
		}
		b.Raw = mustProto(t, b)
		env := &actors.Envelope{Batch: b, Ack: actors.NewAck()}
		w.Consume(context.Background(), env, nil)
		require.NoError(t, env.Ack.Wait(context.Background()))
	}
	w.Flush(context.Background(), nil)

	stop := runExporter(t, NewExporter("otlp", q, snd, ExporterConfig{Consumers: 1, BatchSize: 50, Timeout: time.Second, Retry: fastRetry()}, NewExporterMetrics(nil), nil))
	defer stop()
	var got []string
	requests := 0
	require.Eventually(t, func() bool {
		reqs, _ := sk.take()
		for _, r := range reqs {
			requests++
			b, err := decodeProto(actors.SignalLogs, r)
			require.NoError(t, err)
			rls := b.Logs.ResourceLogs()
			for i := range rls.Len() {
				lrs := rls.At(i).ScopeLogs().At(0).LogRecords()
				for j := range lrs.Len() {
					got = append(got, lrs.At(j).Body().Str())
				}
			}
		}
		return len(got) >= len(want)
	}, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, want, got)
	require.Equal(t, 1, requests, "5 entries of 10 records merged into one request of 50")
	require.Eventually(t, func() bool { return q.Stats().Entries == 0 }, 5*time.Second, 5*time.Millisecond)
}

// A protobuf request received over gRPC or HTTP (plain or compressed)
// arrives framed for the WAL: the payload QueueWriter appends is the
// receive buffer itself (signal byte, then the request as sent), not a
// copy.
func TestReceiveFramesPayloadForWAL(t *testing.T) {
	got := make(chan actors.Batch, 1)
	consumers := map[actors.Signal]ConsumeFunc{actors.SignalLogs: func(_ context.Context, b actors.Batch) error {
		got <- b
		return nil
	}}
	tr := startReceiver(t, consumers, nil)
	for _, tc := range []struct{ kind, compression string }{
		{"otlp", "none"}, {"otlp", "gzip"}, {"otlphttp", "none"}, {"otlphttp", "gzip"},
	} {
		t.Run(tc.kind+"/"+tc.compression, func(t *testing.T) {
			var snd Sender
			var err error
			if tc.kind == "otlp" {
				cfg := DefaultOTLPExporterConfig()
				cfg.Endpoint = tr.grpcAddr
				cfg.TLS.Insecure = true
				cfg.Compression = tc.compression
				snd, err = NewOTLPSender(cfg, nil, prometheus.NewRegistry())
			} else {
				cfg := DefaultOTLPHTTPExporterConfig()
				cfg.Endpoint = tr.httpURL + "/"
				cfg.Compression = tc.compression
				snd, err = NewOTLPHTTPSender(cfg, nil, prometheus.NewRegistry())
			}
			require.NoError(t, err)
			defer func() { require.NoError(t, snd.Close()) }()
			sent := mustProto(t, testBatch(actors.SignalLogs, 10))
			_, err = snd.Send(t.Context(), actors.SignalLogs, sent)
			require.NoError(t, err)

			b := <-got
			require.Equal(t, sent, b.Raw)
			p, err := encodePayload(b)
			require.NoError(t, err)
			require.Same(t, &b.Raw[0], &p[1], "payload shares the receive buffer")
			s, body, err := decodePayload(p)
			require.NoError(t, err)
			require.Equal(t, actors.SignalLogs, s)
			require.Equal(t, sent, body)

			// Without the frame (e.g. a processor replaced Raw) it is a copy.
			b.Raw = append([]byte(nil), b.Raw...)
			p, err = encodePayload(b)
			require.NoError(t, err)
			require.NotSame(t, &b.Raw[0], &p[1])
			_, body, err = decodePayload(p)
			require.NoError(t, err)
			require.Equal(t, sent, body)
		})
	}
}
