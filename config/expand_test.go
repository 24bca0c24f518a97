package config

import (
	"fmt"
	"io/fs"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func TestExpandString(t *testing.T) {
	env := map[string]string{"K8S_NODE_IP": "10.0.0.2", "PORT": "8888", "EMPTY": "", "B": "true"}
	files := map[string]string{"/run/secret": "hunter2\n", "/run/crlf": "abc\r\n"}
	x := &expander{seen: map[*yaml.Node]bool{}, opts: Options{
		LookupEnv: envOf(env),
		ReadFile: func(p string) ([]byte, error) {
			if v, ok := files[p]; ok {
				return []byte(v), nil
			}
			return nil, fmt.Errorf("open %s: %w", p, fs.ErrNotExist)
		},
	}}
	tests := []struct {
		in      string
		want    string
		whole   bool
		problem string
	}{
		{in: "${env:K8S_NODE_IP}", want: "10.0.0.2", whole: true},
		{in: "${K8S_NODE_IP}", want: "10.0.0.2", whole: true},
		{in: "https://${env:K8S_NODE_IP}:10250", want: "https://10.0.0.2:10250"},
		{in: "${env:K8S_NODE_IP}:${env:PORT}", want: "10.0.0.2:8888"},
		{in: "${env:PORT}", want: "8888", whole: true},
		{in: "${env:B}", want: "true", whole: true},
		{in: "${env:MISSING:-default}", want: "default", whole: true},
		{in: "${env:MISSING:-}", want: "", whole: true},
		{in: "${env:MISSING:-a:b-c}", want: "a:b-c", whole: true},
		{in: "${MISSING:-x}", want: "x", whole: true},
		{in: "${env:EMPTY:-default}", want: "", whole: true},
		{in: "${env:PORT:-1}", want: "8888", whole: true},
		{in: "${file:/run/secret}", want: "hunter2", whole: true},
		{in: "${file:/run/crlf}", want: "abc", whole: true},
		{in: "Bearer ${file:/run/secret}", want: "Bearer hunter2"},
		{in: "/api/v1/nodes/$${1}/proxy/metrics", want: "/api/v1/nodes/${1}/proxy/metrics"},
		{in: "$${env:PORT}", want: "${env:PORT}"},
		{in: "$$", want: "$"},
		{in: "$$$${env:PORT}", want: "$${env:PORT}"},
		{in: "$$${env:PORT}", want: "$8888"},
		{in: "$VAR and $1", want: "$VAR and $1"},
		{in: "cost: 5$", want: "cost: 5$"},
		{in: "^\\${unterminated", want: "^\\${unterminated"},
		{in: "${env:MISSING}", problem: `environment variable "MISSING" is not set and has no default`, whole: true},
		{in: "${1}", problem: "invalid variable reference: a name must match [A-Za-z_][A-Za-z0-9_]* (write $$ for a literal $)", whole: true},
		{in: "${env:BAD-NAME}", problem: "invalid variable reference: a name must match [A-Za-z_][A-Za-z0-9_]* (write $$ for a literal $)", whole: true},
		{in: "${http://x}", problem: `unsupported variable scheme "http" (want env or file; write $$ for a literal $)`, whole: true},
		{in: "${file:/nope}", problem: "read ${file:...}: open /nope: file does not exist", whole: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, whole, probs := x.expandString(tt.in)
			if tt.problem != "" {
				require.Len(t, probs, 1)
				require.Equal(t, tt.problem, probs[0].msg)
				require.False(t, probs[0].warn)
				return
			}
			require.Empty(t, probs)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.whole, whole)
		})
	}
}

// Expansion happens on parsed scalars: line numbers stay those of the file,
// keys are never expanded, and an expanded value is not expanded again.
func TestExpandInDocument(t *testing.T) {
	f, err := Parse("obs.yaml", doc(`
receivers:
  otlp:
    "${env:KEY}": ${env:KEY}
    again: ${env:DOLLAR}
    list: [a, "${env:KEY}"]
    anchor: &a ${env:KEY}
    alias: *a
exporters: {debug: }
service: {pipelines: {logs: {receivers: [otlp], exporters: [debug]}}}
`), Options{LookupEnv: envOf(map[string]string{"KEY": "v", "DOLLAR": "${env:KEY}"})})
	require.NoError(t, err)
	var got map[string]any
	c := f.Receivers[ID{Type: "otlp"}]
	require.NoError(t, c.Node.Decode(&got))
	require.Equal(t, map[string]any{
		"${env:KEY}": "v",
		"again":      "${env:KEY}",
		"list":       []any{"a", "v"},
		"anchor":     "v",
		"alias":      "v",
	}, got)
	require.Equal(t, 3, c.Node.Content[0].Line)
	require.Equal(t, yaml.ScalarNode, c.Node.Content[1].Kind)
}

func TestMergeKeysAndAliases(t *testing.T) {
	f, err := Parse("obs.yaml", doc(`
x-tls: &tls
  insecure: true
  ca_file: ${env:CA}
x-base: &base
  endpoint: a:4317
  timeout: 5s
receivers: {otlp: }
exporters:
  otlp/a:
    <<: *base
    tls: *tls
  otlp/b:
    <<: [*base]
    endpoint: b:4317
service: {pipelines: {logs: {receivers: [otlp], exporters: [otlp/a, otlp/b]}}}
`), Options{LookupEnv: envOf(map[string]string{"CA": "/ca$$.pem"})})
	require.Error(t, err, "x-tls and x-base are not obs keys")
	require.EqualError(t, err, "obs.yaml:1: x-tls: unknown key\nobs.yaml:4: x-base: unknown key")

	type settings struct {
		Endpoint string        `yaml:"endpoint"`
		Timeout  time.Duration `yaml:"timeout"`
		TLS      struct {
			Insecure bool   `yaml:"insecure"`
			CAFile   string `yaml:"ca_file"`
		} `yaml:"tls"`
	}
	var a, b settings
	require.NoError(t, Decode(f.Exporters[ID{Type: "otlp", Name: "a"}], &a))
	require.NoError(t, Decode(f.Exporters[ID{Type: "otlp", Name: "b"}], &b))
	require.Equal(t, "a:4317", a.Endpoint)
	require.Equal(t, 5*time.Second, a.Timeout)
	require.True(t, a.TLS.Insecure)
	require.Equal(t, "/ca$$.pem", a.TLS.CAFile, "an env value is not expanded again, even when shared")
	require.Equal(t, "b:4317", b.Endpoint, "keys in the mapping win over merged ones")
	require.Equal(t, 5*time.Second, b.Timeout)
}

func TestCyclicAlias(t *testing.T) {
	f, err := Parse("obs.yaml", doc(`
receivers:
  otlp: &a
    self: [*a]
`), Options{LookupEnv: noEnv})
	require.ErrorContains(t, err, "obs.yaml:3: receivers.otlp.self[0]: alias refers to a node that contains it")
	_, err = f.Redacted()
	require.ErrorContains(t, err, "alias refers to a node that contains it")
}
