// Package cluster runs several real obs processes on loopback addresses
// 127.0.0.2 … 127.0.0.6 (Linux routes all of 127/8 to lo) and checks what
// their gossip membership reports on each member's GET /cluster: joining
// through one seed, failure detection after SIGKILL, a graceful leave after
// SIGTERM, one leader of "k8s-events", and refusal of members with another
// cluster name or gossip key. TestMain builds obs once per run.
package cluster

import (
	"sort"
	"testing"

	"github.com/obs-dev/obs/test/obsproc"
)

func TestMain(m *testing.M) { obsproc.Main(m) }

// member is one obs gateway process with its own loopback address.
type member = obsproc.Proc

// newMember prepares (does not start) a gateway named name on ip: gossip
// on a fresh port of ip, joining join unless it is empty, an OTLP gRPC
// receiver and a debug exporter (the data path is not under test here).
func newMember(t testing.TB, name, ip, join string, args ...string) *member {
	t.Helper()
	o := obsproc.Options{
		Role: "gateway", Name: name, IP: ip, Cluster: true, Args: args,
		Config: `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: "{{addr "grpc"}}"
exporters:
  debug: {}
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [debug]
`,
	}
	if join != "" {
		o.Join = []string{join}
	}
	return obsproc.New(t, o)
}

// clusterView is the part of GET /cluster the tests read.
type clusterView struct {
	Self    string            `json:"self"`
	Cluster string            `json:"cluster"`
	Role    string            `json:"role"`
	Members []viewMember      `json:"members"`
	Leaders map[string]string `json:"leaders"`
}

type viewMember struct {
	Name    string `json:"name"`
	Role    string `json:"role"`
	State   string `json:"state"`
	Address string `json:"address"`
}

// states maps member name to state.
func (v clusterView) states() map[string]string {
	out := make(map[string]string, len(v.Members))
	for _, m := range v.Members {
		out[m.Name] = m.State
	}
	return out
}

// alive lists the alive members, sorted.
func (v clusterView) alive() []string {
	var out []string
	for _, m := range v.Members {
		if m.State == "alive" {
			out = append(out, m.Name)
		}
	}
	sort.Strings(out)
	return out
}

func view(m *member) (clusterView, error) {
	var v clusterView
	err := m.GetJSON("/cluster", &v)
	return v, err
}

// views polls every member once.
func views(ms []*member) (map[string]clusterView, error) {
	out := make(map[string]clusterView, len(ms))
	for _, m := range ms {
		v, err := view(m)
		if err != nil {
			return nil, err
		}
		out[m.Name()] = v
	}
	return out, nil
}
