package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
)

// logsExportMethod is the full gRPC method name of OTLP logs export.
const logsExportMethod = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"

// metricsExportMethod is the full gRPC method name of OTLP metrics export.
const metricsExportMethod = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"

// rawMsg is a protobuf message kept as its wire bytes. The sink counts the
// log records of a request while grpc hands it the bytes, and answers with
// an empty (= successful) ExportLogsServiceResponse.
type rawMsg struct {
	b       []byte
	records int
	err     error
	// count walks the request; nil means countLogRecords.
	count func([]byte) (int, error)
}

// rawCodec moves rawMsg bytes unchanged. Named "proto" so that the content
// subtype on the wire stays the standard one.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(*rawMsg)
	if !ok {
		return nil, fmt.Errorf("marshal %T: want *rawMsg", v)
	}
	return m.b, nil
}

// Unmarshal counts the records at once: grpc may reuse data afterwards.
func (rawCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(*rawMsg)
	if !ok {
		return fmt.Errorf("unmarshal into %T: want *rawMsg", v)
	}
	count := m.count
	if count == nil {
		count = countLogRecords
	}
	m.records, m.err = count(data)
	m.b = nil
	return nil
}

// countLogRecords walks an ExportLogsServiceRequest in wire format and
// returns its number of log records, without building pdata:
// resource_logs (1) → scope_logs (2) → log_records (2).
func countLogRecords(b []byte) (int, error) {
	n := 0
	err := eachField(b, func(num protowire.Number, typ protowire.Type, rl []byte) error {
		if num != 1 || typ != protowire.BytesType {
			return nil
		}
		return eachField(rl, func(num protowire.Number, typ protowire.Type, sl []byte) error {
			if num != 2 || typ != protowire.BytesType {
				return nil
			}
			return eachField(sl, func(num protowire.Number, typ protowire.Type, _ []byte) error {
				if num == 2 && typ == protowire.BytesType {
					n++
				}
				return nil
			})
		})
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// countDataPoints walks an ExportMetricsServiceRequest in wire format and
// returns its number of data points: resource_metrics (1) → scope_metrics
// (2) → metrics (2) → gauge (5), sum (7), histogram (9), exponential
// histogram (10) or summary (11) → data_points (1). A gauge or counter
// point is one Prometheus sample.
func countDataPoints(b []byte) (int, error) {
	n := 0
	err := eachField(b, func(num protowire.Number, typ protowire.Type, rm []byte) error {
		if num != 1 || typ != protowire.BytesType {
			return nil
		}
		return eachField(rm, func(num protowire.Number, typ protowire.Type, sm []byte) error {
			if num != 2 || typ != protowire.BytesType {
				return nil
			}
			return eachField(sm, func(num protowire.Number, typ protowire.Type, m []byte) error {
				if num != 2 || typ != protowire.BytesType {
					return nil
				}
				return eachField(m, func(num protowire.Number, typ protowire.Type, data []byte) error {
					switch {
					case typ != protowire.BytesType:
						return nil
					case num == 5, num == 7, num == 9, num == 10, num == 11:
					default:
						return nil
					}
					return eachField(data, func(num protowire.Number, typ protowire.Type, _ []byte) error {
						if num == 1 && typ == protowire.BytesType {
							n++
						}
						return nil
					})
				})
			})
		})
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// eachField calls fn for every field of one message level; v is the
// payload of length-delimited fields and nil for the others.
func eachField(b []byte, fn func(protowire.Number, protowire.Type, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("parse tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var v []byte
		if typ == protowire.BytesType {
			v, n = protowire.ConsumeBytes(b)
		} else {
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("parse field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, v); err != nil {
			return err
		}
	}
	return nil
}

// sink is the OTLP gRPC server every system under test exports to. It
// counts log records (logs service) or data points (metrics service) and
// requests, and notes when a target count is reached.
type sink struct {
	log      *slog.Logger
	ln       net.Listener
	srv      *grpc.Server
	records  atomic.Int64
	requests atomic.Int64
	bad      atomic.Int64

	mu      sync.Mutex
	target  int64
	reached chan struct{}
	at      time.Time
}

// newSink listens on a free loopback port; serve starts answering.
func newSink(log *slog.Logger) (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for sink: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &sink{log: log, ln: ln, reached: make(chan struct{})}
	s.srv = grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.MaxRecvMsgSize(256<<20))
	handler := func(count func([]byte) (int, error)) grpc.MethodHandler {
		return func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			m := rawMsg{count: count}
			if err := dec(&m); err != nil {
				return nil, err
			}
			s.requests.Add(1)
			if m.err != nil {
				s.bad.Add(1)
				s.log.Warn("sink got an unparsable request", "err", m.err)
			}
			s.add(int64(m.records))
			return &rawMsg{}, nil
		}
	}
	s.srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: "opentelemetry.proto.collector.logs.v1.LogsService",
		HandlerType: (*any)(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "Export", Handler: handler(countLogRecords)}},
	}, nil)
	s.srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: "opentelemetry.proto.collector.metrics.v1.MetricsService",
		HandlerType: (*any)(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "Export", Handler: handler(countDataPoints)}},
	}, nil)
	return s, nil
}

func (s *sink) addr() string { return s.ln.Addr().String() }

// serve runs the server until stop; it returns when the server has stopped.
func (s *sink) serve() error {
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve sink: %w", err)
	}
	return nil
}

func (s *sink) stop() { s.srv.Stop() }

// startSink starts a sink serving in the background; stop ends it and
// logs a serve error.
func startSink(log *slog.Logger) (sk *sink, stop func(), err error) {
	sk, err = newSink(log)
	if err != nil {
		return nil, nil, err
	}
	done := make(chan error, 1)
	go func() { done <- sk.serve() }()
	return sk, func() {
		sk.stop()
		if err := <-done; err != nil {
			log.Error("sink", "err", err)
		}
	}, nil
}

// expect resets the counters and arms the channel that closes when n
// records have arrived.
func (s *sink) expect(n int64) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records.Store(0)
	s.requests.Store(0)
	s.bad.Store(0)
	s.target = n
	s.reached = make(chan struct{})
	s.at = time.Time{}
	return s.reached
}

func (s *sink) add(n int64) {
	total := s.records.Add(n)
	s.mu.Lock()
	if s.target > 0 && total >= s.target && s.at.IsZero() {
		s.at = time.Now()
		close(s.reached)
	}
	s.mu.Unlock()
}

// reachedAt is when the target was reached (zero if not yet).
func (s *sink) reachedAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.at
}
