// Package e2e runs the obs binary as a real process between real
// OpenTelemetry Collectors (test/otelpeer): interop over gRPC and HTTP,
// durability across SIGKILL, backend outages with a small WAL, bad input,
// broken configs and secrets. TestMain builds obs once per run.
package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/obs-dev/obs/test/obsproc"
)

func TestMain(m *testing.M) { obsproc.Main(m) }

// obsConfig are the parts of a test's obs config that vary.
type obsConfig struct {
	// Exporters is the YAML under "exporters:" (indented by two spaces).
	Exporters string
	// ExporterIDs are the exporters every pipeline sends to.
	ExporterIDs []string
	// Processors is the YAML under "processors:"; ProcessorIDs lists the
	// pipeline's processors. Empty means batch with defaults.
	Processors   string
	ProcessorIDs []string
	// WALMaxBytes is the wal.max_bytes value (e.g. "16MiB"); empty leaves
	// the default.
	WALMaxBytes string
}

// newObs prepares (does not start) an obs of role all without a cluster,
// with an OTLP receiver on fresh loopback ports ({{addr "grpc"}} and
// {{addr "http"}}), a pipeline per signal, and the given exporters.
func newObs(t testing.TB, c obsConfig, extraArgs ...string) *obsproc.Proc {
	t.Helper()
	if c.Processors == "" {
		c.Processors = "  batch: {}\n"
		c.ProcessorIDs = []string{"batch"}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: "{{addr "grpc"}}"
      http:
        endpoint: "{{addr "http"}}"
processors:
%sexporters:
%sservice:
  pipelines:
`, c.Processors, c.Exporters)
	for _, sig := range []string{"logs", "metrics", "traces"} {
		fmt.Fprintf(&b, "    %s:\n      receivers: [otlp]\n      processors: [%s]\n      exporters: [%s]\n",
			sig, strings.Join(c.ProcessorIDs, ", "), strings.Join(c.ExporterIDs, ", "))
	}
	if c.WALMaxBytes != "" {
		fmt.Fprintf(&b, "wal:\n  max_bytes: %s\n", c.WALMaxBytes)
	}
	return obsproc.New(t, obsproc.Options{Config: b.String(), Args: extraArgs})
}

// otlpExporter returns the exporters YAML of an otlp (gRPC) exporter to
// addr with quick retries that never give up.
func otlpExporter(id, addr string) string {
	return fmt.Sprintf(`  %s:
    endpoint: %q
    tls:
      insecure: true
%s`, id, addr, fastRetry)
}

// otlphttpExporter returns the exporters YAML of an otlphttp exporter.
func otlphttpExporter(id, addr string) string {
	return fmt.Sprintf(`  %s:
    endpoint: %q
%s`, id, "http://"+addr, fastRetry)
}

const fastRetry = `    retry_on_failure:
      enabled: true
      initial_interval: 200ms
      max_interval: 1s
      max_elapsed_time: 0s
`
