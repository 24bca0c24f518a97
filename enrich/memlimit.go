package enrich

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/obs-dev/obs/actors"
	"github.com/prometheus/client_golang/prometheus"
)

// MemoryLimiterConfig is the Collector's `memory_limiter` configuration.
type MemoryLimiterConfig struct {
	// CheckInterval: how often memory is measured. Required (Collector: 1s).
	CheckInterval time.Duration `yaml:"check_interval"`
	// LimitMiB: hard limit on the heap in MiB. Either this or LimitPercentage.
	LimitMiB uint64 `yaml:"limit_mib"`
	// SpikeLimitMiB: headroom below the hard limit; above limit-spike data
	// is refused. Default 20% of the limit.
	SpikeLimitMiB uint64 `yaml:"spike_limit_mib"`
	// LimitPercentage: hard limit as a percentage of the cgroup memory
	// limit (or of physical memory when there is no cgroup limit).
	LimitPercentage uint64 `yaml:"limit_percentage"`
	// SpikeLimitPercentage: the headroom as a percentage of the same total.
	SpikeLimitPercentage uint64 `yaml:"spike_limit_percentage"`
}

// Validate checks the configuration.
func (c MemoryLimiterConfig) Validate() error {
	if c.CheckInterval <= 0 {
		return fmt.Errorf("check_interval: must be greater than zero")
	}
	if c.LimitMiB == 0 && c.LimitPercentage == 0 {
		return fmt.Errorf("limit_mib or limit_percentage: one must be set")
	}
	if c.LimitMiB > 0 && c.LimitPercentage > 0 {
		return fmt.Errorf("limit_mib and limit_percentage: set only one")
	}
	if c.LimitPercentage > 100 || c.SpikeLimitPercentage > 100 {
		return fmt.Errorf("limit_percentage: must be at most 100")
	}
	if c.LimitMiB > 0 && c.SpikeLimitMiB >= c.LimitMiB {
		return fmt.Errorf("spike_limit_mib: must be smaller than limit_mib")
	}
	if c.LimitPercentage > 0 && c.SpikeLimitPercentage >= c.LimitPercentage {
		return fmt.Errorf("spike_limit_percentage: must be smaller than limit_percentage")
	}
	return nil
}

// MemoryLimiter refuses data while the heap is above the soft limit
// (limit minus spike) and forces a GC above the hard limit. It refuses at
// the door, so nothing already accepted is dropped: the client keeps it
// and retries after RetryAfter.
type MemoryLimiter struct {
	cfg        MemoryLimiterConfig
	hard, soft uint64 // bytes
	log        *slog.Logger
	refusing   atomic.Bool
	usage      func() uint64
	refused    prometheus.Counter
	lastGC     time.Time
}

// NewMemoryLimiter validates cfg, resolves percentages against the cgroup
// limit and returns the stage. id labels its metrics.
func NewMemoryLimiter(id string, cfg MemoryLimiterConfig, log *slog.Logger, reg prometheus.Registerer) (*MemoryLimiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &MemoryLimiter{cfg: cfg, log: log, usage: heapInUse}
	if cfg.LimitMiB > 0 {
		m.hard = cfg.LimitMiB << 20
		spike := cfg.SpikeLimitMiB << 20
		if cfg.SpikeLimitMiB == 0 {
			spike = m.hard / 5
		}
		m.soft = m.hard - spike
	} else {
		total, src := totalMemory()
		m.hard = total * cfg.LimitPercentage / 100
		m.soft = m.hard - total*cfg.SpikeLimitPercentage/100
		log.Info("memory limiter resolved", "total_bytes", total, "source", src,
			"hard_limit_bytes", m.hard, "soft_limit_bytes", m.soft)
	}
	m.refused = prometheus.NewCounter(prometheus.CounterOpts{
		Name:        "obs_enrich_memory_limiter_refused_items_total",
		Help:        "Items refused because memory was above the soft limit.",
		ConstLabels: prometheus.Labels{"processor": id},
	})
	limit := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "obs_enrich_memory_limiter_soft_limit_bytes",
		Help:        "Heap size above which data is refused.",
		ConstLabels: prometheus.Labels{"processor": id},
	}, func() float64 { return float64(m.soft) })
	if reg != nil {
		reg.MustRegister(m.refused, limit)
	}
	return m, nil
}

// Consume implements actors.Stage.
func (m *MemoryLimiter) Consume(_ context.Context, env *actors.Envelope, emit actors.Emit) {
	if m.refusing.Load() {
		m.refused.Add(float64(env.Batch.Items()))
		env.Ack.Done(&actors.RefusedError{Reason: "memory_limit", RetryAfter: m.cfg.CheckInterval})
		return
	}
	if err := emit(env); err != nil {
		env.Ack.Done(err)
	}
}

// TickInterval implements actors.Ticker.
func (m *MemoryLimiter) TickInterval() time.Duration { return m.cfg.CheckInterval }

// Tick implements actors.Ticker: measure, and GC when above the hard limit.
func (m *MemoryLimiter) Tick(context.Context, actors.Emit) { m.check(time.Now()) }

func (m *MemoryLimiter) check(now time.Time) {
	used := m.usage()
	if used >= m.hard && now.Sub(m.lastGC) >= 10*time.Second {
		// A forced GC is expensive; at most one per 10s, as the Collector.
		m.lastGC = now
		runtime.GC()
		used = m.usage()
	}
	was := m.refusing.Load()
	over := used >= m.soft
	if over != was {
		m.refusing.Store(over)
		if over {
			m.log.Warn("memory above soft limit; refusing data", "heap_bytes", used, "soft_limit_bytes", m.soft)
		} else {
			m.log.Info("memory below soft limit; accepting data", "heap_bytes", used, "soft_limit_bytes", m.soft)
		}
	}
}

func heapInUse() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// totalMemory is the cgroup (v2, then v1) memory limit, else physical memory.
func totalMemory() (uint64, string) {
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			return v, "cgroup v2 memory.max"
		}
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && v < 1<<60 {
			return v, "cgroup v1 memory.limit_in_bytes"
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) >= 2 && f[0] == "MemTotal:" {
				if v, err := strconv.ParseUint(f[1], 10, 64); err == nil {
					return v << 10, "/proc/meminfo"
				}
			}
		}
	}
	return 8 << 30, "assumed 8 GiB"
}
