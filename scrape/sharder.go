package scrape

import (
	"context"
	"fmt"
	"hash/fnv"
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

	// aligned: every member derives a target's scrape phase from
	// phaseSeed (Prometheus' offset seed of the shared Seed), so hand-offs
	// happen half-way between two scrapes.
	aligned   bool
	phaseSeed uint64

	mu        sync.Mutex
	scrapeM   *promscrape.Manager
	groups    map[string][]*targetgroup.Group // last full discovery result
	targets   map[string][]shardTarget        // per job
	owners    map[string]string               // key → owner at the last update
	startAt   map[string]time.Time            // ours, not yet scraped: when its scraping starts
	releaseAt map[string]time.Time            // scraped here, another's now: when its scraping stops
	active    map[string]bool                 // keys handed to the scrape manager
	moved     map[string]bool                 // discovered keys another member owns
	seen      bool                            // a discovery result arrived
	updated   bool                            // an update with a discovery result ran
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
		groups: map[string][]*targetgroup.Group{}, targets: map[string][]shardTarget{}, owners: map[string]string{},
		startAt: map[string]time.Time{}, releaseAt: map[string]time.Time{}, active: map[string]bool{}, moved: map[string]bool{}}
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
// before the first discovery result, and how long until a pending start or
// release is due.
//
// A target moving between two live members is scraped by the old owner
// until, and by the new one from, the same instant: half-way between two
// of its scrapes (every member knows its phase), HandoffDelay after the
// newest member's start. So the new owner's first scrape is the slot the
// old owner would have used. A target whose previous owner is gone (dead
// or left), or that was just discovered, starts at once.
func (s *sharder) update() (map[string][]*targetgroup.Group, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.seen {
		return nil, 0
	}
	now := s.now()
	live, newest := s.liveMembers()
	var wait time.Duration
	due := func(at time.Time) bool {
		if !now.Before(at) {
			return true
		}
		if w := at.Sub(now); wait == 0 || w < wait {
			wait = w
		}
		return false
	}
	out := make(map[string][]*targetgroup.Group, len(s.scfgs))
	keep := make(map[string]bool, len(s.active))
	moved := make(map[string]bool)
	owners := make(map[string]string, len(s.owners))
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
			owner, mine := s.owner(st)
			prev, known := s.owners[st.key]
			owners[st.key] = owner
			if mine {
				delete(s.releaseAt, st.key)
				if !s.active[st.key] {
					at, ok := s.startAt[st.key]
					if !ok {
						switch {
						case s.updated && !known && !now.Before(newest.Add(s.delay)),
							known && prev != "" && live != nil && !live[prev]:
							// a new target while no join is in progress, or
							// its owner died or left: nobody scrapes it
							at = now
						default:
							at = s.handoffAt(st, now, newest)
						}
						s.startAt[st.key] = at
						if s.moved[st.key] {
							// another member scraped it until now
							s.metrics.handoffs.WithLabelValues(job, "in").Inc()
						}
					}
					if !due(at) {
						continue
					}
					delete(s.startAt, st.key)
				}
				owned++
			} else {
				delete(s.startAt, st.key)
				moved[st.key] = true
				if !s.active[st.key] {
					continue
				}
				at, ok := s.releaseAt[st.key]
				if !ok {
					at = s.handoffAt(st, now, newest)
					s.releaseAt[st.key] = at
				}
				if due(at) {
					delete(s.releaseAt, st.key)
					s.metrics.handoffs.WithLabelValues(job, "out").Inc()
					movedOut[job] = append(movedOut[job], promscrape.NewTarget(st.lset, s.scfgs[job], st.tLabels, st.tgLabels))
					continue
				}
				// still scraped here until the hand-off point
			}
			keep[st.key] = true
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
	// Forget pending starts and releases of targets no longer discovered.
	for k := range s.startAt {
		if _, ok := owners[k]; !ok {
			delete(s.startAt, k)
		}
	}
	for k := range s.releaseAt {
		if _, ok := owners[k]; !ok {
			delete(s.releaseAt, k)
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
	s.owners = owners
	s.updated = true
	return out, wait
}

// liveMembers returns the live members' names and the newest start time;
// nil when Sharding.Members is not set.
func (s *sharder) liveMembers() (map[string]bool, time.Time) {
	if s.mode != ShardCluster || s.sh.Members == nil {
		return nil, time.Time{}
	}
	var newest time.Time
	ms := s.sh.Members()
	live := make(map[string]bool, len(ms))
	for _, m := range ms {
		live[m.Name] = true
		if m.Start.After(newest) {
			newest = m.Start
		}
	}
	return live, newest
}

// handoffAt is when a target moves between members: the first point
// half-way between two of its scrapes at or after HandoffDelay past the
// newest member's start (past now when that is unknown or gone by). Every
// member computes the same instant for the same change.
func (s *sharder) handoffAt(st shardTarget, now, newest time.Time) time.Time {
	from := now.Add(s.delay)
	if !newest.IsZero() {
		from = newest.Add(s.delay)
		if from.Before(now) {
			from = now
		}
	}
	if !s.aligned {
		return from
	}
	iv := int64(s.scfgs[st.job].ScrapeInterval)
	if iv <= 0 {
		return from
	}
	mid := int64(s.phase(st)) + iv/2 // scrapes at phase + k·iv; hand off between them
	x := from.UnixNano() - mid
	k := x / iv
	if x > k*iv {
		k++
	}
	return time.Unix(0, k*iv+mid)
}

// phase is the offset into the scrape interval (from the Unix epoch) at
// which Prometheus scrapes the target: (hash(target) ^ seed) % interval,
// as Target.offset in Prometheus v0.316.0 scrape/target.go computes it
// (TestHandoffPhaseMatchesScrapes checks it against real scrapes).
func (s *sharder) phase(st shardTarget) time.Duration {
	t := promscrape.NewTarget(st.lset, s.scfgs[st.job], st.tLabels, st.tgLabels)
	h := fnv.New64a()
	fmt.Fprintf(h, "%016d", st.lset.Hash())
	h.Write([]byte(t.URL().String()))
	return time.Duration((h.Sum64() ^ s.phaseSeed) % uint64(s.scfgs[st.job].ScrapeInterval))
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
