package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/obs-dev/obs/test/otelpeer"
)

func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestInterop pushes every signal through a real Collector into obs and
// from obs into a real Collector, over gRPC and over HTTP on both hops, and
// compares what arrived with what was sent, record by record.
func TestInterop(t *testing.T) {
	const (
		requests   = 3
		perRequest = 20
		wait       = 60 * time.Second
	)
	for _, protocol := range []string{"grpc", "http"} {
		t.Run(protocol, func(t *testing.T) {
			sink := otelpeer.StartSink(t)
			cfg := obsConfig{Exporters: otlpExporter("otlp/sink", sink.GRPCAddr), ExporterIDs: []string{"otlp/sink"}}
			if protocol == "http" {
				cfg = obsConfig{Exporters: otlphttpExporter("otlphttp/sink", sink.HTTPAddr), ExporterIDs: []string{"otlphttp/sink"}}
			}
			obs := newObs(t, cfg)
			obs.Start()
			target := obs.Addr("grpc")
			if protocol == "http" {
				target = obs.Addr("http")
			}
			fwd := otelpeer.StartForwarder(t, target, protocol, otelpeer.WithoutQueue())
			conn := dial(t, fwd.GRPCAddr)

			tests := []struct {
				signal string
				run    func(t *testing.T, ctx context.Context)
			}{
				{"logs", func(t *testing.T, ctx context.Context) {
					var sent []plog.Logs
					c := plogotlp.NewGRPCClient(conn)
					for r := range requests {
						ld := makeLogs(r, perRequest)
						sent = append(sent, ld)
						_, err := c.Export(ctx, plogotlp.NewExportRequestFromLogs(ld))
						require.NoError(t, err)
					}
					got := sink.WaitLogRecords(t, requests*perRequest, wait)
					time.Sleep(3 * otelpeer.FlushInterval) // let duplicates, if any, land
					got = sink.Logs(t)
					require.Equal(t, flattenLogs(sent), flattenLogs(got))
				}},
				{"metrics", func(t *testing.T, ctx context.Context) {
					var sent []pmetric.Metrics
					c := pmetricotlp.NewGRPCClient(conn)
					for r := range requests {
						md := makeMetrics(r, perRequest)
						sent = append(sent, md)
						_, err := c.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md))
						require.NoError(t, err)
					}
					got := sink.WaitDataPoints(t, 3*requests*perRequest, wait)
					time.Sleep(3 * otelpeer.FlushInterval)
					got = sink.Metrics(t)
					require.Equal(t, flattenMetrics(sent), flattenMetrics(got))
				}},
				{"traces", func(t *testing.T, ctx context.Context) {
					var sent []ptrace.Traces
					c := ptraceotlp.NewGRPCClient(conn)
					for r := range requests {
						td := makeTraces(r, perRequest)
						sent = append(sent, td)
						_, err := c.Export(ctx, ptraceotlp.NewExportRequestFromTraces(td))
						require.NoError(t, err)
					}
					got := sink.WaitSpans(t, requests*perRequest, wait)
					time.Sleep(3 * otelpeer.FlushInterval)
					got = sink.Traces(t)
					require.Equal(t, flattenTraces(sent), flattenTraces(got))
				}},
			}
			for _, tc := range tests {
				t.Run(tc.signal, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					tc.run(t, ctx)
				})
			}
			sent, err := obs.Metric("otelcol_exporter_sent_items_total")
			require.NoError(t, err)
			// logs + 3 metric kinds + spans, all through obs's exporter.
			require.Equal(t, float64(requests*perRequest*5), sent)
		})
	}
}
