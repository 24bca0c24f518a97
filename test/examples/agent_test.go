package examples

import (
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	k8stest "github.com/obs-dev/obs/test/k8s"
	"github.com/obs-dev/obs/test/obsproc"
	"github.com/obs-dev/obs/test/otelpeer"
)

// loopbackIP picks an address of 127.0.0.0/8 for one role of the test
// (pod IP, node IP): the seed's configs put fixed ports (8888, 9100,
// 10250) on them, which must not collide with anything on 127.0.0.1.
func loopbackIP(t *testing.T, second byte, ports ...int) string {
	t.Helper()
	for i := range 50 {
		ip := fmt.Sprintf("127.%d.%d.%d", second, (os.Getpid()+i)%250+1, (time.Now().Nanosecond()/1000+i)%250+1)
		free := true
		for _, p := range ports {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(p)))
			if err != nil {
				free = false
				break
			}
			ln.Close()
		}
		if free {
			return ip
		}
	}
	t.Fatalf("no loopback address in 127.%d/16 with ports %v free", second, ports)
	return ""
}

// point is one data point as the checks need it.
type point struct {
	metric string
	res    map[string]any
	attrs  map[string]any
	value  float64 // gauge and sum points
}

func points(mds []pmetric.Metrics) []point {
	var out []point
	for _, md := range mds {
		for _, rm := range md.ResourceMetrics().All() {
			res := rm.Resource().Attributes().AsRaw()
			for _, sm := range rm.ScopeMetrics().All() {
				for _, m := range sm.Metrics().All() {
					add := func(a pcommon.Map, v float64) { out = append(out, point{m.Name(), res, a.AsRaw(), v}) }
					number := func(dp pmetric.NumberDataPoint) float64 {
						if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
							return float64(dp.IntValue())
						}
						return dp.DoubleValue()
					}
					switch m.Type() {
					case pmetric.MetricTypeGauge:
						for _, dp := range m.Gauge().DataPoints().All() {
							add(dp.Attributes(), number(dp))
						}
					case pmetric.MetricTypeSum:
						for _, dp := range m.Sum().DataPoints().All() {
							add(dp.Attributes(), number(dp))
						}
					case pmetric.MetricTypeHistogram:
						for _, dp := range m.Histogram().DataPoints().All() {
							add(dp.Attributes(), 0)
						}
					case pmetric.MetricTypeSummary:
						for _, dp := range m.Summary().DataPoints().All() {
							add(dp.Attributes(), 0)
						}
					}
				}
			}
		}
	}
	return out
}

// TestAgentExample runs deploy/examples/agent.yaml as the seed's
// DaemonSet pod would run it on node n: hostmetrics from this machine's
// /proc and /sys (HOST_ROOT_PATH=/ stands for the pod's /hostfs mount of
// the node's /), kubeletstats from the kubelet stand-in on
// ${K8S_NODE_IP}:10250, the self-scrape of obs' own /metrics on
// ${K8S_POD_IP}:8888, the node exporter on ${K8S_NODE_IP}:9100, pod logs
// under /var/log/pods, the k8snode detector against a real API server,
// and the OTLP export to the gateways redirected by GATEWAY_ENDPOINT to a
// sink. Every pipeline must deliver with the tags the seed's processors
// add. About 30 s with a warm API server.
func TestAgentExample(t *testing.T) {
	cl := k8stest.Start(t)
	sink := otelpeer.StartSink(t)

	nodeName := fmt.Sprintf("node-%d", os.Getpid())
	node, err := cl.Client.CoreV1().Nodes().Create(t.Context(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}, metav1.CreateOptions{})
	must(t, err)
	caPEM, err := os.ReadFile(cl.CAFile)
	must(t, err)
	if b, _ := pem.Decode(caPEM); b == nil {
		t.Fatalf("%s holds no PEM block", cl.CAFile)
	}
	api, err := url.Parse(cl.Server)
	must(t, err)
	podIP := loopbackIP(t, 88, 8888)
	nodeIP := loopbackIP(t, 89, 9100, 10250)
	// The token is the test cluster's admin token: the agent's ClusterRole
	// is not what this test is about (test/k8sint checks obs' own RBAC).
	kl := startKubelet(t, "../..", net.JoinHostPort(nodeIP, "10250"), cl.Token)

	nodeExporter := false
	if bin, err := exec.LookPath("prometheus-node-exporter"); err == nil {
		ne := exec.Command(bin, "--web.listen-address="+net.JoinHostPort(nodeIP, "9100"), "--collector.disable-defaults",
			"--collector.loadavg", "--collector.meminfo")
		must(t, ne.Start())
		t.Cleanup(func() {
			_ = ne.Process.Kill()
			_ = ne.Wait()
		})
		nodeExporter = true
	} else if os.Getenv("CI") == "true" {
		t.Fatal("prometheus-node-exporter missing: run scripts/install-node-exporter.sh (CI=true, so this fails)")
	} else {
		t.Log("prometheus-node-exporter missing: the node-exporter job is not checked (run scripts/install-node-exporter.sh)")
	}

	p := startPod(t, podSpec{
		configFile: examplePath("agent.yaml"), role: "agent", adminAddr: net.JoinHostPort(podIP, "8888"),
		token: []byte(cl.Token), caPEM: caPEM,
		env: []string{
			// the seed's DaemonSet env, with $(VAR) expanded as the kubelet does
			"K8S_POD_IP=" + podIP, "K8S_NODE_NAME=" + nodeName, "K8S_NODE_IP=" + nodeIP,
			"OTEL_RESOURCE_ATTRIBUTES=host.name=" + nodeName + ",host.ip=" + nodeIP,
			"METRICS_SCRAPE_INTERVAL=2s",
			// what every pod gets
			"KUBERNETES_SERVICE_HOST=" + api.Hostname(), "KUBERNETES_SERVICE_PORT=" + api.Port(),
			// this test's redirections
			"GATEWAY_ENDPOINT=" + sink.GRPCAddr, "HOST_ROOT_PATH=/",
		},
	})

	// A container's log, as the kubelet writes it under the pod's
	// /var/log/pods (the seed reads it with start_at: end, so lines are
	// appended while the test waits).
	logDir := filepath.Join(p.root(), "var", "log", "pods", "shop_web-7c9f8b6d5-l2kmn_a3f2c1d0-9b8e-47a6-8c5d-e4f3a2b1c0d9", "nginx")
	must(t, os.MkdirAll(logDir, 0o755))
	logFile, err := os.OpenFile(filepath.Join(logDir, "0.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	must(t, err)
	defer logFile.Close()
	const logLine = "GET /healthz 200 examples-agent"

	type want struct {
		name, metric string
		attrs, res   map[string]any
	}
	nodeRes := map[string]any{"k8s.node.name": nodeName, "k8s.node.uid": string(node.UID), "host.name": nodeName, "host.ip": nodeIP}
	wants := []want{
		{"hostmetrics cpu (second collection on)", "system.cpu.utilization", map[string]any{"job_label": "hostmetrics"}, nodeRes},
		{"hostmetrics memory", "system.memory.usage", map[string]any{"job_label": "hostmetrics"}, nodeRes},
		{"hostmetrics filesystem", "system.filesystem.utilization", map[string]any{"job_label": "hostmetrics"}, nodeRes},
		{"hostmetrics process of obs", "process.cpu.utilization", map[string]any{"job_label": "hostmetrics"}, nodeRes},
		{"kubeletstats node", "k8s.node.cpu.usage", map[string]any{"job_label": "kubeletstats"}, nodeRes},
		{"kubeletstats container", "container.cpu.usage", map[string]any{"job_label": "kubeletstats"},
			map[string]any{"k8s.container.name": "nginx", "k8s.pod.name": "web-7c9f8b6d5-l2kmn", "k8s.node.uid": string(node.UID)}},
		{"self-scrape", "go_goroutines", map[string]any{"job_label": "opentelemetry-collector"},
			map[string]any{"k8s.pod.ip": podIP, "host.name": nodeName}},
	}
	if nodeExporter {
		wants = append(wants, want{"node exporter", "node_load1", map[string]any{"job_label": "node-exporter"}, nodeRes})
	}
	seenNames := map[string]bool{}
	obsproc.WaitFor(t, 60*time.Second, "every agent pipeline at the sink", func() (bool, string) {
		_, _ = fmt.Fprintf(logFile, "%s stdout F %s\n", time.Now().UTC().Format(time.RFC3339Nano), logLine)
		pts := points(sink.Metrics(t))
		var missing []string
		for _, w := range wants {
			found := false
			for _, pt := range pts {
				seenNames[pt.metric] = true
				if pt.metric == w.metric && subset(pt.attrs, w.attrs) && subset(pt.res, w.res) {
					found = true
					break
				}
			}
			if !found {
				missing = append(missing, w.name+" ("+w.metric+")")
			}
		}
		if !logArrived(sink.Logs(t), logLine, nodeName, string(node.UID)) {
			missing = append(missing, "pod log line with the node's resource")
		}
		return len(missing) == 0, fmt.Sprintf("missing %s; kubelet served %d, denied %d; metrics seen: %d names",
			strings.Join(missing, ", "), kl.served.Load(), kl.denid.Load(), len(seenNames))
	})
	if kl.denid.Load() != 0 {
		t.Errorf("the kubelet stand-in refused %d requests: the service account token was not sent", kl.denid.Load())
	}
	// the processors of other pipelines must not leak: hostmetrics points
	// are not tagged kubeletstats and the other way round
	for _, pt := range points(sink.Metrics(t)) {
		switch {
		case strings.HasPrefix(pt.metric, "system."):
			if pt.attrs["job_label"] != "hostmetrics" {
				t.Errorf("%s has job_label %v, want hostmetrics", pt.metric, pt.attrs["job_label"])
			}
		case strings.HasPrefix(pt.metric, "k8s.node.") || strings.HasPrefix(pt.metric, "container."):
			if pt.attrs["job_label"] != "kubeletstats" {
				t.Errorf("%s has job_label %v, want kubeletstats", pt.metric, pt.attrs["job_label"])
			}
		}
	}
}

// logArrived reports whether a log record with body line reached the sink
// with the node's resource attributes (k8snode and env detectors).
func logArrived(lds []plog.Logs, line, nodeName, nodeUID string) bool {
	for _, ld := range lds {
		for _, rl := range ld.ResourceLogs().All() {
			res := rl.Resource().Attributes().AsRaw()
			if res["k8s.node.uid"] != nodeUID || res["host.name"] != nodeName {
				continue
			}
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					if strings.Contains(lr.Body().AsString(), line) {
						return true
					}
				}
			}
		}
	}
	return false
}
