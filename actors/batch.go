package actors

import (
	"fmt"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
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

// Batch is one pdata payload of one signal. Exactly the field named by
// Signal is set; the others are zero values.
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
}

// LogsBatch wraps logs in a Batch.
func LogsBatch(l plog.Logs) Batch { return Batch{Signal: SignalLogs, Logs: l} }

// MetricsBatch wraps metrics in a Batch.
func MetricsBatch(m pmetric.Metrics) Batch { return Batch{Signal: SignalMetrics, Metrics: m} }

// TracesBatch wraps traces in a Batch.
func TracesBatch(t ptrace.Traces) Batch { return Batch{Signal: SignalTraces, Traces: t} }

// Items counts log records, metric data points or spans.
func (b Batch) Items() int {
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
	c := Batch{Signal: b.Signal, Raw: b.Raw} // Raw is never written to, so it can be shared
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
// Both must carry the same signal.
func (b Batch) MoveTo(dst Batch) {
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
