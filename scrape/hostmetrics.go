package scrape

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
	"github.com/prometheus/procfs/blockdevice"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/obs-dev/obs/actors"
)

// HostMetricsConfig is the hostmetrics receiver's settings, with the
// Collector's key names.
type HostMetricsConfig struct {
	// RootPath is where the host's filesystem is mounted (/hostfs in a
	// pod); /proc and /sys are read under it. Empty means "/".
	RootPath           string             `yaml:"root_path"`
	CollectionInterval time.Duration      `yaml:"collection_interval"`
	InitialDelay       time.Duration      `yaml:"initial_delay"`
	Scrapers           HostScrapersConfig `yaml:"scrapers"`
}

// HostScrapersConfig turns scrapers on: a present key (even "load:") runs
// the scraper.
type HostScrapersConfig struct {
	CPU        *HostScraperConfig[cpuMetricSet]       `yaml:"cpu"`
	Load       *HostScraperConfig[loadMetricSet]      `yaml:"load"`
	Memory     *HostScraperConfig[memoryMetricSet]    `yaml:"memory"`
	Paging     *HostScraperConfig[pagingMetricSet]    `yaml:"paging"`
	Filesystem *FilesystemConfig                      `yaml:"filesystem"`
	Disk       *HostDeviceConfig[diskMetricSet]       `yaml:"disk"`
	Network    *HostDeviceConfig[networkMetricSet]    `yaml:"network"`
	Processes  *HostScraperConfig[processesMetricSet] `yaml:"processes"`
	Process    *HostProcessConfig                     `yaml:"process"`
}

// HostScraperConfig is a scraper with only metric switches.
type HostScraperConfig[S metricSet] struct {
	Metrics MetricSwitches[S] `yaml:"metrics"`
}

// FilesystemConfig is the filesystem scraper's settings.
type FilesystemConfig struct {
	Metrics            MetricSwitches[filesystemMetricSet] `yaml:"metrics"`
	IncludeDevices     *MatchConfig                        `yaml:"include_devices"`
	ExcludeDevices     *MatchConfig                        `yaml:"exclude_devices"`
	IncludeFSTypes     *MatchConfig                        `yaml:"include_fs_types"`
	ExcludeFSTypes     *MatchConfig                        `yaml:"exclude_fs_types"`
	IncludeMountPoints *MatchConfig                        `yaml:"include_mount_points"`
	ExcludeMountPoints *MatchConfig                        `yaml:"exclude_mount_points"`
	IncludeVirtualFS   bool                                `yaml:"include_virtual_filesystems"`
}

// HostDeviceConfig is the disk and network scrapers' settings.
type HostDeviceConfig[S metricSet] struct {
	Metrics MetricSwitches[S] `yaml:"metrics"`
	Include *MatchConfig      `yaml:"include"`
	Exclude *MatchConfig      `yaml:"exclude"`
}

// HostProcessConfig is the process scraper's settings.
type HostProcessConfig struct {
	Metrics              MetricSwitches[processMetricSet] `yaml:"metrics"`
	ResourceAttributes   map[string]MetricSwitch          `yaml:"resource_attributes"`
	Include              *MatchConfig                     `yaml:"include"`
	Exclude              *MatchConfig                     `yaml:"exclude"`
	MuteProcessNameError bool                             `yaml:"mute_process_name_error"`
	MuteProcessExeError  bool                             `yaml:"mute_process_exe_error"`
	MuteProcessIOError   bool                             `yaml:"mute_process_io_error"`
	MuteProcessUserError bool                             `yaml:"mute_process_user_error"`
	MuteProcessCgroupErr bool                             `yaml:"mute_process_cgroup_error"`
	MuteProcessAllErrors bool                             `yaml:"mute_process_all_errors"`
}

// DefaultHostMetricsConfig is the Collector's default: root "/", one
// minute, no scrapers.
func DefaultHostMetricsConfig() HostMetricsConfig {
	return HostMetricsConfig{RootPath: "/", CollectionInterval: time.Minute}
}

// Validate checks the settings; errors name the key.
func (c *HostMetricsConfig) Validate() error {
	if c.CollectionInterval <= 0 {
		return fmt.Errorf("collection_interval: must be positive, got %s", c.CollectionInterval)
	}
	if c.InitialDelay < 0 {
		return fmt.Errorf("initial_delay: must not be negative")
	}
	if c.RootPath != "" && !filepath.IsAbs(c.RootPath) {
		return fmt.Errorf("root_path: must be absolute, got %q", c.RootPath)
	}
	s := c.Scrapers
	if s.CPU == nil && s.Load == nil && s.Memory == nil && s.Paging == nil && s.Filesystem == nil &&
		s.Disk == nil && s.Network == nil && s.Processes == nil && s.Process == nil {
		return errors.New("scrapers: must specify at least one scraper")
	}
	type chk struct {
		on   bool
		name string
		sw   map[string]MetricSwitch
		defs map[string]hmMetricDef
	}
	checks := []chk{
		{s.CPU != nil, "cpu", sw(s.CPU), cpuDefs},
		{s.Load != nil, "load", sw(s.Load), loadDefs},
		{s.Memory != nil, "memory", sw(s.Memory), memoryDefs},
		{s.Paging != nil, "paging", sw(s.Paging), pagingDefs},
		{s.Processes != nil, "processes", sw(s.Processes), processesDefs},
	}
	if s.Filesystem != nil {
		checks = append(checks, chk{true, "filesystem", s.Filesystem.Metrics, filesystemDefs})
	}
	if s.Disk != nil {
		checks = append(checks, chk{true, "disk", s.Disk.Metrics, diskDefs})
	}
	if s.Network != nil {
		checks = append(checks, chk{true, "network", s.Network.Metrics, networkDefs})
	}
	if s.Process != nil {
		checks = append(checks, chk{true, "process", s.Process.Metrics, processDefs})
	}
	for _, k := range checks {
		if !k.on {
			continue
		}
		if err := hmCheckSwitches("scrapers."+k.name+".metrics", k.sw, k.defs); err != nil {
			return err
		}
	}
	if _, err := c.filters(); err != nil {
		return err
	}
	return nil
}

func sw[S metricSet](s *HostScraperConfig[S]) map[string]MetricSwitch {
	if s == nil {
		return nil
	}
	return s.Metrics
}

type hmFilters struct {
	fsDevice, fsType, fsMount, disk, network, process hmFilter
}

func (c *HostMetricsConfig) filters() (hmFilters, error) {
	var f hmFilters
	var err error
	if fs := c.Scrapers.Filesystem; fs != nil {
		if f.fsDevice, err = newHMFilter("scrapers.filesystem.devices", fs.IncludeDevices, fs.ExcludeDevices); err != nil {
			return f, err
		}
		if f.fsType, err = newHMFilter("scrapers.filesystem.fs_types", fs.IncludeFSTypes, fs.ExcludeFSTypes); err != nil {
			return f, err
		}
		if f.fsMount, err = newHMFilter("scrapers.filesystem.mount_points", fs.IncludeMountPoints, fs.ExcludeMountPoints); err != nil {
			return f, err
		}
	}
	if d := c.Scrapers.Disk; d != nil {
		if f.disk, err = newHMFilter("scrapers.disk", d.Include, d.Exclude); err != nil {
			return f, err
		}
	}
	if d := c.Scrapers.Network; d != nil {
		if f.network, err = newHMFilter("scrapers.network", d.Include, d.Exclude); err != nil {
			return f, err
		}
	}
	if p := c.Scrapers.Process; p != nil {
		if f.process, err = newHMFilter("scrapers.process", p.Include, p.Exclude); err != nil {
			return f, err
		}
	}
	return f, nil
}

// HostMetricsReceiver collects host metrics from procfs and sysfs every
// collection_interval and hands each collection to consume as one batch.
type HostMetricsReceiver struct {
	id      string
	cfg     HostMetricsConfig
	consume func(ctx context.Context, b actors.Batch, extra []actors.KV) error
	log     *slog.Logger
	m       *hmMetrics
	h       *hostCollector
}

type hmMetrics struct {
	accepted    prometheus.Counter
	refused     prometheus.Counter
	errors      *prometheus.CounterVec
	collections prometheus.Histogram
}

// newHMMetrics builds the self-metrics of receiver kind (hostmetrics or
// kubeletstats).
func newHMMetrics(reg prometheus.Registerer, id, kind string) (*hmMetrics, error) {
	accepted, refused, err := receiverCounters(reg, id, "")
	if err != nil {
		return nil, err
	}
	// The receiver's own metrics carry receiver=<id>, so two receivers
	// can share one registry.
	if reg != nil {
		reg = prometheus.WrapRegistererWith(prometheus.Labels{"receiver": id}, reg)
	}
	m := &hmMetrics{
		accepted: accepted,
		refused:  refused,
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obs_scrape_" + kind + "_errors_total", Help: "Failed reads, by scraper (hostmetrics: muted process errors excluded; kubeletstats: scraper=kubelet, or metadata for a container or volume skipped because /pods did not know it).",
		}, []string{"scraper"}),
		collections: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "obs_scrape_" + kind + "_collection_duration_seconds", Help: "Time one collection took.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.errors, m.collections} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register %s metrics: %w", kind, err)
		}
	}
	return m, nil
}

// NewHostMetricsReceiver validates cfg, checks that root_path/proc exists
// and builds the receiver; it starts nothing.
func NewHostMetricsReceiver(id string, cfg HostMetricsConfig, consume func(ctx context.Context, b actors.Batch, extra []actors.KV) error,
	log *slog.Logger, reg prometheus.Registerer) (*HostMetricsReceiver, error) {
	if consume == nil {
		return nil, fmt.Errorf("hostmetrics %s: nil consume", id)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.RootPath == "" {
		cfg.RootPath = "/"
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("hostmetrics %s: %w", id, err)
	}
	h, err := newHostCollector(&cfg, log)
	if err != nil {
		return nil, fmt.Errorf("hostmetrics %s: %w", id, err)
	}
	m, err := newHMMetrics(reg, id, "hostmetrics")
	if err != nil {
		return nil, fmt.Errorf("hostmetrics %s: %w", id, err)
	}
	return &HostMetricsReceiver{id: id, cfg: cfg, consume: consume, log: log.With("receiver", id), m: m, h: h}, nil
}

// Run collects until ctx ends. A refused batch is counted and dropped:
// host metrics are gauges and counters, the next collection supersedes it.
func (r *HostMetricsReceiver) Run(ctx context.Context) error {
	everyInterval(ctx, r.cfg.InitialDelay, r.cfg.CollectionInterval, r.collectOnce)
	return nil
}

func (r *HostMetricsReceiver) collectOnce(ctx context.Context) {
	began := time.Now()
	md, errs := r.h.collect(began)
	r.m.collections.Observe(time.Since(began).Seconds())
	for scraper, err := range errs {
		r.m.errors.WithLabelValues(scraper).Inc()
		r.log.Warn("hostmetrics scraper failed", "scraper", scraper, "err", err)
	}
	n := md.DataPointCount()
	if n == 0 {
		return
	}
	if err := r.consume(ctx, actors.MetricsBatch(md), nil); err != nil {
		r.m.refused.Add(float64(n))
		if ctx.Err() == nil {
			r.log.Warn("hostmetrics collection not stored", "points", n, "err", err)
		}
		return
	}
	r.m.accepted.Add(float64(n))
}

// hostCollector holds the procfs handles and the previous collection's
// counters that utilization metrics are computed from.
type hostCollector struct {
	cfg      *HostMetricsConfig
	log      *slog.Logger
	root     string
	proc     procfs.FS
	block    blockdevice.FS
	filt     hmFilters
	on       map[string]map[string]bool // scraper -> metric -> enabled
	prevCPU  map[int64]procfs.CPUStat
	prevProc map[int]procSample
	prevAt   time.Time
	ncpu     int
}

type procSample struct {
	user, system float64
	start        uint64
}

func newHostCollector(cfg *HostMetricsConfig, log *slog.Logger) (*hostCollector, error) {
	procPath := filepath.Join(cfg.RootPath, "proc")
	sysPath := filepath.Join(cfg.RootPath, "sys")
	if st, err := os.Stat(procPath); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("root_path: %s is not a readable directory (is the host filesystem mounted at %s?): %w", procPath, cfg.RootPath, errOr(err))
	}
	pfs, err := procfs.NewFS(procPath)
	if err != nil {
		return nil, fmt.Errorf("root_path: open %s: %w", procPath, err)
	}
	var bfs blockdevice.FS
	if cfg.Scrapers.Disk != nil {
		if bfs, err = blockdevice.NewFS(procPath, sysPath); err != nil {
			return nil, fmt.Errorf("root_path: open %s and %s: %w", procPath, sysPath, err)
		}
	}
	f, err := cfg.filters()
	if err != nil {
		return nil, err
	}
	s := cfg.Scrapers
	on := map[string]map[string]bool{}
	if s.CPU != nil {
		on["cpu"] = hmEnabled(s.CPU.Metrics, cpuDefs)
	}
	if s.Load != nil {
		on["load"] = hmEnabled(s.Load.Metrics, loadDefs)
	}
	if s.Memory != nil {
		on["memory"] = hmEnabled(s.Memory.Metrics, memoryDefs)
	}
	if s.Paging != nil {
		on["paging"] = hmEnabled(s.Paging.Metrics, pagingDefs)
	}
	if s.Filesystem != nil {
		on["filesystem"] = hmEnabled(s.Filesystem.Metrics, filesystemDefs)
	}
	if s.Disk != nil {
		on["disk"] = hmEnabled(s.Disk.Metrics, diskDefs)
	}
	if s.Network != nil {
		on["network"] = hmEnabled(s.Network.Metrics, networkDefs)
	}
	if s.Processes != nil {
		on["processes"] = hmEnabled(s.Processes.Metrics, processesDefs)
	}
	if s.Process != nil {
		on["process"] = hmEnabled(s.Process.Metrics, processDefs)
	}
	return &hostCollector{cfg: cfg, log: log, root: cfg.RootPath, proc: pfs, block: bfs, filt: f, on: on}, nil
}

func errOr(err error) error {
	if err == nil {
		return errors.New("not a directory")
	}
	return err
}

const hmScopePrefix = "github.com/open-telemetry/opentelemetry-collector-contrib/receiver/hostmetricsreceiver/internal/scraper/"

// collect runs every configured scraper once; errs maps a scraper to
// what stopped it.
func (h *hostCollector) collect(now time.Time) (pmetric.Metrics, map[string]error) {
	md := pmetric.NewMetrics()
	errs := map[string]error{}
	ts := pcommon.NewTimestampFromTime(now)
	stat, statErr := h.proc.Stat()
	boot := pcommon.Timestamp(0)
	if statErr == nil {
		boot = pcommon.NewTimestampFromTime(time.Unix(int64(stat.BootTime), 0))
		if len(stat.CPU) > 0 {
			h.ncpu = len(stat.CPU)
		}
	}
	host := md.ResourceMetrics().AppendEmpty()
	run := func(name string, defs map[string]hmMetricDef, f func(s *hmSet) error) {
		on, ok := h.on[name]
		if !ok {
			return
		}
		s := newHMSet(host, hmScopePrefix+name+"scraper", defs, on, boot, ts)
		if err := f(s); err != nil {
			errs[name] = err
		}
	}
	needStat := func() error {
		if statErr != nil {
			return fmt.Errorf("read stat: %w", statErr)
		}
		return nil
	}
	run("cpu", cpuDefs, func(s *hmSet) error {
		if err := needStat(); err != nil {
			return err
		}
		return h.cpu(s, stat)
	})
	run("load", loadDefs, h.load)
	run("memory", memoryDefs, h.memory)
	run("paging", pagingDefs, h.paging)
	run("filesystem", filesystemDefs, h.filesystem)
	run("disk", diskDefs, h.disk)
	run("network", networkDefs, h.network)
	run("processes", processesDefs, func(s *hmSet) error {
		if err := needStat(); err != nil {
			return err
		}
		s.int("system.processes.count", int64(stat.ProcessesRunning), "status", "running")
		s.int("system.processes.count", int64(stat.ProcessesBlocked), "status", "blocked")
		s.int("system.processes.created", int64(stat.ProcessCreated))
		return nil
	})
	if _, ok := h.on["process"]; ok {
		if err := h.processes(md, now, ts); err != nil {
			errs["process"] = err
		}
	}
	h.prevAt = now
	// drop empty scopes so a failed scraper leaves no husk behind
	host.ScopeMetrics().RemoveIf(func(sm pmetric.ScopeMetrics) bool { return sm.Metrics().Len() == 0 })
	md.ResourceMetrics().RemoveIf(func(rm pmetric.ResourceMetrics) bool { return rm.ScopeMetrics().Len() == 0 })
	return md, errs
}
