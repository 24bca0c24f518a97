package export

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/obs-dev/obs/actors"
)

// ClusterGateway is the otlp exporter endpoint that means "the gateways of
// the cluster": each resource (logs, metrics) or trace goes to the gateway
// that owns it in the current membership.
const ClusterGateway = "cluster:gateway"

// Route names the OTLP gRPC endpoint (host:port) of the member that owns
// key, or ok=false when no gateway is alive.
type Route func(key string) (endpoint string, ok bool)

// errNoGateway is retryable: the WAL keeps the batch until one is alive.
var errNoGateway = errors.New("no gateway is alive in the cluster")

// BalancingSender splits each payload by owner and sends every part to
// its gateway. Logs and metrics are keyed by resource identity, so one
// resource always reaches one gateway (its k8sattributes cache, its
// cumulative series); traces by trace ID. A retry recomputes the owners,
// so a batch that a dead gateway did not confirm goes to its new owner.
type BalancingSender struct {
	cfg   OTLPExporterConfig
	route Route
	log   *slog.Logger
	reg   prometheus.Registerer

	mu      sync.Mutex
	senders map[string]*balancedPeer
}

type balancedPeer struct {
	s        *OTLPSender
	lastUsed time.Time
}

// NewBalancingSender validates cfg (its endpoint must be ClusterGateway)
// and returns the sender; connections open lazily, one per gateway.
func NewBalancingSender(cfg OTLPExporterConfig, route Route, log *slog.Logger, reg prometheus.Registerer) (*BalancingSender, error) {
	if cfg.Endpoint != ClusterGateway {
		return nil, fmt.Errorf("new balancing sender: endpoint must be %s", ClusterGateway)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	return &BalancingSender{cfg: cfg, route: route, log: log, reg: reg, senders: map[string]*balancedPeer{}}, nil
}

// Send implements Sender.
func (b *BalancingSender) Send(ctx context.Context, sig actors.Signal, payload []byte) (SendResult, error) {
	batch, err := decodeProto(sig, payload)
	if err != nil {
		return SendResult{}, Permanent(fmt.Errorf("decode payload for balancing: %w", err))
	}
	parts, err := b.split(batch)
	if err != nil {
		return SendResult{}, err
	}
	var res SendResult
	var errs []error
	for ep, part := range parts {
		body, err := encodeProto(part)
		if err != nil {
			return SendResult{}, Permanent(fmt.Errorf("encode part for %s: %w", ep, err))
		}
		s, err := b.peer(ep)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r, err := s.Send(ctx, sig, body)
		if err != nil {
			errs = append(errs, fmt.Errorf("gateway %s: %w", ep, err))
			continue
		}
		res.Rejected += r.Rejected
		if r.Message != "" {
			res.Message = r.Message
		}
	}
	b.forgetIdle()
	if len(errs) > 0 {
		// At-least-once: the whole payload is retried; parts that a
		// gateway already took arrive twice.
		return res, errors.Join(errs...)
	}
	return res, nil
}

func (b *BalancingSender) peer(endpoint string) (*OTLPSender, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p, ok := b.senders[endpoint]; ok {
		p.lastUsed = time.Now()
		return p.s, nil
	}
	cfg := b.cfg
	cfg.Endpoint = endpoint
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"gateway": endpoint}, b.reg)
	s, err := NewOTLPSender(cfg, b.log.With("gateway", endpoint), reg)
	if err != nil {
		return nil, err
	}
	b.senders[endpoint] = &balancedPeer{s: s, lastUsed: time.Now()}
	return s, nil
}

// forgetIdle closes connections to gateways that owned nothing for a
// while (they left, or the membership moved their keys away).
func (b *BalancingSender) forgetIdle() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ep, p := range b.senders {
		if time.Since(p.lastUsed) > 5*time.Minute {
			_ = p.s.Close()
			delete(b.senders, ep)
		}
	}
}

// Close implements Sender.
func (b *BalancingSender) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for ep, p := range b.senders {
		errs = append(errs, p.s.Close())
		delete(b.senders, ep)
	}
	return errors.Join(errs...)
}

// split groups the batch by owning endpoint.
func (b *BalancingSender) split(batch actors.Batch) (map[string]actors.Batch, error) {
	out := map[string]actors.Batch{}
	get := func(key string) (actors.Batch, error) {
		ep, ok := b.route(key)
		if !ok {
			return actors.Batch{}, errNoGateway
		}
		part, ok := out[ep]
		if !ok {
			part = batch.Empty()
			out[ep] = part
		}
		return part, nil
	}
	switch batch.Signal {
	case actors.SignalLogs:
		rls := batch.Logs.ResourceLogs()
		for i := 0; i < rls.Len(); i++ {
			part, err := get(ResourceKey(rls.At(i).Resource().Attributes()))
			if err != nil {
				return nil, err
			}
			rls.At(i).CopyTo(part.Logs.ResourceLogs().AppendEmpty())
		}
	case actors.SignalMetrics:
		rms := batch.Metrics.ResourceMetrics()
		for i := 0; i < rms.Len(); i++ {
			part, err := get(ResourceKey(rms.At(i).Resource().Attributes()))
			if err != nil {
				return nil, err
			}
			rms.At(i).CopyTo(part.Metrics.ResourceMetrics().AppendEmpty())
		}
	case actors.SignalTraces:
		return b.splitTraces(batch.Traces)
	}
	return out, nil
}

// splitTraces sends every span of a trace to the trace's owner, keeping
// each span under a copy of its resource and scope.
func (b *BalancingSender) splitTraces(td ptrace.Traces) (map[string]actors.Batch, error) {
	out := map[string]actors.Batch{}
	type slot struct {
		rs ptrace.ResourceSpans
		ss ptrace.ScopeSpans
	}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			ss := rs.ScopeSpans().At(j)
			slots := map[string]slot{} // per endpoint, for this scope
			for k := 0; k < ss.Spans().Len(); k++ {
				sp := ss.Spans().At(k)
				tid := sp.TraceID()
				ep, ok := b.route(hex.EncodeToString(tid[:]))
				if !ok {
					return nil, errNoGateway
				}
				part, ok := out[ep]
				if !ok {
					part = actors.TracesBatch(ptrace.NewTraces())
					out[ep] = part
				}
				sl, ok := slots[ep]
				if !ok {
					sl.rs = part.Traces.ResourceSpans().AppendEmpty()
					rs.Resource().CopyTo(sl.rs.Resource())
					sl.rs.SetSchemaUrl(rs.SchemaUrl())
					sl.ss = sl.rs.ScopeSpans().AppendEmpty()
					ss.Scope().CopyTo(sl.ss.Scope())
					sl.ss.SetSchemaUrl(ss.SchemaUrl())
					slots[ep] = sl
				}
				sp.CopyTo(sl.ss.Spans().AppendEmpty())
			}
		}
	}
	return out, nil
}

// ResourceKey is a resource's identity: its attributes, sorted, as text.
func ResourceKey(attrs pcommon.Map) string {
	keys := make([]string, 0, attrs.Len())
	attrs.Range(func(k string, _ pcommon.Value) bool {
		keys = append(keys, k)
		return true
	})
	slices.Sort(keys)
	var sb strings.Builder
	for _, k := range keys {
		v, _ := attrs.Get(k)
		sb.WriteString(k)
		sb.WriteByte('=')
		sb.WriteString(v.AsString())
		sb.WriteByte(0)
	}
	return sb.String()
}
