package cluster

import (
	"encoding/json"
	"net/http"
	"time"
)

// View is what GET /cluster shows: the members, the leader of each duty,
// this member's owned-key counts and the cluster state entries.
type View struct {
	Self    string            `json:"self"`
	Cluster string            `json:"cluster"`
	Role    Role              `json:"role"`
	Members []ViewMember      `json:"members"`
	Leaders map[string]string `json:"leaders"` // duty → member; "" if no gateway is alive
	Owned   map[string]int    `json:"owned"`
	State   []StateInfo       `json:"state"`
}

// ViewMember is one member in a View.
type ViewMember struct {
	Name    string    `json:"name"`
	Role    Role      `json:"role"`
	State   State     `json:"state"`
	Address string    `json:"address"`
	Version string    `json:"version,omitempty"`
	Meta    Meta      `json:"metadata"`
	Since   time.Time `json:"since"`
}

// Snapshot returns the current View.
func (n *Node) Snapshot() View {
	v := View{
		Self:    n.cfg.NodeName,
		Cluster: n.cfg.ClusterName,
		Role:    n.cfg.Role,
		Members: []ViewMember{},
		Leaders: make(map[string]string, len(n.cfg.Duties)),
		Owned:   make(map[string]int),
		State:   n.store.infos(),
	}
	for _, m := range n.Members() {
		v.Members = append(v.Members, ViewMember{
			Name: m.Name, Role: m.Meta.Role, State: m.State, Address: m.Address(),
			Version: m.Meta.Version, Meta: m.Meta, Since: m.Since,
		})
	}
	for _, d := range n.cfg.Duties {
		v.Leaders[d], _ = n.Leader(d)
	}
	n.mu.Lock()
	for k, c := range n.owned {
		v.Owned[k] = c
	}
	n.mu.Unlock()
	return v
}

// Handler serves Snapshot as JSON (GET and HEAD only).
func (n *Node) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		body, err := json.MarshalIndent(n.Snapshot(), "", "  ")
		if err != nil {
			http.Error(w, "encode cluster view: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(append(body, '\n'))
	})
}
