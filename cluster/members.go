package cluster

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Subscribe returns a capacity-1 channel that receives a signal after
// membership changes (bursts fold into one signal), and a cancel func.
// After a signal, pull the current view with Members or Owner.
func (n *Node) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	n.mu.Lock()
	id := n.nextSub
	n.nextSub++
	n.subs[id] = ch
	n.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			n.mu.Lock()
			delete(n.subs, id)
			n.mu.Unlock()
		})
	}
}

// Changed returns a new subscription that lasts as long as the Node: the
// "membership changed" signal to hand to a component. Use Subscribe for one
// that can be cancelled.
func (n *Node) Changed() <-chan struct{} {
	ch, _ := n.Subscribe()
	return ch
}

// Members returns every member this one knows, itself included, sorted by
// name: alive and leaving ones, and dead or left ones for 15 minutes.
func (n *Node) Members() []Member {
	n.mu.Lock()
	out := make([]Member, 0, len(n.members))
	for _, m := range n.members {
		out = append(out, *m)
	}
	n.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Owner returns the name of the alive member of the role (RoleAll: of any
// role) with the highest rendezvous score for key. It does not allocate.
func (n *Node) Owner(key string, role Role) (string, bool) {
	r := n.view.Load().ring(role)
	i := r.owner(key)
	if i < 0 {
		return "", false
	}
	return r.members[i].Name, true
}

// OwnerMember is Owner returning the whole member (for its endpoints).
func (n *Node) OwnerMember(key string, role Role) (Member, bool) {
	r := n.view.Load().ring(role)
	i := r.owner(key)
	if i < 0 {
		return Member{}, false
	}
	return r.members[i], true
}

// Owns reports whether this member owns key among members of role.
func (n *Node) Owns(key string, role Role) bool {
	o, ok := n.Owner(key, role)
	return ok && o == n.cfg.NodeName
}

// OwnsFunc returns Owns bound to a role, the shape components take.
func (n *Node) OwnsFunc(role Role) func(key string) bool {
	return func(key string) bool { return n.Owns(key, role) }
}

// Leader returns the leader of a duty: its owner among gateways.
func (n *Node) Leader(duty string) (string, bool) { return n.Owner(duty, RoleGateway) }

// IsLeader reports whether this member leads the duty.
func (n *Node) IsLeader(duty string) bool { return n.Owns(duty, RoleGateway) }

// SetOwned records how many keys of a kind (e.g. "scrape_targets") this
// member owns, for the metrics and the /cluster view.
func (n *Node) SetOwned(kind string, count int) {
	n.mu.Lock()
	n.owned[kind] = count
	n.mu.Unlock()
	n.metrics.ownedKeys.WithLabelValues(kind).Set(float64(count))
}

// SetState writes a cluster-wide entry: it is gossiped to every member,
// repaired by push/pull and outlives this member. The last write by
// version wins. Keys are at most 128 bytes, values 1 KiB; new keys are
// refused once the state's encoded size reaches 8 MiB (see maxStateBytes),
// counted in obs_cluster_state_writes_refused_total and logged at most
// once a minute.
func (n *Node) SetState(key string, value []byte) error {
	e, err := n.store.set(key, value, n.cfg.NodeName, uint64(time.Now().UnixNano()))
	if err != nil {
		n.refuseWrite(key, err)
		return fmt.Errorf("set cluster state %q: %w", key, err)
	}
	n.stateChanged()
	n.bq.QueueBroadcast(&stateBroadcast{key: key, msg: encodeEntryMsg(e)})
	return nil
}

// DeleteState removes a cluster-wide entry. The deletion is a tombstone:
// it is gossiped like a write, beats every older write of the key, and is
// dropped DefaultTombstoneTTL after each member learned of it. Deleting
// a key that holds nothing does nothing.
func (n *Node) DeleteState(key string) error {
	e, ok, err := n.store.remove(key, n.cfg.NodeName, uint64(time.Now().UnixNano()))
	if err != nil {
		n.refuseWrite(key, err)
		return fmt.Errorf("delete cluster state %q: %w", key, err)
	}
	if !ok {
		return nil
	}
	n.stateChanged()
	n.bq.QueueBroadcast(&stateBroadcast{key: key, msg: encodeEntryMsg(e)})
	return nil
}

// refuseWrite counts a refused local write; a full state is also logged,
// at most once a minute (every writer retries on each commit).
func (n *Node) refuseWrite(key string, err error) {
	if !errors.Is(err, errStateFull) {
		n.metrics.stateRefused.WithLabelValues("invalid").Inc()
		return
	}
	n.metrics.stateRefused.WithLabelValues("full").Inc()
	if n.limit.allow("state-full") {
		n.log.Warn("cluster state is full; new keys are refused (obs_cluster_state_writes_refused_total counts them)",
			"key", key, "err", err)
	}
}

// stateChanged updates the state gauges.
func (n *Node) stateChanged() {
	tomb, size := n.store.usage()
	n.metrics.stateEntries.Set(float64(n.store.len()))
	n.metrics.tombstones.Set(float64(tomb))
	n.metrics.stateBytes.Set(float64(size))
}

// State returns a copy of the cluster-wide value for key.
func (n *Node) State(key string) ([]byte, bool) { return n.store.get(key) }

// StateWriter returns a copy of the cluster-wide value for key and the
// name of the member that wrote it (a restarted member keeps its name, so
// it can recognise what its previous life wrote).
func (n *Node) StateWriter(key string) ([]byte, string, bool) { return n.store.getWriter(key) }

// memberFrom converts a memberlist node; ok is false if its metadata
// cannot be read.
func memberFrom(mn *memberlist.Node, state State, now time.Time) (Member, error) {
	meta, err := decodeMeta(mn.Meta)
	m := Member{Name: mn.Name, Port: int(mn.Port), State: state, Meta: meta, Since: now}
	if mn.Addr != nil {
		m.Addr = mn.Addr.String()
	}
	if meta.Leaving && state == StateAlive {
		m.State = StateLeaving
	}
	return m, err
}

// observe records a membership event and publishes the new view. It runs
// inside memberlist's callbacks: it only takes n.mu, never calls memberlist.
func (n *Node) observe(mn *memberlist.Node, event string) {
	now := time.Now()
	n.metrics.changes.WithLabelValues(event).Inc()
	n.mu.Lock()
	old := n.members[mn.Name]
	var m Member
	var err error
	switch event {
	case "leave":
		// memberlist does not tell dead from left: a member that announced
		// its leave in its metadata left, any other died.
		m, err = memberFrom(mn, StateDead, now)
		if old != nil && (old.State == StateLeaving || old.Meta.Leaving) {
			m.State = StateLeft
		}
		if old != nil && err != nil {
			m.Meta = old.Meta
		}
	default:
		m, err = memberFrom(mn, StateAlive, now)
		if old != nil && old.State == StateLeaving && old.Meta.Start.Equal(m.Meta.Start) {
			// Announced directly before its metadata caught up.
			m.State, m.Meta.Leaving = StateLeaving, true
		}
	}
	if err != nil && event != "leave" {
		n.mu.Unlock()
		n.log.Warn("ignore member with unreadable metadata", "member", mn.Name, "err", err)
		return
	}
	if old != nil && old.State == m.State {
		m.Since = old.Since
	}
	n.members[mn.Name] = &m
	for name, o := range n.members {
		if (o.State == StateDead || o.State == StateLeft) && now.Sub(o.Since) > forgetAfter {
			delete(n.members, name)
		}
	}
	changed := old == nil || old.State != m.State || old.Meta != m.Meta || old.Address() != m.Address()
	n.publishLocked()
	subs := n.subsLocked(changed)
	n.mu.Unlock()
	if changed && (old == nil || old.State != m.State) {
		n.log.Info("member "+string(m.State), "member", m.Name, "role", m.Meta.Role, "address", m.Address())
	}
	for _, ch := range subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// markLeaving records a member's announced graceful stop: it owns nothing
// from now on, and is reported "left" (not "dead") once it is gone, even if
// the announcement arrives after memberlist declared it gone.
func (n *Node) markLeaving(name string, start time.Time) {
	n.mu.Lock()
	m := n.members[name]
	if m == nil || !m.Meta.Start.Equal(start) {
		n.mu.Unlock()
		return
	}
	old := m.State
	switch m.State {
	case StateAlive:
		m.State = StateLeaving
	case StateDead:
		m.State = StateLeft
	default:
		n.mu.Unlock()
		return
	}
	m.Meta.Leaving = true
	m.Since = time.Now()
	state := m.State
	n.publishLocked()
	subs := n.subsLocked(old == StateAlive)
	n.mu.Unlock()
	n.log.Info("member "+string(state), "member", name)
	for _, ch := range subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (n *Node) subsLocked(changed bool) []chan struct{} {
	if !changed {
		return nil
	}
	out := make([]chan struct{}, 0, len(n.subs))
	for _, ch := range n.subs {
		out = append(out, ch)
	}
	return out
}

// publishLocked rebuilds the owner rings and gauges from n.members.
func (n *Node) publishLocked() {
	var gw, ag, all []Member
	type roleState struct {
		role  Role
		state State
	}
	counts := make(map[roleState]int)
	for _, r := range []Role{RoleAgent, RoleGateway, RoleAll} {
		for _, s := range []State{StateAlive, StateLeaving, StateDead, StateLeft} {
			counts[roleState{r, s}] = 0
		}
	}
	for _, m := range n.members {
		counts[roleState{m.Meta.Role, m.State}]++
		if m.State != StateAlive {
			continue
		}
		all = append(all, *m)
		if m.Meta.Role.has(RoleGateway) {
			gw = append(gw, *m)
		}
		if m.Meta.Role.has(RoleAgent) {
			ag = append(ag, *m)
		}
	}
	for rs, c := range counts {
		n.metrics.members.WithLabelValues(string(rs.role), string(rs.state)).Set(float64(c))
	}
	v := &view{gateway: newRing(gw), agent: newRing(ag), any: newRing(all)}
	n.view.Store(v)
	n.alive.Store(int32(len(all)))
	for _, d := range n.cfg.Duties {
		lead := 0.0
		if i := v.gateway.owner(d); i >= 0 && v.gateway.members[i].Name == n.cfg.NodeName {
			lead = 1
		}
		n.metrics.leader.WithLabelValues(d).Set(lead)
	}
}
