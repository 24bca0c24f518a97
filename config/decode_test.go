package config

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

type tlsSettings struct {
	Insecure bool   `yaml:"insecure"`
	CAFile   string `yaml:"ca_file"`
}

type exporterSettings struct {
	Endpoint    string            `yaml:"endpoint"`
	Timeout     time.Duration     `yaml:"timeout"`
	Compression string            `yaml:"compression"`
	Headers     map[string]string `yaml:"headers"`
	TLS         tlsSettings       `yaml:"tls"`
	Retry       *struct {
		Enabled     bool          `yaml:"enabled"`
		MaxInterval time.Duration `yaml:"max_interval"`
	} `yaml:"retry_on_failure"`
	QueueSize  int        `yaml:"queue_size"`
	Ratio      float64    `yaml:"ratio"`
	Workers    uint8      `yaml:"workers"`
	Paths      []string   `yaml:"paths"`
	MaxBytes   ByteSize   `yaml:"max_bytes"`
	Raw        *yaml.Node `yaml:"raw"`
	Attributes map[string]any
}

func defaultExporter() exporterSettings {
	return exporterSettings{Timeout: 5 * time.Second, Compression: "gzip", QueueSize: 1000}
}

// exporter parses a config whose only exporter "otlp" has the given
// settings (indented by four spaces, starting on line 5).
func exporter(t *testing.T, settings string, env map[string]string) *Component {
	t.Helper()
	data := "receivers: {otlp: }\n" +
		"service: {pipelines: {logs: {receivers: [otlp], exporters: [otlp]}}}\n" +
		"exporters:\n" +
		"  otlp:\n" + settings
	f, err := Parse("obs.yaml", []byte(data), Options{LookupEnv: envOf(env)})
	require.NoError(t, err)
	return f.Exporters[ID{Type: "otlp"}]
}

func TestDecode(t *testing.T) {
	env := map[string]string{"TIMEOUT": "30s", "QUEUE": "64", "INSECURE": "true", "RATIO": "0.5", "HOST": "gw"}
	tests := []struct {
		name     string
		settings string
		want     func(*exporterSettings)
		wantErr  []string
	}{
		{
			name:     "empty keeps defaults",
			settings: "",
			want:     func(*exporterSettings) {},
		},
		{
			name: "all fields",
			settings: `    endpoint: ${env:HOST}:4317
    timeout: 10s
    headers: {x-tenant: a}
    tls: {insecure: true, ca_file: /ca.pem}
    retry_on_failure: {enabled: true, max_interval: 1m}
    queue_size: 0x10
    ratio: 2
    workers: 4
    paths: [a, b]
    max_bytes: 1GiB
    raw: {anything: [1, 2]}
    attributes: {k: v, n: 1}
`,
			want: func(e *exporterSettings) {
				e.Endpoint = "gw:4317"
				e.Timeout = 10 * time.Second
				e.Headers = map[string]string{"x-tenant": "a"}
				e.TLS = tlsSettings{Insecure: true, CAFile: "/ca.pem"}
				e.Retry = &struct {
					Enabled     bool          `yaml:"enabled"`
					MaxInterval time.Duration `yaml:"max_interval"`
				}{Enabled: true, MaxInterval: time.Minute}
				e.QueueSize = 16
				e.Ratio = 2
				e.Workers = 4
				e.Paths = []string{"a", "b"}
				e.MaxBytes = 1 << 30
				e.Attributes = map[string]any{"k": "v", "n": 1}
			},
		},
		{
			name: "whole variables are typed late",
			settings: `    timeout: ${env:TIMEOUT}
    queue_size: ${env:QUEUE}
    tls: {insecure: "${env:INSECURE}"}
    ratio: ${RATIO}
`,
			want: func(e *exporterSettings) {
				e.Timeout = 30 * time.Second
				e.QueueSize = 64
				e.TLS.Insecure = true
				e.Ratio = 0.5
			},
		},
		{
			name:     "bad duration",
			settings: "    endpoint: gw:4317\n    timeout: 5 seconds\n",
			wantErr:  []string{"obs.yaml:6: exporters.otlp.timeout: want a duration like 5s"},
		},
		{
			name:     "number where a duration is wanted",
			settings: "    timeout: 5\n",
			wantErr:  []string{"obs.yaml:5: exporters.otlp.timeout: want a duration like 5s"},
		},
		{
			name:     "unknown nested key",
			settings: "    tls:\n      insecur: true\n",
			wantErr:  []string{"obs.yaml:6: exporters.otlp.tls.insecur: unknown key"},
		},
		{
			name: "wrong types, all reported",
			settings: `    endpoint: [a]
    queue_size: "64"
    tls: {insecure: yes-please}
    workers: 300
    ratio: lots
    paths: a
    headers: [a]
    retry_on_failure: true
`,
			wantErr: []string{
				"obs.yaml:5: exporters.otlp.endpoint: want a string",
				"obs.yaml:6: exporters.otlp.queue_size: want an integer",
				"obs.yaml:7: exporters.otlp.tls.insecure: want true or false",
				"obs.yaml:8: exporters.otlp.workers: integer out of range for uint8",
				"obs.yaml:9: exporters.otlp.ratio: want a number",
				"obs.yaml:10: exporters.otlp.paths: want a list",
				"obs.yaml:11: exporters.otlp.headers: want a mapping",
				"obs.yaml:12: exporters.otlp.retry_on_failure: want a mapping",
			},
		},
		{
			name:     "a variable inside a longer string is not an integer",
			settings: "    queue_size: ${env:QUEUE}0x\n",
			wantErr:  []string{"obs.yaml:5: exporters.otlp.queue_size: want an integer"},
		},
		{
			name:     "list items are named by index",
			settings: "    paths: [a, {b: c}]\n",
			wantErr:  []string{"obs.yaml:5: exporters.otlp.paths[1]: want a string"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := exporter(t, tt.settings, env)
			got := defaultExporter()
			err := Decode(c, &got)
			if tt.wantErr != nil {
				var es Errors
				require.True(t, errors.As(err, &es), "want Errors, got %v", err)
				msgs := make([]string, len(es))
				for i, e := range es {
					msgs[i] = e.Error()
				}
				require.Equal(t, tt.wantErr, msgs)
				var one *Error
				require.True(t, errors.As(err, &one))
				return
			}
			require.NoError(t, err)
			if got.Raw != nil {
				require.Equal(t, yaml.MappingNode, got.Raw.Kind)
				require.Equal(t, 15, got.Raw.Line)
				got.Raw = nil
			}
			want := defaultExporter()
			tt.want(&want)
			require.Equal(t, want, got)
		})
	}
}

func TestDecodeInlineAndErrors(t *testing.T) {
	type base struct {
		Endpoint string `yaml:"endpoint"`
	}
	type withInline struct {
		base  `yaml:",inline"`
		Extra map[string]string `yaml:",inline"`
	}
	c := exporter(t, "    endpoint: a\n    other: b\n", nil)
	var w withInline
	require.NoError(t, Decode(c, &w))
	require.Equal(t, "a", w.Endpoint)
	require.Equal(t, map[string]string{"other": "b"}, w.Extra)

	var s struct{}
	require.Error(t, Decode(c, s), "a non-pointer must be refused")
	require.NoError(t, Decode(&Component{ID: ID{Type: "batch"}}, &s), "nil settings decode to nothing")
}
