package roles

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "obs.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

const goodConfig = `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  batch:
    send_batch_size: 100
exporters:
  debug: {}
connectors:
  routing:
    table:
      - condition: "true"
        pipelines: [logs/out]
service:
  pipelines:
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [routing]
    logs/out:
      receivers: [routing]
      exporters: [debug]
`

func TestPlanOrdersConsumersFirst(t *testing.T) {
	p, _, err := loadPlan(writeConfig(t, goodConfig), All, t.TempDir(), false, nil)
	require.NoError(t, err)
	require.Len(t, p.order, 2)
	require.Equal(t, "logs/out", p.order[0].ID.String(), "the connector's consumer is built first")
	require.Contains(t, p.summary(), "logs: otlp → batch → routing")
}

func TestPlanErrors(t *testing.T) {
	cases := []struct {
		name string
		body string
		want []string // each must appear in the error text
	}{
		{
			name: "unknown type",
			body: "receivers:\n  otlpx:\n    protocols: {grpc: {}}\nexporters:\n  debug: {}\nservice:\n  pipelines:\n    logs:\n      receivers: [otlpx]\n      exporters: [debug]\n",
			want: []string{":2: receivers.otlpx: unknown receiver type \"otlpx\""},
		},
		{
			name: "bad setting of a known type",
			body: "receivers:\n  otlp:\n    protocols: {grpc: {}}\nprocessors:\n  batch:\n    timeout: soon\nexporters:\n  debug: {}\nservice:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [debug]\n",
			want: []string{":6: processors.batch.timeout:"},
		},
		{
			name: "unknown key in a component",
			body: "receivers:\n  otlp:\n    protocols: {grpc: {endpont: x}}\nexporters:\n  debug: {}\nservice:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      exporters: [debug]\n",
			want: []string{":3: receivers.otlp.protocols.grpc.endpont:"},
		},
		{
			name: "signal not supported",
			body: "receivers:\n  otlp:\n    protocols: {grpc: {}}\nprocessors:\n  metricstransform: {}\nexporters:\n  debug: {}\nservice:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      processors: [metricstransform]\n      exporters: [debug]\n",
			want: []string{`:10: service.pipelines.logs.processors: processor "metricstransform" does not support logs`},
		},
		{
			name: "connector cycle",
			body: "receivers:\n  otlp:\n    protocols: {grpc: {}}\nexporters:\n  debug: {}\nconnectors:\n  routing/a:\n    table: [{condition: \"true\", pipelines: [logs/b]}]\n  routing/b:\n    table: [{condition: \"true\", pipelines: [logs/a]}]\nservice:\n  pipelines:\n    logs/a:\n      receivers: [otlp, routing/b]\n      exporters: [routing/a, debug]\n    logs/b:\n      receivers: [routing/a]\n      exporters: [routing/b]\n",
			want: []string{"form a cycle"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := loadPlan(writeConfig(t, tc.body), All, t.TempDir(), false, nil)
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

// The user's three Collector configs load and check with every component.
func TestSeedConfigsValidate(t *testing.T) {
	env := map[string]string{
		"K8S_POD_IP": "10.0.0.1", "K8S_NODE_IP": "10.0.0.2", "K8S_NODE_NAME": "node-1",
		"METRICS_SCRAPE_INTERVAL": "1m", "API_KEY": "secret", "OTEL_RESOURCE_ATTRIBUTES": "a=b",
	}
	lookup := func(k string) (string, bool) {
		if v, ok := env[k]; ok {
			return v, true
		}
		return "x", true
	}
	files, err := filepath.Glob("../config/testdata/seed-*.yaml")
	require.NoError(t, err)
	require.Len(t, files, 3)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, _, err := loadPlan(f, All, t.TempDir(), false, lookup)
			require.NoError(t, err, "every component of the seed's configs is implemented")
		})
	}
}

func TestDefaultConfigs(t *testing.T) {
	for _, role := range []Role{Agent, Gateway, All} {
		for _, ep := range []string{"", "http://127.0.0.1:4317"} {
			lookup := func(k string) (string, bool) {
				if k == "OTEL_EXPORTER_OTLP_ENDPOINT" && ep != "" {
					return ep, true
				}
				return "", false
			}
			p, dest, err := loadPlan("", role, t.TempDir(), false, lookup)
			require.NoError(t, err, "role %s endpoint %q", role, ep)
			require.Len(t, p.order, 3)
			if ep != "" {
				require.Contains(t, dest, ep)
			} else {
				require.Contains(t, dest, "export")
			}
		}
	}
}

func TestParseRole(t *testing.T) {
	for _, s := range []string{"agent", "gateway", "all", " Gateway "} {
		_, err := ParseRole(s)
		require.NoError(t, err)
	}
	_, err := ParseRole("collector")
	require.ErrorContains(t, err, "want agent, gateway or all")
}

func TestPlanReportsStructureAndTypeErrorsTogether(t *testing.T) {
	body := "receivers:\n  otlp:\n    protocols: {grpc: {}}\nexporters:\n  otlpx: {}\nservice:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      exporters: [otlpx, missing]\n"
	_, _, err := loadPlan(writeConfig(t, body), All, t.TempDir(), false, nil)
	require.Error(t, err)
	require.Contains(t, err.Error(), `:5: exporters.otlpx: unknown exporter type "otlpx"`)
	require.Contains(t, err.Error(), `"missing" is not defined`)
}
