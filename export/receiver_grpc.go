package export

import (
	"context"
	"errors"
	"fmt"
	"google.golang.org/grpc/peer"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/obs-dev/obs/actors"
)

// The gRPC services are registered from hand-written service descriptions
// rather than pdata's RegisterGRPCServer: pdata decodes the request inside
// grpc, where a malformed message becomes INTERNAL; obs reads the raw
// message and decodes it itself so it can answer INVALID_ARGUMENT, as the
// OTLP specification asks. The wire contract is the same.

// newGRPCServer builds the gRPC server with one service per consumed signal.
func (r *OTLPReceiver) newGRPCServer(g *GRPCServerConfig) (*grpc.Server, error) {
	opts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(newRawCodec()),
		grpc.MaxRecvMsgSize(g.MaxRecvMsgSizeMiB << 20),
	}
	if g.MaxConcurrentStreams > 0 {
		opts = append(opts, grpc.MaxConcurrentStreams(g.MaxConcurrentStreams))
	}
	if g.ReadBufferSize > 0 {
		opts = append(opts, grpc.ReadBufferSize(g.ReadBufferSize))
	}
	if g.WriteBufferSize > 0 {
		opts = append(opts, grpc.WriteBufferSize(g.WriteBufferSize))
	}
	if k := g.Keepalive; k != nil {
		if sp := k.ServerParameters; sp != nil {
			opts = append(opts, grpc.KeepaliveParams(keepalive.ServerParameters{
				MaxConnectionIdle:     sp.MaxConnectionIdle,
				MaxConnectionAge:      sp.MaxConnectionAge,
				MaxConnectionAgeGrace: sp.MaxConnectionAgeGrace,
				Time:                  sp.Time,
				Timeout:               sp.Timeout,
			}))
		}
		if ep := k.EnforcementPolicy; ep != nil {
			opts = append(opts, grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
				MinTime:             ep.MinTime,
				PermitWithoutStream: ep.PermitWithoutStream,
			}))
		}
	}
	tlsCfg, err := g.TLS.load()
	if err != nil {
		return nil, fmt.Errorf("grpc tls: %w", err)
	}
	if tlsCfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	srv := grpc.NewServer(opts...)
	for _, s := range allSignals {
		f, ok := r.consumers[s]
		if !ok {
			continue // unregistered service: grpc answers UNIMPLEMENTED
		}
		h := &grpcExport{r: r, signal: s, consume: f}
		srv.RegisterService(&grpc.ServiceDesc{
			ServiceName: grpcService(s),
			HandlerType: (*any)(nil),
			Methods: []grpc.MethodDesc{{
				MethodName: "Export",
				Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
					return h.export(ctx, dec)
				},
			}},
			Metadata: "opentelemetry/proto/collector/" + s.String() + "/v1/" + s.String() + "_service.proto",
		}, h)
	}
	return srv, nil
}

// grpcExport serves one signal's Export method.
type grpcExport struct {
	r       *OTLPReceiver
	signal  actors.Signal
	consume ConsumeFunc
}

func (h *grpcExport) export(ctx context.Context, dec func(any) error) (any, error) {
	start := time.Now()
	st := h.handle(ctx, dec)
	h.r.m.observe(h.r.id, "grpc", h.signal, st.Code().String(), start)
	if st.Code() != codes.OK {
		return nil, st.Err()
	}
	rsp := rawMsg(h.r.emptyRsp[h.signal][0])
	return &rsp, nil
}

func (h *grpcExport) handle(ctx context.Context, dec func(any) error) *status.Status {
	var framed framedMsg
	if err := dec(&framed); err != nil {
		if st, ok := status.FromError(err); ok {
			return st // size limits: RESOURCE_EXHAUSTED from grpc
		}
		return status.New(codes.InvalidArgument, err.Error())
	}
	// Validate and count without building pdata: a pipeline that only
	// batches stores these bytes as they are.
	n, err := scanRequest(h.signal, framed[1:])
	if err != nil {
		return status.New(codes.InvalidArgument, fmt.Sprintf("decode protobuf %s request: %v", h.signal, err))
	}
	framed[0] = byte(h.signal) // the WAL payload's signal byte (encodePayload)
	b := actors.RawFramedBatch(h.signal, framed, n)
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		ctx = actors.WithPeer(ctx, p.Addr.String())
	}
	res, after, err := h.r.consume(ctx, "grpc", h.consume, b)
	switch res {
	case consumeOK:
		return status.New(codes.OK, "")
	case consumeRefused:
		st := status.New(codes.ResourceExhausted, err.Error())
		if d, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(after)}); derr == nil {
			st = d
		}
		return st
	case consumeCanceled:
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return status.New(codes.DeadlineExceeded, err.Error())
		}
		return status.New(codes.Canceled, err.Error())
	}
	return status.New(codes.Unavailable, err.Error())
}
