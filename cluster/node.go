// Package cluster is obs' membership: it wraps hashicorp/memberlist, adds
// node metadata, ownership by rendezvous hashing, leadership and a small
// cluster-wide state shared by gossip.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// State is a member's state as this member sees it.
type State string

// Member states. memberlist v0.7.0 does not expose its "suspect" state to
// users, so a suspect member is reported alive until it is declared dead.
const (
	StateAlive   State = "alive"
	StateLeaving State = "leaving" // announced a graceful stop; owns nothing any more
	StateDead    State = "dead"    // failed failure detection
	StateLeft    State = "left"    // left gracefully
)

// Member is one member of the cluster.
type Member struct {
	Name  string
	Addr  string
	Port  int
	State State
	Meta  Meta
	Since time.Time // when this member last saw the state change
}

// Address is Addr:Port.
func (m Member) Address() string { return net.JoinHostPort(m.Addr, strconv.Itoa(m.Port)) }

// forgetAfter is how long dead and left members stay listed.
const forgetAfter = 15 * time.Minute

// view is an immutable snapshot of the members that own keys, swapped
// atomically on every membership change.
type view struct {
	gateway, agent, any *ring
}

func (v *view) ring(role Role) *ring {
	switch role {
	case RoleGateway:
		return v.gateway
	case RoleAgent:
		return v.agent
	}
	return v.any
}

// Node is this process' membership in the cluster.
type Node struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	store   *store
	limit   *rateLimiter

	ml    atomic.Pointer[memberlist.Memberlist]
	view  atomic.Pointer[view]
	bq    *memberlist.TransmitLimitedQueue
	alive atomic.Int32 // members in the any-ring, for the broadcast queue

	mu      sync.Mutex
	meta    Meta
	metaBuf []byte
	members map[string]*Member
	subs    map[int]chan struct{}
	nextSub int
	owned   map[string]int

	ready   chan struct{}
	started atomic.Bool
	// skipLeave makes Run stop without leaving, as a crash would (tests).
	skipLeave atomic.Bool
}

// New validates cfg and builds a Node. It starts nothing; call Run.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("validate cluster config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Profile == "" {
		cfg.Profile = ProfileLAN
	}
	cfg.Keys = append([][]byte(nil), cfg.Keys...)
	cfg.Join = append([]string(nil), cfg.Join...)
	cfg.Duties = append([]string(nil), cfg.Duties...)
	meta := cfg.Meta
	meta.Cluster, meta.Role, meta.Leaving = cfg.ClusterName, cfg.Role, false
	if meta.Start.IsZero() {
		meta.Start = time.Now()
	}
	meta.Start = meta.Start.UTC()
	buf, err := meta.encode()
	if err != nil {
		return nil, fmt.Errorf("validate cluster config: %w", err)
	}
	n := &Node{
		cfg:     cfg,
		log:     logger,
		store:   newStore(),
		limit:   newRateLimiter(time.Minute),
		meta:    meta,
		metaBuf: buf,
		members: make(map[string]*Member),
		subs:    make(map[int]chan struct{}),
		owned:   make(map[string]int),
		ready:   make(chan struct{}),
	}
	n.metrics, err = newMetrics(reg, n.healthScore)
	if err != nil {
		return nil, err
	}
	n.bq = &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return max(1, int(n.alive.Load())) },
		RetransmitMult: 3,
	}
	n.view.Store(&view{})
	return n, nil
}

// Name is this member's name.
func (n *Node) Name() string { return n.cfg.NodeName }

// Ready is closed once Run has brought the gossip listener up.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Addr is the address other members reach this one at (host:port), known
// once Ready is closed; "" before.
func (n *Node) Addr() string {
	ml := n.ml.Load()
	if ml == nil {
		return ""
	}
	return ml.LocalNode().Address()
}

func (n *Node) healthScore() float64 {
	if ml := n.ml.Load(); ml != nil {
		return float64(ml.GetHealthScore())
	}
	return 0
}

// Run starts the gossip listener, joins in the background and keeps
// membership until ctx is done; then it leaves gracefully (others see
// "left") and returns after all its goroutines have exited. Run returns
// early only if the listener cannot start. Joining never blocks Run's
// caller: a member that is alone keeps retrying with backoff.
func (n *Node) Run(ctx context.Context) error {
	if !n.started.CompareAndSwap(false, true) {
		return errors.New("run cluster node: already started")
	}
	mc, err := n.cfg.memberlistConfig()
	if err != nil {
		return fmt.Errorf("run cluster node: %w", err)
	}
	d := &delegate{n: n}
	mc.Delegate, mc.Events, mc.Alive, mc.Merge, mc.Ping = d, d, d, d, d
	mc.LogOutput = nil
	mc.Logger = log.New(&mlLogWriter{log: n.log.With("lib", "memberlist"), metrics: n.metrics, limit: n.limit}, "", 0)

	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("start gossip on %s:%d: %w", n.cfg.BindAddr, n.cfg.BindPort, err)
	}
	n.ml.Store(ml)
	close(n.ready)
	n.log.Info("cluster member started", "name", n.cfg.NodeName, "cluster", n.cfg.ClusterName,
		"role", n.cfg.Role, "address", ml.LocalNode().Address(), "encrypted", len(n.cfg.Keys) > 0)

	jctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n.joinLoop(jctx, ml)
	}()

	<-ctx.Done()
	cancel()
	if !n.skipLeave.Load() {
		n.leave(ml)
	}
	if err := ml.Shutdown(); err != nil {
		n.log.Warn("stop gossip", "err", err)
	}
	wg.Wait()
	n.log.Info("cluster member stopped", "name", n.cfg.NodeName)
	return nil
}

// leave announces the stop in the metadata (so others hand over at once and
// later report "left", not "dead"), then leaves.
func (n *Node) leave(ml *memberlist.Memberlist) {
	timeout := n.cfg.LeaveTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	n.mu.Lock()
	meta := n.meta
	meta.Leaving = true
	if buf, err := meta.encode(); err == nil {
		n.meta, n.metaBuf = meta, buf
	}
	n.mu.Unlock()
	// Give up ownership here first, then tell the others: a duty is never
	// led by this member and its successor at the same time.
	n.markLeaving(n.cfg.NodeName, meta.Start)
	// The metadata update spreads by gossip and can lose the race with the
	// leave message itself, so also tell every member directly.
	msg := encodeLeaving(n.cfg.NodeName, meta.Start)
	for _, m := range ml.Members() {
		if m.Name == n.cfg.NodeName {
			continue
		}
		if err := ml.SendBestEffort(m, msg); err != nil {
			n.log.Debug("announce leaving", "member", m.Name, "err", err)
			continue
		}
		n.metrics.gossipMsgs.WithLabelValues("sent").Inc()
		n.metrics.gossipBytes.WithLabelValues("sent").Add(float64(len(msg)))
	}
	if err := ml.UpdateNode(timeout / 2); err != nil {
		n.log.Warn("announce leaving", "err", err)
	}
	if err := ml.Leave(timeout / 2); err != nil {
		n.log.Warn("leave cluster", "err", err)
	}
}

// joinLoop joins right away, then keeps retrying with backoff (1s to 30s)
// while this member is alone, and every RejoinInterval otherwise. Names are
// resolved again on every attempt. Membership changes wake it up: a member
// left alone starts retrying without waiting for the rejoin interval.
func (n *Node) joinLoop(ctx context.Context, ml *memberlist.Memberlist) {
	if len(n.cfg.Join) == 0 {
		return
	}
	changed, cancel := n.Subscribe()
	defer cancel()
	const minBackoff, maxBackoff = time.Second, 30 * time.Second
	backoff := minBackoff
	next := time.Now() // zero: no attempt scheduled
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if !next.IsZero() && !time.Now().Before(next) {
			n.joinOnce(ctx, ml)
			if ctx.Err() != nil {
				return
			}
			next = time.Time{}
			if n.alone() {
				next = time.Now().Add(backoff)
				backoff = min(2*backoff, maxBackoff)
			} else {
				backoff = minBackoff
				if n.cfg.RejoinInterval > 0 {
					next = time.Now().Add(n.cfg.RejoinInterval)
				}
			}
		}
		var wait <-chan time.Time
		if !next.IsZero() {
			timer.Reset(time.Until(next)) // Go ≥ 1.23: Reset drops a stale tick
			wait = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-wait:
		case <-changed:
			if n.alone() && (next.IsZero() || time.Until(next) > backoff) {
				next = time.Now().Add(backoff)
			}
		}
	}
}

// alone reports whether no other member owns anything with this one.
func (n *Node) alone() bool { return n.alive.Load() <= 1 }

func (n *Node) joinOnce(ctx context.Context, ml *memberlist.Memberlist) {
	port := n.cfg.BindPort
	if port == 0 {
		port = DefaultPort
	}
	targets, _ := joinTargets(n.cfg.Join, port) // validated in New
	self := ml.LocalNode().Address()
	var addrs []string
	// When not alone, join only addresses that are no known member: that
	// heals partitions without a push/pull with every peer each time.
	known := map[string]bool{self: true}
	if !n.alone() {
		for _, m := range n.Members() {
			if m.State == StateAlive || m.State == StateLeaving {
				known[m.Address()] = true
			}
		}
	}
	for _, t := range targets {
		ips, err := net.DefaultResolver.LookupHost(ctx, t.host)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			n.log.Warn("resolve join address", "host", t.host, "err", err)
			continue
		}
		for _, ip := range ips {
			if a := net.JoinHostPort(ip, t.port); !known[a] {
				addrs = append(addrs, a)
			}
		}
	}
	if len(addrs) == 0 {
		if n.alone() {
			n.metrics.joins.WithLabelValues("error").Inc()
			n.log.Debug("join cluster: no address to join yet", "join", n.cfg.Join)
		}
		return
	}
	k, err := ml.Join(addrs)
	if k == 0 {
		n.metrics.joins.WithLabelValues("error").Inc()
		n.log.Warn("join cluster", "addresses", addrs, "err", err)
		return
	}
	n.metrics.joins.WithLabelValues("ok").Inc()
	n.log.Info("joined cluster", "contacted", k, "members", ml.NumMembers())
}

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
// version wins. Keys are at most 128 bytes, values 1 KiB, 1024 entries.
func (n *Node) SetState(key string, value []byte) error {
	e, err := n.store.set(key, value, n.cfg.NodeName, uint64(time.Now().UnixNano()))
	if err != nil {
		return fmt.Errorf("set cluster state %q: %w", key, err)
	}
	n.metrics.stateEntries.Set(float64(n.store.len()))
	n.bq.QueueBroadcast(&stateBroadcast{key: key, msg: encodeEntryMsg(e)})
	return nil
}

// State returns a copy of the cluster-wide value for key.
func (n *Node) State(key string) ([]byte, bool) { return n.store.get(key) }

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

// delegate implements memberlist's callbacks. They run on memberlist's
// packet and timer goroutines, often under its node lock: they never block
// and never call back into memberlist, and copy any byte slice they keep.
type delegate struct{ n *Node }

var (
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = (*delegate)(nil)
	_ memberlist.AliveDelegate = (*delegate)(nil)
	_ memberlist.MergeDelegate = (*delegate)(nil)
	_ memberlist.PingDelegate  = (*delegate)(nil)
)

func (d *delegate) NodeMeta(limit int) []byte {
	d.n.mu.Lock()
	defer d.n.mu.Unlock()
	if len(d.n.metaBuf) > limit {
		return nil
	}
	return append([]byte(nil), d.n.metaBuf...)
}

func (d *delegate) NotifyMsg(b []byte) {
	d.n.metrics.gossipMsgs.WithLabelValues("received").Inc()
	d.n.metrics.gossipBytes.WithLabelValues("received").Add(float64(len(b)))
	if len(b) > 0 && b[0] == msgLeaving {
		name, start, err := decodeLeaving(b)
		if err != nil {
			d.n.log.Debug("drop leaving message", "err", err)
			return
		}
		d.n.markLeaving(name, start)
		return
	}
	entries, err := decodeState(b)
	if err != nil {
		d.n.metrics.stateDropped.WithLabelValues("invalid").Inc()
		d.n.log.Debug("drop cluster state message", "err", err)
		return
	}
	for _, e := range entries {
		if d.apply(e) {
			// Spread what is new to us further (epidemic), so a write
			// reaches everyone even if the writer dies right away.
			d.n.bq.QueueBroadcast(&stateBroadcast{key: e.key, msg: encodeEntryMsg(e)})
		}
	}
}

func (d *delegate) apply(e entry) bool {
	switch d.n.store.merge(e) {
	case mergeApplied:
		d.n.metrics.stateEntries.Set(float64(d.n.store.len()))
		return true
	case mergeFull:
		d.n.metrics.stateDropped.WithLabelValues("full").Inc()
	}
	return false
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	msgs := d.n.bq.GetBroadcasts(overhead, limit)
	if len(msgs) > 0 {
		size := 0
		for _, m := range msgs {
			size += len(m)
		}
		d.n.metrics.gossipMsgs.WithLabelValues("sent").Add(float64(len(msgs)))
		d.n.metrics.gossipBytes.WithLabelValues("sent").Add(float64(size))
	}
	return msgs
}

func (d *delegate) LocalState(join bool) []byte {
	d.n.metrics.pushPull.WithLabelValues("sent").Inc()
	return d.n.store.digest()
}

func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	d.n.metrics.pushPull.WithLabelValues("received").Inc()
	entries, err := decodeState(buf)
	if err != nil {
		d.n.metrics.stateDropped.WithLabelValues("invalid").Inc()
		d.n.log.Debug("drop cluster state from push/pull", "err", err)
		return
	}
	for _, e := range entries {
		d.apply(e)
	}
}

func (d *delegate) NotifyJoin(mn *memberlist.Node)   { d.n.observe(mn, "join") }
func (d *delegate) NotifyUpdate(mn *memberlist.Node) { d.n.observe(mn, "update") }
func (d *delegate) NotifyLeave(mn *memberlist.Node)  { d.n.observe(mn, "leave") }

// check refuses members of another cluster or with unreadable metadata.
func (d *delegate) check(mn *memberlist.Node) error {
	meta, err := decodeMeta(mn.Meta)
	if err != nil {
		d.n.metrics.refused.WithLabelValues("metadata").Inc()
		if d.n.limit.allow("meta/" + mn.Name) {
			d.n.log.Warn("refusing member "+mn.Name+": unreadable metadata", "member", mn.Name, "err", err)
		}
		return fmt.Errorf("refuse member %s: %w", mn.Name, err)
	}
	if meta.Cluster != d.n.cfg.ClusterName {
		d.n.metrics.refused.WithLabelValues("cluster_name").Inc()
		if d.n.limit.allow("cluster/" + mn.Name) {
			d.n.log.Warn(fmt.Sprintf("refusing member %s: cluster name %q, want %q", mn.Name, meta.Cluster, d.n.cfg.ClusterName),
				"member", mn.Name, "address", mn.Address())
		}
		return fmt.Errorf("refuse member %s: cluster name %q, want %q", mn.Name, meta.Cluster, d.n.cfg.ClusterName)
	}
	return nil
}

func (d *delegate) NotifyAlive(mn *memberlist.Node) error { return d.check(mn) }

func (d *delegate) NotifyMerge(peers []*memberlist.Node) error {
	for _, p := range peers {
		if err := d.check(p); err != nil {
			return err
		}
	}
	return nil
}

func (d *delegate) AckPayload() []byte { return nil }

func (d *delegate) NotifyPingComplete(_ *memberlist.Node, rtt time.Duration, _ []byte) {
	d.n.metrics.probeRTT.Observe(rtt.Seconds())
}

var _ io.Writer = (*mlLogWriter)(nil)
