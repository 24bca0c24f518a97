package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// doc trims the leading newline of a raw string so that its first line is
// line 1 of the document.
func doc(s string) []byte { return []byte(strings.TrimPrefix(s, "\n")) }

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func noEnv(string) (string, bool) { return "", false }

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "unknown top-level key",
			yaml: `
receivers:
  otlp:
exporters:
  debug:
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [debug]
exporter:
  otlp:
`,
			want: []string{"obs.yaml:10: exporter: unknown key"},
		},
		{
			name: "typo in an exporter id referenced by a pipeline",
			yaml: `
receivers:
  otlp:
exporters:
  otlp/backend:
    endpoint: backend:4317
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters:
        - otlp/backnd
`,
			want: []string{
				`obs.yaml:11: service.pipelines.logs.exporters: "otlp/backnd" is not defined under exporters`,
				// Not a second error for "no exporters": the entry is there, only wrong.
			},
		},
		{
			name: "missing receiver and processor",
			yaml: `
exporters:
  debug:
service:
  pipelines:
    metrics:
      receivers: [prometheus]
      processors: [batch]
      exporters: [debug]
`,
			want: []string{
				`obs.yaml:6: service.pipelines.metrics.receivers: "prometheus" is not defined under receivers`,
				`obs.yaml:7: service.pipelines.metrics.processors: "batch" is not defined under processors`,
			},
		},
		{
			name: "pipeline without receivers or exporters",
			yaml: `
receivers:
  otlp:
exporters:
  debug:
service:
  pipelines:
    traces:
      exporters: [debug]
    logs:
      receivers: [otlp]
      exporters: []
`,
			want: []string{
				"obs.yaml:7: service.pipelines.traces: must have at least one receiver",
				"obs.yaml:9: service.pipelines.logs: must have at least one exporter",
			},
		},
		{
			name: "bad component id, pipeline id and pipeline key",
			yaml: `
receivers:
  OTLP:
  otlp/:
  otlp:
exporters:
  debug:
service:
  pipelines:
    spans:
      receivers: [otlp]
      exporters: [debug]
    logs:
      receivers: [otlp]
      exporter: [debug]
      exporters: [debug]
`,
			want: []string{
				"obs.yaml:2: receivers.OTLP: invalid component id: type must match [a-z][a-z0-9_]*",
				"obs.yaml:3: receivers.otlp/: invalid component id: name after '/' is empty",
				"obs.yaml:9: service.pipelines.spans: invalid pipeline id: signal must be logs, metrics or traces",
				"obs.yaml:14: service.pipelines.logs.exporter: unknown key",
			},
		},
		{
			name: "unknown service key and missing pipelines",
			yaml: `
receivers:
  otlp:
service:
  pipeline:
    logs:
      receivers: [otlp]
`,
			want: []string{
				"obs.yaml:4: service.pipeline: unknown key",
				"obs.yaml:4: service.pipelines: no pipelines defined",
			},
		},
		{
			name: "duplicate key",
			yaml: `
receivers:
  otlp:
    protocols:
      grpc:
      grpc:
exporters:
  debug:
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [debug]
`,
			want: []string{"obs.yaml:5: receivers.otlp.protocols.grpc: duplicate key, first defined at line 4"},
		},
		{
			name: "unset variable",
			yaml: `
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: ${env:POD_IP}:4317
exporters:
  debug:
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [debug]
`,
			want: []string{`obs.yaml:5: receivers.otlp.protocols.grpc.endpoint: environment variable "POD_IP" is not set and has no default`},
		},
		{
			name: "connector used only as exporter",
			yaml: `
receivers:
  otlp:
exporters:
  debug:
connectors:
  forward:
  routing/unused:
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [debug, forward]
`,
			want: []string{"obs.yaml:6: connectors.forward: connector is used as exporter in pipeline logs but not as receiver in any pipeline"},
		},
		{
			name: "connector used only as receiver",
			yaml: `
exporters:
  debug:
connectors:
  forward:
service:
  pipelines:
    logs:
      receivers: [forward]
      exporters: [debug]
`,
			want: []string{"obs.yaml:4: connectors.forward: connector is used as receiver in pipeline logs but not as exporter in any pipeline"},
		},
		{
			name: "connector cycle",
			yaml: `
receivers:
  otlp:
connectors:
  forward:
service:
  pipelines:
    logs:
      receivers: [otlp, forward]
      exporters: [forward]
`,
			want: []string{"obs.yaml:7: service.pipelines.logs: pipelines form a cycle through connectors: logs -> logs"},
		},
		{
			name: "unsupported extension",
			yaml: `
receivers:
  otlp:
exporters:
  debug:
extensions:
  health_check:
  oauth2client:
service:
  extensions: [health_check, oauth2client, pprof]
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [debug]
`,
			want: []string{
				`obs.yaml:9: service.extensions: extension type "oauth2client" is not supported (accepted and ignored: health_check, pprof, zpages, file_storage)`,
				`obs.yaml:9: service.extensions: "pprof" is not defined under extensions`,
			},
		},
		{
			name: "cluster and wal sections are strict",
			yaml: `
receivers:
  otlp:
exporters:
  debug:
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [debug]
cluster:
  bind: 0.0.0.0:7946
  joins: [gw]
wal:
  max_bytes: lots
`,
			want: []string{
				"obs.yaml:12: cluster.joins: unknown key",
				"obs.yaml:14: wal.max_bytes: want a size like 512MiB or a number of bytes",
			},
		},
		{
			name: "telemetry level",
			yaml: `
receivers:
  otlp:
exporters:
  debug:
service:
  telemetry:
    logs:
      level: loud
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [debug]
`,
			want: []string{"obs.yaml:8: service.telemetry.logs.level: want debug, info, warn or error"},
		},
		{
			name: "yaml syntax error",
			yaml: `
receivers:
  otlp:
    endpoint: "unterminated
exporters:
`,
			want: []string{"obs.yaml:3: parse yaml: found unexpected end of stream"},
		},
		{
			name: "empty",
			yaml: "\n",
			want: []string{"obs.yaml:1: config is empty"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("obs.yaml", doc(tt.yaml), Options{LookupEnv: noEnv})
			require.Error(t, err)
			var es Errors
			require.True(t, errors.As(err, &es), "want Errors, got %T", err)
			got := make([]string, len(es))
			for i, e := range es {
				got[i] = e.Error()
			}
			require.Equal(t, tt.want, got)
			var one *Error
			require.True(t, errors.As(err, &one))
			require.Equal(t, "obs.yaml", one.File)
		})
	}
}

func TestParseStructure(t *testing.T) {
	f, err := Parse("obs.yaml", doc(`
receivers:
  otlp:
    protocols: {grpc: {endpoint: "127.0.0.1:4317"}}
  prometheus/unused:
processors:
  batch: {}
  memory_limiter:
exporters:
  otlp/backend:
    endpoint: backend:4317
connectors:
  forward/x:
extensions:
  zpages:
service:
  extensions: [zpages]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [forward/x]
    traces/out:
      receivers: [forward/x]
      exporters: [otlp/backend]
  telemetry:
    metrics:
      address: 0.0.0.0:8888
`), Options{LookupEnv: noEnv})
	require.NoError(t, err)
	require.Len(t, f.Receivers, 2)
	require.Equal(t, 2, f.Receivers[ID{Type: "otlp"}].Line)
	require.Equal(t, "null", f.Processors[ID{Type: "memory_limiter"}].Node.ShortTag()[2:])
	require.Equal(t, []ID{{Type: "memory_limiter"}, {Type: "batch"}}, f.Pipelines[PipelineID{Signal: "traces"}].Processors)
	out := f.Pipelines[PipelineID{Signal: "traces", Name: "out"}]
	require.Equal(t, 22, out.Line)
	require.Equal(t, []ID{{Type: "forward", Name: "x"}}, out.Receivers)
	require.Equal(t, []ID{{Type: "zpages"}}, f.ServiceExtensions)
	require.Equal(t, "0.0.0.0:8888", f.Telemetry.MetricsAddr)
	require.Equal(t, []string{
		"obs.yaml:4: receivers.prometheus/unused: defined but not used in any pipeline",
		`obs.yaml:16: service.extensions: extension "zpages" is ignored: obs serves health, status and profiles on its admin port`,
	}, f.Warnings)
}

func TestClusterAndWAL(t *testing.T) {
	f, err := Parse("obs.yaml", doc(`
receivers: {otlp: }
exporters: {debug: }
service: {pipelines: {logs: {receivers: [otlp], exporters: [debug]}}}
cluster:
  bind: 0.0.0.0:7946
  advertise: ${env:POD_IP}:7946
  join: [obs-gateway-headless:7946]
  name: prod
  key_file: /etc/obs/gossip.key
  node_name: n1
wal:
  max_bytes: 512MiB
  dir: /var/lib/obs
`), Options{LookupEnv: envOf(map[string]string{"POD_IP": "10.1.2.3"})})
	require.NoError(t, err)
	require.Equal(t, ClusterSection{
		Bind: "0.0.0.0:7946", Advertise: "10.1.2.3:7946", Join: []string{"obs-gateway-headless:7946"},
		Name: "prod", KeyFile: "/etc/obs/gossip.key", NodeName: "n1",
	}, f.Cluster)
	require.Equal(t, WALSection{MaxBytes: 512 << 20, Dir: "/var/lib/obs"}, f.WAL)

	f, err = Parse("obs.yaml", doc(`
receivers: {otlp: }
exporters: {debug: }
service: {pipelines: {logs: {receivers: [otlp], exporters: [debug]}}}
wal: {max_bytes: 1073741824}
`), Options{LookupEnv: noEnv})
	require.NoError(t, err)
	require.Equal(t, ByteSize(1<<30), f.WAL.MaxBytes)
}

func TestLenient(t *testing.T) {
	data := doc(`
receivers:
  otlp:
    endpoint: ${env:POD_IP}:4317
exporters: {debug: }
service: {pipelines: {logs: {receivers: [otlp], exporters: [debug]}}}
`)
	_, err := Parse("obs.yaml", data, Options{LookupEnv: noEnv})
	require.EqualError(t, err, `obs.yaml:3: receivers.otlp.endpoint: environment variable "POD_IP" is not set and has no default`)

	f, err := Parse("obs.yaml", data, Options{LookupEnv: noEnv, Lenient: true})
	require.NoError(t, err)
	require.Equal(t, []string{`obs.yaml:3: receivers.otlp.endpoint: environment variable "POD_IP" is not set; using an empty value`}, f.Warnings)
	var cfg struct {
		Endpoint string `yaml:"endpoint"`
	}
	require.NoError(t, Decode(f.Receivers[ID{Type: "otlp"}], &cfg))
	require.Equal(t, ":4317", cfg.Endpoint)
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(secret, []byte("s3cr3t\n"), 0o600))
	path := filepath.Join(dir, "obs.yaml")
	require.NoError(t, os.WriteFile(path, doc(`
receivers: {otlp: }
exporters:
  otlphttp:
    headers:
      authorization: Bearer ${file:`+secret+`}
service: {pipelines: {logs: {receivers: [otlp], exporters: [otlphttp]}}}
`), 0o600))
	f, err := Load(path, Options{})
	require.NoError(t, err)
	var cfg struct {
		Headers map[string]string `yaml:"headers"`
	}
	require.NoError(t, Decode(f.Exporters[ID{Type: "otlphttp"}], &cfg))
	require.Equal(t, "Bearer s3cr3t", cfg.Headers["authorization"])

	_, err = Load(filepath.Join(dir, "missing.yaml"), Options{})
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestParseID(t *testing.T) {
	tests := []struct {
		in      string
		want    ID
		wantErr string
	}{
		{in: "otlp", want: ID{Type: "otlp"}},
		{in: "otlp/backend", want: ID{Type: "otlp", Name: "backend"}},
		{in: "k8s_events", want: ID{Type: "k8s_events"}},
		{in: "routing/metrics_per-backend.v2", want: ID{Type: "routing", Name: "metrics_per-backend.v2"}},
		{in: "", wantErr: `parse component id "": type is empty`},
		{in: "Otlp", wantErr: `parse component id "Otlp": type must match [a-z][a-z0-9_]*`},
		{in: "1otlp", wantErr: `parse component id "1otlp": type must match [a-z][a-z0-9_]*`},
		{in: "otlp/", wantErr: `parse component id "otlp/": name after '/' is empty`},
		{in: "otlp/a/b", wantErr: `parse component id "otlp/a/b": name must not contain '/', spaces or control characters`},
		{in: "otlp/a b", wantErr: `parse component id "otlp/a b": name must not contain '/', spaces or control characters`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			id, err := ParseID(tt.in)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, id)
			require.Equal(t, tt.in, id.String())
		})
	}
}

func TestParsePipelineID(t *testing.T) {
	for _, in := range []string{"logs", "metrics/self", "traces/new_relic"} {
		id, err := ParsePipelineID(in)
		require.NoError(t, err)
		require.Equal(t, in, id.String())
	}
	for _, in := range []string{"", "profiles", "metrics/", "Logs", "logs/a/b"} {
		_, err := ParsePipelineID(in)
		require.Error(t, err, in)
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want ByteSize
		err  bool
	}{
		{in: "0", want: 0},
		{in: "1073741824", want: 1 << 30},
		{in: "1GiB", want: 1 << 30},
		{in: "512MiB", want: 512 << 20},
		{in: "512Mi", want: 512 << 20},
		{in: "64 KiB", want: 64 << 10},
		{in: "1.5GiB", want: 3 << 29},
		{in: "1GB", want: 1e9},
		{in: "10kB", want: 1e4},
		{in: "100B", want: 100},
		{in: "-1", err: true},
		{in: "-1MiB", err: true},
		{in: "MiB", err: true},
		{in: "1 parsec", err: true},
		{in: "", err: true},
		{in: "1e30TiB", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseByteSize(tt.in)
			if tt.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
	require.Equal(t, "512MiB", ByteSize(512<<20).String())
	require.Equal(t, "1000B", ByteSize(1000).String())
}

func TestTelemetry(t *testing.T) {
	f, err := Parse("obs.yaml", doc(`
receivers: {otlp: }
exporters: {debug: }
service:
  pipelines: {logs: {receivers: [otlp], exporters: [debug]}}
  telemetry:
    logs: {level: DEBUG, encoding: json}
    metrics:
      level: detailed
      readers:
        - periodic: {exporter: {otlp: {endpoint: x}}}
        - pull: {exporter: {prometheus: {host: "::1", port: "${env:PORT}"}}}
        - pull: {exporter: {prometheus: {host: 127.0.0.1, port: 9999}}}
    traces: {level: basic}
`), Options{LookupEnv: envOf(map[string]string{"PORT": "8888"})})
	require.NoError(t, err)
	require.Equal(t, Telemetry{MetricsAddr: "[::1]:8888", MetricsLevel: "detailed", LogsLevel: "debug"}, f.Telemetry)
	require.Equal(t, []string{
		"obs.yaml:10: service.telemetry.metrics.readers[0].periodic: ignored by obs: only pull readers are served",
		"obs.yaml:12: service.telemetry.metrics.readers[2]: ignored: obs serves one prometheus pull reader",
		"obs.yaml:13: service.telemetry.traces: ignored by obs",
	}, f.Warnings)
}
