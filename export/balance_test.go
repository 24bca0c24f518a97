package export

import (
	"context"
	"encoding/hex"
	"hash/fnv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/obs-dev/obs/actors"
)

// gateways is a fake membership: a route by highest hash over the alive
// endpoints (the cluster package's rendezvous, in miniature).
type gateways struct {
	mu    sync.Mutex
	alive []string
}

func (g *gateways) route(key string) (string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	best, bestH := "", uint64(0)
	for _, ep := range g.alive {
		h := fnv.New64a()
		h.Write([]byte(key + "|" + ep))
		if v := h.Sum64(); best == "" || v > bestH {
			best, bestH = ep, v
		}
	}
	return best, best != ""
}

func TestBalancingSenderSplitsByOwner(t *testing.T) {
	sinks := []*sink{{}, {}}
	var addrs []string
	for _, s := range sinks {
		addrs = append(addrs, startReceiver(t, s.consumers(t, actors.SignalLogs, actors.SignalTraces), nil).grpcAddr)
	}
	gw := &gateways{alive: addrs}
	cfg := DefaultOTLPExporterConfig()
	cfg.Endpoint = ClusterGateway
	cfg.TLS.Insecure = true
	b, err := NewBalancingSender(cfg, gw.route, nil, nil)
	require.NoError(t, err)
	defer b.Close()

	// 20 resources, 3 records each.
	logs := plog.NewLogs()
	for i := 0; i < 20; i++ {
		rl := logs.ResourceLogs().AppendEmpty()
		rl.Resource().Attributes().PutInt("pod", int64(i))
		for j := 0; j < 3; j++ {
			rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body().SetInt(int64(i))
		}
	}
	payload := mustProto(t, actors.LogsBatch(logs))
	ctx := context.Background()
	_, err = b.Send(ctx, actors.SignalLogs, payload)
	require.NoError(t, err)

	where := map[int64]int{} // pod → gateway index
	total := 0
	for gi, s := range sinks {
		for _, p := range s.take(actors.SignalLogs) {
			got, err := decodeProto(actors.SignalLogs, p)
			require.NoError(t, err)
			for i := 0; i < got.Logs.ResourceLogs().Len(); i++ {
				rl := got.Logs.ResourceLogs().At(i)
				pod, _ := rl.Resource().Attributes().Get("pod")
				prev, seen := where[pod.Int()]
				require.False(t, seen && prev != gi, "resource %d reached two gateways", pod.Int())
				where[pod.Int()] = gi
				want, _ := gw.route(ResourceKey(rl.Resource().Attributes()))
				require.Equal(t, addrs[gi], want, "resource reached the gateway that owns it")
				total += rl.ScopeLogs().Len()
			}
		}
	}
	require.Equal(t, 60, total)
	require.Len(t, where, 20)
	used := map[int]bool{}
	for _, gi := range where {
		used[gi] = true
	}
	require.Len(t, used, 2, "20 resources spread over both gateways")

	// A gateway dies: the membership drops it and a resend goes to the survivor.
	gw.mu.Lock()
	gw.alive = addrs[:1]
	gw.mu.Unlock()
	_, err = b.Send(ctx, actors.SignalLogs, payload)
	require.NoError(t, err)
	n := 0
	for _, p := range sinks[0].take(actors.SignalLogs) {
		got, _ := decodeProto(actors.SignalLogs, p)
		n += got.Logs.LogRecordCount()
	}
	require.Equal(t, 60, n, "every record reaches the surviving gateway")
	require.Empty(t, sinks[1].take(actors.SignalLogs))

	// Nobody alive: a retryable error, so the WAL keeps the batch.
	gw.mu.Lock()
	gw.alive = nil
	gw.mu.Unlock()
	_, err = b.Send(ctx, actors.SignalLogs, payload)
	require.ErrorIs(t, err, errNoGateway)
	require.False(t, IsPermanent(err))
}

func TestBalancingSenderKeepsTracesTogether(t *testing.T) {
	sinks := []*sink{{}, {}}
	var addrs []string
	for _, s := range sinks {
		addrs = append(addrs, startReceiver(t, s.consumers(t, actors.SignalTraces), nil).grpcAddr)
	}
	gw := &gateways{alive: addrs}
	cfg := DefaultOTLPExporterConfig()
	cfg.Endpoint = ClusterGateway
	cfg.TLS.Insecure = true
	b, err := NewBalancingSender(cfg, gw.route, nil, nil)
	require.NoError(t, err)
	defer b.Close()

	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	for trace := 0; trace < 16; trace++ {
		for span := 0; span < 4; span++ {
			sp := ss.Spans().AppendEmpty()
			sp.SetTraceID([16]byte{byte(trace), 1})
			sp.SetSpanID([8]byte{byte(trace), byte(span)})
		}
	}
	_, err = b.Send(context.Background(), actors.SignalTraces, mustProto(t, actors.TracesBatch(td)))
	require.NoError(t, err)
	owner := map[string]int{}
	spans := 0
	for gi, s := range sinks {
		for _, p := range s.take(actors.SignalTraces) {
			got, _ := decodeProto(actors.SignalTraces, p)
			rs := got.Traces.ResourceSpans()
			for i := 0; i < rs.Len(); i++ {
				sps := rs.At(i).ScopeSpans().At(0).Spans()
				for k := 0; k < sps.Len(); k++ {
					tid := sps.At(k).TraceID()
					key := hex.EncodeToString(tid[:])
					if prev, ok := owner[key]; ok {
						require.Equal(t, prev, gi, "a trace was split across gateways")
					}
					owner[key] = gi
					spans++
				}
			}
		}
	}
	require.Equal(t, 64, spans)
	require.Len(t, owner, 16)
}
