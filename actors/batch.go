package actors

import (
	"fmt"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// Signal is the kind of telemetry a batch carries.
type Signal uint8

const (
	SignalLogs Signal = iota + 1
	SignalMetrics
	SignalTraces
)

func (s Signal) String() string {
	switch s {
	case SignalLogs:
		return "logs"
	case SignalMetrics:
		return "metrics"
	case SignalTraces:
		return "traces"
	}
	return fmt.Sprintf("signal(%d)", uint8(s))
}

// ParseSignal turns a pipeline type ("logs", "metrics", "traces") into a Signal.
func ParseSignal(s string) (Signal, error) {
	switch s {
	case "logs":
		return SignalLogs, nil
	case "metrics":
		return SignalMetrics, nil
	case "traces":
		return SignalTraces, nil
	}
	return 0, fmt.Errorf("unknown signal %q (want logs, metrics or traces)", s)
}

// Batch is one payload of one signal. Exactly the pdata field named by
// Signal is set, unless the batch is encoded only (RawBatch): then only
// Raw is, and Decode builds the pdata when a stage needs it.
type Batch struct {
	Signal  Signal
	Logs    plog.Logs
	Metrics pmetric.Metrics
	Traces  ptrace.Traces
	// Raw, when set, is the OTLP protobuf export request the payload was
	// decoded from, unchanged. The WAL writer stores it instead of
	// encoding the payload again. A stage that changes the payload must
	// clear it (Processor does so before calling its func).
	Raw []byte
	// Framed, when set, holds Raw preceded by one byte the producer owns
	// (the OTLP receiver puts the signal there: the WAL's payload format),
	// so the WAL writer stores Framed as it is instead of copying Raw.
	// It counts only while Framed[1:] is still Raw (FramedRaw checks).
	Framed []byte

	// encoded marks a batch that has Raw but no pdata yet; items is then
	// its item count, from the receiver's validating scan.
	encoded bool
	items   int
}

// LogsBatch wraps logs in a Batch.
func LogsBatch(l plog.Logs) Batch { return Batch{Signal: SignalLogs, Logs: l} }

// MetricsBatch wraps metrics in a Batch.
func MetricsBatch(m pmetric.Metrics) Batch { return Batch{Signal: SignalMetrics, Metrics: m} }

// TracesBatch wraps traces in a Batch.
func TracesBatch(t ptrace.Traces) Batch { return Batch{Signal: SignalTraces, Traces: t} }

// RawBatch wraps a validated OTLP protobuf export request of items items
// without decoding it: a pipeline that only batches and stores it never
// pays for pdata.
func RawBatch(s Signal, raw []byte, items int) Batch {
	return Batch{Signal: s, Raw: raw, encoded: true, items: items}
}

// RawFramedBatch is RawBatch of framed[1:], keeping framed (see Batch.Framed).
func RawFramedBatch(s Signal, framed []byte, items int) Batch {
	b := RawBatch(s, framed[1:], items)
	b.Framed = framed
	return b
}

// FramedRaw returns Framed if it still frames Raw, else nil.
func (b Batch) FramedRaw() []byte {
	if len(b.Raw) == 0 || len(b.Framed) != len(b.Raw)+1 || &b.Framed[1] != &b.Raw[0] {
		return nil
	}
	return b.Framed
}

// Encoded reports whether the batch has only Raw (no pdata yet).
func (b Batch) Encoded() bool { return b.encoded }

// Decode builds the pdata of an encoded batch from Raw (keeping Raw, which
// still matches); it does nothing for a decoded one.
func (b *Batch) Decode() error {
	if !b.encoded {
		return nil
	}
	switch b.Signal {
	case SignalLogs:
		r := plogotlp.NewExportRequest()
		if err := r.UnmarshalProto(b.Raw); err != nil {
			return fmt.Errorf("decode logs request: %w", err)
		}
		b.Logs = r.Logs()
	case SignalMetrics:
		r := pmetricotlp.NewExportRequest()
		if err := r.UnmarshalProto(b.Raw); err != nil {
			return fmt.Errorf("decode metrics request: %w", err)
		}
		b.Metrics = r.Metrics()
	case SignalTraces:
		r := ptraceotlp.NewExportRequest()
		if err := r.UnmarshalProto(b.Raw); err != nil {
			return fmt.Errorf("decode traces request: %w", err)
		}
		b.Traces = r.Traces()
	default:
		return fmt.Errorf("decode request: unknown signal %s", b.Signal)
	}
	b.encoded, b.items = false, 0
	return nil
}

// Items counts log records, metric data points or spans.
func (b Batch) Items() int {
	if b.encoded {
		return b.items
	}
	switch b.Signal {
	case SignalLogs:
		return b.Logs.LogRecordCount()
	case SignalMetrics:
		return b.Metrics.DataPointCount()
	case SignalTraces:
		return b.Traces.SpanCount()
	}
	return 0
}

// Clone returns a deep copy, for fan-out to a second consumer that may
// change the payload.
func (b Batch) Clone() Batch {
	if b.encoded {
		return b // Raw is never written to, so it can be shared
	}
	c := Batch{Signal: b.Signal, Raw: b.Raw, Framed: b.Framed}
	switch b.Signal {
	case SignalLogs:
		c.Logs = plog.NewLogs()
		b.Logs.CopyTo(c.Logs)
	case SignalMetrics:
		c.Metrics = pmetric.NewMetrics()
		b.Metrics.CopyTo(c.Metrics)
	case SignalTraces:
		c.Traces = ptrace.NewTraces()
		b.Traces.CopyTo(c.Traces)
	}
	return c
}

// MoveTo moves every resource of b to the end of dst, leaving b empty.
// Both must carry the same signal and be decoded.
func (b Batch) MoveTo(dst Batch) {
	if b.encoded || dst.encoded {
		panic("BUG: actors: MoveTo on an encoded batch; Decode it first")
	}
	if b.Signal != dst.Signal {
		panic("BUG: actors: MoveTo across signals " + b.Signal.String() + " -> " + dst.Signal.String())
	}
	switch b.Signal {
	case SignalLogs:
		b.Logs.ResourceLogs().MoveAndAppendTo(dst.Logs.ResourceLogs())
	case SignalMetrics:
		b.Metrics.ResourceMetrics().MoveAndAppendTo(dst.Metrics.ResourceMetrics())
	case SignalTraces:
		b.Traces.ResourceSpans().MoveAndAppendTo(dst.Traces.ResourceSpans())
	}
}

// Empty returns a new empty batch of the same signal.
func (b Batch) Empty() Batch {
	switch b.Signal {
	case SignalLogs:
		return LogsBatch(plog.NewLogs())
	case SignalMetrics:
		return MetricsBatch(pmetric.NewMetrics())
	case SignalTraces:
		return TracesBatch(ptrace.NewTraces())
	}
	return Batch{}
}
