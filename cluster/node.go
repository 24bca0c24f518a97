// Package cluster is obs' membership: it wraps hashicorp/memberlist, adds
// node metadata, ownership by rendezvous hashing, leadership and a small
// cluster-wide state shared by gossip.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
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
	// duties are the changing duty keys by source (SetDuties).
	duties map[string][]string

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
		duties:  make(map[string][]string),
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
	if cfg.TombstoneTTL > 0 {
		n.store.ttl = cfg.TombstoneTTL
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
