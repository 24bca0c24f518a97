package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/obs-dev/obs/actors"
)

// OTLPReceiverConfig is the Collector's otlp receiver block.
type OTLPReceiverConfig struct {
	Protocols struct {
		// GRPC turns on the gRPC server when present (even empty: `grpc:`).
		GRPC *GRPCServerConfig `yaml:"grpc"`
		// HTTP turns on the OTLP/HTTP server when present.
		HTTP *HTTPServerConfig `yaml:"http"`
	} `yaml:"protocols"`
}

// GRPCServerConfig is the Collector's protocols.grpc block. A key listed
// in a `grpc:` block that is null keeps its default.
type GRPCServerConfig struct {
	// Endpoint is host:port to listen on. Default "0.0.0.0:4317".
	Endpoint string `yaml:"endpoint"`
	// Transport is accepted; only "tcp" (default) is supported.
	Transport string `yaml:"transport"`
	// MaxRecvMsgSizeMiB caps one decompressed request, in MiB. Default 4.
	MaxRecvMsgSizeMiB int `yaml:"max_recv_msg_size_mib"`
	// MaxConcurrentStreams caps streams per connection; 0 = grpc default.
	MaxConcurrentStreams uint32 `yaml:"max_concurrent_streams"`
	// ReadBufferSize and WriteBufferSize are per-connection buffers in
	// bytes; 0 = grpc default (32 KiB).
	ReadBufferSize  int `yaml:"read_buffer_size"`
	WriteBufferSize int `yaml:"write_buffer_size"`
	// Keepalive is the Collector's keepalive block.
	Keepalive *GRPCServerKeepalive `yaml:"keepalive"`
	// TLS turns on TLS when present.
	TLS *TLSServerConfig `yaml:"tls"`
	// IncludeMetadata keeps client metadata in the context handed to the
	// consumer (gRPC always does; kept for the Collector's key).
	IncludeMetadata bool `yaml:"include_metadata"`
}

// GRPCServerKeepalive is the Collector's keepalive block (durations).
type GRPCServerKeepalive struct {
	ServerParameters *struct {
		MaxConnectionIdle     time.Duration `yaml:"max_connection_idle"`
		MaxConnectionAge      time.Duration `yaml:"max_connection_age"`
		MaxConnectionAgeGrace time.Duration `yaml:"max_connection_age_grace"`
		Time                  time.Duration `yaml:"time"`
		Timeout               time.Duration `yaml:"timeout"`
	} `yaml:"server_parameters"`
	EnforcementPolicy *struct {
		MinTime             time.Duration `yaml:"min_time"`
		PermitWithoutStream bool          `yaml:"permit_without_stream"`
	} `yaml:"enforcement_policy"`
}

// HTTPServerConfig is the Collector's protocols.http block.
type HTTPServerConfig struct {
	// Endpoint is host:port to listen on. Default "0.0.0.0:4318".
	Endpoint string `yaml:"endpoint"`
	// MaxRequestBodySize caps a request body in bytes, before and after
	// decompression. Default 20 MiB.
	MaxRequestBodySize int64 `yaml:"max_request_body_size"`
	// TLS turns on TLS when present.
	TLS *TLSServerConfig `yaml:"tls"`
	// CORS answers browsers' cross-origin requests when allowed_origins is set.
	CORS *CORSConfig `yaml:"cors"`
	// LogsURLPath etc. are the request paths. Defaults /v1/logs,
	// /v1/metrics, /v1/traces.
	LogsURLPath    string `yaml:"logs_url_path"`
	MetricsURLPath string `yaml:"metrics_url_path"`
	TracesURLPath  string `yaml:"traces_url_path"`
	// IncludeMetadata puts the request headers into the consumer's context
	// as gRPC-style incoming metadata.
	IncludeMetadata bool `yaml:"include_metadata"`
}

// CORSConfig is the Collector's cors block.
type CORSConfig struct {
	// AllowedOrigins lists origins; "*" and one "*" wildcard per entry
	// ("https://*.example.com") are allowed.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// AllowedHeaders are accepted in addition to the simple headers.
	AllowedHeaders []string `yaml:"allowed_headers"`
	// MaxAge is how long a preflight answer may be cached, in seconds.
	MaxAge int `yaml:"max_age"`
}

// Receiver defaults.
const (
	DefaultGRPCEndpoint       = "0.0.0.0:4317"
	DefaultHTTPEndpoint       = "0.0.0.0:4318"
	defaultMaxRecvMsgSizeMiB  = 4
	defaultMaxRequestBodySize = 20 << 20
	defaultRetryAfter         = time.Second
	defaultDrainTimeout       = 10 * time.Second
)

// DefaultOTLPReceiverConfig returns a config with no protocol turned on:
// the yaml must list at least one, as in the Collector.
func DefaultOTLPReceiverConfig() OTLPReceiverConfig { return OTLPReceiverConfig{} }

// DefaultGRPCServerConfig returns the defaults of a `grpc:` block.
func DefaultGRPCServerConfig() *GRPCServerConfig {
	return &GRPCServerConfig{Endpoint: DefaultGRPCEndpoint, MaxRecvMsgSizeMiB: defaultMaxRecvMsgSizeMiB}
}

// DefaultHTTPServerConfig returns the defaults of an `http:` block.
func DefaultHTTPServerConfig() *HTTPServerConfig {
	return &HTTPServerConfig{
		Endpoint:           DefaultHTTPEndpoint,
		MaxRequestBodySize: defaultMaxRequestBodySize,
		LogsURLPath:        "/v1/logs",
		MetricsURLPath:     "/v1/metrics",
		TracesURLPath:      "/v1/traces",
	}
}

// applyDefaults fills zero values of the listed protocols.
func (c *OTLPReceiverConfig) applyDefaults() {
	if g := c.Protocols.GRPC; g != nil {
		d := DefaultGRPCServerConfig()
		if g.Endpoint == "" {
			g.Endpoint = d.Endpoint
		}
		if g.MaxRecvMsgSizeMiB == 0 {
			g.MaxRecvMsgSizeMiB = d.MaxRecvMsgSizeMiB
		}
	}
	if h := c.Protocols.HTTP; h != nil {
		d := DefaultHTTPServerConfig()
		if h.Endpoint == "" {
			h.Endpoint = d.Endpoint
		}
		if h.MaxRequestBodySize == 0 {
			h.MaxRequestBodySize = d.MaxRequestBodySize
		}
		if h.LogsURLPath == "" {
			h.LogsURLPath = d.LogsURLPath
		}
		if h.MetricsURLPath == "" {
			h.MetricsURLPath = d.MetricsURLPath
		}
		if h.TracesURLPath == "" {
			h.TracesURLPath = d.TracesURLPath
		}
	}
}

// Validate fills defaults of the listed protocols and checks the values.
func (c *OTLPReceiverConfig) Validate() error {
	if c.Protocols.GRPC == nil && c.Protocols.HTTP == nil {
		return errors.New("protocols: must specify at least one protocol (grpc or http)")
	}
	c.applyDefaults()
	if g := c.Protocols.GRPC; g != nil {
		if _, _, err := net.SplitHostPort(g.Endpoint); err != nil {
			return fmt.Errorf("protocols::grpc::endpoint: %w", err)
		}
		if g.Transport != "" && g.Transport != "tcp" {
			return fmt.Errorf("protocols::grpc::transport: unsupported %q (want tcp)", g.Transport)
		}
		if g.MaxRecvMsgSizeMiB < 0 {
			return fmt.Errorf("protocols::grpc::max_recv_msg_size_mib: must be > 0, got %d", g.MaxRecvMsgSizeMiB)
		}
		if g.ReadBufferSize < 0 || g.WriteBufferSize < 0 {
			return errors.New("protocols::grpc: read_buffer_size and write_buffer_size must be >= 0")
		}
		if err := g.TLS.Validate(); err != nil {
			return fmt.Errorf("protocols::grpc::%w", err)
		}
	}
	if h := c.Protocols.HTTP; h != nil {
		if _, _, err := net.SplitHostPort(h.Endpoint); err != nil {
			return fmt.Errorf("protocols::http::endpoint: %w", err)
		}
		if h.MaxRequestBodySize < 0 {
			return fmt.Errorf("protocols::http::max_request_body_size: must be > 0, got %d", h.MaxRequestBodySize)
		}
		paths := map[string]bool{}
		for key, p := range map[string]string{"logs_url_path": h.LogsURLPath, "metrics_url_path": h.MetricsURLPath, "traces_url_path": h.TracesURLPath} {
			if p[0] != '/' {
				return fmt.Errorf("protocols::http::%s: must start with /, got %q", key, p)
			}
			if paths[p] {
				return fmt.Errorf("protocols::http::%s: path %q used twice", key, p)
			}
			paths[p] = true
		}
		if err := h.TLS.Validate(); err != nil {
			return fmt.Errorf("protocols::http::%w", err)
		}
	}
	return nil
}

// ConsumeFunc hands a batch downstream. It returns only after the batch is
// durable (WAL commit); an error wrapping actors.ErrRefused (a
// *actors.RefusedError carries RetryAfter) means the pipeline pushed back.
type ConsumeFunc func(ctx context.Context, b actors.Batch) error

// OTLPReceiver serves OTLP over gRPC and HTTP.
type OTLPReceiver struct {
	id        string
	cfg       OTLPReceiverConfig
	consumers map[actors.Signal]ConsumeFunc
	log       *slog.Logger
	m         *receiverMetrics
	codecs    codecs
	drain     time.Duration

	mu       sync.Mutex
	started  bool
	grpcLn   net.Listener
	httpLn   net.Listener
	grpcSrv  *grpc.Server
	httpSrv  *http.Server
	emptyRsp [4][2][]byte // [signal][json]
}

// NewOTLPReceiver validates cfg and builds the receiver; Start binds it.
// consumers maps each signal that some pipeline takes from this receiver to
// its consumer; the other signals answer Unimplemented / 404.
func NewOTLPReceiver(id string, cfg OTLPReceiverConfig, consumers map[actors.Signal]ConsumeFunc, log *slog.Logger, reg prometheus.Registerer) (*OTLPReceiver, error) {
	if id == "" {
		return nil, errors.New("new otlp receiver: empty id")
	}
	// Copy the protocol blocks: Validate fills defaults in place.
	if g := cfg.Protocols.GRPC; g != nil {
		c := *g
		cfg.Protocols.GRPC = &c
	}
	if h := cfg.Protocols.HTTP; h != nil {
		c := *h
		cfg.Protocols.HTTP = &c
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new otlp receiver %q: %w", id, err)
	}
	if len(consumers) == 0 {
		return nil, fmt.Errorf("new otlp receiver %q: no consumers", id)
	}
	cs := make(map[actors.Signal]ConsumeFunc, len(consumers))
	for s, f := range consumers {
		if grpcService(s) == "" || f == nil {
			return nil, fmt.Errorf("new otlp receiver %q: bad consumer for signal %s", id, s)
		}
		cs[s] = f
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newReceiverMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("new otlp receiver %q: %w", id, err)
	}
	r := &OTLPReceiver{
		id: id, cfg: cfg, consumers: cs, m: m, drain: defaultDrainTimeout,
		log: log.With("component", id),
	}
	for _, s := range allSignals {
		r.emptyRsp[s][0] = emptyResponse(s, false)
		r.emptyRsp[s][1] = emptyResponse(s, true)
	}
	return r, nil
}

// Start binds the configured listeners, so bind errors surface here. It
// starts no goroutine; Run serves.
func (r *OTLPReceiver) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return fmt.Errorf("start otlp receiver %q: already started", r.id)
	}
	if g := r.cfg.Protocols.GRPC; g != nil {
		srv, err := r.newGRPCServer(g)
		if err != nil {
			return fmt.Errorf("start otlp receiver %q: %w", r.id, err)
		}
		ln, err := net.Listen("tcp", g.Endpoint)
		if err != nil {
			return fmt.Errorf("start otlp receiver %q: listen grpc: %w", r.id, err)
		}
		r.grpcSrv, r.grpcLn = srv, ln
	}
	if h := r.cfg.Protocols.HTTP; h != nil {
		srv, err := r.newHTTPServer(h)
		if err == nil {
			var ln net.Listener
			if ln, err = net.Listen("tcp", h.Endpoint); err == nil {
				r.httpSrv, r.httpLn = srv, ln
			} else {
				err = fmt.Errorf("listen http: %w", err)
			}
		}
		if err != nil {
			if r.grpcLn != nil {
				_ = r.grpcLn.Close()
				r.grpcLn, r.grpcSrv = nil, nil
			}
			return fmt.Errorf("start otlp receiver %q: %w", r.id, err)
		}
	}
	r.started = true
	return nil
}

// Addrs returns the bound addresses (nil for a protocol that is off or
// before Start).
func (r *OTLPReceiver) Addrs() (grpcAddr, httpAddr net.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.grpcLn != nil {
		grpcAddr = r.grpcLn.Addr()
	}
	if r.httpLn != nil {
		httpAddr = r.httpLn.Addr()
	}
	return grpcAddr, httpAddr
}

// Run serves until ctx is done, then stops accepting, waits for in-flight
// requests up to the drain deadline, and returns after every goroutine it
// started has exited. It calls Start if the caller has not.
func (r *OTLPReceiver) Run(ctx context.Context) error {
	r.mu.Lock()
	started := r.started
	r.mu.Unlock()
	if !started {
		if err := r.Start(); err != nil {
			return err
		}
	}
	r.log.Info("otlp receiver serving", "grpc", addrString(r.grpcLn), "http", addrString(r.httpLn))
	errc := make(chan error, 2)
	var wg sync.WaitGroup
	if r.grpcSrv != nil {
		wg.Go(func() {
			if err := r.grpcSrv.Serve(r.grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				errc <- fmt.Errorf("serve grpc: %w", err)
			}
		})
	}
	if r.httpSrv != nil {
		wg.Go(func() {
			var err error
			if r.httpSrv.TLSConfig != nil {
				err = r.httpSrv.ServeTLS(r.httpLn, "", "")
			} else {
				err = r.httpSrv.Serve(r.httpLn)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve http: %w", err)
			}
		})
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	r.stop()
	wg.Wait()
	r.log.Info("otlp receiver stopped")
	if runErr != nil {
		return fmt.Errorf("run otlp receiver %q: %w", r.id, runErr)
	}
	return nil
}

// stop stops accepting and drains both servers within the drain deadline.
func (r *OTLPReceiver) stop() {
	dctx, cancel := context.WithTimeout(context.Background(), r.drain)
	defer cancel()
	var wg sync.WaitGroup
	if r.httpSrv != nil {
		wg.Go(func() {
			if err := r.httpSrv.Shutdown(dctx); err != nil {
				r.log.Warn("otlp http drain deadline passed, closing", "err", err)
				_ = r.httpSrv.Close()
			}
		})
	}
	if r.grpcSrv != nil {
		wg.Go(func() {
			done := make(chan struct{})
			go func() { r.grpcSrv.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-dctx.Done():
				r.log.Warn("otlp grpc drain deadline passed, closing")
				r.grpcSrv.Stop()
				<-done
			}
		})
	}
	wg.Wait()
}

func addrString(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// consumeResult classifies one consume attempt for both transports.
type consumeResult uint8

const (
	consumeOK consumeResult = iota
	consumeRefused
	consumeFailed
	consumeCanceled
)

// consume hands a decoded batch to its consumer and counts the outcome.
func (r *OTLPReceiver) consume(ctx context.Context, transport string, f ConsumeFunc, b actors.Batch) (consumeResult, time.Duration, error) {
	n := b.Items()
	if n == 0 {
		return consumeOK, 0, nil
	}
	err := f(ctx, b)
	if err == nil {
		r.m.accepted[b.Signal].WithLabelValues(r.id, transport).Add(float64(n))
		return consumeOK, 0, nil
	}
	r.m.refused[b.Signal].WithLabelValues(r.id, transport).Add(float64(n))
	if errors.Is(err, actors.ErrRefused) {
		after := defaultRetryAfter
		var re *actors.RefusedError
		if errors.As(err, &re) && re.RetryAfter > 0 {
			after = re.RetryAfter
		}
		r.log.Debug("batch refused", "signal", b.Signal, "transport", transport, "items", n, "err", err)
		return consumeRefused, after, err
	}
	if ctx.Err() != nil {
		return consumeCanceled, 0, err
	}
	r.log.Debug("consume batch", "signal", b.Signal, "transport", transport, "items", n, "err", err)
	return consumeFailed, defaultRetryAfter, err
}

// receiverMetrics are the receiver's self-telemetry.
type receiverMetrics struct {
	accepted [4]*prometheus.CounterVec // by signal
	refused  [4]*prometheus.CounterVec
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newReceiverMetrics(reg prometheus.Registerer) (*receiverMetrics, error) {
	m := &receiverMetrics{}
	items := map[actors.Signal]string{actors.SignalLogs: "log_records", actors.SignalMetrics: "metric_points", actors.SignalTraces: "spans"}
	labels := []string{"receiver", "transport"}
	var err error
	for _, s := range allSignals {
		if m.accepted[s], err = registerCounterVec(reg, prometheus.CounterOpts{
			Name: "otelcol_receiver_accepted_" + items[s],
			Help: "Number of " + s.String() + " items successfully pushed into the pipeline.",
		}, labels); err != nil {
			return nil, err
		}
		if m.refused[s], err = registerCounterVec(reg, prometheus.CounterOpts{
			Name: "otelcol_receiver_refused_" + items[s],
			Help: "Number of " + s.String() + " items that could not be pushed into the pipeline.",
		}, labels); err != nil {
			return nil, err
		}
	}
	if m.requests, err = registerCounterVec(reg, prometheus.CounterOpts{
		Name: "obs_export_receiver_requests_total",
		Help: "OTLP export requests received, by response code.",
	}, []string{"receiver", "transport", "signal", "code"}); err != nil {
		return nil, err
	}
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "obs_export_receiver_request_duration_seconds",
		Help:    "Time from request start to response, including the durable hand-off.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"receiver", "transport", "signal"})
	c, err := register(reg, h)
	if err != nil {
		return nil, err
	}
	m.duration = c.(*prometheus.HistogramVec)
	return m, nil
}

func (m *receiverMetrics) observe(id, transport string, s actors.Signal, code string, start time.Time) {
	m.requests.WithLabelValues(id, transport, s.String(), code).Inc()
	m.duration.WithLabelValues(id, transport, s.String()).Observe(time.Since(start).Seconds())
}

func registerCounterVec(reg prometheus.Registerer, opts prometheus.CounterOpts, labels []string) (*prometheus.CounterVec, error) {
	c, err := register(reg, prometheus.NewCounterVec(opts, labels))
	if err != nil {
		return nil, err
	}
	return c.(*prometheus.CounterVec), nil
}

// register registers c, or returns the identical collector registered
// before (several receivers or senders share one registry).
func register(reg prometheus.Registerer, c prometheus.Collector) (prometheus.Collector, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return are.ExistingCollector, nil
		}
		return nil, fmt.Errorf("register metric: %w", err)
	}
	return c, nil
}
