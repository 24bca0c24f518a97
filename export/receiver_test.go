package export

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/obs-dev/obs/actors"
)

// testBatch builds a batch of n items of signal s.
func testBatch(s actors.Signal, n int) actors.Batch {
	switch s {
	case actors.SignalLogs:
		l := plog.NewLogs()
		rl := l.ResourceLogs().AppendEmpty()
		rl.Resource().Attributes().PutStr("service.name", "test")
		sl := rl.ScopeLogs().AppendEmpty()
		for i := range n {
			r := sl.LogRecords().AppendEmpty()
			r.Body().SetStr("line " + strconv.Itoa(i) + " some log text that is long enough to compress")
			r.SetTimestamp(pcommon.Timestamp(1700000000000000000 + i))
			r.SetSeverityText("INFO")
			r.Attributes().PutInt("i", int64(i))
		}
		return actors.LogsBatch(l)
	case actors.SignalMetrics:
		m := pmetric.NewMetrics()
		sm := m.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty()
		g := sm.Metrics().AppendEmpty()
		g.SetName("test_gauge")
		dps := g.SetEmptyGauge().DataPoints()
		for i := range n {
			dp := dps.AppendEmpty()
			dp.SetDoubleValue(float64(i))
			dp.SetTimestamp(pcommon.Timestamp(1700000000000000000 + i))
			dp.Attributes().PutInt("i", int64(i))
		}
		return actors.MetricsBatch(m)
	case actors.SignalTraces:
		t := ptrace.NewTraces()
		ss := t.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
		for i := range n {
			sp := ss.Spans().AppendEmpty()
			sp.SetName("span " + strconv.Itoa(i))
			sp.SetTraceID(pcommon.TraceID{1, 2, 3, byte(i)})
			sp.SetSpanID(pcommon.SpanID{4, 5, byte(i)})
			sp.SetStartTimestamp(pcommon.Timestamp(1700000000000000000 + i))
		}
		return actors.TracesBatch(t)
	}
	panic("bad signal")
}

func mustProto(t testing.TB, b actors.Batch) []byte {
	t.Helper()
	p, err := encodeProto(b)
	require.NoError(t, err)
	return p
}

// sink records what consumers received and returns a configurable error.
type sink struct {
	mu  sync.Mutex
	got map[actors.Signal][][]byte
	err error
}

func (s *sink) consumers(t testing.TB, signals ...actors.Signal) map[actors.Signal]ConsumeFunc {
	out := map[actors.Signal]ConsumeFunc{}
	for _, sig := range signals {
		out[sig] = func(_ context.Context, b actors.Batch) error {
			require.Equal(t, sig, b.Signal)
			p := mustProto(t, b)
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.got == nil {
				s.got = map[actors.Signal][][]byte{}
			}
			if s.err != nil {
				return s.err
			}
			s.got[sig] = append(s.got[sig], p)
			return nil
		}
	}
	return out
}

func (s *sink) setErr(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

func (s *sink) take(sig actors.Signal) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.got[sig]
	delete(s.got, sig)
	return out
}

type testReceiver struct {
	r        *OTLPReceiver
	reg      *prometheus.Registry
	grpcAddr string
	httpURL  string
}

// startReceiver runs a receiver on loopback port 0 until the test ends.
func startReceiver(t testing.TB, consumers map[actors.Signal]ConsumeFunc, edit func(*OTLPReceiverConfig)) *testReceiver {
	t.Helper()
	cfg := DefaultOTLPReceiverConfig()
	cfg.Protocols.GRPC = &GRPCServerConfig{Endpoint: "127.0.0.1:0"}
	cfg.Protocols.HTTP = &HTTPServerConfig{Endpoint: "127.0.0.1:0"}
	if edit != nil {
		edit(&cfg)
	}
	reg := prometheus.NewRegistry()
	r, err := NewOTLPReceiver("otlp", cfg, consumers, nil, reg)
	require.NoError(t, err)
	require.NoError(t, r.Start())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	tr := &testReceiver{r: r, reg: reg}
	g, h := r.Addrs()
	if g != nil {
		tr.grpcAddr = g.String()
	}
	if h != nil {
		tr.httpURL = "http://" + h.String()
	}
	return tr
}

func grpcConn(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodecV2(newRawCodec())))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// grpcSend sends payload bytes to the Export method of signal s.
func grpcSend(ctx context.Context, cc *grpc.ClientConn, s actors.Signal, payload []byte, compression string) error {
	in := rawMsg(payload)
	var out rawMsg
	var opts []grpc.CallOption
	if compression != "" {
		opts = append(opts, grpc.UseCompressor(compression))
	}
	return cc.Invoke(ctx, grpcMethod(s), &in, &out, opts...)
}

func httpPath(s actors.Signal) string { return "/v1/" + s.String() }

// httpSend posts body (already encoded as ct) compressed with enc.
func httpSend(t testing.TB, url string, ct, enc string, body []byte) *http.Response {
	t.Helper()
	var c codecs
	var buf bytes.Buffer
	require.NoError(t, c.compress(&buf, enc, body))
	req, err := http.NewRequest(http.MethodPost, url, &buf)
	require.NoError(t, err)
	req.Header.Set("Content-Type", ct)
	if enc != "" {
		req.Header.Set("Content-Encoding", enc)
	}
	rsp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rsp.Body.Close() })
	return rsp
}

func readStatus(t testing.TB, rsp *http.Response, json bool) *spb.Status {
	t.Helper()
	body, err := io.ReadAll(rsp.Body)
	require.NoError(t, err)
	st := &spb.Status{}
	if json {
		require.NoError(t, protojson.Unmarshal(body, st), string(body))
	} else {
		require.NoError(t, proto.Unmarshal(body, st))
	}
	return st
}

func TestReceiverRoundTrip(t *testing.T) {
	var sk sink
	tr := startReceiver(t, sk.consumers(t, allSignals[:]...), nil)
	cc := grpcConn(t, tr.grpcAddr)
	for _, transport := range []string{"grpc", "http"} {
		for _, sig := range allSignals {
			for _, format := range []string{"proto", "json"} {
				for _, comp := range []string{"", "gzip", "zstd", "deflate"} {
					if transport == "grpc" && (format == "json" || comp == "deflate") {
						continue
					}
					t.Run(fmt.Sprintf("%s/%s/%s/%s", transport, sig, format, orIdentity(comp)), func(t *testing.T) {
						b := testBatch(sig, 50)
						want := mustProto(t, b)
						if transport == "grpc" {
							require.NoError(t, grpcSend(t.Context(), cc, sig, want, comp))
						} else {
							body, ct := want, ctProtobuf
							if format == "json" {
								var err error
								body, err = encodeJSON(b)
								require.NoError(t, err)
								ct = ctJSON
							}
							rsp := httpSend(t, tr.httpURL+httpPath(sig), ct, comp, body)
							require.Equal(t, http.StatusOK, rsp.StatusCode)
							require.Equal(t, ct, rsp.Header.Get("Content-Type"))
							rb, err := io.ReadAll(rsp.Body)
							require.NoError(t, err)
							ps, err := decodeResponse(sig, rb, format == "json")
							require.NoError(t, err)
							require.Zero(t, ps.rejected)
						}
						got := sk.take(sig)
						require.Len(t, got, 1)
						require.Equal(t, want, got[0])
					})
				}
			}
		}
	}
	require.Equal(t, 400.0, testutil.ToFloat64(tr.r.m.accepted[actors.SignalLogs].WithLabelValues("otlp", "http")))
	require.Equal(t, 150.0, testutil.ToFloat64(tr.r.m.accepted[actors.SignalTraces].WithLabelValues("otlp", "grpc")))
}

func TestReceiverErrors(t *testing.T) {
	var sk sink
	tr := startReceiver(t, sk.consumers(t, actors.SignalLogs, actors.SignalTraces), func(c *OTLPReceiverConfig) {
		c.Protocols.GRPC.MaxRecvMsgSizeMiB = 1
		c.Protocols.HTTP.MaxRequestBodySize = 64 << 10
	})
	cc := grpcConn(t, tr.grpcAddr)
	logs := mustProto(t, testBatch(actors.SignalLogs, 10))
	big := mustProto(t, testBatch(actors.SignalLogs, 20000)) // > 1 MiB, compresses well

	t.Run("grpc", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			signal  actors.Signal
			payload []byte
			comp    string
			err     error
			code    codes.Code
			retry   time.Duration
		}{
			{name: "ok", signal: actors.SignalLogs, payload: logs, code: codes.OK},
			{name: "empty request", signal: actors.SignalLogs, payload: nil, code: codes.OK},
			{name: "malformed", signal: actors.SignalLogs, payload: []byte{0x0a, 0xff, 0x01}, code: codes.InvalidArgument},
			{name: "oversize", signal: actors.SignalLogs, payload: big, code: codes.ResourceExhausted},
			{name: "oversize after decompression", signal: actors.SignalLogs, payload: big, comp: "zstd", code: codes.ResourceExhausted},
			{name: "unknown signal", signal: actors.SignalMetrics, payload: logs, code: codes.Unimplemented},
			{name: "refused", signal: actors.SignalLogs, payload: logs, err: &actors.RefusedError{Reason: "wal_full", RetryAfter: 3 * time.Second}, code: codes.ResourceExhausted, retry: 3 * time.Second},
			{name: "refused default retry", signal: actors.SignalLogs, payload: logs, err: fmt.Errorf("append: %w", actors.ErrRefused), code: codes.ResourceExhausted, retry: time.Second},
			{name: "consumer error", signal: actors.SignalLogs, payload: logs, err: errors.New("disk on fire"), code: codes.Unavailable},
		} {
			t.Run(tc.name, func(t *testing.T) {
				sk.setErr(tc.err)
				defer sk.setErr(nil)
				err := grpcSend(t.Context(), cc, tc.signal, tc.payload, tc.comp)
				st := status.Convert(err)
				require.Equal(t, tc.code, st.Code(), st.Message())
				if tc.code != codes.OK {
					require.NotEmpty(t, st.Message())
				}
				if tc.retry > 0 {
					require.Len(t, st.Details(), 1)
					ri, ok := st.Details()[0].(*errdetails.RetryInfo)
					require.True(t, ok)
					require.Equal(t, tc.retry, ri.RetryDelay.AsDuration())
				} else {
					require.Empty(t, st.Details())
				}
			})
		}
	})
	// 10 accepted, refused 3 × 10.
	require.Equal(t, 10.0, testutil.ToFloat64(tr.r.m.accepted[actors.SignalLogs].WithLabelValues("otlp", "grpc")))
	require.Equal(t, 30.0, testutil.ToFloat64(tr.r.m.refused[actors.SignalLogs].WithLabelValues("otlp", "grpc")))
	require.Equal(t, 1.0, testutil.ToFloat64(tr.r.m.requests.WithLabelValues("otlp", "grpc", "logs", "InvalidArgument")))

	t.Run("http", func(t *testing.T) {
		bigHTTP := mustProto(t, testBatch(actors.SignalLogs, 2000)) // > 64 KiB
		for _, tc := range []struct {
			name     string
			path     string
			method   string
			ct       string
			enc      string
			body     []byte
			err      error
			code     int
			msg      string
			retryHdr string
		}{
			{name: "ok", path: "/v1/logs", body: logs, code: 200},
			{name: "empty body", path: "/v1/logs", body: nil, code: 200},
			{name: "malformed proto", path: "/v1/logs", body: []byte{0x0a, 0xff, 0x01}, code: 400, msg: "decode protobuf logs request: "},
			{name: "malformed json", path: "/v1/logs", ct: ctJSON, body: []byte(`{"resourceLogs":[{`), code: 400, msg: "decode json logs request: "},
			{name: "bad gzip", path: "/v1/logs", enc: "gzip-raw", body: []byte("not gzip"), code: 400, msg: "gzip"},
			{name: "oversize", path: "/v1/logs", body: bigHTTP, code: 413, msg: "larger than"},
			{name: "zip bomb", path: "/v1/logs", enc: "gzip", body: bigHTTP, code: 413, msg: "larger than"},
			{name: "zstd bomb", path: "/v1/logs", enc: "zstd", body: bigHTTP, code: 413, msg: "larger than"},
			{name: "unknown encoding", path: "/v1/logs", enc: "br-raw", body: logs, code: 415, msg: "br"},
			{name: "wrong method", path: "/v1/logs", method: http.MethodGet, code: 405, msg: "GET"},
			{name: "wrong content type", path: "/v1/logs", ct: "text/plain", body: logs, code: 415, msg: "text/plain"},
			{name: "unknown signal", path: "/v1/metrics", body: logs, code: 404},
			{name: "refused", path: "/v1/logs", body: logs, err: &actors.RefusedError{Reason: "wal_full", RetryAfter: 2500 * time.Millisecond}, code: 429, retryHdr: "3", msg: "wal_full"},
			{name: "consumer error", path: "/v1/logs", body: logs, err: errors.New("disk on fire"), code: 503, retryHdr: "1", msg: "disk on fire"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				sk.setErr(tc.err)
				defer sk.setErr(nil)
				ct := tc.ct
				if ct == "" {
					ct = ctProtobuf
				}
				var body io.Reader = bytes.NewReader(tc.body)
				enc := tc.enc
				if len(enc) > 4 && enc[len(enc)-4:] == "-raw" {
					enc = enc[:len(enc)-4] // send the body unencoded under this header
				} else if enc != "" {
					var c codecs
					var buf bytes.Buffer
					require.NoError(t, c.compress(&buf, enc, tc.body))
					body = &buf
				}
				method := tc.method
				if method == "" {
					method = http.MethodPost
				}
				req, err := http.NewRequestWithContext(t.Context(), method, tr.httpURL+tc.path, body)
				require.NoError(t, err)
				req.Header.Set("Content-Type", ct)
				if enc != "" {
					req.Header.Set("Content-Encoding", enc)
				}
				rsp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				defer rsp.Body.Close()
				require.Equal(t, tc.code, rsp.StatusCode)
				require.Equal(t, tc.retryHdr, rsp.Header.Get("Retry-After"))
				if tc.msg != "" {
					st := readStatus(t, rsp, ct == ctJSON)
					require.Contains(t, st.Message, tc.msg)
				}
			})
		}
	})
	require.Equal(t, 20.0, testutil.ToFloat64(tr.r.m.refused[actors.SignalLogs].WithLabelValues("otlp", "http")))
	require.Equal(t, 1.0, testutil.ToFloat64(tr.r.m.requests.WithLabelValues("otlp", "http", "logs", "429")))
}

func TestReceiverConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*OTLPReceiverConfig)
		err  string
	}{
		{name: "no protocol", edit: func(*OTLPReceiverConfig) {}, err: "at least one protocol"},
		{name: "grpc defaults", edit: func(c *OTLPReceiverConfig) { c.Protocols.GRPC = &GRPCServerConfig{} }},
		{name: "http defaults", edit: func(c *OTLPReceiverConfig) { c.Protocols.HTTP = &HTTPServerConfig{} }},
		{name: "bad endpoint", edit: func(c *OTLPReceiverConfig) { c.Protocols.GRPC = &GRPCServerConfig{Endpoint: "nope"} }, err: "protocols::grpc::endpoint"},
		{name: "bad path", edit: func(c *OTLPReceiverConfig) { c.Protocols.HTTP = &HTTPServerConfig{LogsURLPath: "v1/logs"} }, err: "logs_url_path"},
		{name: "tls without key", edit: func(c *OTLPReceiverConfig) {
			c.Protocols.HTTP = &HTTPServerConfig{TLS: &TLSServerConfig{CertFile: "x"}}
		}, err: "protocols::http::tls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultOTLPReceiverConfig()
			tc.edit(&cfg)
			err := cfg.Validate()
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
	cfg := DefaultOTLPReceiverConfig()
	cfg.Protocols.GRPC = &GRPCServerConfig{}
	cfg.Protocols.HTTP = &HTTPServerConfig{}
	require.NoError(t, cfg.Validate())
	require.Equal(t, "0.0.0.0:4317", cfg.Protocols.GRPC.Endpoint)
	require.Equal(t, 4, cfg.Protocols.GRPC.MaxRecvMsgSizeMiB)
	require.Equal(t, "0.0.0.0:4318", cfg.Protocols.HTTP.Endpoint)
	require.Equal(t, int64(20<<20), cfg.Protocols.HTTP.MaxRequestBodySize)
	require.Equal(t, "/v1/traces", cfg.Protocols.HTTP.TracesURLPath)
}

func TestReceiverStartBindError(t *testing.T) {
	var sk sink
	tr := startReceiver(t, sk.consumers(t, actors.SignalLogs), nil)
	cfg := DefaultOTLPReceiverConfig()
	cfg.Protocols.HTTP = &HTTPServerConfig{Endpoint: tr.httpURL[len("http://"):]}
	r, err := NewOTLPReceiver("otlp/2", cfg, sk.consumers(t, actors.SignalLogs), nil, tr.reg)
	require.NoError(t, err) // shares the registry with the first receiver
	require.ErrorContains(t, r.Start(), "listen http")
}
