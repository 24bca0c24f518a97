package logs

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/obs-dev/obs/config"
)

func decodeReceiver(t *testing.T, yamlText string) (FilelogConfig, error) {
	t.Helper()
	f, err := config.Parse("test.yaml", []byte(yamlText), config.Options{Lenient: true})
	require.NoError(t, err)
	for id, c := range f.Receivers {
		if id.Type == "filelog" {
			cfg := DefaultFilelogConfig()
			if err := config.Decode(c, &cfg); err != nil {
				return cfg, err
			}
			return cfg, cfg.Validate()
		}
	}
	t.Fatal("no filelog receiver")
	return FilelogConfig{}, nil
}

func TestSeedAgentConfigDecodes(t *testing.T) {
	f, err := config.Load(filepath.Join("..", "config", "testdata", "seed-agent.yaml"), config.Options{Lenient: true})
	require.NoError(t, err)
	var found bool
	for id, c := range f.Receivers {
		if id.Type != "filelog" {
			continue
		}
		found = true
		cfg := DefaultFilelogConfig()
		require.NoError(t, config.Decode(c, &cfg))
		require.NoError(t, cfg.Validate())
		require.Equal(t, []string{"/var/log/pods/*/*/*.log"}, cfg.Include)
		require.Equal(t, []string{"/var/log/pods/*/otel-collector/*.log"}, cfg.Exclude)
		require.Equal(t, "end", cfg.StartAt)
		require.True(t, cfg.IncludeFilePath)
		require.False(t, cfg.IncludeFileName)
		require.Len(t, cfg.Operators, 1)
		require.Equal(t, "container", cfg.Operators[0].Type)
		require.Equal(t, "container-parser", cfg.Operators[0].ID)
		_, err := NewFilelogReceiver(id.String(), cfg, (&sink{}).consume, nil, nil, nil)
		require.NoError(t, err)
	}
	require.True(t, found)
}

func TestConfigDecode(t *testing.T) {
	cfg, err := decodeReceiver(t, `
receivers:
  filelog:
    include: [/var/log/pods/**/*.log]
    start_at: beginning
    poll_interval: 1s
    fingerprint_size: 2kb
    max_log_size: 256KiB
    force_flush_period: 0s
    multiline:
      line_start_pattern: '^\d{4}-'
    storage: file_storage
    operators:
      - type: container
        format: containerd
        add_metadata_from_filepath: false
      - type: json_parser
        parse_from: body
        parse_to: attributes
        on_error: drop
        timestamp:
          parse_from: attributes.time
          layout_type: gotime
          layout: 2006-01-02T15:04:05Z07:00
      - type: add
        field: resource.team
        value: {owner: core, tier: 1}
exporters:
  debug:
service:
  pipelines:
    logs: {receivers: [filelog], exporters: [debug]}
`)
	require.NoError(t, err)
	require.Equal(t, ByteSize(2048), cfg.FingerprintSize)
	require.Equal(t, ByteSize(256<<10), cfg.MaxLogSize)
	require.Equal(t, time.Second, cfg.PollInterval)
	require.Zero(t, cfg.ForceFlushPeriod)
	ops, err := compileOperators(cfg.Operators)
	require.NoError(t, err)
	require.Equal(t, formatCRI, ops[0].format)
	require.False(t, ops[0].addMeta)
	require.Equal(t, onErrorDrop, ops[1].onError)
	require.Equal(t, map[string]any{"owner": "core", "tier": int64(1)}, ops[2].value.Map().AsRaw())

	_, err = decodeReceiver(t, `
receivers:
  filelog:
    include: [/x/*.log]
    include_file_paths: true
exporters:
  debug:
service:
  pipelines:
    logs: {receivers: [filelog], exporters: [debug]}
`)
	require.ErrorContains(t, err, "include_file_paths")
}
