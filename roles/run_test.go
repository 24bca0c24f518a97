package roles

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/obs-dev/obs/actors"
	"github.com/obs-dev/obs/config"
	"github.com/obs-dev/obs/wal"
)

// syncBuffer is a bytes.Buffer safe for the run's writer and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Every receiver type in one process: their metrics share families on one
// registry, so a mismatch in help or labels would stop the start.
func TestRunStartsEveryReceiverTogether(t *testing.T) {
	dir := t.TempDir()
	body := `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: 127.0.0.1:0
  prometheus:
    config:
      scrape_configs:
        - job_name: none
          static_configs: [{targets: ["127.0.0.1:1"]}]
  hostmetrics:
    collection_interval: 1h
    scrapers:
      load:
  filelog:
    include: [` + dir + `/*.log]
processors:
  batch: {}
  memory_limiter: {check_interval: 1s, limit_mib: 4000}
exporters:
  debug: {}
service:
  pipelines:
    metrics:
      receivers: [otlp, prometheus, hostmetrics]
      processors: [memory_limiter, batch]
      exporters: [debug]
    logs:
      receivers: [otlp, filelog]
      processors: [batch]
      exporters: [debug]
`
	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Role: Gateway, ConfigPath: writeConfig(t, body), DataDir: dir,
			AdminAddr: "127.0.0.1:0", NoCluster: true, Stdout: &out, ShutdownTimeout: 5 * time.Second}, nil)
	}()
	require.Eventually(t, func() bool {
		select {
		case err := <-done:
			require.NoError(t, err)
			t.Fatal("run stopped early")
		default:
		}
		return strings.Contains(out.String(), "pipelines")
	}, 20*time.Second, 10*time.Millisecond)
	require.Contains(t, out.String(), "2 pipelines")
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop")
	}
}

// A connector stops after every pipeline feeding it and before the
// pipelines it feeds, so nothing it holds is sent to a stopped stage.
func TestStopOrderPutsConnectorsBetweenFeedersAndConsumers(t *testing.T) {
	body := `receivers:
  otlp:
    protocols: {grpc: {endpoint: 127.0.0.1:0}}
processors:
  batch: {}
exporters:
  debug: {}
connectors:
  routing:
    table: [{condition: "true", pipelines: [logs/out]}]
service:
  pipelines:
    logs/a:
      receivers: [otlp]
      processors: [batch]
      exporters: [routing]
    logs/b:
      receivers: [otlp]
      exporters: [routing]
    logs/out:
      receivers: [routing]
      processors: [batch]
      exporters: [debug]
`
	p, _, err := loadPlan(writeConfig(t, body), Gateway, t.TempDir(), false, nil)
	require.NoError(t, err)
	db, err := wal.Open(wal.DefaultConfig(t.TempDir()), nil, nil)
	require.NoError(t, err)
	defer db.Close()
	rt := &runtime{opts: Options{NoCluster: true}, log: slog.New(slog.DiscardHandler), reg: prometheus.NewRegistry(), plan: p,
		db: db, queues: map[config.ID]*wal.Queue{}, heads: map[config.PipelineID]*actors.Ref{}, procFuncs: map[config.ID]actors.ProcessFunc{}}
	rt.sys = actors.NewSystem(actors.Options{}, nil, nil)
	defer rt.sys.Stop(context.Background())
	require.NoError(t, rt.build())
	pos := map[string]int{}
	for i, r := range rt.stopOrder {
		pos[r.Name()] = i
	}
	require.Contains(t, pos, "connectors/routing")
	for _, feeder := range []string{"logs/a/batch", "logs/b/fanout", "logs/b/wal"} {
		if i, ok := pos[feeder]; ok {
			require.Less(t, i, pos["connectors/routing"], feeder)
		}
	}
	require.Less(t, pos["logs/a/batch"], pos["connectors/routing"])
	require.Less(t, pos["connectors/routing"], pos["logs/out/batch"])
	require.Less(t, pos["logs/out/batch"], pos["logs/out/wal"])
}
