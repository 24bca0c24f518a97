package scrape

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// TestNodeExporter scrapes a real node exporter (Debian's
// prometheus-node-exporter, installed by scripts/install-node-exporter.sh).
func TestNodeExporter(t *testing.T) {
	bin, err := exec.LookPath("prometheus-node-exporter")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("prometheus-node-exporter missing: run scripts/install-node-exporter.sh")
		}
		t.Skip("prometheus-node-exporter missing: run scripts/install-node-exporter.sh")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--web.listen-address="+addr, "--collector.disable-defaults",
		"--collector.cpu", "--collector.meminfo", "--collector.loadavg", "--collector.stat")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	require.Eventually(t, func() bool {
		resp, err := http.Get(fmt.Sprintf("http://%s/metrics", addr))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 50*time.Millisecond)

	c := &collector{}
	runReceiver(t, staticJob("node", "500ms", addr), Sharding{Mode: ShardNode, NodeName: "n1"}, c)

	cpu := c.waitPoints(t, "node_cpu_seconds_total", 2)
	require.Equal(t, pmetric.MetricTypeSum, cpu[0].metric.Type())
	require.True(t, cpu[0].metric.Sum().IsMonotonic())
	require.NotZero(t, cpu[0].start)
	mode, ok := cpu[0].attrs.Get("mode")
	require.True(t, ok)
	require.NotEmpty(t, mode.Str())
	name, _ := cpu[0].res.Get("service.name")
	require.Equal(t, "node", name.Str())

	mem := c.waitPoints(t, "node_memory_MemTotal_bytes", 1)
	require.Equal(t, pmetric.MetricTypeGauge, mem[0].metric.Type())
	require.Positive(t, mem[0].value)

	gc := c.waitPoints(t, "go_gc_duration_seconds", 1)
	require.Equal(t, pmetric.MetricTypeSummary, gc[0].metric.Type())
	require.NotZero(t, gc[0].start)

	up := c.waitPoints(t, "up", 1)
	require.Equal(t, 1.0, up[0].value)
}
