package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMetaRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		meta Meta
	}{
		{"empty", Meta{}},
		{"full", Meta{
			Cluster: "prod", Role: RoleGateway, Version: "v1.2.3",
			OTLPEndpoint: "10.0.0.7:4317", AdminEndpoint: "10.0.0.7:8888",
			Zone: "eu-west-1a", NodeName: "ip-10-0-0-7", Start: time.Unix(1700000000, 123).UTC(), Leaving: true,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.meta.encode()
			require.NoError(t, err)
			got, err := decodeMeta(b)
			require.NoError(t, err)
			require.Equal(t, tc.meta, got)
			// Later versions may append fields.
			got, err = decodeMeta(append(b, 1, 2, 3))
			require.NoError(t, err)
			require.Equal(t, tc.meta, got)
		})
	}
}

func TestMetaErrors(t *testing.T) {
	_, err := Meta{Version: strings.Repeat("v", 600)}.encode()
	require.ErrorContains(t, err, "limit is 512")
	full, err := Meta{Cluster: "c", Role: RoleAgent, Start: time.Unix(5, 0)}.encode()
	require.NoError(t, err)
	for i := range len(full) {
		_, err := decodeMeta(full[:i])
		require.Error(t, err, "truncated at %d", i)
	}
	_, err = decodeMeta([]byte{9, 0})
	require.ErrorContains(t, err, "unknown format")
}

// FuzzDecodeMeta: metadata comes from other members.
func FuzzDecodeMeta(f *testing.F) {
	b, _ := Meta{Cluster: "c", Role: RoleGateway, Version: "v", Start: time.Unix(1, 0)}.encode()
	f.Add(b)
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		if len(b) <= metaMaxBytes {
			again, err := m.encode()
			require.NoError(t, err)
			m2, err := decodeMeta(again)
			require.NoError(t, err)
			require.Equal(t, m, m2)
		}
	})
}
