package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func TestRedacted(t *testing.T) {
	f, err := Parse("obs.yaml", doc(`
# api-key: commented-secret
receivers:
  otlp:
  prometheus:
    config:
      scrape_configs:
        - job_name: x
          bearer_token_file: /var/run/token
          basic_auth: {username: u, password: pw-secret}
          authorization: {type: Bearer, credentials: cred-secret}
exporters:
  otlphttp/new_relic:
    endpoint: https://otlp.example:4318
    headers:
      api-key: secret123
      x-other: ${env:OTHER}
      nested: {deep: nested-secret}
  otlp:
    endpoint: gw:4317
    tls:
      key_pem: key-secret
      cert_file: /etc/cert.pem
    auth_token: &tok tok-secret
    note: *tok
  otlphttp/odd:
    headers: scalar-secret
service:
  pipelines:
    logs: {receivers: [otlp, prometheus], exporters: [otlphttp/new_relic, otlp, otlphttp/odd]}
cluster:
  key_file: /etc/obs/gossip.key
  name: prod
`), Options{LookupEnv: envOf(map[string]string{"OTHER": "env-secret"})})
	require.NoError(t, err)
	out, err := f.Redacted()
	require.NoError(t, err)
	text := string(out)
	for _, secret := range []string{"secret123", "env-secret", "nested-secret", "pw-secret", "cred-secret", "key-secret", "commented-secret", "scalar-secret"} {
		require.NotContains(t, text, secret)
	}
	// Kept: non-secret values, paths to secrets, and every key.
	for _, kept := range []string{"api-key: '[REDACTED]'", "/var/run/token", "/etc/cert.pem", "/etc/obs/gossip.key", "username: u", "endpoint: gw:4317", "name: prod"} {
		require.Contains(t, text, kept)
	}
	// "note" aliases the token's anchor; the alias is resolved, and its
	// value was not under a secret key, so it shows. That is the
	// documented limit: redaction is by key.
	require.Contains(t, text, "auth_token: '[REDACTED]'")

	// The output is valid YAML that parses back to the same shape.
	var back map[string]any
	require.NoError(t, yaml.Unmarshal(out, &back))
	headers := back["exporters"].(map[string]any)["otlphttp/new_relic"].(map[string]any)["headers"].(map[string]any)
	require.Equal(t, map[string]any{"api-key": Redaction, "x-other": Redaction, "nested": Redaction}, headers)
}

func TestRedactedSeedGateway(t *testing.T) {
	f, err := Load("testdata/seed-gateway.yaml", Options{LookupEnv: envOf(seedEnv)})
	require.NoError(t, err)
	out, err := f.Redacted()
	require.NoError(t, err)
	require.NotContains(t, string(out), "1e249af1eea27fa5ee8304a883a86f14FFFFNRAL")
	require.Contains(t, string(out), "api-key: '[REDACTED]'")

	// Redacted shows effective values: Prometheus' ${1} as Prometheus sees it.
	f, err = Load("testdata/seed-agent.yaml", Options{LookupEnv: envOf(seedEnv)})
	require.NoError(t, err)
	out, err = f.Redacted()
	require.NoError(t, err)
	require.Contains(t, string(out), "replacement: /api/v1/nodes/${1}/proxy/metrics/cadvisor")
	require.Contains(t, string(out), "bearer_token_file: /var/run/secrets/kubernetes.io/serviceaccount/token")
}

// Errors name keys and expected types, never the value that failed.
func TestSecretsNeverInErrors(t *testing.T) {
	const head = "receivers: {otlp: }\nservice: {pipelines: {logs: {receivers: [otlp], exporters: [otlphttp]}}}\nexporters:\n  otlphttp:\n"
	tests := []struct {
		name     string
		settings string
		parseErr bool
	}{
		{name: "header value is a list", settings: "    headers:\n      api-key: [secret123]\n"},
		{name: "header value is a mapping", settings: "    headers:\n      api-key: {secret123: x}\n"},
		{name: "unterminated quote", settings: "    headers:\n      api-key: \"secret123\n", parseErr: true},
		{name: "bad escape", settings: "    headers:\n      api-key: \"secret123\\q\"\n", parseErr: true},
		{name: "tab indentation", settings: "    headers:\n\tapi-key: secret123\n", parseErr: true},
		{name: "duplicate header", settings: "    headers:\n      api-key: secret123\n      api-key: secret123\n", parseErr: true},
		{name: "secret in an int field", settings: "    timeout: secret123\n    queue_size: secret123\n    enabled: secret123\n    ratio: secret123\n"},
		{name: "secret as an unknown key's value", settings: "    password: secret123\n"},
		{name: "secret inside a bad variable", settings: "    headers:\n      api-key: ${secret123-x}\n", parseErr: true},
		{name: "secret in a bad size", settings: "    max_bytes: secret123\n"},
	}
	type settings struct {
		Headers   map[string]string `yaml:"headers"`
		Timeout   durationField     `yaml:"timeout"`
		QueueSize int               `yaml:"queue_size"`
		Enabled   bool              `yaml:"enabled"`
		Ratio     float64           `yaml:"ratio"`
		MaxBytes  ByteSize          `yaml:"max_bytes"`
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("obs.yaml", []byte(head+tt.settings), Options{LookupEnv: noEnv})
			if tt.parseErr {
				require.Error(t, err)
				t.Log(err)
				require.NotContains(t, err.Error(), "secret123")
				for _, w := range f.Warnings {
					require.NotContains(t, w, "secret123")
				}
				return
			}
			require.NoError(t, err)
			var s settings
			err = Decode(f.Exporters[ID{Type: "otlphttp"}], &s)
			require.Error(t, err)
			t.Log(err)
			require.NotContains(t, err.Error(), "secret123")
		})
	}
}

// durationField checks that a custom yaml.Unmarshaler's error, which here
// repeats the input, is not passed through.
type durationField string

func (d *durationField) UnmarshalYAML(n *yaml.Node) error {
	if strings.HasSuffix(n.Value, "s") && !strings.Contains(n.Value, "secret") {
		*d = durationField(n.Value)
		return nil
	}
	return &yaml.TypeError{Errors: []string{"bad duration " + n.Value}}
}
