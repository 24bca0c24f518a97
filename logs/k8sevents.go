package logs

// The k8s_events receiver: Kubernetes events (core/v1) as log records,
// watched by one member of the cluster at a time.
//
// # Leadership and exactly once
//
// Each watch stream (all namespaces, or one per listed namespace) has a
// duty key: "k8s-events", or "k8s-events/<ns>" with shard_by: namespace.
// Only the member for which Duty.IsLeader(key) holds watches it. With
// shard_by: namespace and no namespaces listed, every member lists and
// watches the namespaces (see k8sevents_namespaces.go) and runs one stream
// per namespace, so each namespace, including one created later, is
// watched by its rendezvous owner alone. The leader
// batches events, hands a batch to consume together with its resume point
// (the extra key/values, same WAL transaction), and only after consume
// returned nil publishes the same resume point as gossiped cluster state.
// A resume point is the resourceVersion to watch from, a sequence number,
// the identities (uid, resourceVersion) of the last events sent, the
// random id of the leadership term that wrote it, and whether that term
// ended cleanly ("released").
//
// The gossiped point can lag the WAL by one batch when a leader dies
// between its commit and the gossip. A new leader therefore starts only
// from a released point, or from one written by its own member's previous
// life: read back from the WAL through Duty.Checkpoint, or gossiped under
// this member's name (Duty.Self): the previous process is gone (it held
// the WAL, which the new one opened), and whatever it committed after
// that point is in this member's WAL, so the newer of the two is exact.
// This is what lets a restarted leader resume at once a stream that never
// had an event (no checkpoint in the WAL, only its gossiped claim). When
// the point is another member's and not released, it waits up to handover_wait: a
// member that was killed and restarts (a StatefulSet pod) reads its own
// checkpoint from its WAL and publishes it as released, so the new leader
// resumes exactly after the last event that member committed. Only when
// the old leader does not come back in time does the new leader resume
// from the gossiped point, counted in obs_logs_k8s_events_handover_timeouts_total
// (events of the old leader's last batch can then be sent twice, once its
// WAL is replayed). A leader that loses the duty drops its uncommitted
// batch, finishes a consume in flight, and publishes its point as released.
//
// A watch whose resourceVersion is too old (410 Gone) relists and sends
// only what the resume point does not cover: resourceVersions above it,
// minus the identities it lists.
//
// When a namespace is deleted, its stream stops and, once it has exited,
// its resume point is deleted from the cluster state (a gossiped tombstone)
// by the member that wrote it and by the namespace's owner, so a cluster
// whose namespaces come and go does not fill its state.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/obs-dev/obs/actors"
)

// K8sEventsConfig holds the k8s_events receiver's settings (the
// Collector's k8seventsreceiver keys, plus obs' leadership settings).
type K8sEventsConfig struct {
	// AuthType is how to reach the API server: serviceAccount (in-cluster,
	// the default), kubeConfig (KUBECONFIG or ~/.kube/config) or none.
	AuthType string `yaml:"auth_type"`
	// Context is the kubeconfig context with auth_type kubeConfig; empty:
	// the current one.
	Context string `yaml:"context"`
	// Namespaces to watch; empty: all namespaces, in one watch (or, with
	// shard_by: namespace, every namespace the API server lists, found
	// and followed by a watch on namespaces).
	Namespaces []string `yaml:"namespaces"`
	// ShardBy "" elects one leader for every namespace; "namespace" gives
	// each namespace its own leader (its rendezvous owner).
	ShardBy string `yaml:"shard_by"`
	// FlushInterval is how long events wait to be batched; default 200ms.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// MaxBatchSize is the most events in one batch; default 500.
	MaxBatchSize int `yaml:"max_batch_size"`
	// HandoverWait is how long a new leader waits for the previous one's
	// final resume point (a clean hand-over, or the killed leader restarted
	// and reporting from its WAL) before resuming from the gossiped one;
	// default 30s. With no resume point gossiped at all it waits at most
	// 5s (for a restarted member to join and pull the cluster state).
	HandoverWait time.Duration `yaml:"handover_wait"`
}

// DefaultK8sEventsConfig returns the defaults.
func DefaultK8sEventsConfig() K8sEventsConfig {
	return K8sEventsConfig{
		AuthType:      "serviceAccount",
		FlushInterval: 200 * time.Millisecond,
		MaxBatchSize:  500,
		HandoverWait:  30 * time.Second,
	}
}

// Validate checks the settings; errors name the key.
func (c *K8sEventsConfig) Validate() error {
	var errs []error
	switch c.AuthType {
	case "serviceAccount", "kubeConfig", "none":
	default:
		errs = append(errs, fmt.Errorf("auth_type: %q is not serviceAccount, kubeConfig or none", c.AuthType))
	}
	switch c.ShardBy {
	case "", "namespace":
	default:
		errs = append(errs, fmt.Errorf("shard_by: %q is not \"\" or namespace", c.ShardBy))
	}
	seen := map[string]bool{}
	for i, ns := range c.Namespaces {
		if ns == "" || len(ns) > 63 || strings.ContainsAny(ns, "/ ") {
			errs = append(errs, fmt.Errorf("namespaces[%d]: %q is not a namespace name", i, ns))
		}
		if seen[ns] {
			errs = append(errs, fmt.Errorf("namespaces[%d]: %q is listed twice", i, ns))
		}
		seen[ns] = true
	}
	if c.FlushInterval <= 0 {
		errs = append(errs, fmt.Errorf("flush_interval: %s must be positive", c.FlushInterval))
	}
	if c.MaxBatchSize <= 0 {
		errs = append(errs, fmt.Errorf("max_batch_size: %d must be positive", c.MaxBatchSize))
	}
	if c.HandoverWait < 0 {
		errs = append(errs, fmt.Errorf("handover_wait: %s is negative", c.HandoverWait))
	}
	return errors.Join(errs...)
}

// NewKubeClient builds a clientset for auth_type: serviceAccount uses the
// pod's in-cluster config, kubeConfig the file kubeconfig (empty: the
// KUBECONFIG variable or ~/.kube/config) and context, none the in-cluster
// address without credentials.
func NewKubeClient(authType, kubeconfig, kubeContext string) (kubernetes.Interface, error) {
	var cfg *rest.Config
	var err error
	switch authType {
	case "serviceAccount", "":
		cfg, err = rest.InClusterConfig()
	case "kubeConfig":
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if kubeconfig != "" {
			rules.ExplicitPath = kubeconfig
		}
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
			&clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	case "none":
		cfg, err = rest.InClusterConfig()
		if err == nil {
			cfg = rest.AnonymousClientConfig(cfg)
		}
	default:
		return nil, fmt.Errorf("build kubernetes client: auth_type %q is not serviceAccount, kubeConfig or none", authType)
	}
	if err != nil {
		return nil, fmt.Errorf("build kubernetes client (auth_type %s): %w", authType, err)
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("build kubernetes client: %w", err)
	}
	return c, nil
}

// Duty is what the cluster tells the receiver, as values (roles wires
// cluster.Node's methods in).
type Duty struct {
	// IsLeader reports whether this member owns a duty key among gateways
	// ("k8s-events", or "k8s-events/<ns>" with shard_by: namespace).
	IsLeader func(key string) bool
	// Changed signals that membership changed (coalescing). Optional: the
	// receiver also re-checks every second.
	Changed <-chan struct{}
	// GetState and SetState read and write cluster-wide gossiped state
	// (cluster.Node.State and SetState; values up to 1 KiB).
	GetState func(key string) ([]byte, bool)
	SetState func(key string, value []byte) error
	// Checkpoint reads a key back from this member's WAL (wal.DB.Get: nil,
	// nil when absent). Optional; without it a restarted leader cannot
	// report its last batch and the next leader waits handover_wait.
	Checkpoint func(key []byte) ([]byte, error)
	// Self is this member's name, the same across its restarts (a
	// StatefulSet pod's), and StateWriter returns a key's value with the
	// name of the member that wrote it (cluster.Node.StateWriter). With
	// both, a resume point written by this member's previous life is
	// recognised and resumed from at once. Optional.
	Self        string
	StateWriter func(key string) (value []byte, writer string, ok bool)
	// DeleteState removes a key from the cluster state (a gossiped
	// tombstone): the resume point of a namespace that was deleted.
	// Optional; without it such points stay.
	DeleteState func(key string) error
	// Duties reports the duty keys the receiver (source) has now, for the
	// cluster view (cluster.Node.SetDuties); nil keys when it stops.
	// Optional.
	Duties func(source string, keys []string)
}

// K8sEventsReceiver watches Kubernetes events while this member leads.
type K8sEventsReceiver struct {
	id      string
	cfg     K8sEventsConfig
	client  kubernetes.Interface
	consume func(ctx context.Context, b actors.Batch, extra []actors.KV) error
	duty    Duty
	log     *slog.Logger
	m       *k8sEventsMetrics
	streams []*eventStream // the configured ones; none when discovering
	// discover: shard_by namespace with no namespaces listed; streams
	// come and go with the namespaces the API server lists.
	discover bool

	// recheck is how often leadership is polled besides Changed.
	recheck time.Duration
	// consumeTimeout bounds one consume call.
	consumeTimeout time.Duration
	// syncWait bounds the wait for cluster state when none is gossiped.
	syncWait time.Duration
	// publishWarn rate-limits the warning of a failed publish: with a full
	// cluster state every commit of every stream fails the same way.
	publishWarn warnLimiter
}

// warnLimiter lets one warning through per interval.
type warnLimiter struct {
	mu   sync.Mutex
	last time.Time
}

func (l *warnLimiter) allow(now time.Time, every time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < every {
		return false
	}
	l.last = now
	return true
}

// NewK8sEventsReceiver validates cfg and builds the receiver; Run starts it.
func NewK8sEventsReceiver(id string, cfg K8sEventsConfig, client kubernetes.Interface,
	consume func(ctx context.Context, b actors.Batch, extra []actors.KV) error,
	duty Duty, log *slog.Logger, reg prometheus.Registerer) (*K8sEventsReceiver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("k8s_events receiver %s: %w", id, err)
	}
	switch {
	case id == "":
		return nil, errors.New("k8s_events receiver: empty id")
	case client == nil:
		return nil, fmt.Errorf("k8s_events receiver %s: nil kubernetes client", id)
	case consume == nil:
		return nil, fmt.Errorf("k8s_events receiver %s: nil consume func", id)
	case duty.IsLeader == nil || duty.GetState == nil || duty.SetState == nil:
		return nil, fmt.Errorf("k8s_events receiver %s: duty needs IsLeader, GetState and SetState", id)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newK8sEventsMetrics(id, reg)
	if err != nil {
		return nil, fmt.Errorf("k8s_events receiver %s: register metrics: %w", id, err)
	}
	r := &K8sEventsReceiver{id: id, cfg: cfg, client: client, consume: consume, duty: duty,
		log: log, m: m, recheck: time.Second, consumeTimeout: time.Minute, syncWait: 5 * time.Second}
	namespaces := cfg.Namespaces
	switch {
	case len(namespaces) == 0 && cfg.ShardBy == "namespace":
		r.discover = true
	case len(namespaces) == 0:
		namespaces = []string{metav1.NamespaceAll}
	}
	for _, ns := range namespaces {
		s, err := r.newStream(ns)
		if err != nil {
			return nil, err
		}
		r.streams = append(r.streams, s)
	}
	return r, nil
}

// newStream builds the stream of one namespace ("" = all).
func (r *K8sEventsReceiver) newStream(ns string) (*eventStream, error) {
	s := &eventStream{r: r, ns: ns, dutyKey: "k8s-events", notify: make(chan struct{}, 1)}
	if r.cfg.ShardBy == "namespace" {
		s.dutyKey = "k8s-events/" + ns
	}
	s.stateKey = "k8s_events/" + r.id + "/all"
	if ns != "" {
		s.stateKey = "k8s_events/" + r.id + "/ns/" + ns
	}
	if len(s.stateKey) > 128 {
		return nil, fmt.Errorf("k8s_events receiver %s: state key %q is longer than 128 bytes", r.id, s.stateKey)
	}
	s.log = r.log.With("namespace", ns)
	return s, nil
}

// Run watches while leading until ctx ends; it returns after every
// goroutine it started has exited, with leadership released.
func (r *K8sEventsReceiver) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	rs := &runningStreams{r: r, start: time.Now(), ctx: ctx, byNS: map[string]*runningStream{}}
	defer func() {
		cancel()
		rs.wg.Wait()
		if r.duty.Duties != nil {
			r.duty.Duties(r.id, nil)
		}
	}()
	for _, s := range r.streams {
		rs.add(s)
	}
	rs.reportDuties()
	var nsChanged <-chan struct{}
	var nsList func() []string
	if r.discover {
		nw, err := newNamespaceWatch(r.client)
		if err != nil {
			return fmt.Errorf("k8s_events receiver %s: %w", r.id, err)
		}
		rs.wg.Go(func() { nw.run(ctx) })
		nsChanged, nsList = nw.changed, nw.list
		rs.stopped = nw.signal
		rs.listed = nw.has
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.duty.Changed:
			rs.notify()
		case <-nsChanged:
			rs.sync(nsList())
		}
	}
}

// runningStreams are the streams Run started, by namespace; only Run's
// goroutine touches the map.
type runningStreams struct {
	r     *K8sEventsReceiver
	start time.Time
	ctx   context.Context
	wg    sync.WaitGroup
	byNS  map[string]*runningStream
	// stopped is called when a stream stopped by sync has exited (the
	// namespace may be back by then).
	stopped func()
	// listed reports whether a namespace exists now.
	listed func(ns string) bool
}

type runningStream struct {
	s      *eventStream
	cancel context.CancelFunc
	done   chan struct{}
}

func (rs *runningStreams) add(s *eventStream) {
	s.start = rs.start
	if err := s.loadCheckpoint(); err != nil {
		rs.r.log.Warn("read k8s events checkpoint", "key", s.stateKey, "err", err)
	}
	ctx, cancel := context.WithCancel(rs.ctx)
	e := &runningStream{s: s, cancel: cancel, done: make(chan struct{})}
	rs.byNS[s.ns] = e
	rs.wg.Go(func() {
		defer close(e.done)
		s.run(ctx)
	})
}

// notify fans the membership signal out to every stream.
func (rs *runningStreams) notify() {
	for _, e := range rs.byNS {
		select {
		case e.s.notify <- struct{}{}:
		default:
		}
	}
}

// sync starts a stream for each namespace that has none and stops the
// streams of namespaces that are gone. A namespace that comes back
// before its old stream exited waits for it: two streams of one
// namespace in one member would share a resume point.
func (rs *runningStreams) sync(namespaces []string) {
	want := make(map[string]bool, len(namespaces))
	for _, ns := range namespaces {
		want[ns] = true
	}
	for ns, e := range rs.byNS {
		if want[ns] {
			continue
		}
		select {
		case <-e.done:
			delete(rs.byNS, ns)
			continue
		default:
		}
		if e.cancel != nil {
			rs.r.log.Info("k8s events namespace gone; its stream stops", "namespace", ns)
			e.cancel()
			e.cancel = nil
			rs.wg.Go(func() {
				<-e.done
				rs.forget(e.s)
				if rs.stopped != nil {
					rs.stopped()
				}
			})
		}
	}
	for _, ns := range namespaces {
		if e, ok := rs.byNS[ns]; ok {
			select {
			case <-e.done:
				delete(rs.byNS, ns) // stopped for a namespace that came back
			default:
				continue
			}
		}
		s, err := rs.r.newStream(ns)
		if err != nil {
			rs.r.log.Warn("k8s events namespace not watched", "namespace", ns, "err", err)
			continue
		}
		rs.r.log.Info("k8s events namespace found", "namespace", ns, "duty", s.dutyKey)
		rs.add(s)
	}
	rs.r.m.namespaces.Set(float64(len(rs.byNS)))
	rs.reportDuties()
}

// reportDuties tells the cluster view which duty keys the streams have.
func (rs *runningStreams) reportDuties() {
	if rs.r.duty.Duties == nil {
		return
	}
	keys := make([]string, 0, len(rs.byNS))
	for _, e := range rs.byNS {
		keys = append(keys, e.s.dutyKey)
	}
	slices.Sort(keys)
	rs.r.duty.Duties(rs.r.id, slices.Compact(keys))
}

// forget deletes the resume point of a stream whose namespace is gone, once
// its stream exited (a leader has published its release by then). The
// member whose point it is deletes it, and the namespace's owner (in case
// that member is gone): a later write, by a leader of the namespace
// created again, beats the deletion.
func (rs *runningStreams) forget(s *eventStream) {
	if rs.r.duty.DeleteState == nil || s.ns == "" || (rs.listed != nil && rs.listed(s.ns)) {
		return
	}
	cur, writer, ok := s.state()
	if !ok {
		return
	}
	mine := (s.ownOK && cur.Holder == s.own.Holder) || (writer != "" && writer == rs.r.duty.Self)
	if !mine && !rs.r.duty.IsLeader(s.dutyKey) {
		return
	}
	if err := rs.r.duty.DeleteState(s.stateKey); err != nil {
		s.log.Warn("delete the resume point of a deleted namespace", "key", s.stateKey, "err", err)
		return
	}
	s.log.Info("k8s events namespace gone; its resume point is deleted", "key", s.stateKey)
}

// eventStream is one watch (all namespaces or one) and its resume point.
type eventStream struct {
	r        *K8sEventsReceiver
	ns       string
	dutyKey  string
	stateKey string
	notify   chan struct{}
	log      *slog.Logger
	start    time.Time

	// own is the last point this member committed (from the WAL at start,
	// then from each commit), ok when set.
	own   resumePoint
	ownOK bool
	// resolve is set while a checkpoint from this member's previous life
	// may still have to be published as released.
	resolve bool
}

func (s *eventStream) loadCheckpoint() error {
	// A point gossiped under this member's name by its previous process
	// may wait for a release (resolveOwn), checkpoint or not.
	s.resolve = s.r.duty.Self != "" && s.r.duty.StateWriter != nil
	if s.r.duty.Checkpoint == nil {
		return nil
	}
	b, err := s.r.duty.Checkpoint([]byte(s.stateKey))
	if err != nil || b == nil {
		return err
	}
	p, err := decodeResumePoint(b)
	if err != nil {
		return err
	}
	s.own, s.ownOK, s.resolve = p, true, true
	return nil
}

// state returns the gossiped resume point and the member that wrote it
// ("" when Duty cannot tell).
func (s *eventStream) state() (resumePoint, string, bool) {
	var b []byte
	var writer string
	var ok bool
	if s.r.duty.StateWriter != nil {
		b, writer, ok = s.r.duty.StateWriter(s.stateKey)
	} else {
		b, ok = s.r.duty.GetState(s.stateKey)
	}
	if !ok {
		return resumePoint{}, "", false
	}
	p, err := decodeResumePoint(b)
	if err != nil {
		s.log.Warn("ignore k8s events resume point from cluster state", "key", s.stateKey, "err", err)
		return resumePoint{}, "", false
	}
	return p, writer, true
}

// previousLife reports whether a gossiped point was written under this
// member's name but not by this process's terms of the stream (whose
// holder s.own has; callers check that first): by its previous process.
func (s *eventStream) previousLife(cur resumePoint, writer string) bool {
	return s.r.duty.Self != "" && writer == s.r.duty.Self && !(s.ownOK && cur.Holder == s.own.Holder)
}

// newest is the later of the gossiped point and this member's own.
func (s *eventStream) newest(cur resumePoint) resumePoint {
	if s.ownOK && s.own.Seq > cur.Seq {
		return s.own
	}
	return cur
}

func (s *eventStream) publish(p resumePoint) {
	if err := s.r.duty.SetState(s.stateKey, p.encode()); err != nil {
		s.r.m.publishErrors.Inc()
		if s.r.publishWarn.allow(time.Now(), time.Minute) {
			s.log.Warn("publish k8s events resume point (logged once a minute; obs_logs_k8s_events_publish_errors_total counts them)", "err", err)
		}
	}
}

// wait blocks until a membership signal, d, or ctx; false when ctx ended.
func (s *eventStream) wait(ctx context.Context, t *time.Timer, d time.Duration) bool {
	t.Reset(d)
	select {
	case <-ctx.Done():
		return false
	case <-s.notify:
	case <-t.C:
	}
	return true
}

func (s *eventStream) run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	resolveUntil := time.Now().Add(2*s.r.cfg.HandoverWait + 10*time.Second)
	for ctx.Err() == nil {
		if s.r.duty.IsLeader(s.dutyKey) {
			s.r.m.leaderChanges.Inc()
			s.r.m.leader.Inc()
			s.log.Info("k8s events leadership taken", "duty", s.dutyKey)
			if p, ok := s.acquire(ctx, t); ok {
				s.lead(ctx, t, p)
			}
			s.r.m.leader.Dec()
			s.log.Info("k8s events leadership ended", "duty", s.dutyKey)
			continue
		}
		if s.resolve {
			s.resolveOwn(time.Now().After(resolveUntil))
		}
		if !s.wait(ctx, t, s.r.recheck) {
			return
		}
	}
}

// resolveOwn publishes this member's checkpoint as released when the
// gossiped point is from the same (dead) leadership term and not newer:
// the leader waiting for it can then resume exactly.
func (s *eventStream) resolveOwn(giveUp bool) {
	cur, writer, ok := s.state()
	switch {
	case ok && s.previousLife(cur, writer):
		// A term of this member's previous process, which committed
		// nothing after it (or its commit is in s.own, from the WAL).
		if !cur.Released {
			rel := s.newest(cur)
			rel.Released = true
			s.publish(rel)
			s.log.Info("k8s events point of this member's previous process published as released for the next leader", "seq", rel.Seq)
		}
		s.resolve = false
	case ok && s.ownOK && cur.Holder == s.own.Holder:
		if !cur.Released && s.own.Seq >= cur.Seq {
			rel := s.own
			rel.Released = true
			s.publish(rel)
			s.log.Info("k8s events checkpoint from the WAL published for the next leader", "seq", rel.Seq)
		}
		s.resolve = false
	case ok, giveUp:
		s.resolve = false // another term moved on, or nothing gossiped
	}
}

// acquire decides where the new term resumes; false if leadership or ctx
// ended first.
func (s *eventStream) acquire(ctx context.Context, t *time.Timer) (resumePoint, bool) {
	now := time.Now()
	deadline := now.Add(s.r.cfg.HandoverWait)
	// With nothing gossiped, wait only long enough for a (re)started
	// member to join and pull the cluster state; a stream that appears
	// later (a new namespace) waits a second, for the claim of a leader
	// that may have started it a moment ago.
	syncDeadline := now.Add(min(s.r.cfg.HandoverWait, s.r.syncWait,
		max(time.Until(s.start.Add(s.r.syncWait)), time.Second)))
	for {
		if ctx.Err() != nil || !s.r.duty.IsLeader(s.dutyKey) {
			return resumePoint{}, false
		}
		cur, writer, ok := s.state()
		timedOut := !time.Now().Before(deadline)
		if !ok {
			timedOut = !time.Now().Before(syncDeadline)
		}
		switch {
		case ok && s.ownOK && cur.Holder == s.own.Holder:
			// The last term was this member's (maybe its previous life):
			// its own record is at least as new as the gossip.
			if s.own.Seq >= cur.Seq {
				return s.own, true
			}
			return cur, true
		case ok && s.previousLife(cur, writer):
			// Written under this member's name by its previous process
			// (gone: this one holds its WAL), e.g. the claim of a stream
			// that never had an event. Anything committed after it is
			// in s.own.
			s.log.Info("k8s events point of this member's previous process; resuming at once", "seq", cur.Seq)
			return s.newest(cur), true
		case ok && cur.Released:
			return cur, true
		case ok && timedOut:
			s.r.m.handoverTimeouts.Inc()
			s.log.Warn("previous k8s events leader did not hand over; resuming from the gossiped point",
				"waited", s.r.cfg.HandoverWait, "seq", cur.Seq)
			return cur, true
		case !ok && timedOut && s.ownOK:
			return s.own, true
		case !ok && timedOut:
			return resumePoint{}, true // a fresh start
		}
		left := time.Until(deadline)
		if !ok {
			left = time.Until(syncDeadline)
		}
		if left > 250*time.Millisecond {
			left = 250 * time.Millisecond
		}
		if !s.wait(ctx, t, left) {
			return resumePoint{}, false
		}
	}
}

// term is one leadership term's watch state.
type term struct {
	s     *eventStream
	p     resumePoint // committed and published
	batch plog.Logs
	ids   []eventID // identities in batch, in order
	rv    string    // resourceVersion after batch (event or bookmark)
}

// lead watches until leadership or ctx ends, then releases.
func (s *eventStream) lead(ctx context.Context, t *time.Timer, start resumePoint) {
	tm := &term{s: s, p: start}
	tm.p.Holder = newHolder()
	tm.p.Released = false
	tm.rv = tm.p.RV
	s.publish(tm.p) // claim the stream
	s.log.Info("k8s events watch starts", "seq", tm.p.Seq, "resource_version", tm.p.RV)
	s.own, s.ownOK, s.resolve = tm.p, true, false
	defer func() {
		// Logged before the release is published: the next leader's
		// "watch starts" comes after it.
		s.log.Info("k8s events watch ends", "seq", tm.p.Seq)
		tm.p.Released = true
		if tm.rv != "" && len(tm.ids) == 0 {
			tm.p.RV = tm.rv // a bookmark beyond the last commit
		}
		s.publish(tm.p)
		s.own = tm.p
	}()

	backoff := 100 * time.Millisecond
	for ctx.Err() == nil && s.r.duty.IsLeader(s.dutyKey) {
		if tm.p.RV == "" {
			// No position yet: nothing was ever sent for this stream.
			if err := tm.relist(ctx, len(tm.p.Sent) == 0); err != nil {
				if !tm.backoff(ctx, t, &backoff, "list k8s events", err) {
					return
				}
				continue
			}
			if !tm.flush(ctx) {
				return
			}
		}
		err := tm.watch(ctx, t)
		if err == nil {
			return // leadership or ctx ended
		}
		if isGone(err) {
			s.r.m.relists.Inc()
			s.log.Info("k8s events resume point too old; relisting", "resource_version", tm.p.RV)
			if err := tm.relist(ctx, false); err != nil {
				if !tm.backoff(ctx, t, &backoff, "list k8s events", err) {
					return
				}
				continue
			}
			if !tm.flush(ctx) {
				return
			}
			backoff = 100 * time.Millisecond
			continue
		}
		if errors.Is(err, errRewatch) {
			backoff = 100 * time.Millisecond
			continue
		}
		if !tm.backoff(ctx, t, &backoff, "watch k8s events", err) {
			return
		}
	}
}

var errRewatch = errors.New("watch closed")

func (tm *term) backoff(ctx context.Context, t *time.Timer, d *time.Duration, what string, err error) bool {
	tm.s.log.Warn(what, "err", err, "retry_in", *d)
	tm.drop()
	ok := tm.s.wait(ctx, t, *d)
	*d = min(2**d, 10*time.Second)
	return ok && tm.s.r.duty.IsLeader(tm.s.dutyKey)
}

func isGone(err error) bool {
	return apierrors.IsResourceExpired(err) || apierrors.IsGone(err)
}

// relist lists the events and batches those the resume point does not
// cover. fresh: the very first start, where (as in the Collector) only
// events since the receiver started are sent.
func (tm *term) relist(ctx context.Context, fresh bool) error {
	tm.drop()
	var items []corev1.Event
	opts := metav1.ListOptions{Limit: 500}
	var listRV string
	for {
		l, err := tm.s.r.client.CoreV1().Events(tm.s.ns).List(ctx, opts)
		if err != nil {
			return fmt.Errorf("list events: %w", err)
		}
		items = append(items, l.Items...)
		listRV = l.ResourceVersion
		if l.Continue == "" {
			break
		}
		opts.Continue = l.Continue
	}
	slices.SortStableFunc(items, func(a, b corev1.Event) int {
		return compareRV(a.ResourceVersion, b.ResourceVersion)
	})
	for i := range items {
		ev := &items[i]
		tm.s.r.m.received.Inc()
		// Event times have whole seconds.
		if fresh && eventTime(ev).Before(tm.s.start.Truncate(time.Second)) {
			continue
		}
		if !fresh && tm.sent(ev) {
			tm.s.r.m.skipped.Inc()
			continue
		}
		tm.add(ev)
	}
	tm.rv = listRV
	return nil
}

// sent reports whether the committed resume point covers ev.
func (tm *term) sent(ev *corev1.Event) bool {
	id := eventID{UID: string(ev.UID), RV: ev.ResourceVersion}
	if slices.Contains(tm.p.Sent, id) || slices.Contains(tm.ids, id) {
		return true
	}
	if tm.p.RV == "" {
		return false
	}
	a, errA := strconv.ParseUint(ev.ResourceVersion, 10, 64)
	b, errB := strconv.ParseUint(tm.p.RV, 10, 64)
	return errA == nil && errB == nil && a <= b
}

func (tm *term) add(ev *corev1.Event) {
	if tm.ids == nil {
		tm.batch = plog.NewLogs()
	}
	appendEvent(tm.batch, ev)
	tm.ids = append(tm.ids, eventID{UID: string(ev.UID), RV: ev.ResourceVersion})
	tm.rv = ev.ResourceVersion
}

func (tm *term) drop() {
	tm.batch, tm.ids = plog.Logs{}, nil
	tm.rv = tm.p.RV
}

// watch reads the watch from the resume point, flushing batches; nil when
// leadership or ctx ended, errRewatch when the server closed the watch,
// a Gone error when the point is too old.
func (tm *term) watch(ctx context.Context, t *time.Timer) error {
	s := tm.s
	w, err := s.r.client.CoreV1().Events(s.ns).Watch(ctx, metav1.ListOptions{
		ResourceVersion: tm.rv, AllowWatchBookmarks: true})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("watch events: %w", err)
	}
	defer w.Stop()
	recheck := time.NewTicker(s.r.recheck)
	defer recheck.Stop()
	flushAt := time.Time{}
	for {
		var flushC <-chan time.Time
		if !flushAt.IsZero() {
			t.Reset(time.Until(flushAt))
			flushC = t.C
		}
		select {
		case <-ctx.Done():
			tm.drop()
			return nil
		case <-s.notify:
			if !s.r.duty.IsLeader(s.dutyKey) {
				tm.drop()
				return nil
			}
		case <-recheck.C:
			if !s.r.duty.IsLeader(s.dutyKey) {
				tm.drop()
				return nil
			}
		case <-flushC:
			if !tm.flush(ctx) {
				return nil
			}
			flushAt = time.Time{}
		case e, open := <-w.ResultChan():
			if !open {
				if !tm.flush(ctx) {
					return nil
				}
				return errRewatch
			}
			switch e.Type {
			case watch.Added, watch.Modified:
				ev, ok := e.Object.(*corev1.Event)
				if !ok {
					continue
				}
				s.r.m.received.Inc()
				if tm.sent(ev) {
					s.r.m.skipped.Inc()
					continue
				}
				tm.add(ev)
				if len(tm.ids) >= s.r.cfg.MaxBatchSize {
					if !tm.flush(ctx) {
						return nil
					}
					flushAt = time.Time{}
				} else if flushAt.IsZero() {
					flushAt = time.Now().Add(s.r.cfg.FlushInterval)
				}
			case watch.Bookmark:
				if ev, ok := e.Object.(*corev1.Event); ok && ev.ResourceVersion != "" {
					tm.rv = ev.ResourceVersion
				}
			case watch.Error:
				err := apierrors.FromObject(e.Object)
				if !tm.flush(ctx) {
					return nil
				}
				return fmt.Errorf("watch events: %w", err)
			}
		}
	}
}

// flush commits the batch (retrying while leading) and publishes the new
// resume point; false when leadership or ctx ended before it committed
// (the batch is dropped: the next leader reads it again).
func (tm *term) flush(ctx context.Context) bool {
	s := tm.s
	if len(tm.ids) == 0 {
		if tm.rv != tm.p.RV && tm.rv != "" {
			first := tm.p.RV == ""
			tm.p.RV = tm.rv // a bookmark or list position; publish with the next commit
			if first {
				// The first position of a stream that never sent an
				// event (a quiet namespace): gossip it now, so that a
				// leader after a crash watches from here instead of
				// starting fresh and skipping what happened meanwhile.
				s.own = tm.p
				s.publish(tm.p)
			}
		}
		return true
	}
	next := tm.p
	next.Seq++
	next.RV = tm.rv
	next.Sent = append(slices.Clone(tm.p.Sent), tm.ids...)
	next.trim()
	enc := next.encode()
	n := len(tm.ids)
	backoff := 100 * time.Millisecond
	for {
		if ctx.Err() != nil || !s.r.duty.IsLeader(s.dutyKey) {
			tm.drop()
			return false
		}
		// The consume call is not cancelled with ctx: an abandoned call
		// could still commit, and the resume point would not know.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.r.consumeTimeout)
		// consume owns what it gets; keep ours for a retry.
		b := actors.LogsBatch(tm.batch).Clone()
		err := s.r.consume(cctx, b, []actors.KV{{Key: []byte(tm.s.stateKey), Value: enc}})
		cancel()
		if err == nil {
			break
		}
		s.r.m.refused.Add(float64(n))
		reason := "error"
		if errors.Is(err, actors.ErrRefused) {
			reason = "refused"
		}
		s.log.Warn("store k8s events", "events", n, "reason", reason, "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		backoff = min(2*backoff, 5*time.Second)
	}
	s.r.m.sent.Add(float64(n))
	s.r.m.accepted.Add(float64(n))
	tm.p = next
	s.own = next
	s.publish(next)
	tm.batch, tm.ids = plog.Logs{}, nil
	tm.rv = next.RV
	return true
}

func compareRV(a, b string) int {
	x, errX := strconv.ParseUint(a, 10, 64)
	y, errY := strconv.ParseUint(b, 10, 64)
	if errX != nil || errY != nil {
		return strings.Compare(a, b)
	}
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func newHolder() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	h := binary.LittleEndian.Uint64(b[:])
	if h == 0 {
		h = 1
	}
	return h
}

// k8seventsScope is the Collector receiver's scope name, kept so that
// pipelines written for it match.
const k8seventsScope = "github.com/open-telemetry/opentelemetry-collector-contrib/receiver/k8seventsreceiver"

// appendEvent adds ev to ld as the Collector's k8seventsreceiver does:
// one resource per event (the involved object), one record.
func appendEvent(ld plog.Logs, ev *corev1.Event) {
	rl := ld.ResourceLogs().AppendEmpty()
	ra := rl.Resource().Attributes()
	ra.EnsureCapacity(7)
	ra.PutStr("k8s.node.name", ev.Source.Host)
	ra.PutStr("k8s.object.kind", ev.InvolvedObject.Kind)
	ra.PutStr("k8s.object.name", ev.InvolvedObject.Name)
	ra.PutStr("k8s.object.uid", string(ev.InvolvedObject.UID))
	ra.PutStr("k8s.object.fieldpath", ev.InvolvedObject.FieldPath)
	ra.PutStr("k8s.object.api_version", ev.InvolvedObject.APIVersion)
	ra.PutStr("k8s.object.resource_version", ev.InvolvedObject.ResourceVersion)
	sl := rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName(k8seventsScope)
	lr := sl.LogRecords().AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(eventTime(ev)))
	lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	lr.Body().SetStr(ev.Message)
	switch strings.ToLower(ev.Type) {
	case "normal":
		lr.SetSeverityNumber(plog.SeverityNumberInfo)
		lr.SetSeverityText(ev.Type)
	case "warning":
		lr.SetSeverityNumber(plog.SeverityNumberWarn)
		lr.SetSeverityText(ev.Type)
	}
	a := lr.Attributes()
	a.EnsureCapacity(8)
	a.PutStr("k8s.event.reason", ev.Reason)
	a.PutStr("k8s.event.action", ev.Action)
	a.PutStr("k8s.event.start_time", ev.CreationTimestamp.String())
	a.PutStr("k8s.event.name", ev.Name)
	a.PutStr("k8s.event.uid", string(ev.UID))
	a.PutStr("k8s.namespace.name", ev.InvolvedObject.Namespace)
	if ev.Count != 0 {
		a.PutInt("k8s.event.count", int64(ev.Count))
	}
}

// eventTime is the Collector's choice: lastTimestamp, else
// firstTimestamp, else eventTime.
func eventTime(ev *corev1.Event) time.Time {
	switch {
	case !ev.LastTimestamp.IsZero():
		return ev.LastTimestamp.Time
	case !ev.FirstTimestamp.IsZero():
		return ev.FirstTimestamp.Time
	case !ev.EventTime.IsZero():
		return ev.EventTime.Time
	}
	return ev.CreationTimestamp.Time
}

// eventID identifies one version of one event.
type eventID struct{ UID, RV string }

// resumePoint is where a stream's next leader continues.
type resumePoint struct {
	Seq      uint64 // batches committed, over all terms
	Holder   uint64 // the term that wrote it
	Released bool   // the term ended and will commit nothing more
	RV       string // watch from here
	Sent     []eventID
}

const (
	resumeVersion  = 1
	maxResumeBytes = 1024 // cluster state value limit
	maxSent        = 16
)

func (p *resumePoint) trim() {
	if len(p.Sent) > maxSent {
		p.Sent = slices.Clone(p.Sent[len(p.Sent)-maxSent:])
	}
}

// encode writes the point in at most maxResumeBytes, keeping the newest
// identities that fit.
func (p resumePoint) encode() []byte {
	sent := p.Sent
	for {
		b := []byte{resumeVersion, 0}
		if p.Released {
			b[1] = 1
		}
		b = binary.AppendUvarint(b, p.Seq)
		b = binary.LittleEndian.AppendUint64(b, p.Holder)
		b = appendStr(b, p.RV)
		b = binary.AppendUvarint(b, uint64(len(sent)))
		for _, id := range sent {
			b = appendStr(b, id.UID)
			b = appendStr(b, id.RV)
		}
		if len(b) <= maxResumeBytes || len(sent) == 0 {
			return b
		}
		sent = sent[1:]
	}
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errBadResume = errors.New("malformed resume point")

func decodeResumePoint(b []byte) (resumePoint, error) {
	var p resumePoint
	if len(b) < 2 || b[0] != resumeVersion || b[1] > 1 {
		return p, fmt.Errorf("decode resume point: %w (header)", errBadResume)
	}
	p.Released = b[1] == 1
	b = b[2:]
	var ok bool
	if p.Seq, b, ok = readUvarint(b); !ok || len(b) < 8 {
		return p, fmt.Errorf("decode resume point: %w (seq)", errBadResume)
	}
	p.Holder = binary.LittleEndian.Uint64(b)
	b = b[8:]
	if p.RV, b, ok = readStr(b); !ok {
		return p, fmt.Errorf("decode resume point: %w (resource version)", errBadResume)
	}
	n, b, ok := readUvarint(b)
	if !ok || n > uint64(len(b))/2 {
		return p, fmt.Errorf("decode resume point: %w (count)", errBadResume)
	}
	for range n {
		var id eventID
		if id.UID, b, ok = readStr(b); !ok {
			return p, fmt.Errorf("decode resume point: %w (uid)", errBadResume)
		}
		if id.RV, b, ok = readStr(b); !ok {
			return p, fmt.Errorf("decode resume point: %w (event resource version)", errBadResume)
		}
		p.Sent = append(p.Sent, id)
	}
	if len(b) != 0 {
		return p, fmt.Errorf("decode resume point: %w (%d trailing bytes)", errBadResume, len(b))
	}
	return p, nil
}

func readUvarint(b []byte) (uint64, []byte, bool) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, b, false
	}
	return v, b[n:], true
}

func readStr(b []byte) (string, []byte, bool) {
	n, rest, ok := readUvarint(b)
	if !ok || n > uint64(len(rest)) {
		return "", b, false
	}
	return string(rest[:n]), rest[n:], true
}

// k8sEventsMetrics of one k8s_events receiver, labelled by receiver id.
type k8sEventsMetrics struct {
	received         prometheus.Counter
	sent             prometheus.Counter
	skipped          prometheus.Counter
	relists          prometheus.Counter
	leaderChanges    prometheus.Counter
	leader           prometheus.Gauge
	handoverTimeouts prometheus.Counter
	refused          prometheus.Counter
	namespaces       prometheus.Gauge
	publishErrors    prometheus.Counter
	accepted         prometheus.Counter // otelcol_receiver_accepted_log_records
}

func newK8sEventsMetrics(id string, reg prometheus.Registerer) (*k8sEventsMetrics, error) {
	cl := prometheus.Labels{"receiver": id}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: cl})
	}
	m := &k8sEventsMetrics{
		received:      c("obs_logs_k8s_events_received_total", "Kubernetes events read from the API server (watch and list) while leading."),
		sent:          c("obs_logs_k8s_events_sent_total", "Kubernetes events committed to the WAL as log records."),
		skipped:       c("obs_logs_k8s_events_skipped_total", "Kubernetes events skipped because the resume point says they were sent."),
		relists:       c("obs_logs_k8s_events_relists_total", "Relists after the resume point's resourceVersion was too old (410 Gone)."),
		leaderChanges: c("obs_logs_k8s_events_leadership_changes_total", "Times this member became leader of an events stream."),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "obs_logs_k8s_events_leader",
			Help: "Events streams this member leads.", ConstLabels: cl}),
		handoverTimeouts: c("obs_logs_k8s_events_handover_timeouts_total", "New terms that resumed from an unreleased gossiped point after handover_wait."),
		refused:          c("obs_logs_k8s_events_refused_total", "Kubernetes events the pipeline refused or failed to store (retried)."),
		namespaces: prometheus.NewGauge(prometheus.GaugeOpts{Name: "obs_logs_k8s_events_namespaces",
			Help: "Namespaces found with shard_by: namespace and no namespaces listed (each has a stream; its owner watches).", ConstLabels: cl}),
		publishErrors: c("obs_logs_k8s_events_publish_errors_total", "Resume points that could not be written to the cluster state (e.g. it is full)."),
	}
	// The Collector's receiver counter, shaped as export/ and filelog
	// register it (help; labels receiver and transport), so every
	// receiver's series share one family on the registry.
	accepted := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "otelcol_receiver_accepted_log_records",
		Help: "Number of logs items successfully pushed into the pipeline."}, []string{"receiver", "transport"})
	if reg != nil {
		var err error
		if accepted, err = register(reg, accepted); err != nil {
			return nil, err
		}
	}
	m.accepted = accepted.WithLabelValues(id, "")
	if reg == nil {
		return m, nil
	}
	for _, col := range []prometheus.Collector{m.received, m.sent, m.skipped, m.relists, m.leaderChanges,
		m.leader, m.handoverTimeouts, m.refused, m.namespaces, m.publishErrors} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	return m, nil
}
