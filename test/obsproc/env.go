package obsproc

import (
	"os"
	"slices"
	"strings"
)

// flagVars are the environment variables obs's flags read (main.go; obs
// run --help lists them), plus KUBECONFIG. Taken from the developer's
// shell they would change obs behind the test's back, so environ drops
// them; a test that means one sets it in Options.Env. Other variables
// (e.g. ones a test's config expands with ${env:…}) pass through.
var flagVars = []string{
	"OBS_ROLE", "OBS_CONFIG", "OBS_DATA_DIR", "OBS_ADMIN_ADDR", "OBS_NODE_NAME", "OBS_LOG_LEVEL",
	"OBS_LOG_FORMAT", "OBS_SHUTDOWN_TIMEOUT", "OBS_CLUSTER_BIND", "OBS_CLUSTER_ADVERTISE", "OBS_JOIN",
	"OBS_CLUSTER_NAME", "OBS_CLUSTER_KEY_FILE", "OBS_NO_CLUSTER", "OBS_KUBECONFIG", "KUBECONFIG",
}

// environ is the environment of every obs this package runs: the test's
// own without flagVars, with no proxy (all traffic is loopback) and no
// OTLP endpoint for obs's own telemetry, then extra (later entries win).
func environ(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(flagVars, name) {
			env = append(env, kv)
		}
	}
	env = append(env, "OTEL_EXPORTER_OTLP_ENDPOINT=", "NO_PROXY=*", "no_proxy=*",
		"HTTP_PROXY=", "HTTPS_PROXY=", "http_proxy=", "https_proxy=")
	return append(env, extra...)
}
