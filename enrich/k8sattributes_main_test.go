package enrich

import (
	"os"
	"sync"
	"testing"

	k8stest "github.com/obs-dev/obs/test/k8s"
	"go.uber.org/goleak"
)

// One real kube-apiserver for the package, started by the first test
// that needs it and stopped after all tests ran.
type testCluster struct {
	once sync.Once
	c    *k8stest.Cluster
	dir  string
	err  error
}

var shared testCluster

func apiServer(t *testing.T) *k8stest.Cluster {
	t.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "obs-enrich-k8s-")
		if shared.err == nil {
			shared.c, shared.err = k8stest.New(shared.dir)
		}
	})
	if shared.err != nil {
		k8stest.Unavailable(t, shared.err)
	}
	return shared.c
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.c != nil {
		_ = shared.c.Stop()
	}
	if shared.dir != "" && code == 0 {
		_ = os.RemoveAll(shared.dir)
	}
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1")); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}
