// Package examples runs the seed's Collector configs of deploy/examples
// for real as obs processes on this machine, the way a pod runs them:
// the service account token and CA in /var/run/secrets/kubernetes.io/
// serviceaccount (a private mount namespace per process, see pod_test.go),
// KUBERNETES_SERVICE_HOST/PORT naming a real kube-apiserver (test/k8s),
// the env vars the seed's manifests set, and the backends redirected by
// env vars to a loopback OTLP sink (test/otelpeer). obs is built once per
// run by test/obsproc (or OBS_BIN).
package examples

import (
	"testing"

	"github.com/obs-dev/obs/test/obsproc"
)

func TestMain(m *testing.M) { obsproc.Main(m) }

// examplePath is the path of deploy/examples/<name>, from this package.
func examplePath(name string) string { return "../../deploy/examples/" + name }
