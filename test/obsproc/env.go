package obsproc

import (
	"os"
	"strings"
)

// environ is the environment of every obs this package runs: the test's
// own, without what would change obs behind the test's back (OBS_*
// settings and KUBECONFIG from the developer's shell), with no proxy (all
// traffic is loopback) and no OTLP endpoint of obs's own telemetry, then
// extra (later entries win).
func environ(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "OBS_") || strings.HasPrefix(kv, "KUBECONFIG=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "OTEL_EXPORTER_OTLP_ENDPOINT=", "NO_PROXY=*", "no_proxy=*",
		"HTTP_PROXY=", "HTTPS_PROXY=", "http_proxy=", "https_proxy=")
	return append(env, extra...)
}
