package export

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/obs-dev/obs/actors"
)

func TestFileSender(t *testing.T) {
	for _, format := range []string{"json", "proto"} {
		t.Run(format, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out", "otlp.jsonl")
			cfg := DefaultFileExporterConfig()
			cfg.Path, cfg.Format = path, format
			s, err := NewFileSender(cfg, nil)
			require.NoError(t, err)
			var want [][]byte
			for _, sig := range allSignals {
				p := mustProto(t, testBatch(sig, 3))
				want = append(want, p)
				_, err := s.Send(t.Context(), sig, p)
				require.NoError(t, err)
			}
			_, err = s.Send(t.Context(), actors.SignalLogs, []byte{0x0a, 0xff})
			require.True(t, IsPermanent(err))
			require.NoError(t, s.Close())
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			var got [][]byte
			if format == "json" {
				sc := bufio.NewScanner(bytes.NewReader(data))
				sc.Buffer(nil, 1<<20)
				for i := 0; sc.Scan(); i++ {
					b, err := decodeJSON(allSignals[i], sc.Bytes())
					require.NoError(t, err)
					got = append(got, mustProto(t, b))
				}
			} else {
				for len(data) > 0 {
					n := binary.BigEndian.Uint32(data)
					got = append(got, data[4:4+n])
					data = data[4+n:]
				}
			}
			require.Equal(t, want, got)
		})
	}
}

func TestFileSenderRotation(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultFileExporterConfig()
	cfg.Path = filepath.Join(dir, "otlp.json")
	cfg.Rotation = &RotationConfig{MaxMegabytes: 1, MaxBackups: 2}
	s, err := NewFileSender(cfg, nil)
	require.NoError(t, err)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { now = now.Add(time.Second); return now }
	p := mustProto(t, testBatch(actors.SignalLogs, 2000)) // ~300 KiB of JSON
	for range 20 {
		_, err := s.Send(t.Context(), actors.SignalLogs, p)
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var backups int
	for _, e := range entries {
		info, err := e.Info()
		require.NoError(t, err)
		require.LessOrEqual(t, info.Size(), int64(1<<20), e.Name())
		if strings.HasPrefix(e.Name(), "otlp-") {
			backups++
		}
	}
	require.Equal(t, 2, backups, "max_backups keeps two")
	require.Len(t, entries, 3)
}

func TestDebugSender(t *testing.T) {
	logs := mustProto(t, testBatch(actors.SignalLogs, 3))
	for _, tc := range []struct {
		verbosity string
		lines     int
		contains  string
	}{
		{verbosity: "basic", lines: 1, contains: "logs: resource_logs=1 log_records=3"},
		{verbosity: "normal", lines: 4, contains: "INFO line 2 some log text"},
		{verbosity: "detailed", lines: 2, contains: `"resourceLogs"`},
	} {
		t.Run(tc.verbosity, func(t *testing.T) {
			var buf bytes.Buffer
			cfg := DefaultDebugExporterConfig()
			cfg.Verbosity = tc.verbosity
			s, err := NewDebugSender(cfg, &buf, nil)
			require.NoError(t, err)
			_, err = s.Send(t.Context(), actors.SignalLogs, logs)
			require.NoError(t, err)
			require.Equal(t, tc.lines, strings.Count(buf.String(), "\n"), buf.String())
			require.Contains(t, buf.String(), tc.contains)
		})
	}
	t.Run("sampling", func(t *testing.T) {
		var buf bytes.Buffer
		cfg := DefaultDebugExporterConfig()
		cfg.SamplingInitial, cfg.SamplingThereafter = 2, 3
		s, err := NewDebugSender(cfg, &buf, nil)
		require.NoError(t, err)
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		s.now = func() time.Time { return now }
		for range 8 { // written: 1, 2, 5, 8
			_, err := s.Send(t.Context(), actors.SignalLogs, logs)
			require.NoError(t, err)
		}
		require.Equal(t, 4, strings.Count(buf.String(), "\n"))
		now = now.Add(time.Second) // new window
		_, err = s.Send(t.Context(), actors.SignalLogs, logs)
		require.NoError(t, err)
		require.Equal(t, 5, strings.Count(buf.String(), "\n"))
	})
	t.Run("metrics and traces", func(t *testing.T) {
		var buf bytes.Buffer
		cfg := DefaultDebugExporterConfig()
		cfg.Verbosity = "normal"
		s, err := NewDebugSender(cfg, &buf, nil)
		require.NoError(t, err)
		_, err = s.Send(t.Context(), actors.SignalMetrics, mustProto(t, testBatch(actors.SignalMetrics, 2)))
		require.NoError(t, err)
		_, err = s.Send(t.Context(), actors.SignalTraces, mustProto(t, testBatch(actors.SignalTraces, 2)))
		require.NoError(t, err)
		require.Contains(t, buf.String(), "test_gauge Gauge 1 i=1")
		require.Contains(t, buf.String(), "span 1")
	})
	_, err := NewDebugSender(DebugExporterConfig{Verbosity: "loud", SamplingThereafter: 1}, &bytes.Buffer{}, nil)
	require.ErrorContains(t, err, "verbosity")
}
