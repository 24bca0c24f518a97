package export

import (
	"fmt"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"

	"github.com/obs-dev/obs/actors"
)

// OTLP gRPC service and method names.
const (
	logsService    = "opentelemetry.proto.collector.logs.v1.LogsService"
	metricsService = "opentelemetry.proto.collector.metrics.v1.MetricsService"
	tracesService  = "opentelemetry.proto.collector.trace.v1.TraceService"
)

func grpcService(s actors.Signal) string {
	switch s {
	case actors.SignalLogs:
		return logsService
	case actors.SignalMetrics:
		return metricsService
	case actors.SignalTraces:
		return tracesService
	}
	return ""
}

func grpcMethod(s actors.Signal) string { return "/" + grpcService(s) + "/Export" }

var allSignals = [...]actors.Signal{actors.SignalLogs, actors.SignalMetrics, actors.SignalTraces}

// decodeProto turns an OTLP protobuf export request into a batch.
func decodeProto(s actors.Signal, p []byte) (actors.Batch, error) {
	switch s {
	case actors.SignalLogs:
		r := plogotlp.NewExportRequest()
		if err := r.UnmarshalProto(p); err != nil {
			return actors.Batch{}, fmt.Errorf("decode protobuf logs request: %w", err)
		}
		return actors.LogsBatch(r.Logs()), nil
	case actors.SignalMetrics:
		r := pmetricotlp.NewExportRequest()
		if err := r.UnmarshalProto(p); err != nil {
			return actors.Batch{}, fmt.Errorf("decode protobuf metrics request: %w", err)
		}
		return actors.MetricsBatch(r.Metrics()), nil
	case actors.SignalTraces:
		r := ptraceotlp.NewExportRequest()
		if err := r.UnmarshalProto(p); err != nil {
			return actors.Batch{}, fmt.Errorf("decode protobuf traces request: %w", err)
		}
		return actors.TracesBatch(r.Traces()), nil
	}
	return actors.Batch{}, fmt.Errorf("decode request: unknown signal %s", s)
}

// decodeJSON turns an OTLP/JSON export request into a batch.
func decodeJSON(s actors.Signal, p []byte) (actors.Batch, error) {
	switch s {
	case actors.SignalLogs:
		r := plogotlp.NewExportRequest()
		if err := r.UnmarshalJSON(p); err != nil {
			return actors.Batch{}, fmt.Errorf("decode json logs request: %w", err)
		}
		return actors.LogsBatch(r.Logs()), nil
	case actors.SignalMetrics:
		r := pmetricotlp.NewExportRequest()
		if err := r.UnmarshalJSON(p); err != nil {
			return actors.Batch{}, fmt.Errorf("decode json metrics request: %w", err)
		}
		return actors.MetricsBatch(r.Metrics()), nil
	case actors.SignalTraces:
		r := ptraceotlp.NewExportRequest()
		if err := r.UnmarshalJSON(p); err != nil {
			return actors.Batch{}, fmt.Errorf("decode json traces request: %w", err)
		}
		return actors.TracesBatch(r.Traces()), nil
	}
	return actors.Batch{}, fmt.Errorf("decode request: unknown signal %s", s)
}

// encodeJSON turns a batch into an OTLP/JSON export request.
func encodeJSON(b actors.Batch) ([]byte, error) {
	switch b.Signal {
	case actors.SignalLogs:
		return plogotlp.NewExportRequestFromLogs(b.Logs).MarshalJSON()
	case actors.SignalMetrics:
		return pmetricotlp.NewExportRequestFromMetrics(b.Metrics).MarshalJSON()
	case actors.SignalTraces:
		return ptraceotlp.NewExportRequestFromTraces(b.Traces).MarshalJSON()
	}
	return nil, fmt.Errorf("encode request: unknown signal %s", b.Signal)
}

// encodeProto turns a batch into an OTLP protobuf export request (the WAL
// payload format).
func encodeProto(b actors.Batch) ([]byte, error) {
	if b.Raw != nil {
		return b.Raw, nil
	}
	switch b.Signal {
	case actors.SignalLogs:
		return plogotlp.NewExportRequestFromLogs(b.Logs).MarshalProto()
	case actors.SignalMetrics:
		return pmetricotlp.NewExportRequestFromMetrics(b.Metrics).MarshalProto()
	case actors.SignalTraces:
		return ptraceotlp.NewExportRequestFromTraces(b.Traces).MarshalProto()
	}
	return nil, fmt.Errorf("encode request: unknown signal %s", b.Signal)
}

// partialSuccess is the decoded partial_success of an export response.
type partialSuccess struct {
	rejected int64
	message  string
}

// decodeResponse reads an export response (protobuf or JSON).
func decodeResponse(s actors.Signal, p []byte, json bool) (partialSuccess, error) {
	var ps partialSuccess
	var err error
	switch s {
	case actors.SignalLogs:
		r := plogotlp.NewExportResponse()
		if json {
			err = r.UnmarshalJSON(p)
		} else {
			err = r.UnmarshalProto(p)
		}
		ps = partialSuccess{r.PartialSuccess().RejectedLogRecords(), r.PartialSuccess().ErrorMessage()}
	case actors.SignalMetrics:
		r := pmetricotlp.NewExportResponse()
		if json {
			err = r.UnmarshalJSON(p)
		} else {
			err = r.UnmarshalProto(p)
		}
		ps = partialSuccess{r.PartialSuccess().RejectedDataPoints(), r.PartialSuccess().ErrorMessage()}
	case actors.SignalTraces:
		r := ptraceotlp.NewExportResponse()
		if json {
			err = r.UnmarshalJSON(p)
		} else {
			err = r.UnmarshalProto(p)
		}
		ps = partialSuccess{r.PartialSuccess().RejectedSpans(), r.PartialSuccess().ErrorMessage()}
	default:
		return ps, fmt.Errorf("decode %s response: unknown signal", s)
	}
	if err != nil {
		return partialSuccess{}, fmt.Errorf("decode %s response: %w", s, err)
	}
	return ps, nil
}

// emptyResponse returns the encoded ExportXServiceResponse with an empty
// partial_success.
func emptyResponse(s actors.Signal, json bool) []byte {
	var p []byte
	switch s {
	case actors.SignalLogs:
		r := plogotlp.NewExportResponse()
		if json {
			p, _ = r.MarshalJSON()
		} else {
			p, _ = r.MarshalProto()
		}
	case actors.SignalMetrics:
		r := pmetricotlp.NewExportResponse()
		if json {
			p, _ = r.MarshalJSON()
		} else {
			p, _ = r.MarshalProto()
		}
	case actors.SignalTraces:
		r := ptraceotlp.NewExportResponse()
		if json {
			p, _ = r.MarshalJSON()
		} else {
			p, _ = r.MarshalProto()
		}
	}
	return p
}

// rawMsg is a gRPC message that is already encoded: the raw codec puts its
// bytes on the wire as they are and reads a received message into it
// without decoding.
type rawMsg []byte

// framedMsg is a received gRPC message read into a new buffer after one
// spare byte: framedMsg[1:] is the message (see actors.Batch.Framed). It
// is only received, never sent.
type framedMsg []byte

// rawParts is an encoded gRPC message in consecutive parts, sent as they
// are (one buffer each); it is only sent, never received.
type rawParts [][]byte

// rawCodec is a grpc CodecV2 that passes *rawMsg and *rawParts through untouched and
// delegates anything else to grpc's proto codec.
type rawCodec struct{ proto encoding.CodecV2 }

func newRawCodec() rawCodec { return rawCodec{proto: encoding.GetCodecV2("proto")} }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *rawMsg:
		return mem.BufferSlice{mem.SliceBuffer(*m)}, nil
	case *rawParts:
		bs := make(mem.BufferSlice, len(*m))
		for i, p := range *m {
			bs[i] = mem.SliceBuffer(p)
		}
		return bs, nil
	}
	return c.proto.Marshal(v)
}

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *rawMsg:
		*m = data.Materialize()
		return nil
	case *framedMsg:
		buf := make([]byte, 1+data.Len())
		data.CopyTo(buf[1:])
		*m = buf
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

func (c rawCodec) Name() string { return "proto" }
