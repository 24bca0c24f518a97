package config

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func BenchmarkParseSeedGateway(b *testing.B) {
	data, err := os.ReadFile("testdata/seed-gateway.yaml")
	require.NoError(b, err)
	opts := Options{LookupEnv: envOf(seedEnv)}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse("seed-gateway.yaml", data, opts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	f, err := Load("testdata/seed-agent.yaml", Options{LookupEnv: envOf(seedEnv)})
	require.NoError(b, err)
	c := f.Receivers[ID{Type: "kubeletstats"}]
	var out struct {
		CollectionInterval time.Duration `yaml:"collection_interval"`
		AuthType           string        `yaml:"auth_type"`
		Endpoint           string        `yaml:"endpoint"`
		InsecureSkipVerify bool          `yaml:"insecure_skip_verify"`
		Metrics            map[string]struct {
			Enabled bool `yaml:"enabled"`
		} `yaml:"metrics"`
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := Decode(c, &out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRedacted(b *testing.B) {
	f, err := Load("testdata/seed-gateway.yaml", Options{LookupEnv: envOf(seedEnv)})
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Redacted(); err != nil {
			b.Fatal(err)
		}
	}
}
