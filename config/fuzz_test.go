package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// FuzzParse feeds arbitrary documents through Parse, Decode and Redacted:
// none of them may panic, and an error must always come as Errors.
func FuzzParse(f *testing.F) {
	paths, err := filepath.Glob("testdata/*.yaml")
	require.NoError(f, err)
	require.NotEmpty(f, paths)
	for _, p := range paths {
		data, err := os.ReadFile(p)
		require.NoError(f, err)
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"receivers: {otlp: }\nexporters: {debug: }\nservice: {pipelines: {logs: {receivers: [otlp], exporters: [debug]}}}\n",
		"a: &a [*a]",
		"x: &x {a: 1}\nreceivers: {otlp: *x, <<: *x}\n",
		"receivers: {otlp: {endpoint: '${env:A:-${env:B}}$$${'}}\n",
		"service: {pipelines: {logs: {receivers: [a, a], exporters: [c]}}}\nconnectors: {c: }\n",
		"wal: {max_bytes: 1e400GiB}\ncluster: {join: [a, {b: c}]}\n",
		"- 1\n- 2\n",
		"? [a]\n: b\n",
	} {
		f.Add([]byte(s))
	}
	env := envOf(map[string]string{"A": "1", "B": "true", "C": "5s"})
	read := func(string) ([]byte, error) { return []byte("x"), nil }
	type settings struct {
		Endpoint string            `yaml:"endpoint"`
		Timeout  time.Duration     `yaml:"timeout"`
		Headers  map[string]string `yaml:"headers"`
		N        int               `yaml:"n"`
		Items    []struct {
			On bool `yaml:"on"`
		} `yaml:"items"`
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, lenient := range []bool{false, true} {
			file, err := Parse("fuzz.yaml", data, Options{LookupEnv: env, ReadFile: read, Lenient: lenient})
			require.NotNil(t, file)
			if err != nil {
				_, ok := err.(Errors)
				require.True(t, ok, "want Errors, got %T", err)
				require.NotEmpty(t, err.Error())
			}
			for _, m := range []map[ID]*Component{file.Receivers, file.Processors, file.Exporters, file.Connectors, file.Extensions} {
				for _, c := range m {
					var s settings
					_ = Decode(c, &s)
					var anything map[string]any
					_ = Decode(c, &anything)
				}
			}
			if file.Root != nil {
				out, err := file.Redacted()
				if err == nil && strings.Contains(string(data), "headers") {
					require.NotNil(t, out)
				}
			}
		}
	})
}
