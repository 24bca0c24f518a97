package examples

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// kubelet stands in for the node's kubelet, which cannot run here: on
// addr (the seed's https://${K8S_NODE_IP}:10250) it serves, over TLS, the
// recorded /stats/summary and /pods of scrape/testdata/kubelet to
// callers with the bearer token, as a kubelet does for a service account
// allowed nodes/stats.
type kubelet struct {
	srv           *httptest.Server
	served, denid atomic.Int64
}

func startKubelet(t *testing.T, root, addr, token string) *kubelet {
	t.Helper()
	docs := map[string][]byte{}
	for path, file := range map[string]string{"/stats/summary": "summary.json", "/pods": "pods.json"} {
		b, err := os.ReadFile(filepath.Join(root, "scrape", "testdata", "kubelet", file))
		must(t, err)
		docs[path] = b
	}
	k := &kubelet{}
	k.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := docs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+token {
			k.denid.Add(1)
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		k.served.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("kubelet stand-in: listen on %s: %v", addr, err)
	}
	k.srv.Listener = ln
	k.srv.StartTLS()
	t.Cleanup(k.srv.Close)
	return k
}
