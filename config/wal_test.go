package config

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestWALSection: the wal section's compression and value-log keys decode
// to what the roles apply, and a bad value names the key and its line.
func TestWALSection(t *testing.T) {
	const head = `receivers: {otlp: }
exporters: {debug: }
service: {pipelines: {logs: {receivers: [otlp], exporters: [debug]}}}
wal:
`
	tests := []struct {
		name    string
		wal     string
		want    WALSection
		wantErr []string
	}{
		{name: "unset keeps the role defaults", wal: "  max_bytes: 1GiB\n", want: WALSection{MaxBytes: 1 << 30}},
		{name: "auto", wal: "  compression: auto\n", want: WALSection{Compression: "auto"}},
		{name: "s2", wal: "  compression: s2\n", want: WALSection{Compression: "s2"}},
		{name: "none", wal: "  compression: none\n", want: WALSection{Compression: "none"}},
		{
			name: "value-log file size", wal: "  value_log_file_bytes: 16MiB\n  compression: s2\n",
			want: WALSection{ValueLogFileBytes: 16 << 20, Compression: "s2"},
		},
		{name: "value-log file size in bytes", wal: "  value_log_file_bytes: 1048576\n", want: WALSection{ValueLogFileBytes: 1 << 20}},
		{
			name: "unknown compression", wal: "  max_bytes: 1GiB\n  compression: zstd\n",
			wantErr: []string{"obs.yaml:6: wal.compression: want auto, s2 or none"},
		},
		{
			name: "compression not a string", wal: "  compression: [s2]\n",
			wantErr: []string{"obs.yaml:5: wal.compression: want a string"},
		},
		{
			name: "value-log file too small", wal: "  value_log_file_bytes: 512KiB\n",
			wantErr: []string{"obs.yaml:5: wal.value_log_file_bytes: want from 1MiB to under 1GiB"},
		},
		{
			name: "value-log file too large", wal: "  value_log_file_bytes: 1GiB\n",
			wantErr: []string{"obs.yaml:5: wal.value_log_file_bytes: want from 1MiB to under 1GiB"},
		},
		{
			name: "value-log file not a size", wal: "  value_log_file_bytes: big\n",
			wantErr: []string{"obs.yaml:5: wal.value_log_file_bytes: want a size like 512MiB or a number of bytes"},
		},
		{
			name: "misspelt key", wal: "  value_log_file_size: 16MiB\n",
			wantErr: []string{"obs.yaml:5: wal.value_log_file_size: unknown key"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("obs.yaml", []byte(head+tt.wal), Options{LookupEnv: noEnv})
			if tt.wantErr == nil {
				require.NoError(t, err)
				require.Equal(t, tt.want, f.WAL)
				return
			}
			var es Errors
			require.True(t, errors.As(err, &es), "want Errors, got %v", err)
			got := make([]string, len(es))
			for i, e := range es {
				got[i] = e.Error()
			}
			require.Equal(t, tt.wantErr, got)
		})
	}
}
