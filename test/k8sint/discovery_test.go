package k8sint

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	k8stest "github.com/obs-dev/obs/test/k8s"
	"github.com/obs-dev/obs/test/obsproc"
)

const job = "k8s-pods"

// serveMetrics starts a tiny /metrics server on ip:port, closed at
// cleanup; it returns the count of scrapes it answered.
func serveMetrics(t *testing.T, ip string, port int) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	require.NoError(t, err)
	srv := &http.Server{ReadHeaderTimeout: 2 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, "# TYPE demo_up gauge\ndemo_up 1\n")
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return &n
}

// targetOwners reads GET /jobs/{job}/targets at admin: target → owner. A
// target listed twice is an error.
func targetOwners(g *gateway) (map[string]string, error) {
	var raw map[string]struct {
		Targets []struct {
			Targets []string          `json:"targets"`
			Labels  map[string]string `json:"labels"`
		} `json:"targets"`
	}
	if err := g.GetJSON("/jobs/"+job+"/targets", &raw); err != nil {
		return nil, err
	}
	owners := map[string]string{}
	for coll, c := range raw {
		for _, g := range c.Targets {
			for _, a := range g.Targets {
				if prev, dup := owners[a]; dup {
					return nil, fmt.Errorf("target %s owned by %s and %s", a, prev, coll)
				}
				owners[a] = coll
			}
		}
	}
	return owners, nil
}

// TestKubernetesDiscoverySharded: two gateways discover pods through
// kubernetes_sd_configs (role pod) on a real API server, keep only
// app=demo pods, and agree on one owner per target as pods come and go.
func TestKubernetesDiscoverySharded(t *testing.T) {
	cl := k8stest.Start(t)
	ns := cl.Namespace(t, "disc", nil)
	port := obsproc.Port(t, "127.0.0.60")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	scrapes := map[string]*atomic.Int64{}
	mkPod := func(name, ip, app string) {
		t.Helper()
		scrapes[name] = serveMetrics(t, ip, port)
		_, err := cl.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": app}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "c", Image: "demo",
				Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: int32(port)}},
			}}},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
		_, err = cl.SetPodRunning(ctx, ns, name, ip, time.Now())
		require.NoError(t, err)
	}
	addr := func(ip string) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }
	mkPod("demo-a", "127.0.0.60", "demo")
	mkPod("demo-b", "127.0.0.61", "demo")
	mkPod("demo-c", "127.0.0.62", "demo")
	mkPod("other", "127.0.0.63", "other")

	prom := fmt.Sprintf(`      scrape_configs:
        - job_name: %s
          scrape_interval: 1s
          scrape_timeout: 500ms
          kubernetes_sd_configs:
            - role: pod
              kubeconfig_file: %q
              namespaces:
                names: [%q]
          relabel_configs:
            - source_labels: [__meta_kubernetes_pod_label_app]
              regex: demo
              action: keep
            - source_labels: [__meta_kubernetes_pod_ip, __meta_kubernetes_pod_container_port_number]
              separator: ":"
              target_label: __address__
`, job, cl.Kubeconfig, ns)
	cfg := func() string {
		return fmt.Sprintf(`receivers:
  prometheus:
    config:
%sexporters:
  file:
    path: %q
service:
  pipelines:
    metrics:
      receivers: [prometheus]
      exporters: [file]
`, prom, t.TempDir()+"/out.json")
	}
	g1 := newGateway(t, "g1", "127.0.0.2", "", cl.Kubeconfig, cfg())
	g1.Start()
	g2 := newGateway(t, "g2", "127.0.0.3", g1.GossipAddr(), cl.Kubeconfig, cfg())
	g2.Start()
	gws := []*gateway{g1, g2}

	// expect waits until both gateways list exactly want, each once, with
	// the same owners; it returns the owners.
	expect := func(what string, want ...string) map[string]string {
		t.Helper()
		sort.Strings(want)
		var owners map[string]string
		took := obsproc.WaitFor(t, 15*time.Second, what, func() (bool, string) {
			var first map[string]string
			for _, g := range gws {
				o, err := targetOwners(g)
				if err != nil {
					return false, err.Error()
				}
				var got []string
				for a, c := range o {
					got = append(got, a)
					if c != "g1" && c != "g2" {
						return false, fmt.Sprintf("%s: target %s owned by unknown %q", g.Name(), a, c)
					}
				}
				sort.Strings(got)
				if !reflect.DeepEqual(got, want) {
					return false, fmt.Sprintf("%s lists %v, want %v", g.Name(), got, want)
				}
				if first == nil {
					first = o
				} else if !reflect.DeepEqual(first, o) {
					b1, _ := json.Marshal(first)
					b2, _ := json.Marshal(o)
					return false, fmt.Sprintf("owners differ: g1 %s, g2 %s", b1, b2)
				}
			}
			owners = first
			return true, ""
		})
		t.Logf("%s: %v after %s", what, owners, took.Round(time.Millisecond))
		return owners
	}

	expect("three app=demo pods discovered, other pod not", addr("127.0.0.60"), addr("127.0.0.61"), addr("127.0.0.62"))

	// The kept targets are really scraped (by their owner), the other pod
	// never is.
	obsproc.WaitFor(t, 10*time.Second, "demo pods scraped", func() (bool, string) {
		for _, p := range []string{"demo-a", "demo-b", "demo-c"} {
			if scrapes[p].Load() == 0 {
				return false, p + " not scraped yet"
			}
		}
		return true, ""
	})
	require.Zero(t, scrapes["other"].Load(), "pod without app=demo was scraped")

	require.NoError(t, cl.DeletePod(ctx, ns, "demo-b"))
	expect("deleted pod's target removed", addr("127.0.0.60"), addr("127.0.0.62"))

	mkPod("demo-d", "127.0.0.64", "demo")
	expect("new pod discovered and owned", addr("127.0.0.60"), addr("127.0.0.62"), addr("127.0.0.64"))
	obsproc.WaitFor(t, 10*time.Second, "new pod scraped", func() (bool, string) {
		return scrapes["demo-d"].Load() > 0, "demo-d not scraped yet"
	})
	require.Zero(t, scrapes["other"].Load(), "pod without app=demo was scraped")
}
