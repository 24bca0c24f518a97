package enrich

import (
	"context"
	"sync"
	"testing"

	"github.com/obs-dev/obs/actors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
)

type recorder struct {
	mu   sync.Mutex
	envs map[string][]string // stage → service names seen
}

type recStage struct {
	name string
	rec  *recorder
}

func (s recStage) Consume(_ context.Context, env *actors.Envelope, _ actors.Emit) {
	s.rec.mu.Lock()
	rl := env.Batch.Logs.ResourceLogs()
	for i := 0; i < rl.Len(); i++ {
		v, _ := rl.At(i).Resource().Attributes().Get("service.name")
		s.rec.envs[s.name] = append(s.rec.envs[s.name], v.Str())
	}
	s.rec.mu.Unlock()
	env.Ack.Done(nil)
}

func TestRoutingByResource(t *testing.T) {
	sys := actors.NewSystem(actors.Options{}, nil, nil)
	rec := &recorder{envs: map[string][]string{}}
	refs := map[string]*actors.Ref{}
	for _, p := range []string{"logs/a", "logs/b", "logs/default"} {
		r, err := sys.Spawn(p, recStage{p, rec}, nil)
		require.NoError(t, err)
		refs[p] = r
	}
	reg := prometheus.NewRegistry()
	cfg := RoutingConfig{
		DefaultPipelines: []string{"logs/default"},
		Table: []Route{
			{Condition: `resource.attributes["service.name"] == "a"`, Pipelines: []string{"logs/a"}},
			{Statement: `route() where resource.attributes["service.name"] == "b"`, Pipelines: []string{"logs/b", "logs/a"}},
		},
	}
	r, err := NewRouting("routing", cfg, refs, reg)
	require.NoError(t, err)

	l := plog.NewLogs()
	for _, svc := range []string{"a", "b", "c"} {
		rl := l.ResourceLogs().AppendEmpty()
		rl.Resource().Attributes().PutStr("service.name", svc)
		rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	}
	env := &actors.Envelope{Batch: actors.LogsBatch(l), Ack: actors.NewAck()}
	r.Consume(context.Background(), env, nil)
	require.NoError(t, env.Ack.Wait(context.Background()))
	require.ElementsMatch(t, []string{"a", "b"}, rec.envs["logs/a"])
	require.Equal(t, []string{"b"}, rec.envs["logs/b"])
	require.Equal(t, []string{"c"}, rec.envs["logs/default"])
	require.NoError(t, sys.Stop(context.Background()))
}

func TestRoutingUnroutedIsCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	r, err := NewRouting("routing", RoutingConfig{Table: []Route{{Condition: "false", Pipelines: []string{"x"}}}},
		map[string]*actors.Ref{"x": nil}, reg)
	require.NoError(t, err)
	l := plog.NewLogs()
	l.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	env := &actors.Envelope{Batch: actors.LogsBatch(l), Ack: actors.NewAck()}
	r.Consume(context.Background(), env, nil)
	require.NoError(t, env.Ack.Wait(context.Background()))
	require.Equal(t, 1.0, testutil.ToFloat64(r.unrouted))
}

func TestRoutingConfigErrors(t *testing.T) {
	for name, c := range map[string]RoutingConfig{
		"no table":      {},
		"no pipelines":  {Table: []Route{{Condition: "true"}}},
		"bad condition": {Table: []Route{{Condition: `attributes["x"] > 3`, Pipelines: []string{"p"}}}},
		"both":          {Table: []Route{{Condition: "true", Statement: "route()", Pipelines: []string{"p"}}}},
	} {
		require.Error(t, c.Validate(), name)
	}
}
