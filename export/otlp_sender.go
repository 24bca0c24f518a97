package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/obs-dev/obs/actors"
)

// OTLPExporterConfig is the Collector's otlp (gRPC) exporter block.
type OTLPExporterConfig struct {
	// Endpoint is host:port, dns:///host:port, or http(s)://host:port
	// (the scheme decides TLS). Required.
	Endpoint string `yaml:"endpoint"`
	// TLS settings; TLS is on unless tls.insecure is true or the endpoint
	// says http://.
	TLS TLSClientConfig `yaml:"tls"`
	// Headers are sent as gRPC metadata with every request.
	Headers Headers `yaml:"headers"`
	// Compression is gzip (default), zstd or none.
	Compression string `yaml:"compression"`
	// Timeout bounds one request. Default 5s.
	Timeout time.Duration `yaml:"timeout"`
	// SendingQueue is accepted; see QueueConfig.
	SendingQueue QueueConfig `yaml:"sending_queue"`
	// RetryOnFailure is the retry policy the WAL drain loop applies.
	RetryOnFailure RetryConfig `yaml:"retry_on_failure"`
	// BalancerName is the gRPC load balancing policy: round_robin
	// (default) or pick_first.
	BalancerName string `yaml:"balancer_name"`
	// Keepalive pings idle connections when set.
	Keepalive *ClientKeepalive `yaml:"keepalive"`
	// WriteBufferSize and ReadBufferSize are per-connection buffers in
	// bytes; 0 = grpc default.
	WriteBufferSize int `yaml:"write_buffer_size"`
	ReadBufferSize  int `yaml:"read_buffer_size"`
	// Authority overrides the :authority pseudo-header.
	Authority string `yaml:"authority"`
}

// ClientKeepalive is the Collector's client keepalive block.
type ClientKeepalive struct {
	Time                time.Duration `yaml:"time"`
	Timeout             time.Duration `yaml:"timeout"`
	PermitWithoutStream bool          `yaml:"permit_without_stream"`
}

// DefaultOTLPExporterConfig returns the Collector's defaults (no endpoint).
func DefaultOTLPExporterConfig() OTLPExporterConfig {
	return OTLPExporterConfig{
		Compression:    "gzip",
		Timeout:        5 * time.Second,
		SendingQueue:   DefaultQueueConfig(),
		RetryOnFailure: DefaultRetryConfig(),
		BalancerName:   "round_robin",
	}
}

// Validate checks every key; errors name the key, never a header value.
func (c OTLPExporterConfig) Validate() error {
	if c.Endpoint != ClusterGateway {
		if _, _, err := parseGRPCEndpoint(c.Endpoint); err != nil {
			return err
		}
	}
	switch c.Compression {
	case "", "none", "gzip", zstdName:
	default:
		return fmt.Errorf("compression: unsupported %q (want gzip, zstd or none)", c.Compression)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("timeout: must be >= 0, got %s", c.Timeout)
	}
	switch c.BalancerName {
	case "", "round_robin", "pick_first":
	default:
		return fmt.Errorf("balancer_name: unsupported %q (want round_robin or pick_first)", c.BalancerName)
	}
	if c.WriteBufferSize < 0 || c.ReadBufferSize < 0 {
		return errors.New("write_buffer_size, read_buffer_size: must be >= 0")
	}
	if err := c.TLS.Validate(); err != nil {
		return err
	}
	if err := validateHeaders(c.Headers); err != nil {
		return err
	}
	if err := c.SendingQueue.Validate(); err != nil {
		return err
	}
	return c.RetryOnFailure.Validate()
}

// OTLPSender ships payloads to an OTLP/gRPC backend. The payload bytes go
// on the wire as they are (a pass-through codec); only the small response
// is decoded.
type OTLPSender struct {
	cfg      OTLPExporterConfig
	cc       *grpc.ClientConn
	md       metadata.MD
	callOpts []grpc.CallOption
	log      *slog.Logger
	m        *senderMetrics
}

// NewOTLPSender validates cfg and creates the client connection (grpc
// connects lazily, on the first Send). Metrics carry a signal label; wrap
// reg to add the exporter's id.
func NewOTLPSender(cfg OTLPExporterConfig, log *slog.Logger, reg prometheus.Registerer) (*OTLPSender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new otlp sender: %w", err)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m, err := newSenderMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("new otlp sender: %w", err)
	}
	target, secure, _ := parseGRPCEndpoint(cfg.Endpoint)
	useTLS := !cfg.TLS.Insecure
	if secure != nil {
		useTLS = *secure
	}
	opts := []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.ForceCodecV2(newRawCodec()))}
	if useTLS {
		tc, err := cfg.TLS.load()
		if err != nil {
			return nil, fmt.Errorf("new otlp sender: %w", err)
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if b := cfg.BalancerName; b != "" {
		opts = append(opts, grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"`+b+`":{}}]}`))
	}
	if k := cfg.Keepalive; k != nil {
		opts = append(opts, grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: k.Time, Timeout: k.Timeout, PermitWithoutStream: k.PermitWithoutStream}))
	}
	if cfg.WriteBufferSize > 0 {
		opts = append(opts, grpc.WithWriteBufferSize(cfg.WriteBufferSize))
	}
	if cfg.ReadBufferSize > 0 {
		opts = append(opts, grpc.WithReadBufferSize(cfg.ReadBufferSize))
	}
	if cfg.Authority != "" {
		opts = append(opts, grpc.WithAuthority(cfg.Authority))
	}
	opts = append(opts, grpc.WithUserAgent("obs"))
	cc, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("new otlp sender: create client for %q: %w", cfg.Endpoint, err)
	}
	s := &OTLPSender{cfg: cfg, cc: cc, log: log, m: m}
	if len(cfg.Headers) > 0 {
		s.md = metadata.New(cfg.Headers)
	}
	if c := cfg.Compression; c != "" && c != "none" {
		s.callOpts = append(s.callOpts, grpc.UseCompressor(c))
	}
	return s, nil
}

// Send ships payload to the signal's Export method.
func (s *OTLPSender) Send(ctx context.Context, sig actors.Signal, payload []byte) (SendResult, error) {
	res, err := s.send(ctx, sig, payload)
	s.m.record(sig, len(payload), res, err)
	return res, err
}

// SendParts implements PartsSender: the parts go to gRPC as one message
// of several buffers, without a copy into one.
func (s *OTLPSender) SendParts(ctx context.Context, sig actors.Signal, parts [][]byte) (SendResult, error) {
	in := rawParts(parts)
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	res, err := s.invoke(ctx, sig, &in)
	s.m.record(sig, n, res, err)
	return res, err
}

func (s *OTLPSender) send(ctx context.Context, sig actors.Signal, payload []byte) (SendResult, error) {
	in := rawMsg(payload)
	return s.invoke(ctx, sig, &in)
}

// invoke sends in, a *rawMsg or *rawParts, as one export request.
func (s *OTLPSender) invoke(ctx context.Context, sig actors.Signal, in any) (SendResult, error) {
	if grpcService(sig) == "" {
		return SendResult{}, Permanent(fmt.Errorf("send: unknown signal %s", sig))
	}
	if s.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.Timeout)
		defer cancel()
	}
	if s.md != nil {
		ctx = metadata.NewOutgoingContext(ctx, s.md)
	}
	var out rawMsg
	if err := s.cc.Invoke(ctx, grpcMethod(sig), in, &out, s.callOpts...); err != nil {
		return SendResult{}, classifyGRPC(sig, s.cfg.Endpoint, err)
	}
	ps, err := decodeResponse(sig, out, false)
	if err != nil {
		// The backend took the data; an unreadable answer is only logged.
		s.log.Warn("undecodable export response", "signal", sig, "err", err)
		return SendResult{}, nil
	}
	if ps.rejected > 0 {
		s.log.Debug("backend rejected items", "signal", sig, "rejected", ps.rejected, "message", ps.message)
	}
	return SendResult{Rejected: ps.rejected, Message: ps.message}, nil
}

// classifyGRPC maps a gRPC status as the Collector's exporterhelper does.
func classifyGRPC(sig actors.Signal, endpoint string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("send %s to %q: %w", sig, endpoint, err)
	}
	err = fmt.Errorf("send %s to %q: %w", sig, endpoint, err)
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			retry = ri
		}
	}
	switch st.Code() {
	case codes.Canceled, codes.DeadlineExceeded, codes.Aborted, codes.OutOfRange, codes.Unavailable, codes.DataLoss:
	case codes.ResourceExhausted:
		if retry == nil {
			return Permanent(err)
		}
	default:
		return Permanent(err)
	}
	if retry != nil && retry.RetryDelay != nil {
		return &ThrottleError{After: retry.RetryDelay.AsDuration(), Err: err}
	}
	return err
}

// Close closes the connection.
func (s *OTLPSender) Close() error {
	if err := s.cc.Close(); err != nil {
		return fmt.Errorf("close otlp sender: %w", err)
	}
	return nil
}

func asThrottle(err error, te **ThrottleError) bool { return errors.As(err, te) }

func (s *OTLPSender) metrics() *senderMetrics { return s.m }
