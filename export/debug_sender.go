package export

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/obs-dev/obs/actors"
)

// DebugExporterConfig is the Collector's debug exporter block.
type DebugExporterConfig struct {
	// Verbosity is basic (default: one line per payload with counts),
	// normal (one line per record) or detailed (the full OTLP/JSON request).
	Verbosity string `yaml:"verbosity"`
	// SamplingInitial payloads are written each second before sampling
	// starts. Default 2.
	SamplingInitial int `yaml:"sampling_initial"`
	// SamplingThereafter: after the initial ones, every n-th payload in the
	// same second is written. Default 1 (all).
	SamplingThereafter int `yaml:"sampling_thereafter"`
	// UseInternalLogger is accepted; output always goes to the writer.
	UseInternalLogger bool `yaml:"use_internal_logger"`
}

// DefaultDebugExporterConfig returns the Collector's defaults.
func DefaultDebugExporterConfig() DebugExporterConfig {
	return DebugExporterConfig{Verbosity: "basic", SamplingInitial: 2, SamplingThereafter: 1}
}

// Validate checks the values.
func (c DebugExporterConfig) Validate() error {
	switch c.Verbosity {
	case "basic", "normal", "detailed":
	default:
		return fmt.Errorf("verbosity: unsupported %q (want basic, normal or detailed)", c.Verbosity)
	}
	if c.SamplingInitial < 0 {
		return fmt.Errorf("sampling_initial: must be >= 0, got %d", c.SamplingInitial)
	}
	if c.SamplingThereafter < 1 {
		return fmt.Errorf("sampling_thereafter: must be >= 1, got %d", c.SamplingThereafter)
	}
	return nil
}

// DebugSender writes payloads in human-readable form.
type DebugSender struct {
	cfg DebugExporterConfig
	log *slog.Logger
	now func() time.Time

	mu     sync.Mutex
	w      io.Writer
	window time.Time
	count  int
	buf    bytes.Buffer
}

// NewDebugSender writes to w (stderr in production).
func NewDebugSender(cfg DebugExporterConfig, w io.Writer, log *slog.Logger) (*DebugSender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new debug sender: %w", err)
	}
	if w == nil {
		return nil, fmt.Errorf("new debug sender: nil writer")
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &DebugSender{cfg: cfg, w: w, log: log, now: time.Now}, nil
}

// sample reports whether this payload is written; call with mu held.
func (d *DebugSender) sample() bool {
	now := d.now().Truncate(time.Second)
	if !now.Equal(d.window) {
		d.window, d.count = now, 0
	}
	d.count++
	if d.count <= d.cfg.SamplingInitial {
		return true
	}
	return (d.count-d.cfg.SamplingInitial)%d.cfg.SamplingThereafter == 0
}

// Send decodes and writes the payload; a payload that does not decode is a
// permanent error.
func (d *DebugSender) Send(_ context.Context, sig actors.Signal, payload []byte) (SendResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.sample() {
		return SendResult{}, nil
	}
	b, err := decodeProto(sig, payload)
	if err != nil {
		return SendResult{}, Permanent(fmt.Errorf("debug %s: %w", sig, err))
	}
	d.buf.Reset()
	writeSummary(&d.buf, b)
	switch d.cfg.Verbosity {
	case "normal":
		writeRecords(&d.buf, b)
	case "detailed":
		js, err := encodeJSON(b)
		if err != nil {
			return SendResult{}, Permanent(fmt.Errorf("debug %s: %w", sig, err))
		}
		d.buf.Write(js)
		d.buf.WriteByte('\n')
	}
	if _, err := d.w.Write(d.buf.Bytes()); err != nil {
		return SendResult{}, fmt.Errorf("debug %s: write: %w", sig, err)
	}
	return SendResult{}, nil
}

// writeSummary writes the basic line: resource count and item count.
func writeSummary(w *bytes.Buffer, b actors.Batch) {
	switch b.Signal {
	case actors.SignalLogs:
		fmt.Fprintf(w, "logs: resource_logs=%d log_records=%d\n", b.Logs.ResourceLogs().Len(), b.Logs.LogRecordCount())
	case actors.SignalMetrics:
		fmt.Fprintf(w, "metrics: resource_metrics=%d metrics=%d data_points=%d\n", b.Metrics.ResourceMetrics().Len(), b.Metrics.MetricCount(), b.Metrics.DataPointCount())
	case actors.SignalTraces:
		fmt.Fprintf(w, "traces: resource_spans=%d spans=%d\n", b.Traces.ResourceSpans().Len(), b.Traces.SpanCount())
	}
}

// writeRecords writes one line per log record, data point or span.
func writeRecords(w *bytes.Buffer, b actors.Batch) {
	switch b.Signal {
	case actors.SignalLogs:
		rls := b.Logs.ResourceLogs()
		for i := range rls.Len() {
			sls := rls.At(i).ScopeLogs()
			for j := range sls.Len() {
				lrs := sls.At(j).LogRecords()
				for k := range lrs.Len() {
					r := lrs.At(k)
					fmt.Fprintf(w, "%s %s %s", r.Timestamp().AsTime().UTC().Format(time.RFC3339Nano), orDash(r.SeverityText()), r.Body().AsString())
					writeAttrs(w, r.Attributes())
				}
			}
		}
	case actors.SignalMetrics:
		rms := b.Metrics.ResourceMetrics()
		for i := range rms.Len() {
			sms := rms.At(i).ScopeMetrics()
			for j := range sms.Len() {
				ms := sms.At(j).Metrics()
				for k := range ms.Len() {
					writeMetric(w, ms.At(k))
				}
			}
		}
	case actors.SignalTraces:
		rss := b.Traces.ResourceSpans()
		for i := range rss.Len() {
			sss := rss.At(i).ScopeSpans()
			for j := range sss.Len() {
				sps := sss.At(j).Spans()
				for k := range sps.Len() {
					s := sps.At(k)
					fmt.Fprintf(w, "%s %s %s %s", s.TraceID(), s.SpanID(), s.Name(), s.EndTimestamp().AsTime().Sub(s.StartTimestamp().AsTime()))
					writeAttrs(w, s.Attributes())
				}
			}
		}
	}
}

func writeMetric(w *bytes.Buffer, m pmetric.Metric) {
	var num pmetric.NumberDataPointSlice
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		num = m.Gauge().DataPoints()
	case pmetric.MetricTypeSum:
		num = m.Sum().DataPoints()
	case pmetric.MetricTypeHistogram:
		dps := m.Histogram().DataPoints()
		for i := range dps.Len() {
			fmt.Fprintf(w, "%s histogram count=%d sum=%g", m.Name(), dps.At(i).Count(), dps.At(i).Sum())
			writeAttrs(w, dps.At(i).Attributes())
		}
		return
	case pmetric.MetricTypeExponentialHistogram:
		dps := m.ExponentialHistogram().DataPoints()
		for i := range dps.Len() {
			fmt.Fprintf(w, "%s exponential_histogram count=%d sum=%g", m.Name(), dps.At(i).Count(), dps.At(i).Sum())
			writeAttrs(w, dps.At(i).Attributes())
		}
		return
	case pmetric.MetricTypeSummary:
		dps := m.Summary().DataPoints()
		for i := range dps.Len() {
			fmt.Fprintf(w, "%s summary count=%d sum=%g", m.Name(), dps.At(i).Count(), dps.At(i).Sum())
			writeAttrs(w, dps.At(i).Attributes())
		}
		return
	default:
		fmt.Fprintf(w, "%s %s\n", m.Name(), m.Type())
		return
	}
	for i := range num.Len() {
		dp := num.At(i)
		v := strconv.FormatInt(dp.IntValue(), 10)
		if dp.ValueType() == pmetric.NumberDataPointValueTypeDouble {
			v = strconv.FormatFloat(dp.DoubleValue(), 'g', -1, 64)
		}
		fmt.Fprintf(w, "%s %s %s", m.Name(), m.Type(), v)
		writeAttrs(w, dp.Attributes())
	}
}

func writeAttrs(w *bytes.Buffer, attrs pcommon.Map) {
	attrs.Range(func(k string, v pcommon.Value) bool {
		w.WriteByte(' ')
		w.WriteString(k)
		w.WriteByte('=')
		w.WriteString(v.AsString())
		return true
	})
	w.WriteByte('\n')
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Close does nothing; the writer belongs to the caller.
func (d *DebugSender) Close() error { return nil }
