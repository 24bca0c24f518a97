// Package roles turns `--role agent|gateway|all` and a configuration into
// running pipelines: it owns the component table, builds the actor graph,
// opens the WAL, joins the cluster, serves the admin port, and writes the
// stop order down once.
package roles

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"
)

// Role is what a member does in the cluster.
type Role string

const (
	Agent   Role = "agent"
	Gateway Role = "gateway"
	All     Role = "all"
)

// ParseRole accepts agent, gateway or all.
func ParseRole(s string) (Role, error) {
	switch r := Role(strings.ToLower(strings.TrimSpace(s))); r {
	case Agent, Gateway, All:
		return r, nil
	}
	return "", fmt.Errorf("--role %q: want agent, gateway or all", s)
}

// Options are the command-line settings of `obs run`.
type Options struct {
	Role            Role
	ConfigPath      string // empty: the role's built-in default
	DataDir         string
	AdminAddr       string
	NodeName        string
	ShutdownTimeout time.Duration

	ClusterBind      string
	ClusterAdvertise string
	Join             []string
	ClusterName      string
	ClusterKeyFile   string
	NoCluster        bool

	Version string
	Stdout  io.Writer // the one start-up line saying where data goes

	// LookupEnv finds variables for the config and the defaults; nil means
	// os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// defaultConfig is the built-in configuration of a role: OTLP in on 4317
// and 4318, memory_limiter and batch, and out either to
// OTEL_EXPORTER_OTLP_ENDPOINT or into files under the data dir.
// Later issues add the agent's node-local receivers here.
func defaultConfig(role Role, dataDir string, lookup func(string) (string, bool)) (yaml string, dest string) {
	exporter := "file"
	exporterCfg := fmt.Sprintf("    path: %s\n", yamlQuote(filepath.Join(dataDir, "export", "otlp.jsonl")))
	dest = "files under " + filepath.Join(dataDir, "export")
	if ep, ok := lookup("OTEL_EXPORTER_OTLP_ENDPOINT"); ok && ep != "" {
		exporter = "otlp"
		exporterCfg = fmt.Sprintf("    endpoint: %s\n", yamlQuote(ep))
		if strings.HasPrefix(ep, "http://") {
			exporterCfg += "    tls:\n      insecure: true\n"
		}
		dest = "OTLP gRPC at " + ep + " (OTEL_EXPORTER_OTLP_ENDPOINT)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# built-in configuration of role %s
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:4317
      http:
        endpoint: 0.0.0.0:4318
processors:
  memory_limiter:
    check_interval: 1s
    limit_percentage: 80
    spike_limit_percentage: 15
  batch: {}
exporters:
  %s:
%sservice:
  pipelines:
`, role, exporter, exporterCfg)
	for _, sig := range []string{"logs", "metrics", "traces"} {
		fmt.Fprintf(&b, "    %s:\n      receivers: [otlp]\n      processors: [memory_limiter, batch]\n      exporters: [%s]\n", sig, exporter)
	}
	return b.String(), dest
}

func yamlQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
