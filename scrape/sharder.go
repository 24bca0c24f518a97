package scrape

import (
	"context"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	promscrape "github.com/prometheus/prometheus/scrape"
)

// Node-name labels Kubernetes discovery puts on a target.
var nodeNameLabels = []model.LabelName{
	"__meta_kubernetes_pod_node_name",
	"__meta_kubernetes_node_name",
	"__meta_kubernetes_endpoint_node_name",
	"__meta_kubernetes_endpointslice_endpoint_node_name",
}

// shardTarget is one discovered target after relabelling.
type shardTarget struct {
	key      string // job + final labels: the same on every member
	job      string
	lset     labels.Labels
	tLabels  model.LabelSet
	tgLabels model.LabelSet
	group    int // index of its group in the job's discovery result
	local    bool
}

// sharder sits between discovery and the scrape manager: it keeps the last
// full discovery result and passes on only the targets this member owns,
// again whenever membership changes.
type sharder struct {
	mode     string
	sh       Sharding
	delay    time.Duration
	scfgs    map[string]*promconfig.ScrapeConfig
	metrics  *metrics
	log      *slog.Logger
	now      func() time.Time
	localIPs map[string]bool
	hostname string

	mu         sync.Mutex
	scrapeM    *promscrape.Manager
	groups     map[string][]*targetgroup.Group // last full discovery result
	targets    map[string][]shardTarget        // per job
	ownedSince map[string]time.Time            // key → when it became ours
	active     map[string]bool                 // keys handed to the scrape manager
	moved      map[string]bool                 // discovered keys another member owns
	seen       bool                            // a discovery result arrived
}

func newSharder(mode string, sh Sharding, scfgs map[string]*promconfig.ScrapeConfig, m *metrics, log *slog.Logger) *sharder {
	d := sh.HandoffDelay
	switch {
	case d == 0:
		d = defaultHandoffDelay
	case d < 0:
		d = 0
	}
	if mode != ShardCluster {
		d = 0 // no other member scrapes these targets
	}
	return &sharder{mode: mode, sh: sh, delay: d, scfgs: scfgs, metrics: m, log: log, now: time.Now,
		groups: map[string][]*targetgroup.Group{}, targets: map[string][]shardTarget{},
		ownedSince: map[string]time.Time{}, active: map[string]bool{}, moved: map[string]bool{}}
}

func (s *sharder) setScrapeManager(m *promscrape.Manager) {
	s.mu.Lock()
	s.scrapeM = m
	s.mu.Unlock()
}

// run feeds the scrape manager until ctx ends.
func (s *sharder) run(ctx context.Context, in <-chan map[string][]*targetgroup.Group, out chan<- map[string][]*targetgroup.Group) {
	if s.mode == ShardNode {
		s.localIPs, s.hostname = localAddrs()
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	changed := s.sh.Changed
	if s.mode != ShardCluster {
		changed = nil
	}
	for {
		select {
		case <-ctx.Done():
			return
		case tsets, ok := <-in:
			if !ok {
				in = nil
				continue
			}
			s.setDiscovered(tsets)
		case <-changed:
		case <-timer.C:
		}
		sets, wait := s.update()
		if sets != nil {
			select {
			case out <- sets:
			case <-ctx.Done():
				return
			}
		}
		timer.Stop()
		if wait > 0 {
			timer.Reset(wait)
		}
	}
}

// setDiscovered stores a full discovery result and relabels its targets.
func (s *sharder) setDiscovered(tsets map[string][]*targetgroup.Group) {
	lb := labels.NewBuilder(labels.EmptyLabels())
	targets := make(map[string][]shardTarget, len(s.scfgs))
	for job, groups := range tsets {
		sc, ok := s.scfgs[job]
		if !ok {
			continue
		}
		var list []shardTarget
		for gi, tg := range groups {
			if tg == nil {
				continue
			}
			for _, tl := range tg.Targets {
				lset, err := promscrape.PopulateLabels(lb, sc, tl, tg.Labels)
				if err != nil || lset.IsEmpty() {
					continue // the scrape pool reports the same failures
				}
				st := shardTarget{key: targetKey(job, lset), job: job, lset: lset, tLabels: tl, tgLabels: tg.Labels, group: gi}
				if s.mode == ShardNode {
					st.local = s.isLocal(st)
				}
				list = append(list, st)
			}
		}
		targets[job] = list
	}
	s.mu.Lock()
	s.groups = tsets
	s.targets = targets
	s.seen = true
	s.mu.Unlock()
}

// targetKey is a target's identity for ownership: its job and its labels
// after relabelling, identical on every member.
func targetKey(job string, lset labels.Labels) string {
	return job + "\xff" + lset.String()
}

// targetKeyOf rebuilds the key of a running scrape target.
func targetKeyOf(t *promscrape.Target) string {
	b := labels.NewScratchBuilder(8)
	t.LabelsRange(func(l labels.Label) { b.Add(l.Name, l.Value) })
	b.Sort()
	return targetKey(t.GetValue(model.JobLabel), b.Labels())
}

// owner names the member that scrapes st, and whether that is this one.
func (s *sharder) owner(st shardTarget) (string, bool) {
	switch s.mode {
	case ShardCluster:
		m, ok := s.sh.Owner(st.key)
		if !ok {
			return "", false
		}
		return m, m == s.sh.Self
	case ShardNode:
		if st.local {
			return s.sh.Self, true
		}
		return "", false
	}
	return s.sh.Self, true
}

// update computes the target sets for the scrape manager. It returns nil
// before the first discovery result, and how long until a delayed target
// is due.
func (s *sharder) update() (map[string][]*targetgroup.Group, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.seen {
		return nil, 0
	}
	now := s.now()
	var wait time.Duration
	out := make(map[string][]*targetgroup.Group, len(s.scfgs))
	keep := make(map[string]bool, len(s.active))
	moved := make(map[string]bool)
	all := make(map[string]bool, len(s.ownedSince))
	var movedOut = map[string][]*promscrape.Target{}
	for job := range s.scfgs {
		out[job] = nil // every job, so removed targets leave the manager
		groups := s.groups[job]
		var sub []*targetgroup.Group
		if len(groups) > 0 {
			sub = make([]*targetgroup.Group, len(groups))
		}
		owned := 0
		for _, st := range s.targets[job] {
			all[st.key] = true
			_, mine := s.owner(st)
			if !mine {
				delete(s.ownedSince, st.key)
				moved[st.key] = true
				if s.active[st.key] {
					s.metrics.handoffs.WithLabelValues(job, "out").Inc()
					movedOut[job] = append(movedOut[job], promscrape.NewTarget(st.lset, s.scfgs[job], st.tLabels, st.tgLabels))
				}
				continue
			}
			since, ok := s.ownedSince[st.key]
			if !ok {
				since = now
				s.ownedSince[st.key] = now
				if s.moved[st.key] {
					// another member scraped it until now
					s.metrics.handoffs.WithLabelValues(job, "in").Inc()
				}
			}
			if !s.active[st.key] {
				if due := since.Add(s.delay); now.Before(due) {
					if w := due.Sub(now); wait == 0 || w < wait {
						wait = w
					}
					continue
				}
			}
			keep[st.key] = true
			owned++
			g := sub[st.group]
			if g == nil {
				src := groups[st.group]
				g = &targetgroup.Group{Source: src.Source, Labels: src.Labels}
				sub[st.group] = g
			}
			g.Targets = append(g.Targets, st.tLabels)
		}
		for _, g := range sub {
			if g != nil {
				out[job] = append(out[job], g)
			}
		}
		s.metrics.discovered.WithLabelValues(job).Set(float64(len(s.targets[job])))
		s.metrics.owned.WithLabelValues(job).Set(float64(owned))
	}
	// Forget ownership starts of targets no longer discovered.
	for k := range s.ownedSince {
		if !all[k] {
			delete(s.ownedSince, k)
		}
	}
	// A target that moved to another member is not gone: tell its scrape
	// loop not to write end-of-run staleness markers before the reload
	// that stops it.
	if s.scrapeM != nil {
		for job, ts := range movedOut {
			s.scrapeM.DisableEndOfRunStalenessMarkers(job, ts)
		}
	}
	s.active = keep
	s.moved = moved
	return out, wait
}

// handedOff reports that the target with this key is still discovered but
// owned by another member: its staleness markers must not be written.
func (s *sharder) handedOff(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.moved[key]
}

// isLocal reports whether a target runs on this node: Kubernetes node-name
// labels equal to this node, or (without them) an address on this host.
func (s *sharder) isLocal(st shardTarget) bool {
	for _, name := range nodeNameLabels {
		v, ok := st.tLabels[name]
		if !ok {
			v, ok = st.tgLabels[name]
		}
		if ok {
			return s.sh.NodeName != "" && string(v) == s.sh.NodeName
		}
	}
	host, _, err := net.SplitHostPort(st.lset.Get(model.AddressLabel))
	if err != nil {
		host = st.lset.Get(model.AddressLabel)
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" || (s.sh.NodeName != "" && host == s.sh.NodeName) || (s.hostname != "" && host == s.hostname) {
		return true
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback() || s.localIPs[ip.String()]
	}
	return false
}

func localAddrs() (map[string]bool, string) {
	ips := map[string]bool{}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				ips[n.IP.String()] = true
			}
		}
	}
	h, _ := os.Hostname()
	return ips, h
}

// TargetInfo is one discovered target and the member that scrapes it.
type TargetInfo struct {
	Job     string
	Address string
	// Labels are the discovered labels before relabelling (with __meta_*),
	// as the Target Allocator reports them.
	Labels labels.Labels
	// Owner is the member that scrapes it; empty when no member does (node
	// mode: a target on another node).
	Owner string
}

// Jobs lists the receiver's scrape jobs, sorted.
func (r *PrometheusReceiver) Jobs() []string {
	jobs := slices.Clone(r.jobs)
	slices.Sort(jobs)
	return jobs
}

// Targets lists every discovered target of job with its owner, computed
// now from the current membership: any member answers for the cluster.
func (r *PrometheusReceiver) Targets(job string) []TargetInfo {
	s := r.shard
	s.mu.Lock()
	list := slices.Clone(s.targets[job])
	s.mu.Unlock()
	out := make([]TargetInfo, 0, len(list))
	lb := labels.NewBuilder(labels.EmptyLabels())
	for _, st := range list {
		owner, _ := s.owner(st)
		promscrape.PopulateDiscoveredLabels(lb, s.scfgs[job], st.tLabels, st.tgLabels)
		out = append(out, TargetInfo{Job: job, Address: st.lset.Get(model.AddressLabel), Labels: lb.Labels(), Owner: owner})
	}
	slices.SortFunc(out, func(a, b TargetInfo) int { return strings.Compare(a.Address, b.Address) })
	return out
}
