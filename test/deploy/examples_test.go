package deploy

import (
	"path/filepath"
	"testing"

	"github.com/obs-dev/obs/roles"
	"github.com/stretchr/testify/require"
)

// TestExamplesValidate loads every config of deploy/examples the way
// `obs validate` does, with the env vars the seed's manifests set (and
// the backends' secrets). test/examples runs the seed's configs.
func TestExamplesValidate(t *testing.T) {
	for k, v := range map[string]string{
		"OBS_BACKEND_ENDPOINT": "backend.example.com:4317", "OBS_BACKEND_API_KEY": "k",
		"SIGNOZ_ENDPOINT": "signoz.example.com:4317", "NEW_RELIC_API_KEY": "k",
		"K8S_POD_IP": "10.0.0.1", "K8S_NODE_IP": "10.0.0.2", "K8S_NODE_NAME": "node-a",
		"METRICS_SCRAPE_INTERVAL": "30s",
	} {
		t.Setenv(k, v)
	}
	for _, tc := range []struct{ file, role string }{
		{"obs-agent.yaml", "agent"},
		{"obs-gateway.yaml", "gateway"},
		{"agent.yaml", "agent"},
		{"gateway.yaml", "gateway"},
		{"clusteragent.yaml", "gateway"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			role, err := roles.ParseRole(tc.role)
			require.NoError(t, err)
			summary, _, err := roles.Validate(filepath.Join(root(t), "deploy", "examples", tc.file), role)
			require.NoError(t, err)
			require.Contains(t, summary, "ok:")
		})
	}
}
