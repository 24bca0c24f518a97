// Package k8s starts a real kube-apiserver (with a real etcd) on loopback
// for integration tests, using the project's scripts/k8s-start.sh and
// scripts/k8s-stop.sh. The binaries come from scripts/k8s-build.sh
// (cached under $HOME/.cache/k8s-kit/bin, or $K8S_KIT_BIN).
//
// There is no kubelet, scheduler or controller-manager: tests create
// objects through the API and write pod status themselves (SetPodRunning),
// create the `default` ServiceAccount of every namespace (Namespace does)
// and delete pods with grace period 0 (DeletePod).
//
// When the API server cannot be started, Start fails the test if CI=true
// and skips it otherwise.
package k8s

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Cluster is one running etcd + kube-apiserver pair.
type Cluster struct {
	// Dir holds the cluster's state, logs, kubeconfig and env file.
	Dir string
	// Kubeconfig is the path of an admin kubeconfig (token auth, CA data).
	Kubeconfig string
	// Server is the API server's URL, https://127.0.0.1:PORT.
	Server string
	// Token is the static admin token (group system:masters).
	Token string
	// TokenFile holds Token, for configs that read a credentials file.
	TokenFile string
	// CAFile is the PEM CA that signed the API server's certificate.
	CAFile string
	// Config is the admin client configuration.
	Config *rest.Config
	// Client is an admin clientset.
	Client *kubernetes.Clientset

	scripts string
	stopped atomic.Bool
}

// Start starts a fresh, empty cluster for t and stops it in t.Cleanup.
// Start takes about 5 s; share one cluster per package where possible
// (a namespace per test, see Namespace) or use New in TestMain.
func Start(t testing.TB) *Cluster {
	t.Helper()
	dir, err := os.MkdirTemp("", "obs-k8s-")
	if err != nil {
		t.Fatalf("k8s: create dir: %v", err)
	}
	c, err := New(dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		Unavailable(t, err)
		return nil
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("k8s: %v", err)
		}
		if !t.Failed() {
			_ = os.RemoveAll(dir)
		} else {
			t.Logf("k8s: cluster state and logs kept in %s", dir)
		}
	})
	return c
}

// Unavailable fails t when CI=true and skips it otherwise, for a cluster
// that could not be started (err from New).
func Unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("k8s: start kube-apiserver (CI=true, so this fails): %v", err)
	}
	t.Skipf("k8s: start kube-apiserver (skipped; set CI=true to fail): %v", err)
}

// New starts a cluster with its state in dir (which must not contain
// whitespace). A watchdog stops it within about 2 s once this process
// exits, so a crashed test leaves nothing running. The caller must call
// Stop.
func New(dir string) (*Cluster, error) {
	scripts, err := scriptsDir()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("resolve dir %s: %w", dir, err)
	}
	c := &Cluster{Dir: dir, scripts: scripts}
	cmd := exec.Command("bash", filepath.Join(scripts, "k8s-start.sh"), dir)
	cmd.Env = append(os.Environ(), "K8S_KIT_WATCH_PID="+strconv.Itoa(os.Getpid()))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		_ = c.Stop()
		return nil, fmt.Errorf("run k8s-start.sh %s: %w\n%s", dir, err, tail(out.String(), 40))
	}
	env, err := readEnv(filepath.Join(dir, "env"))
	if err != nil {
		_ = c.Stop()
		return nil, err
	}
	c.Server, c.Token, c.TokenFile = env["APISERVER"], env["TOKEN"], env["TOKEN_FILE"]
	c.CAFile, c.Kubeconfig = env["CA_FILE"], env["KUBECONFIG"]
	if c.Kubeconfig == "" {
		c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	}
	if c.Server == "" || c.Token == "" || c.CAFile == "" {
		_ = c.Stop()
		return nil, fmt.Errorf("read %s: APISERVER, TOKEN or CA_FILE missing", filepath.Join(dir, "env"))
	}
	c.Config, err = clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		_ = c.Stop()
		return nil, fmt.Errorf("load kubeconfig %s: %w", c.Kubeconfig, err)
	}
	c.Config.QPS, c.Config.Burst = 200, 400 // tests create many objects quickly
	c.Client, err = kubernetes.NewForConfig(c.Config)
	if err != nil {
		_ = c.Stop()
		return nil, fmt.Errorf("build clientset: %w", err)
	}
	return c, nil
}

// Stop stops the API server, then etcd. It is safe to call more than once.
func (c *Cluster) Stop() error {
	if c.stopped.Swap(true) {
		return nil
	}
	out, err := exec.Command("bash", filepath.Join(c.scripts, "k8s-stop.sh"), c.Dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("run k8s-stop.sh %s: %w: %s", c.Dir, err, out)
	}
	return nil
}

// Namespace creates a namespace named prefix plus a unique suffix, with
// labels, and its `default` ServiceAccount (no controller-manager makes
// it). Without a controller-manager a deleted namespace stays Terminating
// forever, so namespaces are not deleted: the cluster is thrown away.
func (c *Cluster) Namespace(t testing.TB, prefix string, labels map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-", Labels: labels},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("k8s: create namespace %s-*: %v", prefix, err)
	}
	_, err = c.Client.CoreV1().ServiceAccounts(ns.Name).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "default"},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("k8s: create service account %s/default: %v", ns.Name, err)
	}
	return ns.Name
}

// ServiceAccountClient creates ServiceAccount ns/name (if missing), gets
// a token for it (TokenRequest, 1 h) and returns a client that
// authenticates with that token only: what a pod running as it would
// have. Grant it roles first or after; RBAC is checked per request.
func (c *Cluster) ServiceAccountClient(t testing.TB, ns, name string) (*kubernetes.Clientset, *rest.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: name},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("k8s: create service account %s/%s: %v", ns, name, err)
	}
	secs := int64(3600)
	tok, err := c.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("k8s: create token for %s/%s: %v", ns, name, err)
	}
	cfg := rest.AnonymousClientConfig(c.Config)
	cfg.BearerToken = tok.Status.Token
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("k8s: build client for %s/%s: %v", ns, name, err)
	}
	return cs, cfg
}

// SetPodRunning writes what a kubelet would: phase Running, the pod IP and
// the start time, through the pods/status subresource.
func (c *Cluster) SetPodRunning(ctx context.Context, ns, name, ip string, start time.Time) (*corev1.Pod, error) {
	patch := fmt.Sprintf(`{"status":{"phase":"Running","podIP":%q,"podIPs":[{"ip":%q}],"hostIP":"127.0.0.1","startTime":%q}}`,
		ip, ip, start.UTC().Format(time.RFC3339))
	p, err := c.Client.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
	if err != nil {
		return nil, fmt.Errorf("patch pod %s/%s status: %w", ns, name, err)
	}
	return p, nil
}

// DeletePod deletes a pod at once (grace period 0): with spec.nodeName set
// and no kubelet, a plain delete would wait forever.
func (c *Cluster) DeletePod(ctx context.Context, ns, name string) error {
	zero := int64(0)
	if err := c.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		return fmt.Errorf("delete pod %s/%s: %w", ns, name, err)
	}
	return nil
}

// scriptsDir finds the module's scripts/ folder by walking up from the
// working directory (go test runs in the package's folder) to go.mod.
func scriptsDir() (string, error) {
	if d := os.Getenv("OBS_SCRIPTS_DIR"); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find scripts: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			s := filepath.Join(d, "scripts")
			if _, err := os.Stat(filepath.Join(s, "k8s-start.sh")); err != nil {
				return "", fmt.Errorf("find scripts: %w", err)
			}
			return s, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("find scripts: no go.mod above " + wd)
		}
	}
}

func readEnv(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read cluster env: %w", err)
	}
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		env[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
	}
	return env, sc.Err()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
