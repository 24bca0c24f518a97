package export

import (
	"bytes"
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/obs-dev/obs/actors"
)

func discardConsumers() map[actors.Signal]ConsumeFunc {
	f := func(context.Context, actors.Batch) error { return nil }
	return map[actors.Signal]ConsumeFunc{actors.SignalLogs: f, actors.SignalMetrics: f, actors.SignalTraces: f}
}

// BenchmarkReceiverHTTP posts 1,000-record log requests to a loopback
// OTLP/HTTP receiver (decode included, consumer discards).
func BenchmarkReceiverHTTP(b *testing.B) {
	tr := startReceiver(b, discardConsumers(), nil)
	p := mustProto(b, testBatch(actors.SignalLogs, 1000))
	for _, enc := range []string{"", "gzip", "zstd"} {
		b.Run("encoding="+orIdentity(enc), func(b *testing.B) {
			var c codecs
			var body bytes.Buffer
			require.NoError(b, c.compress(&body, enc, p))
			client := &http.Client{}
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodPost, tr.httpURL+"/v1/logs", bytes.NewReader(body.Bytes()))
				req.Header.Set("Content-Type", ctProtobuf)
				if enc != "" {
					req.Header.Set("Content-Encoding", enc)
				}
				rsp, err := client.Do(req)
				if err != nil || rsp.StatusCode != http.StatusOK {
					b.Fatal(err, rsp)
				}
				_ = rsp.Body.Close()
			}
			b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkOTLPSender ships 1,000-record WAL payloads to a loopback OTLP
// gRPC receiver. "pdata-client" is the unmarshal + pdata client path the
// pass-through codec avoids, for comparison.
func BenchmarkOTLPSender(b *testing.B) {
	tr := startReceiver(b, discardConsumers(), nil)
	p := mustProto(b, testBatch(actors.SignalLogs, 1000))
	for _, comp := range []string{"none", "gzip", "zstd"} {
		b.Run("passthrough/compression="+comp, func(b *testing.B) {
			cfg := DefaultOTLPExporterConfig()
			cfg.Endpoint, cfg.TLS.Insecure, cfg.Compression = tr.grpcAddr, true, comp
			s, err := NewOTLPSender(cfg, nil, nil)
			require.NoError(b, err)
			defer s.Close()
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				if _, err := s.Send(b.Context(), actors.SignalLogs, p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "records/s")
		})
	}
	b.Run("pdata-client/compression=none", func(b *testing.B) {
		cc, err := grpc.NewClient(tr.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(b, err)
		defer cc.Close()
		client := plogotlp.NewGRPCClient(cc)
		b.ReportAllocs()
		b.SetBytes(int64(len(p)))
		for b.Loop() {
			req := plogotlp.NewExportRequest()
			if err := req.UnmarshalProto(p); err != nil {
				b.Fatal(err)
			}
			if _, err := client.Export(b.Context(), req); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "records/s")
	})
}
