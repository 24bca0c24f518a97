package deploy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// requireDocker skips (or fails with CI=true) without a Docker engine and
// docker-compose.
func requireDocker(t *testing.T) {
	t.Helper()
	for _, bin := range [][]string{{"docker", "info"}, {"docker-compose", "version"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := exec.CommandContext(ctx, bin[0], bin[1:]...).Run()
		cancel()
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s: %v", bin[0], err)
			}
			t.Skipf("%s unavailable: %v", bin[0], err)
		}
	}
}

// TestComposeDemo starts deploy/compose (3 gateways, 2 agents, an obs
// backend with the file exporter) from a freshly built image, sends OTLP
// logs to both agents, finds them in the backend's file, kills one
// gateway, sends again, finds those too, and tears everything down.
func TestComposeDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an image and starts six containers")
	}
	requireDocker(t)
	r := root(t)
	project := fmt.Sprintf("obsdeploy%d", time.Now().UnixNano()%1_000_000)
	image := "obs-deploy-test:" + project

	build := exec.Command("bash", filepath.Join(r, "scripts", "build-image.sh"), image)
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", image).Run() })

	// The image: non-root numeric user, CA bundle path set, git revision stamped.
	inspect, err := exec.Command("docker", "image", "inspect", "-f", "{{.Config.User}} {{json .Config.Env}}", image).Output()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(inspect), "65532:65532 "), "%s", inspect)
	require.Contains(t, string(inspect), "SSL_CERT_FILE=/etc/ssl/obs/ca-certificates.crt")
	if _, err := os.Stat("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		ctr, err := exec.Command("docker", "create", image).Output()
		require.NoError(t, err)
		id := strings.TrimSpace(string(ctr))
		tarball, err := exec.Command("docker", "cp", id+":/etc/ssl/obs/ca-certificates.crt", "-").Output()
		_ = exec.Command("docker", "rm", id).Run()
		require.NoError(t, err)
		require.Contains(t, string(tarball), "BEGIN CERTIFICATE", "the build machine's CA bundle is in the image")
	}
	ver, err := exec.Command("docker", "run", "--rm", image, "version").CombinedOutput()
	require.NoError(t, err, "%s", ver)
	// (not HEAD itself: other commits may land while the image builds)
	require.Regexp(t, `commit [0-9a-f]{40}`, string(ver), "version stamped from git")

	compose := func(timeout time.Duration, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "docker-compose", append([]string{"-p", project, "-f",
			filepath.Join(r, "deploy", "compose", "docker-compose.yaml")}, args...)...)
		cmd.Env = append(os.Environ(), "OBS_IMAGE="+image, "OBS_AGENT1_OTLP=127.0.0.1:0", "OBS_AGENT1_ADMIN=127.0.0.1:0",
			"OBS_AGENT2_OTLP=127.0.0.1:0", "OBS_GATEWAY_ADMIN=127.0.0.1:0")
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		err := cmd.Run()
		return buf.String(), err
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := compose(time.Minute, "logs", "--no-color", "--tail=30")
			t.Logf("compose logs:\n%s", logs)
		}
		if out, err := compose(2*time.Minute, "down", "-v", "--timeout", "5"); err != nil {
			t.Logf("compose down: %v\n%s", err, out)
		}
	})
	out2, err := compose(3*time.Minute, "up", "-d")
	require.NoError(t, err, out2)

	port := func(svc, p string) string {
		o, err := compose(30*time.Second, "port", svc, p)
		require.NoError(t, err, o)
		return strings.TrimSpace(o)
	}
	agents := []string{port("agent-1", "4317"), port("agent-2", "4317")}

	// The backend's file, read from its container (the image has no shell).
	backendFile := func() string {
		id, err := compose(30*time.Second, "ps", "-q", "backend")
		require.NoError(t, err, id)
		o, err := exec.Command("docker", "cp", strings.TrimSpace(id)+":/data/export/otlp.jsonl", "-").Output()
		if err != nil {
			return ""
		}
		return string(o) // a tar stream; the JSON lines are inside it verbatim
	}
	send := func(addr, marker string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		ld := plog.NewLogs()
		lr := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
		lr.Body().SetStr(marker)
		lr.SetTimestamp(1)
		_, err = plogotlp.NewGRPCClient(conn).Export(ctx, plogotlp.NewExportRequestFromLogs(ld))
		return err
	}
	deliver := func(round string) {
		for i, a := range agents {
			marker := fmt.Sprintf("compose-%s-%s-agent%d", project, round, i+1)
			require.Eventually(t, func() bool { return send(a, marker) == nil }, 60*time.Second, time.Second,
				"agent-%d at %s accepts OTLP", i+1, a)
			require.Eventually(t, func() bool { return strings.Contains(backendFile(), marker) }, 60*time.Second, time.Second,
				"%s reaches the backend", marker)
		}
	}
	deliver("start")

	o, err := compose(time.Minute, "kill", "gateway-2")
	require.NoError(t, err, o)
	deliver("after-kill")
}
