package cluster

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoadKeyFile(t *testing.T) {
	k16 := strings.Repeat("a", 16)
	k32 := strings.Repeat("b", 32)
	enc := base64.StdEncoding.EncodeToString
	secret := enc([]byte(strings.Repeat("s", 20)))
	tests := []struct {
		name    string
		content string
		want    []string
		errText string
	}{
		{"one key", enc([]byte(k32)) + "\n", []string{k32}, ""},
		{"rotation: primary first", "# new key first\n" + enc([]byte(k16)) + "\n\n  " + enc([]byte(k32)) + "  \n", []string{k16, k32}, ""},
		{"empty", "\n# nothing\n", nil, "no key found"},
		{"not base64", "not*base64\n", nil, "line 1: not valid base64"},
		{"wrong length", "#\n" + secret + "\n", nil, "line 2: key is 20 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keys")
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))
			keys, err := LoadKeyFile(path)
			if tc.errText != "" {
				require.ErrorContains(t, err, tc.errText)
				require.NotContains(t, err.Error(), secret, "error must not carry key material")
				return
			}
			require.NoError(t, err)
			var got []string
			for _, k := range keys {
				got = append(got, string(k))
			}
			require.Equal(t, tc.want, got)
		})
	}
	_, err := LoadKeyFile(filepath.Join(t.TempDir(), "missing"))
	require.ErrorContains(t, err, "read cluster key file")
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Config)
		errText string
	}{
		{"default is valid", func(*Config) {}, ""},
		{"no name", func(c *Config) { c.NodeName = "" }, "node name is empty"},
		{"no cluster", func(c *Config) { c.ClusterName = "" }, "cluster name is empty"},
		{"bad role", func(c *Config) { c.Role = "collector" }, `role "collector"`},
		{"bad port", func(c *Config) { c.BindPort = 70000 }, "bind port 70000"},
		{"bad profile", func(c *Config) { c.Profile = "wan" }, `profile "wan"`},
		{"bad key", func(c *Config) { c.Keys = [][]byte{[]byte("short")} }, "cluster key 1: key is 5 bytes"},
		{"negative timing", func(c *Config) { c.ProbeInterval = -time.Second }, "probe interval"},
		{"join without host", func(c *Config) { c.Join = []string{":7946"} }, "has no host"},
		{"metadata too large", func(c *Config) { c.Meta.Version = strings.Repeat("v", 600) }, "limit is 512"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.edit(&cfg)
			n, err := New(cfg, nil, nil)
			if tc.errText == "" {
				require.NoError(t, err)
				require.NotNil(t, n)
				return
			}
			require.ErrorContains(t, err, tc.errText)
		})
	}
}

func TestJoinTargets(t *testing.T) {
	got, err := joinTargets([]string{"obs-gateway-headless", "10.0.0.1:8000, [::1]:9000", "", "::1"}, 7946)
	require.NoError(t, err)
	require.Equal(t, []joinTarget{
		{"obs-gateway-headless", "7946"}, {"10.0.0.1", "8000"}, {"::1", "9000"}, {"::1", "7946"},
	}, got)
}

func TestRoleHas(t *testing.T) {
	require.True(t, RoleAll.has(RoleGateway))
	require.True(t, RoleAll.has(RoleAgent))
	require.True(t, RoleGateway.has(RoleGateway))
	require.False(t, RoleGateway.has(RoleAgent))
	require.False(t, RoleAgent.has(RoleGateway))
	require.True(t, RoleAgent.has(RoleAll))
}

func TestSplitAddr(t *testing.T) {
	tests := []struct {
		in   string
		host string
		port int
		err  bool
	}{
		{":7946", "", 7946, false},
		{"0.0.0.0:8000", "0.0.0.0", 8000, false},
		{"10.1.2.3", "10.1.2.3", 7946, false},
		{"[::1]:9000", "::1", 9000, false},
		{"::1", "::1", 7946, false},
		{"host:http", "", 0, true},
		{"host:70000", "", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			host, port, err := SplitAddr(tc.in, DefaultPort)
			if tc.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.host, host)
			require.Equal(t, tc.port, port)
		})
	}
}
