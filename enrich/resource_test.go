package enrich

import (
	"context"
	"strings"
	"testing"

	"github.com/obs-dev/obs/actors"
	"github.com/obs-dev/obs/config"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// seedEnv is what the seed's manifests set for the collectors.
var seedEnv = map[string]string{
	"K8S_POD_IP":              "10.0.1.5",
	"K8S_NODE_NAME":           "node-a",
	"K8S_NODE_IP":             "172.16.1.7",
	"METRICS_SCRAPE_INTERVAL": "1m",
}

// seedProcessor loads one of the user's Collector configs and returns the
// named processor's settings.
func seedProcessor(t *testing.T, file, id string) *config.Component {
	t.Helper()
	f, err := config.Load("../config/testdata/"+file, config.Options{
		LookupEnv: func(k string) (string, bool) {
			if v, ok := seedEnv[k]; ok {
				return v, true
			}
			return "set-" + k, true
		},
	})
	require.NoError(t, err)
	pid, err := config.ParseID(id)
	require.NoError(t, err)
	c := f.Processors[pid]
	require.NotNil(t, c, "processor %s in %s", id, file)
	return c
}

func TestResourceSeedProcessors(t *testing.T) {
	newRes := func(raw map[string]any) map[string]any { return raw }
	tests := []struct {
		file, id string
		in, want map[string]any
		changed  float64
	}{
		{"seed-agent.yaml", "resource/append_pod_ip",
			newRes(map[string]any{"host.name": "node-a"}),
			map[string]any{"host.name": "node-a", "k8s.pod.ip": "10.0.1.5"}, 1},
		{"seed-gateway.yaml", "resource/append_pod_ip",
			map[string]any{"k8s.pod.ip": "10.9.9.9"},
			map[string]any{"k8s.pod.ip": "10.9.9.9"}, 0},
		{"seed-clusteragent.yaml", "resource/append_pod_ip",
			map[string]any{},
			map[string]any{"k8s.pod.ip": "10.0.1.5"}, 1},
		{"seed-gateway.yaml", "resource/delete_pod_ip",
			map[string]any{"k8s.pod.ip": "10.0.1.5", "k8s.pod.name": "p"},
			map[string]any{"k8s.pod.name": "p"}, 1},
		{"seed-gateway.yaml", "resource/append_environment_info",
			map[string]any{"k8s.cluster.name": "old"},
			map[string]any{"k8s.cluster.name": "lab-production", "deployment.environment.name": "production"}, 1},
		{"seed-gateway.yaml", "resource/new_relic",
			map[string]any{"service.name": "api", "service_name": "api", "host.name": "h"},
			map[string]any{"newrelicOnly": "true", "host.name": "h"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.id, func(t *testing.T) {
			cfg := DefaultResourceConfig()
			require.NoError(t, config.Decode(seedProcessor(t, tt.file, tt.id), &cfg))
			require.NoError(t, cfg.Validate())
			reg := prometheus.NewRegistry()
			fn, err := NewResource(tt.id, cfg, nil, reg)
			require.NoError(t, err)

			md := pmetric.NewMetrics()
			require.NoError(t, md.ResourceMetrics().AppendEmpty().Resource().Attributes().FromRaw(tt.in))
			require.NoError(t, fn(context.Background(), actors.MetricsBatch(md)))
			require.Equal(t, tt.want, md.ResourceMetrics().At(0).Resource().Attributes().AsRaw())
			require.Equal(t, tt.changed, counterValue(t, reg, "obs_enrich_resource_changed_items_total"))
		})
	}
}

func TestResourceEverySignal(t *testing.T) {
	fn, err := NewResource("resource/x", ResourceConfig{Attributes: []AttrAction{{Key: "k", Action: "upsert", Value: "v"}}}, nil, nil)
	require.NoError(t, err)
	ld := plog.NewLogs()
	ld.ResourceLogs().AppendEmpty()
	ld.ResourceLogs().AppendEmpty()
	td := ptrace.NewTraces()
	td.ResourceSpans().AppendEmpty()
	require.NoError(t, fn(context.Background(), actors.LogsBatch(ld)))
	require.NoError(t, fn(context.Background(), actors.TracesBatch(td)))
	for i := 0; i < 2; i++ {
		require.Equal(t, map[string]any{"k": "v"}, ld.ResourceLogs().At(i).Resource().Attributes().AsRaw())
	}
	require.Equal(t, map[string]any{"k": "v"}, td.ResourceSpans().At(0).Resource().Attributes().AsRaw())
}

func TestResourceConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"no attributes", "resource: {}", "attributes: at least one action is required"},
		{"missing key", "resource:\n  attributes:\n    - action: insert\n      value: x", "attributes[0].key: required for action insert"},
		{"bad action", "resource:\n  attributes:\n    - key: a\n      action: replace", `attributes[0].action: unknown action "replace"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultResourceConfig()
			require.NoError(t, config.Decode(parseProcessor(t, tt.yaml, "resource"), &cfg))
			require.ErrorContains(t, cfg.Validate(), tt.want)
			_, err := NewResource("resource", cfg, nil, nil)
			require.ErrorContains(t, err, tt.want)
		})
	}
	// An unknown key is a decode error with its line.
	cfg := DefaultResourceConfig()
	err := config.Decode(parseProcessor(t, "resource:\n  attributes:\n    - key: a\n      action: delete\n      valeu: x", "resource"), &cfg)
	require.ErrorContains(t, err, "t.yaml:7")
	require.ErrorContains(t, err, "valeu")
}

// parseProcessor parses body (one processor's YAML, at column 0) inside a
// minimal config file whose processors section starts on line 2 (so the
// body's first line is line 3) and returns the component id.
func parseProcessor(t *testing.T, body, id string) *config.Component {
	t.Helper()
	doc := "receivers: {otlp: {}}\nprocessors:\n  " + strings.ReplaceAll(body, "\n", "\n  ") +
		"\nexporters: {debug: {}}\nservice:\n  pipelines:\n    metrics:\n      receivers: [otlp]\n      processors: [" + id + "]\n      exporters: [debug]\n"
	f, err := config.Parse("t.yaml", []byte(doc), config.Options{})
	require.NoError(t, err)
	pid, err := config.ParseID(id)
	require.NoError(t, err)
	return f.Processors[pid]
}
