package examples

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	k8stest "github.com/obs-dev/obs/test/k8s"
	"github.com/obs-dev/obs/test/obsproc"
	"github.com/obs-dev/obs/test/otelpeer"
)

// ksmExposition stands in for kube-state-metrics, which is not built
// here: three of its container status series in its exposition format,
// served on the pod IP of a pod labelled as the seed's job expects.
const ksmExposition = `# HELP kube_pod_container_status_waiting Describes whether the container is currently in waiting state.
# TYPE kube_pod_container_status_waiting gauge
kube_pod_container_status_waiting{namespace="shop",pod="web-7c9f8b6d5-l2kmn",uid="a3f2c1d0-9b8e-47a6-8c5d-e4f3a2b1c0d9",container="nginx"} 0
# HELP kube_pod_container_status_running Describes whether the container is currently in running state.
# TYPE kube_pod_container_status_running gauge
kube_pod_container_status_running{namespace="shop",pod="web-7c9f8b6d5-l2kmn",uid="a3f2c1d0-9b8e-47a6-8c5d-e4f3a2b1c0d9",container="nginx"} 1
# HELP kube_pod_container_status_terminated Describes whether the container is currently in terminated state.
# TYPE kube_pod_container_status_terminated gauge
kube_pod_container_status_terminated{namespace="shop",pod="web-7c9f8b6d5-l2kmn",uid="a3f2c1d0-9b8e-47a6-8c5d-e4f3a2b1c0d9",container="nginx"} 0
`

// TestGatewayExample runs deploy/examples/gateway.yaml as the seed's
// StatefulSet pod would (one replica, no Target Allocator: obs splits
// scrape targets itself): OTLP metrics and logs from an agent on
// ${K8S_POD_IP}:4317 tagged by k8sattributes from a real API server and
// reshaped per backend (environment info, resource/new_relic, the
// hostmetrics_cpu mean over cpus), kube-state-metrics found by
// kubernetes_sd on a pod and renamed by metricstransform, the
// self-scrape, and the signoz exporter redirected by SIGNOZ_ENDPOINT to a
// sink. Two of the seed's scrape sources cannot run here and are not
// checked:
//   - node-exporter: its DNS SRV name resolves nowhere (the pod's
//     resolver is 127.0.0.1, where nothing answers), so it has no targets;
//   - apiserver, controller-manager, scheduler (and with them the
//     kubernetes_build_info → k8s.cluster.info rename): they discover the
//     default/kubernetes Endpoints, which the test API server does not
//     write (it listens on 127.0.0.1 only, and the API refuses loopback
//     endpoint addresses), so they have no targets either; the rename
//     itself is covered by enrich's metricstransform tests.
//
// About 20 s with a warm API server.
func TestGatewayExample(t *testing.T) {
	cl := k8stest.Start(t)
	sink := otelpeer.StartSink(t)
	caPEM, err := os.ReadFile(cl.CAFile)
	must(t, err)
	api, err := url.Parse(cl.Server)
	must(t, err)
	podIP := loopbackIP(t, 85, 8888, 4317)
	ksmIP := loopbackIP(t, 84, 8080)
	appIP := loopbackIP(t, 83)
	ns := cl.Namespace(t, "examples", nil)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	// kube-state-metrics' pod and its stand-in; the app pod agents send for
	mkPod := func(name, ip string, labels map[string]string, port int32) {
		t.Helper()
		c := corev1.Container{Name: "main", Image: "example"}
		if port != 0 {
			c.Ports = []corev1.ContainerPort{{Name: "http-metrics", ContainerPort: port}}
		}
		_, err := cl.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{c}},
		}, metav1.CreateOptions{})
		must(t, err)
		_, err = cl.SetPodRunning(ctx, ns, name, ip, time.Now())
		must(t, err)
	}
	mkPod("kube-state-metrics-0", ksmIP, map[string]string{"app.kubernetes.io/name": "kube-state-metrics"}, 8080)
	mkPod("web-0", appIP, map[string]string{"app": "web"}, 0)
	ksmLn, err := net.Listen("tcp", net.JoinHostPort(ksmIP, "8080"))
	must(t, err)
	ksm := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(ksmExposition))
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = ksm.Serve(ksmLn) }()
	t.Cleanup(func() { _ = ksm.Close() })

	startPod(t, podSpec{
		configFile: examplePath("gateway.yaml"), role: "gateway", adminAddr: net.JoinHostPort(podIP, "8888"),
		token: []byte(cl.Token), caPEM: caPEM,
		env: []string{
			"K8S_POD_IP=" + podIP, "METRICS_SCRAPE_INTERVAL=2s",
			"KUBERNETES_SERVICE_HOST=" + api.Hostname(), "KUBERNETES_SERVICE_PORT=" + api.Port(),
			"SIGNOZ_ENDPOINT=" + sink.GRPCAddr, "NEW_RELIC_API_KEY=not-a-key",
			"NEW_RELIC_ENDPOINT=http://127.0.0.1:1",
		},
	})

	// What an agent sends: hostmetrics CPU utilization per cpu and state
	// from the app pod's node, and a log line, tagged with k8s.pod.ip.
	cc, err := grpc.NewClient(net.JoinHostPort(podIP, "4317"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(t, err)
	defer cc.Close()
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("k8s.pod.ip", appIP)
	rm.Resource().Attributes().PutStr("service.name", "web")
	g := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	g.SetName("system.cpu.utilization")
	gauge := g.SetEmptyGauge()
	// one collection: every point has its timestamp (the Collector's
	// aggregate_labels groups by attributes and timestamp)
	ts := pcommon.NewTimestampFromTime(time.Now())
	for _, v := range []struct {
		cpu, state string
		v          float64
	}{{"cpu0", "user", 0.2}, {"cpu1", "user", 0.4}, {"cpu0", "idle", 0.7}, {"cpu1", "idle", 0.5}} {
		dp := gauge.DataPoints().AppendEmpty()
		dp.SetTimestamp(ts)
		dp.Attributes().PutStr("cpu", v.cpu)
		dp.Attributes().PutStr("state", v.state)
		dp.Attributes().PutStr("job_label", "hostmetrics")
		dp.SetDoubleValue(v.v)
	}
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("k8s.pod.ip", appIP)
	rl.Resource().Attributes().PutStr("service.name", "web")
	msg := fmt.Sprintf("examples gateway log %d", time.Now().UnixNano())
	rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body().SetStr(msg)

	env := map[string]any{"k8s.cluster.name": "lab-production", "deployment.environment.name": "production", "newrelicOnly": "true"}
	obsproc.WaitFor(t, 90*time.Second, "every gateway pipeline at the sink", func() (bool, string) {
		// resend until it arrives: the k8sattributes cache may not have
		// the pod yet on the first tries, and a point without the pod's
		// name would not count
		ectx, ecancel := context.WithTimeout(ctx, 5*time.Second)
		_, merr := pmetricotlp.NewGRPCClient(cc).Export(ectx, pmetricotlp.NewExportRequestFromMetrics(md))
		_, lerr := plogotlp.NewGRPCClient(cc).Export(ectx, plogotlp.NewExportRequestFromLogs(ld))
		ecancel()
		var missing []string
		pts := points(sink.Metrics(t))
		has := func(what, metric string, attrs, res map[string]any, check func(point) bool) {
			for _, pt := range pts {
				if pt.metric == metric && subset(pt.attrs, attrs) && subset(pt.res, res) && (check == nil || check(pt)) {
					return
				}
			}
			missing = append(missing, what)
		}
		podRes := map[string]any{"k8s.pod.name": "web-0", "k8s.namespace.name": ns}
		for k, v := range env {
			podRes[k] = v
		}
		has("OTLP cpu utilization averaged over cpus (metricstransform/hostmetrics_cpu) with the pod's k8s attributes",
			"system.cpu.utilization", map[string]any{"state": "user", "job_label": "hostmetrics"}, podRes, func(p point) bool {
				_, perCPU := p.attrs["cpu"]
				_, podIP := p.res["k8s.pod.ip"]
				_, svc := p.res["service.name"]
				return !perCPU && !podIP && !svc && math.Abs(p.value-0.3) < 1e-9
			})
		for _, phase := range []string{"waiting", "running", "terminated"} {
			has("kube-state-metrics "+phase+" renamed kube_pod_container_status_phase (metricstransform/kube_pod_status_phase)",
				"kube_pod_container_status_phase", map[string]any{"job_label": "kube-state-metrics", "container_phase": phase}, env, nil)
		}
		has("self-scrape", "go_goroutines", map[string]any{"job_label": "opentelemetry-collector"}, env, func(p point) bool {
			_, podIP := p.res["k8s.pod.ip"]
			return !podIP // resource/delete_pod_ip after k8sattributes
		})
		if !gatewayLogArrived(sink.Logs(t), msg, ns, env) {
			missing = append(missing, "OTLP log with the pod's k8s attributes and environment info")
		}
		return len(missing) == 0, fmt.Sprintf("missing: %s (last export errors: %v, %v)", strings.Join(missing, "; "), merr, lerr)
	})
}

func subset(got, want map[string]any) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

func gatewayLogArrived(lds []plog.Logs, msg, ns string, env map[string]any) bool {
	for _, ld := range lds {
		for _, rl := range ld.ResourceLogs().All() {
			res := rl.Resource().Attributes().AsRaw()
			_, svc := res["service.name"]
			if svc || res["k8s.pod.name"] != "web-0" || res["k8s.namespace.name"] != ns || !subset(res, env) {
				continue
			}
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					if lr.Body().AsString() == msg {
						return true
					}
				}
			}
		}
	}
	return false
}
