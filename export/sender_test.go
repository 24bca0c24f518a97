package export

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/obs-dev/obs/actors"
)

// mdSink records payloads and the "x-token" metadata they came with.
type mdSink struct {
	mu     sync.Mutex
	got    [][]byte
	tokens []string
}

func (s *mdSink) consumers(t testing.TB) map[actors.Signal]ConsumeFunc {
	out := map[actors.Signal]ConsumeFunc{}
	for _, sig := range allSignals {
		out[sig] = func(ctx context.Context, b actors.Batch) error {
			p := mustProto(t, b)
			md, _ := metadata.FromIncomingContext(ctx)
			s.mu.Lock()
			defer s.mu.Unlock()
			s.got = append(s.got, p)
			s.tokens = append(s.tokens, strings.Join(md.Get("x-token"), ","))
			return nil
		}
	}
	return out
}

func (s *mdSink) take() ([][]byte, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, tk := s.got, s.tokens
	s.got, s.tokens = nil, nil
	return g, tk
}

func TestSendersAgainstReceiver(t *testing.T) {
	var sk mdSink
	tr := startReceiver(t, sk.consumers(t), func(c *OTLPReceiverConfig) { c.Protocols.HTTP.IncludeMetadata = true })
	for _, kind := range []string{"otlp", "otlphttp"} {
		for _, comp := range []string{"none", "gzip", "zstd"} {
			for _, enc := range []string{"proto", "json"} {
				if kind == "otlp" && enc == "json" {
					continue
				}
				t.Run(kind+"/"+comp+"/"+enc, func(t *testing.T) {
					reg := prometheus.NewRegistry()
					var snd Sender
					if kind == "otlp" {
						cfg := DefaultOTLPExporterConfig()
						cfg.Endpoint = tr.grpcAddr
						cfg.TLS.Insecure = true
						cfg.Compression = comp
						cfg.Headers = Headers{"X-Token": "s3cret"}
						s, err := NewOTLPSender(cfg, nil, reg)
						require.NoError(t, err)
						snd = s
					} else {
						cfg := DefaultOTLPHTTPExporterConfig()
						cfg.Endpoint = tr.httpURL + "/"
						cfg.Compression = comp
						cfg.Encoding = enc
						cfg.Headers = Headers{"X-Token": "s3cret"}
						s, err := NewOTLPHTTPSender(cfg, nil, reg)
						require.NoError(t, err)
						snd = s
					}
					defer func() { require.NoError(t, snd.Close()) }()
					var want [][]byte
					for _, sig := range allSignals {
						p := mustProto(t, testBatch(sig, 100))
						want = append(want, p)
						res, err := snd.Send(t.Context(), sig, p)
						require.NoError(t, err)
						require.Equal(t, SendResult{}, res)
					}
					got, tokens := sk.take()
					require.Equal(t, want, got)
					require.Equal(t, []string{"s3cret", "s3cret", "s3cret"}, tokens)
					require.Equal(t, 1.0, testutil.ToFloat64(snd.(interface{ metrics() *senderMetrics }).metrics().requests.WithLabelValues("traces", "success")))
				})
			}
		}
	}
}

// fakeGRPC is a logs Export server that answers with a fixed status or
// response.
func fakeGRPC(t *testing.T, answer func() (rawMsg, error)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer(grpc.ForceServerCodecV2(newRawCodec()))
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: logsService,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Export", Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var in rawMsg
			if err := dec(&in); err != nil {
				return nil, err
			}
			out, err := answer()
			if err != nil {
				return nil, err
			}
			return &out, nil
		}}},
	}, struct{}{})
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return ln.Addr().String()
}

func TestOTLPSenderStatusClassification(t *testing.T) {
	withRetry := func(c codes.Code, d time.Duration) error {
		st, err := status.New(c, "busy").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d)})
		require.NoError(t, err)
		return st.Err()
	}
	for _, tc := range []struct {
		name      string
		err       error
		permanent bool
		throttle  time.Duration
	}{
		{name: "unavailable", err: status.Error(codes.Unavailable, "x")},
		{name: "deadline", err: status.Error(codes.DeadlineExceeded, "x")},
		{name: "aborted", err: status.Error(codes.Aborted, "x")},
		{name: "out of range", err: status.Error(codes.OutOfRange, "x")},
		{name: "data loss", err: status.Error(codes.DataLoss, "x")},
		{name: "canceled", err: status.Error(codes.Canceled, "x")},
		{name: "unavailable with retry info", err: withRetry(codes.Unavailable, 7*time.Second), throttle: 7 * time.Second},
		{name: "resource exhausted with retry info", err: withRetry(codes.ResourceExhausted, 2*time.Second), throttle: 2 * time.Second},
		{name: "resource exhausted without retry info", err: status.Error(codes.ResourceExhausted, "x"), permanent: true},
		{name: "invalid argument", err: status.Error(codes.InvalidArgument, "x"), permanent: true},
		{name: "unauthenticated", err: status.Error(codes.Unauthenticated, "x"), permanent: true},
		{name: "permission denied", err: status.Error(codes.PermissionDenied, "x"), permanent: true},
		{name: "internal", err: status.Error(codes.Internal, "x"), permanent: true},
		{name: "unimplemented", err: status.Error(codes.Unimplemented, "x"), permanent: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeGRPC(t, func() (rawMsg, error) { return nil, tc.err })
			cfg := DefaultOTLPExporterConfig()
			cfg.Endpoint = "http://" + addr
			cfg.Headers = Headers{"authorization": "Bearer topsecret"}
			s, err := NewOTLPSender(cfg, nil, nil)
			require.NoError(t, err)
			defer s.Close()
			_, err = s.Send(t.Context(), actors.SignalLogs, mustProto(t, testBatch(actors.SignalLogs, 1)))
			require.Error(t, err)
			require.NotContains(t, err.Error(), "topsecret")
			require.Equal(t, tc.permanent, IsPermanent(err), err.Error())
			var te *ThrottleError
			require.Equal(t, tc.throttle > 0, errors.As(err, &te))
			if tc.throttle > 0 {
				require.Equal(t, tc.throttle, te.After)
			}
		})
	}
}

func TestOTLPSenderPartialSuccess(t *testing.T) {
	rsp := plogotlp.NewExportResponse()
	rsp.PartialSuccess().SetRejectedLogRecords(3)
	rsp.PartialSuccess().SetErrorMessage("3 too old")
	body, err := rsp.MarshalProto()
	require.NoError(t, err)
	addr := fakeGRPC(t, func() (rawMsg, error) { return body, nil })
	cfg := DefaultOTLPExporterConfig()
	cfg.Endpoint = addr
	cfg.TLS.Insecure = true
	reg := prometheus.NewRegistry()
	s, err := NewOTLPSender(cfg, nil, reg)
	require.NoError(t, err)
	defer s.Close()
	for range 2 {
		res, err := s.Send(t.Context(), actors.SignalLogs, mustProto(t, testBatch(actors.SignalLogs, 5)))
		require.NoError(t, err)
		require.Equal(t, SendResult{Rejected: 3, Message: "3 too old"}, res)
	}
	require.Equal(t, 6.0, testutil.ToFloat64(s.m.rejected.WithLabelValues("logs")))
}

func TestOTLPHTTPSenderStatusClassification(t *testing.T) {
	for _, tc := range []struct {
		code       int
		retryAfter string
		permanent  bool
		throttle   time.Duration
	}{
		{code: 429},
		{code: 429, retryAfter: "4", throttle: 4 * time.Second},
		{code: 502},
		{code: 503, retryAfter: "1", throttle: time.Second},
		{code: 504},
		{code: 400, permanent: true},
		{code: 401, permanent: true},
		{code: 403, permanent: true},
		{code: 404, permanent: true},
		{code: 413, permanent: true},
		{code: 500, permanent: true},
	} {
		t.Run(fmt.Sprintf("%d/%s", tc.code, tc.retryAfter), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				writeStatus(w, &httpError{code: tc.code, msg: "backend says no"}, false)
			}))
			defer srv.Close()
			cfg := DefaultOTLPHTTPExporterConfig()
			cfg.Endpoint = srv.URL
			cfg.Headers = Headers{"Authorization": "Bearer topsecret"}
			s, err := NewOTLPHTTPSender(cfg, nil, nil)
			require.NoError(t, err)
			defer s.Close()
			_, err = s.Send(t.Context(), actors.SignalLogs, mustProto(t, testBatch(actors.SignalLogs, 1)))
			require.Error(t, err)
			require.Contains(t, err.Error(), "backend says no")
			require.NotContains(t, err.Error(), "topsecret")
			require.Equal(t, tc.permanent, IsPermanent(err), err.Error())
			var te *ThrottleError
			require.Equal(t, tc.throttle > 0, errors.As(err, &te))
			if tc.throttle > 0 {
				require.Equal(t, tc.throttle, te.After)
			}
		})
	}
	t.Run("connection refused is retryable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		cfg := DefaultOTLPHTTPExporterConfig()
		cfg.Endpoint = "http://" + addr
		s, err := NewOTLPHTTPSender(cfg, nil, nil)
		require.NoError(t, err)
		_, err = s.Send(t.Context(), actors.SignalLogs, mustProto(t, testBatch(actors.SignalLogs, 1)))
		require.Error(t, err)
		require.False(t, IsPermanent(err))
	})
}

func TestOTLPHTTPSenderPartialSuccess(t *testing.T) {
	for _, json := range []bool{false, true} {
		t.Run(fmt.Sprint("json=", json), func(t *testing.T) {
			rsp := plogotlp.NewExportResponse()
			rsp.PartialSuccess().SetRejectedLogRecords(2)
			rsp.PartialSuccess().SetErrorMessage("bad records")
			var body []byte
			var err error
			ct := ctProtobuf
			if json {
				body, err = rsp.MarshalJSON()
				ct = ctJSON
			} else {
				body, err = rsp.MarshalProto()
			}
			require.NoError(t, err)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", ct)
				_, _ = w.Write(body)
			}))
			defer srv.Close()
			cfg := DefaultOTLPHTTPExporterConfig()
			cfg.LogsEndpoint = srv.URL + "/custom/logs"
			reg := prometheus.NewRegistry()
			s, err := NewOTLPHTTPSender(cfg, nil, reg)
			require.NoError(t, err)
			defer s.Close()
			res, err := s.Send(t.Context(), actors.SignalLogs, mustProto(t, testBatch(actors.SignalLogs, 5)))
			require.NoError(t, err)
			require.Equal(t, SendResult{Rejected: 2, Message: "bad records"}, res)
			require.Equal(t, 2.0, testutil.ToFloat64(s.m.rejected.WithLabelValues("logs")))
		})
	}
}

func TestExporterConfigValidate(t *testing.T) {
	grpcCases := []struct {
		name string
		edit func(*OTLPExporterConfig)
		err  string
	}{
		{name: "host:port", edit: func(c *OTLPExporterConfig) { c.Endpoint = "gw:4317" }},
		{name: "dns target", edit: func(c *OTLPExporterConfig) { c.Endpoint = "dns:///gw:4317" }},
		{name: "https", edit: func(c *OTLPExporterConfig) { c.Endpoint = "https://gw:4317" }},
		{name: "empty endpoint", edit: func(c *OTLPExporterConfig) {}, err: "endpoint"},
		{name: "no port", edit: func(c *OTLPExporterConfig) { c.Endpoint = "gw" }, err: "endpoint"},
		{name: "snappy", edit: func(c *OTLPExporterConfig) { c.Endpoint = "gw:4317"; c.Compression = "snappy" }, err: "compression"},
		{name: "bad balancer", edit: func(c *OTLPExporterConfig) { c.Endpoint = "gw:4317"; c.BalancerName = "x" }, err: "balancer_name"},
		{name: "bad retry", edit: func(c *OTLPExporterConfig) { c.Endpoint = "gw:4317"; c.RetryOnFailure.Multiplier = 0.5 }, err: "retry_on_failure: multiplier"},
		{name: "bad header value", edit: func(c *OTLPExporterConfig) {
			c.Endpoint = "gw:4317"
			c.Headers = Headers{"authorization": "secretvalue\n"}
		}, err: "authorization"},
	}
	for _, tc := range grpcCases {
		t.Run("otlp/"+tc.name, func(t *testing.T) {
			cfg := DefaultOTLPExporterConfig()
			tc.edit(&cfg)
			err := cfg.Validate()
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
			require.NotContains(t, err.Error(), "secretvalue")
		})
	}
	httpCases := []struct {
		name string
		edit func(*OTLPHTTPExporterConfig)
		err  string
	}{
		{name: "base", edit: func(c *OTLPHTTPExporterConfig) { c.Endpoint = "https://gw:4318" }},
		{name: "per signal only", edit: func(c *OTLPHTTPExporterConfig) {
			c.LogsEndpoint, c.MetricsEndpoint, c.TracesEndpoint = "http://a/l", "http://a/m", "http://a/t"
		}},
		{name: "logs only", edit: func(c *OTLPHTTPExporterConfig) { c.LogsEndpoint = "http://a/l" }},
		{name: "none", edit: func(c *OTLPHTTPExporterConfig) {}, err: "endpoint: required"},
		{name: "not a url", edit: func(c *OTLPHTTPExporterConfig) { c.Endpoint = "gw:4318" }, err: "endpoint"},
		{name: "bad encoding", edit: func(c *OTLPHTTPExporterConfig) { c.Endpoint = "http://gw"; c.Encoding = "xml" }, err: "encoding"},
		{name: "bad compression", edit: func(c *OTLPHTTPExporterConfig) { c.Endpoint = "http://gw"; c.Compression = "snappy" }, err: "compression"},
	}
	for _, tc := range httpCases {
		t.Run("otlphttp/"+tc.name, func(t *testing.T) {
			cfg := DefaultOTLPHTTPExporterConfig()
			tc.edit(&cfg)
			err := cfg.Validate()
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
	require.Equal(t, "map[a:[REDACTED] b:[REDACTED]]", fmt.Sprint(Headers{"b": "x", "a": "y"}))
}
