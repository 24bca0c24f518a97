// Package scrape runs Prometheus' discovery and scrape managers as a
// library: samples become pdata metrics in obs' own appender, and a sharder
// between discovery and scraping keeps only the targets this member owns.
package scrape

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	promscrape "github.com/prometheus/prometheus/scrape"
	"gopkg.in/yaml.v3"

	"github.com/obs-dev/obs/actors"

	// Service discovery mechanisms obs supports besides static_configs.
	// They register themselves with Prometheus' discovery registry.
	_ "github.com/prometheus/prometheus/discovery/dns"
	_ "github.com/prometheus/prometheus/discovery/file"
	_ "github.com/prometheus/prometheus/discovery/http"
	_ "github.com/prometheus/prometheus/discovery/kubernetes"
)

// Sharding modes.
const (
	ShardCluster = "cluster" // a target belongs to one gateway, by rendezvous hash
	ShardNode    = "node"    // only targets on this node
	ShardNone    = "none"    // every discovered target
)

// Timings chosen for hand-off latency.
const (
	// scrapeReloadInterval replaces Prometheus' 5 s DiscoveryReloadInterval:
	// how often the scrape manager applies a pending target-set change. A
	// tick with nothing pending costs nothing.
	scrapeReloadInterval = 250 * time.Millisecond
	// discoveryUpdateInterval replaces the discovery manager's 5 s updatert:
	// the most often it publishes a changed target set.
	discoveryUpdateInterval = time.Second
	// defaultHandoffDelay is how long after a join's start targets move
	// to the joiner: long enough that every member has heard of the join
	// (gossip) and the joiner has its first discovery result, so all
	// compute the same hand-off instant. The old owner scrapes until then,
	// so the wait costs no scrape.
	defaultHandoffDelay = 2 * time.Second
)

// PrometheusConfig is the `prometheus` receiver's configuration, the
// Collector's keys plus `sharding`.
type PrometheusConfig struct {
	// Config is Prometheus' own YAML (global, scrape_configs, ...). It is
	// re-marshalled to text and loaded with Prometheus' config.Load, so
	// Prometheus fills the defaults. Required.
	Config *yaml.Node `yaml:"config"`
	// Sharding overrides the role's default: cluster (gateway default),
	// node (agent default) or none. Empty keeps the role's default.
	Sharding string `yaml:"sharding"`
	// TargetAllocator is accepted for the Collector's sake and ignored with a
	// warning: obs members split targets among themselves.
	TargetAllocator *yaml.Node `yaml:"target_allocator"`
	// ReportExtraScrapeMetrics adds scrape_timeout_seconds,
	// scrape_sample_limit and scrape_body_size_bytes to every scrape, as the
	// Collector's key of that name does. Default false.
	ReportExtraScrapeMetrics bool `yaml:"report_extra_scrape_metrics"`
}

// DefaultPrometheusConfig returns an empty configuration: no scrape jobs,
// the role's sharding.
func DefaultPrometheusConfig() PrometheusConfig { return PrometheusConfig{} }

// Validate checks the configuration, naming the offending key; a broken
// scrape config names its job and line.
func (c PrometheusConfig) Validate() error {
	_, err := c.load(nil)
	return err
}

func (c PrometheusConfig) load(log *slog.Logger) (*promconfig.Config, error) {
	switch c.Sharding {
	case "", ShardCluster, ShardNode, ShardNone:
	default:
		return nil, fmt.Errorf("sharding: %q is not one of cluster, node, none", c.Sharding)
	}
	if c.Config == nil {
		return nil, errors.New("config: missing (Prometheus' configuration with scrape_configs)")
	}
	return loadPromConfig(c.Config, c.ReportExtraScrapeMetrics, log)
}

// Sharding is how this member picks its targets. roles/ fills it from the
// cluster node.
type Sharding struct {
	// Mode is cluster, node or none; PrometheusConfig.Sharding overrides it.
	Mode string
	// Owner names the gateway that owns key (rendezvous hash over the live
	// gateways). Nil makes cluster mode behave as none.
	Owner func(key string) (member string, ok bool)
	// Self is this member's name, as Owner returns it.
	Self string
	// Members lists the live members Owner chooses among (the live
	// gateways) with their start times. GET /jobs/{job}/targets lists idle
	// ones with an empty target list, as the Target Allocator does; a
	// target whose previous owner is no longer listed (it died or left) is
	// taken over at once; and the newest start time is the moment every
	// member counts a join's hand-off from. Nil lists only members that
	// own a target and Self, and hands off after HandoffDelay counted from
	// when each member learns of the change. Used in cluster mode only.
	Members func() []Member
	// Changed signals a membership change (coalescing); the sharder pulls
	// Owner again.
	Changed <-chan struct{}
	// NodeName is this node's Kubernetes node name, for node mode.
	NodeName string
	// Seed is the scrape offset seed shared by all members (the cluster
	// name): a target keeps its scrape phase when it moves between them.
	// Empty keeps Prometheus' default (this host's FQDN).
	Seed string
	// HandoffDelay is how long after a membership change (the newest
	// member's start, see Members) a target moves between two live
	// members. The old owner scrapes it until, and the new one from, the
	// first point half-way between two of its scrapes after that, so the
	// new owner's first scrape is the slot the old owner would have used.
	// Zero means 2 s; negative means no wait.
	HandoffDelay time.Duration
}

// Member is a live member as sharding sees it.
type Member struct {
	Name string
	// Start is when the member started (its cluster metadata), the same
	// value on every member.
	Start time.Time
}

// PrometheusReceiver scrapes Prometheus targets into pdata metrics.
type PrometheusReceiver struct {
	id      string
	cfg     *promconfig.Config
	scfgs   map[string]*promconfig.ScrapeConfig
	jobs    []string // in config order
	log     *slog.Logger
	metrics *metrics

	app     *appendable
	shard   *sharder
	scrapeM *promscrape.Manager
	discM   *discovery.Manager

	discCtx    context.Context
	discCancel context.CancelFunc
	ran        atomic.Bool
}

// NewPrometheusReceiver builds the receiver; it starts nothing. consume
// must return only once the batch is durable.
func NewPrometheusReceiver(id string, cfg PrometheusConfig, consume func(ctx context.Context, b actors.Batch, extra []actors.KV) error,
	shard Sharding, log *slog.Logger, reg prometheus.Registerer) (*PrometheusReceiver, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if consume == nil {
		return nil, errors.New("new prometheus receiver: nil consume func")
	}
	pcfg, err := cfg.load(log)
	if err != nil {
		return nil, fmt.Errorf("receivers.%s.%w", id, err)
	}
	if cfg.TargetAllocator != nil {
		log.Warn("target_allocator is ignored: obs members split scrape targets among themselves", "receiver", id)
	}
	mode := shard.Mode
	if cfg.Sharding != "" {
		mode = cfg.Sharding
	}
	switch mode {
	case "":
		mode = ShardNone
	case ShardCluster, ShardNode, ShardNone:
	default:
		return nil, fmt.Errorf("new prometheus receiver %s: sharding mode %q is not one of cluster, node, none", id, mode)
	}
	if mode == ShardCluster && shard.Owner == nil {
		mode = ShardNone
	}
	if mode == ShardNode && shard.NodeName == "" {
		log.Warn("sharding node without a node name: only loopback targets are local", "receiver", id)
	}
	scfgs, err := pcfg.GetScrapeConfigs()
	if err != nil {
		return nil, fmt.Errorf("receivers.%s.config: %w", id, err)
	}

	r := &PrometheusReceiver{id: id, cfg: pcfg, scfgs: map[string]*promconfig.ScrapeConfig{}, log: log}
	var maxInterval time.Duration
	for _, sc := range scfgs {
		r.scfgs[sc.JobName] = sc
		r.jobs = append(r.jobs, sc.JobName)
		maxInterval = max(maxInterval, time.Duration(sc.ScrapeInterval))
	}
	// Prometheus' own metrics and ours carry receiver=<id>, so two
	// receivers can share one registry.
	wreg := prometheus.WrapRegistererWith(prometheus.Labels{"receiver": id}, reg)
	r.metrics, err = newMetrics(reg, id)
	if err != nil {
		return nil, fmt.Errorf("new prometheus receiver %s: %w", id, err)
	}
	r.shard = newSharder(mode, shard, r.scfgs, r.metrics, log)
	if shard.Seed != "" {
		r.shard.phaseSeed, r.shard.aligned = offsetSeed(shard.Seed, pcfg), true
	}
	r.app = newAppendable(consume, r.shard, r.metrics, r.scfgs, maxInterval, log)
	r.app.groups.linger, r.app.groups.maxPoints = commitLinger, commitGroupPoints

	opts := ManagerOptions()
	if shard.Seed != "" {
		if err := setOffsetSeedName(opts, shard.Seed); err != nil {
			return nil, fmt.Errorf("new prometheus receiver %s: %w", id, err)
		}
	}
	promLog := log.With("receiver", id)
	r.scrapeM, err = promscrape.NewManager(opts, promLog, nil, nil, r.app, wreg)
	if err != nil {
		return nil, fmt.Errorf("new prometheus receiver %s: scrape manager: %w", id, err)
	}
	sdMetrics, err := discovery.CreateAndRegisterSDMetrics(wreg)
	if err != nil {
		return nil, fmt.Errorf("new prometheus receiver %s: %w", id, err)
	}
	r.discCtx, r.discCancel = context.WithCancel(context.Background())
	r.discM = discovery.NewManager(r.discCtx, promLog, wreg, sdMetrics,
		discovery.Name("scrape"), discovery.Updatert(discoveryUpdateInterval))
	if r.discM == nil {
		r.discCancel()
		return nil, fmt.Errorf("new prometheus receiver %s: discovery manager could not register its metrics", id)
	}
	return r, nil
}

// ManagerOptions are the options obs runs Prometheus' scrape
// manager with (the offset seed aside). The scrape benchmark's
// "Prometheus alone" row runs with the same, so it measures the floor
// under obs' own receiver.
func ManagerOptions() *promscrape.Options {
	return &promscrape.Options{
		PassMetadataInContext: true, // the appender sees the target (hand-off safety net)
		AppendMetadata:        true, // type, unit, help with every sample
		// ParseST stays off: Prometheus v0.316.0's OpenMetrics parser
		// panics in StartTimestamp on a sample whose name is shorter than
		// its family's (it slices the series name to the family's length;
		// TestScrapeParserPanicInput; the scrape loop has no recover), so
		// one bad target could crash the process. The appender reads the
		// _created samples instead (applyCreated); without them it
		// synthesises start times from the first scrape.
		ParseST:                 false,
		DiscoveryReloadInterval: model.Duration(scrapeReloadInterval),
	}
}

// ID is the receiver's component id.
func (r *PrometheusReceiver) ID() string { return r.id }

// Run discovers, shards and scrapes until ctx ends, then stops the scrape
// loops (no end-of-run staleness markers: the next owner takes over) and
// returns after every goroutine it started has exited. Run may be called
// once.
func (r *PrometheusReceiver) Run(ctx context.Context) error {
	if !r.ran.CompareAndSwap(false, true) {
		return fmt.Errorf("run prometheus receiver %s: already run", r.id)
	}
	defer r.discCancel()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.app.setContext(runCtx)

	sdCfgs := make(map[string]discovery.Configs, len(r.scfgs))
	for job, sc := range r.scfgs {
		sdCfgs[job] = sc.ServiceDiscoveryConfigs
	}
	if err := r.scrapeM.ApplyConfig(r.cfg); err != nil {
		return fmt.Errorf("run prometheus receiver %s: apply scrape config: %w", r.id, err)
	}
	if err := r.discM.ApplyConfig(sdCfgs); err != nil {
		return fmt.Errorf("run prometheus receiver %s: apply discovery config: %w", r.id, err)
	}
	r.shard.setScrapeManager(r.scrapeM)

	toScrape := make(chan map[string][]*targetgroup.Group)
	var wg sync.WaitGroup
	wg.Go(func() { _ = r.discM.Run() })
	wg.Go(func() { _ = r.scrapeM.Run(toScrape) })
	shardCtx, stopShard := context.WithCancel(context.Background())
	wg.Go(func() { r.shard.run(shardCtx, r.discM.SyncCh(), toScrape) })
	r.log.Info("prometheus receiver started", "receiver", r.id, "jobs", len(r.jobs), "sharding", r.shard.mode)

	<-ctx.Done()
	// 1. Scrape loops stop; a commit in flight finishes (bounded by the
	//    scrape interval), so nothing half-written is left.
	r.scrapeM.Stop()
	// 2. Discovery and the sharder stop.
	stopShard()
	r.discCancel()
	cancel()
	wg.Wait()
	r.scrapeM.UnregisterMetrics()
	return nil
}
