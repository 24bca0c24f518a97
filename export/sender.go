package export

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/obs-dev/obs/actors"
)

// Sender ships one WAL payload (an OTLP protobuf export request of signal
// s) to a backend. A nil error means the backend took the payload (some
// items may still be rejected: see SendResult). Errors are retryable unless
// IsPermanent; a *ThrottleError asks for a minimum wait. Send is safe for
// concurrent use.
type Sender interface {
	Send(ctx context.Context, s actors.Signal, payload []byte) (SendResult, error)
	Close() error
}

// PartsSender is a Sender that takes a request as consecutive parts
// (whole export requests of one signal, which concatenated are one
// request) and puts them on the wire without joining them first.
type PartsSender interface {
	SendParts(ctx context.Context, s actors.Signal, parts [][]byte) (SendResult, error)
}

// SendResult is the backend's partial_success answer: items it rejected
// for good, and why. Retrying does not help them.
type SendResult struct {
	Rejected int64
	Message  string
}

// Headers are extra request headers (HTTP) or metadata (gRPC). Their values
// are secrets: String and LogValue print only the keys.
type Headers map[string]string

// String lists the keys with redacted values.
func (h Headers) String() string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString("map[")
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k + ":[REDACTED]")
	}
	b.WriteByte(']')
	return b.String()
}

// LogValue keeps header values out of logs.
func (h Headers) LogValue() slog.Value { return slog.StringValue(h.String()) }

// QueueConfig is the Collector's sending_queue block. obs always queues in
// the write-ahead log; the block is accepted so Collector configurations
// load, and num_consumers sets the WAL drain concurrency.
type QueueConfig struct {
	// Enabled is accepted; the WAL queue is always on.
	Enabled bool `yaml:"enabled"`
	// NumConsumers is how many payloads are sent concurrently. Default 10.
	NumConsumers int `yaml:"num_consumers"`
	// QueueSize is accepted; the WAL size cap bounds the queue.
	QueueSize int `yaml:"queue_size"`
	// Storage is accepted and ignored: the WAL is the storage.
	Storage string `yaml:"storage"`
}

// DefaultQueueConfig returns the Collector's defaults.
func DefaultQueueConfig() QueueConfig {
	return QueueConfig{Enabled: true, NumConsumers: 10, QueueSize: 1000}
}

// Validate checks the values.
func (c QueueConfig) Validate() error {
	if c.NumConsumers < 0 {
		return fmt.Errorf("sending_queue: num_consumers must be >= 0, got %d", c.NumConsumers)
	}
	if c.QueueSize < 0 {
		return fmt.Errorf("sending_queue: queue_size must be >= 0, got %d", c.QueueSize)
	}
	return nil
}

// validateHeaders rejects header keys that cannot go on the wire. It never
// mentions a value.
func validateHeaders(h Headers) error {
	for k := range h {
		if k == "" || strings.ContainsAny(k, " \t\r\n:") {
			return fmt.Errorf("headers: invalid header name %q", k)
		}
	}
	for k, v := range h {
		if strings.ContainsAny(v, "\r\n") {
			return fmt.Errorf("headers: value of %q contains a line break", k)
		}
	}
	return nil
}

// senderMetrics are a sender's self-telemetry. Senders take no id: the
// caller labels them by wrapping the registerer
// (prometheus.WrapRegistererWith(prometheus.Labels{"exporter": id}, reg)).
type senderMetrics struct {
	requests *prometheus.CounterVec // signal, outcome
	rejected *prometheus.CounterVec // signal
	bytes    *prometheus.CounterVec // signal
}

func newSenderMetrics(reg prometheus.Registerer) (*senderMetrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &senderMetrics{}
	var err error
	if m.requests, err = registerCounterVec(reg, prometheus.CounterOpts{
		Name: "obs_export_sender_requests_total",
		Help: "Export requests sent, by outcome (success, retryable, throttled, permanent).",
	}, []string{"signal", "outcome"}); err != nil {
		return nil, err
	}
	if m.rejected, err = registerCounterVec(reg, prometheus.CounterOpts{
		Name: "obs_export_partial_rejected_total",
		Help: "Items the backend rejected in an OTLP partial_success answer.",
	}, []string{"signal"}); err != nil {
		return nil, err
	}
	if m.bytes, err = registerCounterVec(reg, prometheus.CounterOpts{
		Name: "obs_export_sender_sent_bytes_total",
		Help: "Uncompressed OTLP payload bytes sent successfully.",
	}, []string{"signal"}); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *senderMetrics) record(s actors.Signal, n int, res SendResult, err error) {
	outcome := "success"
	if err != nil {
		outcome = "retryable"
		var te *ThrottleError
		switch {
		case IsPermanent(err):
			outcome = "permanent"
		case asThrottle(err, &te):
			outcome = "throttled"
		}
	} else {
		m.bytes.WithLabelValues(s.String()).Add(float64(n))
		if res.Rejected > 0 {
			m.rejected.WithLabelValues(s.String()).Add(float64(res.Rejected))
		}
	}
	m.requests.WithLabelValues(s.String(), outcome).Inc()
}

// parseGRPCEndpoint accepts the Collector's forms: "host:port",
// "dns:///host:port", "http://host:port" (plain text) and
// "https://host:port" (TLS). secure is nil when the form says nothing.
func parseGRPCEndpoint(ep string) (target string, secure *bool, err error) {
	if ep == "" {
		return "", nil, fmt.Errorf("endpoint: empty")
	}
	switch {
	case strings.HasPrefix(ep, "http://"), strings.HasPrefix(ep, "https://"):
		u, err := url.Parse(ep)
		if err != nil {
			return "", nil, fmt.Errorf("endpoint: %w", err)
		}
		if u.Host == "" {
			return "", nil, fmt.Errorf("endpoint: no host in %q", ep)
		}
		s := u.Scheme == "https"
		host := u.Host
		if u.Port() == "" {
			host += ":" + map[bool]string{true: "443", false: "80"}[s]
		}
		return host, &s, nil
	case strings.Contains(ep, "://"):
		return ep, nil, nil // a grpc resolver target such as dns:///host:port
	}
	if !strings.Contains(ep, ":") {
		return "", nil, fmt.Errorf("endpoint: %q has no port", ep)
	}
	return ep, nil, nil
}
