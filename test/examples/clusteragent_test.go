package examples

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	k8stest "github.com/obs-dev/obs/test/k8s"
	"github.com/obs-dev/obs/test/obsproc"
	"github.com/obs-dev/obs/test/otelpeer"
)

// TestClusterAgentExample runs deploy/examples/clusteragent.yaml as
// the seed's single-replica Deployment would: k8s_events from a real API
// server, the self-scrape of obs' own /metrics on ${K8S_POD_IP}:8888
// tagged with the pod IP, and the OTLP export to the gateways redirected
// by GATEWAY_ENDPOINT to a sink. About 15 s with a warm API server.
func TestClusterAgentExample(t *testing.T) {
	cl := k8stest.Start(t)
	sink := otelpeer.StartSink(t)
	caPEM, err := os.ReadFile(cl.CAFile)
	must(t, err)
	api, err := url.Parse(cl.Server)
	must(t, err)
	podIP := loopbackIP(t, 87, 8888)
	ns := cl.Namespace(t, "examples", nil)

	startPod(t, podSpec{
		configFile: examplePath("clusteragent.yaml"), role: "gateway", adminAddr: net.JoinHostPort(podIP, "8888"),
		token: []byte(cl.Token), caPEM: caPEM,
		env: []string{
			"K8S_POD_IP=" + podIP, "METRICS_SCRAPE_INTERVAL=2s",
			"KUBERNETES_SERVICE_HOST=" + api.Hostname(), "KUBERNETES_SERVICE_PORT=" + api.Port(),
			"GATEWAY_ENDPOINT=" + sink.GRPCAddr,
		},
	})

	msg := fmt.Sprintf("examples clusteragent probe %d", time.Now().UnixNano())
	now := metav1.NewTime(time.Now())
	_, err = cl.Client.CoreV1().Events(ns).Create(t.Context(), &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "probe"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "probe-pod"},
		Reason:         "ExamplesProbe", Message: msg, Type: corev1.EventTypeNormal,
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		Source: corev1.EventSource{Component: "examples"},
	}, metav1.CreateOptions{})
	must(t, err)

	obsproc.WaitFor(t, 60*time.Second, "the event and the self-scrape at the sink", func() (bool, string) {
		var missing []string
		event := false
		for _, ld := range sink.Logs(t) {
			for _, rl := range ld.ResourceLogs().All() {
				for _, sl := range rl.ScopeLogs().All() {
					for _, lr := range sl.LogRecords().All() {
						event = event || lr.Body().AsString() == msg
					}
				}
			}
		}
		if !event {
			missing = append(missing, "the event (logs pipeline)")
		}
		self := false
		for _, pt := range points(sink.Metrics(t)) {
			self = self || (pt.metric == "go_goroutines" && pt.attrs["job_label"] == "opentelemetry-collector" && pt.res["k8s.pod.ip"] == podIP)
		}
		if !self {
			missing = append(missing, "go_goroutines with job_label opentelemetry-collector and k8s.pod.ip (metrics/prometheus → metrics)")
		}
		return len(missing) == 0, "missing " + strings.Join(missing, ", ")
	})
}
