package export

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/obs-dev/obs/actors"
)

// OTLPHTTPExporterConfig is the Collector's otlphttp exporter block.
type OTLPHTTPExporterConfig struct {
	// Endpoint is the base URL; /v1/logs, /v1/metrics, /v1/traces are
	// appended. Required unless a per-signal endpoint is set; a signal
	// with neither cannot be sent (permanent error).
	Endpoint string `yaml:"endpoint"`
	// LogsEndpoint etc. are full URLs that override Endpoint per signal.
	LogsEndpoint    string `yaml:"logs_endpoint"`
	MetricsEndpoint string `yaml:"metrics_endpoint"`
	TracesEndpoint  string `yaml:"traces_endpoint"`
	// TLS is used for https URLs.
	TLS TLSClientConfig `yaml:"tls"`
	// Headers are added to every request.
	Headers Headers `yaml:"headers"`
	// Compression is gzip (default), zstd, deflate or none.
	Compression string `yaml:"compression"`
	// Timeout bounds one request. Default 30s.
	Timeout time.Duration `yaml:"timeout"`
	// Encoding is proto (default) or json.
	Encoding string `yaml:"encoding"`
	// SendingQueue is accepted; see QueueConfig.
	SendingQueue QueueConfig `yaml:"sending_queue"`
	// RetryOnFailure is the retry policy the WAL drain loop applies.
	RetryOnFailure RetryConfig `yaml:"retry_on_failure"`
	// MaxIdleConns, MaxIdleConnsPerHost, IdleConnTimeout tune the
	// connection pool. Defaults 100, 10, 90s.
	MaxIdleConns        int           `yaml:"max_idle_conns"`
	MaxIdleConnsPerHost int           `yaml:"max_idle_conns_per_host"`
	IdleConnTimeout     time.Duration `yaml:"idle_conn_timeout"`
}

// DefaultOTLPHTTPExporterConfig returns the Collector's defaults.
func DefaultOTLPHTTPExporterConfig() OTLPHTTPExporterConfig {
	return OTLPHTTPExporterConfig{
		Compression:         "gzip",
		Timeout:             30 * time.Second,
		Encoding:            "proto",
		SendingQueue:        DefaultQueueConfig(),
		RetryOnFailure:      DefaultRetryConfig(),
		MaxIdleConns:        100,
		MaxIdleConnsPerHost: 10,
		IdleConnTimeout:     90 * time.Second,
	}
}

// urls returns each signal's request URL.
func (c OTLPHTTPExporterConfig) urls() (map[actors.Signal]string, error) {
	out := map[actors.Signal]string{}
	for _, s := range allSignals {
		key, full := "logs_endpoint", c.LogsEndpoint
		switch s {
		case actors.SignalMetrics:
			key, full = "metrics_endpoint", c.MetricsEndpoint
		case actors.SignalTraces:
			key, full = "traces_endpoint", c.TracesEndpoint
		}
		if full == "" {
			if c.Endpoint == "" {
				continue // this signal cannot be sent
			}
			key, full = "endpoint", strings.TrimSuffix(c.Endpoint, "/")+"/v1/"+s.String()
		}
		u, err := url.Parse(full)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%s: %q is not an http(s) URL with a host", key, full)
		}
		out[s] = full
	}
	if len(out) == 0 {
		return nil, errors.New("endpoint: required (or logs_endpoint, metrics_endpoint, traces_endpoint)")
	}
	return out, nil
}

// Validate checks every key; errors name the key, never a header value.
func (c OTLPHTTPExporterConfig) Validate() error {
	if _, err := c.urls(); err != nil {
		return err
	}
	switch c.Compression {
	case "", "none", "gzip", zstdName, "deflate":
	default:
		return fmt.Errorf("compression: unsupported %q (want gzip, zstd, deflate or none)", c.Compression)
	}
	switch c.Encoding {
	case "", "proto", "json":
	default:
		return fmt.Errorf("encoding: unsupported %q (want proto or json)", c.Encoding)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("timeout: must be >= 0, got %s", c.Timeout)
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

// OTLPHTTPSender ships payloads to an OTLP/HTTP backend.
type OTLPHTTPSender struct {
	cfg    OTLPHTTPExporterConfig
	urls   map[actors.Signal]string
	client *http.Client
	json   bool
	ct     string
	codecs codecs
	bufs   sync.Pool // *bytes.Buffer
	log    *slog.Logger
	m      *senderMetrics
}

// NewOTLPHTTPSender validates cfg and builds the HTTP client. Metrics carry
// a signal label; wrap reg to add the exporter's id.
func NewOTLPHTTPSender(cfg OTLPHTTPExporterConfig, log *slog.Logger, reg prometheus.Registerer) (*OTLPHTTPSender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new otlphttp sender: %w", err)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m, err := newSenderMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("new otlphttp sender: %w", err)
	}
	urls, _ := cfg.urls()
	tc, err := cfg.TLS.load()
	if err != nil {
		return nil, fmt.Errorf("new otlphttp sender: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	tr.Proxy = http.ProxyFromEnvironment
	if cfg.MaxIdleConns > 0 {
		tr.MaxIdleConns = cfg.MaxIdleConns
	}
	if cfg.MaxIdleConnsPerHost > 0 {
		tr.MaxIdleConnsPerHost = cfg.MaxIdleConnsPerHost
	}
	if cfg.IdleConnTimeout > 0 {
		tr.IdleConnTimeout = cfg.IdleConnTimeout
	}
	s := &OTLPHTTPSender{
		cfg: cfg, urls: urls, log: log, m: m,
		client: &http.Client{Transport: tr, Timeout: cfg.Timeout},
		json:   cfg.Encoding == "json",
		ct:     ctProtobuf,
	}
	if s.json {
		s.ct = ctJSON
	}
	return s, nil
}

// Send posts payload (converted to JSON when encoding is json).
func (s *OTLPHTTPSender) Send(ctx context.Context, sig actors.Signal, payload []byte) (SendResult, error) {
	res, err := s.send(ctx, sig, payload)
	s.m.record(sig, len(payload), res, err)
	return res, err
}

func (s *OTLPHTTPSender) send(ctx context.Context, sig actors.Signal, payload []byte) (SendResult, error) {
	u, ok := s.urls[sig]
	if !ok {
		return SendResult{}, Permanent(fmt.Errorf("send %s: no endpoint configured for this signal", sig))
	}
	body := payload
	if s.json {
		b, err := decodeProto(sig, payload)
		if err != nil {
			return SendResult{}, Permanent(fmt.Errorf("send %s: convert to json: %w", sig, err))
		}
		if body, err = encodeJSON(b); err != nil {
			return SendResult{}, Permanent(fmt.Errorf("send %s: convert to json: %w", sig, err))
		}
	}
	buf, _ := s.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	defer s.bufs.Put(buf)
	if err := s.codecs.compress(buf, s.cfg.Compression, body); err != nil {
		return SendResult{}, Permanent(fmt.Errorf("send %s: %w", sig, err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(buf.Bytes()))
	if err != nil {
		return SendResult{}, Permanent(fmt.Errorf("send %s: build request: %w", sig, err))
	}
	for k, v := range s.cfg.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", s.ct)
	if c := s.cfg.Compression; c != "" && c != "none" {
		req.Header.Set("Content-Encoding", c)
	}
	req.Header.Set("User-Agent", "obs")
	rsp, err := s.client.Do(req)
	if err != nil {
		// Transport failures (refused, reset, timeout) are retryable. The
		// error names the URL, never a header.
		return SendResult{}, fmt.Errorf("send %s to %q: %w", sig, u, unwrapURLError(err))
	}
	defer rsp.Body.Close()
	const maxResponse = 1 << 20
	rb, rerr := io.ReadAll(io.LimitReader(rsp.Body, maxResponse))
	if rsp.StatusCode >= 200 && rsp.StatusCode < 300 {
		if rerr != nil || len(rb) == 0 {
			return SendResult{}, nil
		}
		json, ok := parseContentType(rsp.Header.Get("Content-Type"))
		if !ok {
			return SendResult{}, nil
		}
		ps, err := decodeResponse(sig, rb, json)
		if err != nil {
			s.log.Warn("undecodable export response", "signal", sig, "err", err)
			return SendResult{}, nil
		}
		return SendResult{Rejected: ps.rejected, Message: ps.message}, nil
	}
	err = fmt.Errorf("send %s to %q: HTTP %d: %s", sig, u, rsp.StatusCode, statusMessage(rsp.Header.Get("Content-Type"), rb))
	switch rsp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		if d, ok := parseRetryAfter(rsp.Header.Get("Retry-After"), time.Now()); ok {
			return SendResult{}, &ThrottleError{After: d, Err: err}
		}
		return SendResult{}, err
	}
	return SendResult{}, Permanent(err)
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// statusMessage extracts the message of a google.rpc.Status body, or a
// short prefix of any other body.
func statusMessage(ct string, body []byte) string {
	if json, ok := parseContentType(ct); ok && len(body) > 0 {
		st := &spb.Status{}
		var err error
		if json {
			err = protojson.Unmarshal(body, st)
		} else {
			err = proto.Unmarshal(body, st)
		}
		if err == nil && st.Message != "" {
			return st.Message
		}
	}
	const max = 256
	s := strings.TrimSpace(string(body))
	if len(s) > max {
		s = s[:max] + "..."
	}
	if s == "" {
		return "(empty body)"
	}
	return strconv.QuoteToGraphic(s)
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

// Close releases idle connections.
func (s *OTLPHTTPSender) Close() error {
	s.client.CloseIdleConnections()
	return nil
}

func (s *OTLPHTTPSender) metrics() *senderMetrics { return s.m }
