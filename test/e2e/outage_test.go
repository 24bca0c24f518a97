package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/obs-dev/obs/test/otelpeer"
)

// makeBulkyLogs returns n log records with ids "<prefix>-<req>-<i>" and a
// 1 KiB body of random hex, which the WAL's compression cannot shrink much.
func makeBulkyLogs(prefix string, req, n int) (plog.Logs, []string) {
	rng := rand.New(rand.NewPCG(uint64(req), uint64(len(prefix))))
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "e2e-outage")
	lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
	ids := make([]string, n)
	raw := make([]byte, 512)
	for i := range n {
		for j := range raw {
			raw[j] = byte(rng.Uint32())
		}
		ids[i] = fmt.Sprintf("%s-%d-%d", prefix, req, i)
		lr := lrs.AppendEmpty()
		lr.Attributes().PutStr("id", ids[i])
		lr.Body().SetStr(hex.EncodeToString(raw))
		lr.SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	}
	return ld, ids
}

// outageClient sends batches over one protocol until stopped, retrying a
// refused batch, and remembers every id obs accepted.
type outageClient struct {
	mu       sync.Mutex
	accepted []string
	// refused counts RESOURCE_EXHAUSTED / 429 answers; withRetry those that
	// carried RetryInfo / Retry-After; other counts anything else.
	refused, withRetry, other atomic.Int64
	lastErr                   atomic.Value
}

// send delivers one request; refused reports a push back and its wait.
type sendFunc func(ctx context.Context, req plogotlp.ExportRequest) (refused bool, retryAfter time.Duration, err error)

func grpcSend(client plogotlp.GRPCClient) sendFunc {
	return func(ctx context.Context, req plogotlp.ExportRequest) (bool, time.Duration, error) {
		_, err := client.Export(ctx, req)
		if err == nil {
			return false, 0, nil
		}
		st := status.Convert(err)
		if st.Code() != codes.ResourceExhausted {
			return false, 0, err
		}
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok {
				return true, ri.GetRetryDelay().AsDuration(), err
			}
		}
		return true, 0, err
	}
}

func httpSend(url string) sendFunc {
	hc := &http.Client{Timeout: 15 * time.Second}
	return func(ctx context.Context, req plogotlp.ExportRequest) (bool, time.Duration, error) {
		body, err := req.MarshalProto()
		if err != nil {
			return false, 0, err
		}
		hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return false, 0, err
		}
		hreq.Header.Set("Content-Type", "application/x-protobuf")
		rsp, err := hc.Do(hreq)
		if err != nil {
			return false, 0, err
		}
		msg, _ := io.ReadAll(rsp.Body)
		rsp.Body.Close()
		switch rsp.StatusCode {
		case http.StatusOK:
			return false, 0, nil
		case http.StatusTooManyRequests:
			secs, _ := strconv.Atoi(rsp.Header.Get("Retry-After"))
			return true, time.Duration(secs) * time.Second, fmt.Errorf("http 429: %q", msg)
		}
		return false, 0, fmt.Errorf("http %d: %q", rsp.StatusCode, msg)
	}
}

// run sends batches of n records until ctx ends.
func (c *outageClient) run(ctx context.Context, prefix string, n int, send sendFunc) {
	for req := 0; ctx.Err() == nil; req++ {
		ld, ids := makeBulkyLogs(prefix, req, n)
		r := plogotlp.NewExportRequestFromLogs(ld)
		for ctx.Err() == nil {
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			refused, after, err := send(cctx, r)
			cancel()
			if err == nil {
				c.mu.Lock()
				c.accepted = append(c.accepted, ids...)
				c.mu.Unlock()
				break
			}
			if ctx.Err() != nil {
				return // the answer may be lost; this batch is not counted as accepted
			}
			c.lastErr.Store(err.Error())
			wait := 100 * time.Millisecond
			if refused {
				c.refused.Add(1)
				if after > 0 {
					c.withRetry.Add(1)
					// Honour the hint, capped so the push back is probed often.
					wait = min(after, time.Second)
				}
			} else {
				c.other.Add(1)
			}
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return
			}
		}
	}
}

func (c *outageClient) ids() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.accepted...)
}

// restartSink starts a sink on the addresses of a stopped one, writing to
// new files.
func restartSink(t *testing.T, old *otelpeer.Sink) *otelpeer.Sink {
	t.Helper()
	dir := t.TempDir()
	c := otelpeer.Start(t, otelpeer.SinkConfig(old.GRPCAddr, old.HTTPAddr, dir), old.GRPCAddr, old.HTTPAddr)
	c.GRPCAddr, c.HTTPAddr = old.GRPCAddr, old.HTTPAddr
	return &otelpeer.Sink{Collector: c,
		LogsPath:    filepath.Join(dir, "logs.jsonl"),
		MetricsPath: filepath.Join(dir, "metrics.jsonl"),
		TracesPath:  filepath.Join(dir, "traces.jsonl"),
	}
}

// TestBackendOutage stops the backend for 60 s while clients keep sending
// into obs with a 16 MiB WAL: obs accepts until the WAL is full, then
// pushes back; when the backend returns on the same port every accepted
// record arrives and the WAL gives its space back.
func TestBackendOutage(t *testing.T) {
	const (
		outage    = 60 * time.Second
		walCap    = 16 << 20
		batchSize = 200
	)
	sink := otelpeer.StartSink(t)
	obs := newObs(t, obsConfig{
		Exporters:   otlpExporter("otlp/sink", sink.GRPCAddr),
		ExporterIDs: []string{"otlp/sink"},
		WALMaxBytes: "16MiB",
		// Merged sends of at most 1000 records (~1 MiB) stay under the
		// backend's 4 MiB message limit; TestBacklogMergedUnderBackendLimit
		// covers the default.
		Processors:   "  batch:\n    send_batch_size: 1000\n    send_batch_max_size: 1000\n",
		ProcessorIDs: []string{"batch"},
	})
	obs.Start()
	capacity, err := obs.Metric("obs_wal_capacity_bytes")
	require.NoError(t, err)
	require.Equal(t, float64(walCap), capacity)

	grpcClient := plogotlp.NewGRPCClient(dial(t, obs.Addr("grpc")))
	// The path works before the outage.
	warm, warmIDs := makeBulkyLogs("warm", 0, 10)
	_, err = grpcClient.Export(context.Background(), plogotlp.NewExportRequestFromLogs(warm))
	require.NoError(t, err)
	sink.WaitLogRecords(t, len(warmIDs), 30*time.Second)

	require.NoError(t, sink.Stop())
	outageStart := time.Now()

	var gc, hc outageClient
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); gc.run(ctx, "grpc", batchSize, grpcSend(grpcClient)) }()
	go func() {
		defer wg.Done()
		hc.run(ctx, "http", batchSize, httpSend("http://"+obs.Addr("http")+"/v1/logs"))
	}()
	stopClients := func() {
		cancel()
		wg.Wait()
	}
	defer stopClients()

	// Watch the WAL while the backend is down.
	var peakUsed, peakDisk float64
	for time.Since(outageStart) < outage {
		if used, err := obs.Metric("obs_wal_used_bytes"); err == nil {
			peakUsed = max(peakUsed, used)
		}
		if disk, err := obs.Metric("obs_wal_disk_bytes"); err == nil {
			peakDisk = max(peakDisk, disk)
		}
		time.Sleep(time.Second)
	}
	stopClients()
	accepted := append(append(warmIDs, gc.ids()...), hc.ids()...)
	t.Logf("outage %s: accepted %d records (grpc %d, http %d); refused grpc %d (with RetryInfo %d), http %d (with Retry-After %d); other errors grpc %d http %d; WAL peak used %.1f MiB, disk %.1f MiB",
		time.Since(outageStart).Round(time.Second), len(accepted), len(gc.ids()), len(hc.ids()),
		gc.refused.Load(), gc.withRetry.Load(), hc.refused.Load(), hc.withRetry.Load(),
		gc.other.Load(), hc.other.Load(), peakUsed/(1<<20), peakDisk/(1<<20))
	if v := gc.lastErr.Load(); v != nil {
		t.Logf("last grpc error: %s", v)
	}
	if v := hc.lastErr.Load(); v != nil {
		t.Logf("last http error: %s", v)
	}
	// Which protocol fills the WAL first is a race; together they must
	// have filled it before being pushed back.
	require.Greater(t, len(gc.ids())+len(hc.ids()), 0, "obs accepted nothing before the WAL filled")
	require.Positive(t, gc.refused.Load(), "no RESOURCE_EXHAUSTED seen")
	require.Positive(t, gc.withRetry.Load(), "no RESOURCE_EXHAUSTED carried RetryInfo")
	require.Positive(t, hc.refused.Load(), "no HTTP 429 seen")
	require.Positive(t, hc.withRetry.Load(), "no HTTP 429 carried Retry-After")
	require.GreaterOrEqual(t, peakUsed, 0.75*walCap, "the WAL did not fill before pushing back")
	require.LessOrEqual(t, peakUsed, float64(walCap))

	// The backend returns on the same port; every accepted record arrives.
	back := restartSink(t, sink)
	drainStart := time.Now()
	want := len(accepted)
	var got map[string]int
	for deadline := time.Now().Add(90 * time.Second); ; {
		got = countLogIDs(append(sink.Logs(t), back.Logs(t)...))
		missing := 0
		for _, id := range accepted {
			if got[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted records missing at the backend %s after it returned", missing, want, time.Since(drainStart).Round(time.Second))
		}
		time.Sleep(500 * time.Millisecond)
	}
	drained := time.Since(drainStart)

	// The WAL gives its space back: queued bytes to (nearly) zero and the
	// disk well below its peak.
	var used, disk float64
	for deadline := time.Now().Add(60 * time.Second); ; {
		used, err = obs.Metric("obs_wal_used_bytes")
		require.NoError(t, err)
		disk, err = obs.Metric("obs_wal_disk_bytes")
		require.NoError(t, err)
		if used <= 0.05*peakUsed && disk <= 0.5*peakDisk {
			break
		}
		if time.Now().After(deadline) {
			vlog, _ := obs.Metric("obs_wal_disk_bytes", `kind="vlog"`)
			lsm, _ := obs.Metric("obs_wal_disk_bytes", `kind="lsm"`)
			segs, _ := obs.Metric("obs_wal_disk_bytes", `kind="segments"`)
			t.Fatalf("WAL disk use did not shrink 60s after the drain: used %.1f MiB (peak %.1f), disk %.1f MiB (peak %.1f; now segments %.1f MiB, vlog %.1f MiB, lsm %.1f MiB)",
				used/(1<<20), peakUsed/(1<<20), disk/(1<<20), peakDisk/(1<<20), segs/(1<<20), vlog/(1<<20), lsm/(1<<20))
		}
		time.Sleep(time.Second)
	}
	t.Logf("backend back: %d accepted records arrived in %s (%d distinct at the backend); WAL used %.1f MiB, disk %.1f MiB after %s",
		want, drained.Round(100*time.Millisecond), len(got), used/(1<<20), disk/(1<<20), time.Since(drainStart).Round(time.Second))

	// The push back is over: a new batch is accepted at once.
	after, _ := makeBulkyLogs("after", 0, 10)
	_, err = grpcClient.Export(context.Background(), plogotlp.NewExportRequestFromLogs(after))
	require.NoError(t, err)
}

// TestBacklogMergedUnderBackendLimit queues a backlog of 1 KiB records while
// the backend (a real Collector, whose gRPC receiver takes messages up to
// 4 MiB by default) is down, with obs's default batch settings: when the
// backend returns, every accepted record must arrive. Merging queued
// entries must not build requests the backend refuses as too large.
func TestBacklogMergedUnderBackendLimit(t *testing.T) {
	const (
		batches   = 40
		batchSize = 200
	)
	sink := otelpeer.StartSink(t)
	// One consumer, so the backlog goes out in merged sends of the default
	// size (8192 records, ~8 MiB here) rather than spread over consumers.
	exp := otlpExporter("otlp/sink", sink.GRPCAddr) + "    sending_queue:\n      num_consumers: 1\n"
	obs := newObs(t, obsConfig{Exporters: exp, ExporterIDs: []string{"otlp/sink"}})
	obs.Start()
	require.NoError(t, sink.Stop())
	client := plogotlp.NewGRPCClient(dial(t, obs.Addr("grpc")))
	var accepted []string
	for b := range batches {
		ld, ids := makeBulkyLogs("backlog", b, batchSize)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		_, err := client.Export(ctx, plogotlp.NewExportRequestFromLogs(ld))
		cancel()
		require.NoError(t, err)
		accepted = append(accepted, ids...)
	}
	back := restartSink(t, sink)
	deadline := time.Now().Add(45 * time.Second)
	for {
		got := countLogIDs(back.Logs(t))
		missing := 0
		for _, id := range accepted {
			if got[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		dead, _ := obs.Metric("obs_export_dead_lettered_items_total")
		if dead > 0 || time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted records missing at the backend after it returned; %v dead-lettered by obs", missing, len(accepted), dead)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
