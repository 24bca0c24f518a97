// Package k8sint runs real obs gateway processes against a real
// kube-apiserver (test/k8s): Kubernetes service discovery through the
// scrape sharder, and the gateway's shipped ClusterRole being enough (and
// no more than needed) for k8sattributes and k8s_events. TestMain
// (obsproc.Main) builds obs once per run, or takes the binary named by
// OBS_BIN.
package k8sint

import (
	"testing"

	"github.com/obs-dev/obs/test/obsproc"
)

func TestMain(m *testing.M) { obsproc.Main(m) }

// gateway is one obs gateway process.
type gateway = obsproc.Proc

// newGateway prepares a gateway with cfg (an obsproc config template) as
// its config, gossiping on ip and joining join unless it is "". The
// environment has KUBECONFIG=kubeconfig, or, with "", no kubeconfig
// setting at all (obsproc drops the test's own KUBECONFIG and
// OBS_KUBECONFIG), so that a gateway sees only the one its test gives it;
// args are more flags of obs run. It is not started.
func newGateway(t testing.TB, name, ip, join, kubeconfig, cfg string, args ...string) *gateway {
	t.Helper()
	o := obsproc.Options{Role: "gateway", Name: name, IP: ip, Cluster: true, Config: cfg, Args: args}
	if join != "" {
		o.Join = []string{join}
	}
	if kubeconfig != "" {
		o.Env = []string{"KUBECONFIG=" + kubeconfig}
	}
	return obsproc.New(t, o)
}
