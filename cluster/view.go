package cluster

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
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
	// Duties groups every duty, the configured ones and those reported
	// by SetDuties (one per namespace), by the member that owns it:
	// compact even with thousands of namespaces.
	Duties []DutyOwner    `json:"duties"`
	Owned  map[string]int `json:"owned"`
	State  []StateInfo    `json:"state"`
}

// DutyOwner is one member's duties in a View; Member is "" for the duties
// no gateway owns (none alive).
type DutyOwner struct {
	Member string   `json:"member"`
	Count  int      `json:"count"`
	Duties []string `json:"duties"`
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
	all := slices.Clone(n.cfg.Duties)
	for _, keys := range n.duties {
		all = append(all, keys...)
	}
	n.mu.Unlock()
	v.Duties = n.dutyOwners(all)
	return v
}

// SetDuties replaces the duty keys source (e.g. a receiver id) reports;
// nil removes them. Snapshot shows who owns each.
func (n *Node) SetDuties(source string, keys []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(keys) == 0 {
		delete(n.duties, source)
		return
	}
	n.duties[source] = slices.Clone(keys)
}

// dutyOwners groups duties by their owner among gateways, members sorted
// by name and each member's duties sorted.
func (n *Node) dutyOwners(duties []string) []DutyOwner {
	slices.Sort(duties)
	duties = slices.Compact(duties)
	by := map[string]*DutyOwner{}
	for _, d := range duties {
		m, _ := n.Leader(d)
		o := by[m]
		if o == nil {
			o = &DutyOwner{Member: m}
			by[m] = o
		}
		o.Count++
		o.Duties = append(o.Duties, d)
	}
	out := make([]DutyOwner, 0, len(by))
	for _, o := range by {
		out = append(out, *o)
	}
	slices.SortFunc(out, func(a, b DutyOwner) int { return strings.Compare(a.Member, b.Member) })
	return out
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
