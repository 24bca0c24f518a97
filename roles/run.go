package roles

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/client-go/kubernetes"

	"github.com/obs-dev/obs/actors"
	"github.com/obs-dev/obs/cluster"
	"github.com/obs-dev/obs/config"
	"github.com/obs-dev/obs/enrich"
	"github.com/obs-dev/obs/export"
	"github.com/obs-dev/obs/filepages"
	"github.com/obs-dev/obs/logs"
	"github.com/obs-dev/obs/scrape"
	"github.com/obs-dev/obs/wal"
)

// pipelineFullWait bounds how long a receiver waits for room in a full
// pipeline before it tells the client to retry.
const pipelineFullWait = 5 * time.Second

// runtime is everything one `obs run` started.
type runtime struct {
	opts    Options
	log     *slog.Logger
	reg     *prometheus.Registry
	plan    *plan
	db      *wal.DB
	sys     *actors.System
	node    *cluster.Node
	dest    string
	started time.Time

	queues    map[config.ID]*wal.Queue
	exporters []*export.Exporter
	receivers []receiver
	scrapers  []*scrape.PrometheusReceiver
	heads     map[config.PipelineID]*actors.Ref
	procFuncs map[config.ID]actors.ProcessFunc
	k8sCache  *enrich.K8sCache
	// clusterErr is set when the cluster member stopped with an error.
	clusterErr atomic.Pointer[error]
	stopOrder  []*actors.Ref // upstream first
	pipeInfo   []pipelineInfo
}

type pipelineInfo struct {
	ID                               string
	Receivers, Processors, Exporters []string
}

// Run starts everything the role and configuration ask for and blocks
// until ctx ends; then it stops in the documented order.
func Run(ctx context.Context, opts Options, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Stdout == nil {
		opts.Stdout = io.Discard
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 20 * time.Second
	}
	p, dest, err := loadPlan(opts.ConfigPath, opts.Role, opts.DataDir, false, opts.LookupEnv)
	if p != nil && p.file != nil {
		for _, w := range p.file.Warnings {
			log.Warn("config", "warning", w)
		}
	}
	if err != nil {
		return fmt.Errorf("config:\n%w", err)
	}
	if dest == "" {
		dest = "the exporters of " + opts.ConfigPath
	}
	if opts.AdminAddr == "" {
		opts.AdminAddr = ":8888"
	}
	if p.file.Telemetry.MetricsAddr != "" && opts.AdminAddr == ":8888" {
		opts.AdminAddr = p.file.Telemetry.MetricsAddr
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rt := &runtime{opts: opts, log: log, reg: reg, plan: p, dest: dest, started: time.Now(),
		queues: map[config.ID]*wal.Queue{}, heads: map[config.PipelineID]*actors.Ref{},
		procFuncs: map[config.ID]actors.ProcessFunc{}}

	walDir := p.file.WAL.Dir
	if walDir == "" {
		walDir = filepath.Join(opts.DataDir, "wal")
	}
	if err := os.MkdirAll(walDir, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	// Every role stores payloads raw while queues are short (auto): they
	// go to segment files with write(2), so raw bytes cost no page faults
	// and no RSS, and s2 only pays once a backlog builds (bench/RESULTS.md).
	wcfg := wal.DefaultConfig(walDir)
	if opts.Role == Agent {
		// An agent shares its node with the workloads (a 64 MiB budget).
		// A 64 MiB tail would be all of it while a backend is slow; its
		// exporters keep up with one node's data, so entries in flight
		// fit in a few MiB and older ones are read back from disk.
		wcfg.MemoryBytes = 8 << 20
		// Small payload segments and value-log files, collected within a
		// second; the value log's written pages are unmapped after every
		// GC round.
		wcfg.ValueLogFileBytes = 4 << 20
		wcfg.GCInterval = 250 * time.Millisecond
		wcfg.ReclaimInterval = time.Second
		// Each of those flushes pools a table builder of twice this.
		wcfg.TableBytes = 512 << 10
		// The heap's share of the budget: GC at half the live heap
		// again instead of all of it. Filelog bench, 1M lines: peak RSS
		// 61-64 MiB against 72-79, for about 20% more CPU (still well
		// under half the Collector's). GOGC, when set, decides instead.
		if _, set := os.LookupEnv("GOGC"); !set {
			debug.SetGCPercent(50)
		}
	}
	if c := p.file.WAL.Compression; c != "" {
		wcfg.Compression = wal.Compression(c)
	}
	if b := p.file.WAL.ValueLogFileBytes; b > 0 {
		wcfg.ValueLogFileBytes = int64(b)
	}
	if p.file.WAL.MaxBytes > 0 {
		wcfg.MaxBytes = int64(p.file.WAL.MaxBytes)
	} else if free, ok := freeBytes(walDir); ok && free/2 < wcfg.MaxBytes {
		// Sized to the volume: never plan to fill more than half of what
		// is free, so a small PVC pushes back before the disk is full.
		wcfg.MaxBytes = max(free/2, 16<<20)
		log.Info("wal.max_bytes sized to the volume", "max_bytes", wcfg.MaxBytes, "free_bytes", free)
	}
	rt.db, err = wal.Open(wcfg, log.With("component", "wal"), reg)
	if err != nil {
		return fmt.Errorf("open wal: %w", err)
	}
	defer func() {
		if cerr := rt.db.Close(); cerr != nil {
			log.Error("close wal", "err", cerr)
		}
	}()

	if !opts.NoCluster {
		if rt.node, err = rt.newNode(); err != nil {
			return err
		}
	}
	rt.sys = actors.NewSystem(actors.Options{}, log, reg)
	if err := rt.build(); err != nil {
		_ = rt.sys.Stop(context.Background())
		return err
	}

	admin, err := rt.newAdmin()
	if err != nil {
		_ = rt.sys.Stop(context.Background())
		return err
	}
	for _, r := range rt.receivers {
		st, ok := r.(starter)
		if !ok {
			continue
		}
		if err := st.Start(); err != nil {
			_ = rt.sys.Stop(context.Background())
			_ = admin.Close()
			return fmt.Errorf("start receiver: %w", err)
		}
	}
	fmt.Fprintf(opts.Stdout, "obs %s: role %s, %d pipelines, data goes to %s; WAL in %s; admin on http://%s/\n",
		opts.Version, opts.Role, len(p.order), dest, walDir, admin.Addr())
	log.Info("started", "role", opts.Role, "pipelines", len(p.order), "destination", dest, "admin", admin.Addr())

	return rt.runAndStop(ctx, admin)
}

// runAndStop runs every service until ctx ends, then stops them in order.
func (rt *runtime) runAndStop(ctx context.Context, admin *adminServer) error {
	type group struct {
		cancel context.CancelFunc
		wg     sync.WaitGroup
	}
	start := func(g *group, fns ...func(context.Context) error) {
		c, cancel := context.WithCancel(context.Background())
		g.cancel = cancel
		for _, fn := range fns {
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				if err := fn(c); err != nil && !errors.Is(err, context.Canceled) {
					rt.log.Error("service stopped with error", "err", err)
				}
			}()
		}
	}
	var walG, expG, recvG, clusterG, adminG, kubeG group
	start(&walG, rt.db.Run)
	if rt.k8sCache != nil {
		start(&kubeG, rt.k8sCache.Run)
	}
	var expFns []func(context.Context) error
	for _, e := range rt.exporters {
		expFns = append(expFns, e.Run)
	}
	start(&expG, expFns...)
	var recvFns []func(context.Context) error
	for _, r := range rt.receivers {
		recvFns = append(recvFns, r.Run)
	}
	start(&recvG, recvFns...)
	if rt.node != nil {
		start(&clusterG, func(ctx context.Context) error {
			err := rt.node.Run(ctx)
			if err != nil && ctx.Err() == nil {
				// The member keeps serving data, but /readyz says why it
				// is alone (a gossip port in use, a bad key file).
				rt.clusterErr.Store(&err)
			}
			return err
		})
	}
	start(&adminG, admin.Run, func(ctx context.Context) error {
		return filepages.RunExecutable(ctx, time.Minute, rt.log)
	})

	<-ctx.Done()
	deadline, cancel := context.WithTimeout(context.Background(), rt.opts.ShutdownTimeout)
	defer cancel()
	// 1. Receivers stop accepting and answer what is in flight.
	recvG.cancel()
	recvG.wg.Wait()
	// 2. Processors drain and flush, upstream first, into the WAL writers,
	//    which wait for their commits.
	if err := rt.sys.Stop(deadline, rt.stopOrder...); err != nil {
		rt.log.Error("drain pipelines", "err", err)
	}
	// 3. The Kubernetes informers stop: no processor reads them any more.
	if rt.k8sCache != nil {
		kubeG.cancel()
		kubeG.wg.Wait()
	}
	// 4. Exporters stop reading; unsent data stays in the WAL.
	expG.cancel()
	expG.wg.Wait()
	// 5. The cluster member leaves gracefully (others see "left").
	if rt.node != nil {
		clusterG.cancel()
		clusterG.wg.Wait()
	}
	// 6. The WAL's committer and GC stop; Run's deferred Close closes badger.
	walG.cancel()
	walG.wg.Wait()
	// 7. The admin port goes last, so a drain can be watched.
	adminG.cancel()
	adminG.wg.Wait()
	rt.log.Info("stopped")
	return nil
}

func (rt *runtime) newNode() (*cluster.Node, error) {
	cfg := cluster.DefaultConfig()
	o := rt.opts
	sec := rt.plan.file.Cluster
	cfg.NodeName = firstNonEmpty(o.NodeName, sec.NodeName)
	cfg.ClusterName = firstNonEmpty(o.ClusterName, sec.Name, "obs")
	bind := firstNonEmpty(o.ClusterBind, sec.Bind, ":7946")
	host, port, err := splitHostPort(bind, 7946)
	if err != nil {
		return nil, fmt.Errorf("--cluster-bind: %w", err)
	}
	cfg.BindAddr, cfg.BindPort = host, port
	if adv := firstNonEmpty(o.ClusterAdvertise, sec.Advertise); adv != "" {
		h, p, err := splitHostPort(adv, port)
		if err != nil {
			return nil, fmt.Errorf("--cluster-advertise: %w", err)
		}
		cfg.AdvertiseAddr, cfg.AdvertisePort = h, p
	}
	cfg.Join = append(append([]string{}, o.Join...), sec.Join...)
	if kf := firstNonEmpty(o.ClusterKeyFile, sec.KeyFile); kf != "" {
		keys, err := cluster.LoadKeyFile(kf)
		if err != nil {
			return nil, err
		}
		cfg.Keys = keys
	}
	switch rt.opts.Role {
	case Agent:
		cfg.Role = cluster.RoleAgent
	case Gateway:
		cfg.Role = cluster.RoleGateway
	default:
		cfg.Role = cluster.RoleAll
	}
	cfg.Meta.Version = rt.opts.Version
	cfg.Meta.AdminEndpoint = rt.opts.AdminAddr
	cfg.Meta.OTLPEndpoint = rt.otlpEndpoint()
	cfg.Meta.Start = rt.started
	cfg.Duties = []string{"k8s-events"}
	n, err := cluster.New(cfg, rt.log.With("component", "cluster"), rt.reg)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	return n, nil
}

// gatewayRoute names the OTLP endpoint of the gateway that owns key. A
// member advertises only the port of its OTLP gRPC receiver when it
// listens on every address; the gossip address supplies the host.
func (rt *runtime) gatewayRoute(key string) (string, bool) {
	m, ok := rt.node.OwnerMember(key, cluster.RoleGateway)
	if !ok || m.Meta.OTLPEndpoint == "" {
		return "", false
	}
	host, port, err := net.SplitHostPort(m.Meta.OTLPEndpoint)
	if err != nil {
		return "", false
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = m.Addr
	}
	return net.JoinHostPort(host, port), true
}

// eventsDuty ties the Kubernetes-events receiver to the cluster: only the
// leader among gateways watches, and its resume point is gossiped so the
// next leader continues where it stopped. A member without a cluster is
// its own leader and keeps the resume point in memory and in its WAL.
func (rt *runtime) eventsDuty(cfg *logs.K8sEventsConfig) logs.Duty {
	if rt.node != nil {
		// Self and StateWriter let a restarted member (same name) resume
		// at once from what its previous process gossiped; Duties lists
		// the per-namespace duties in the cluster view.
		return logs.Duty{IsLeader: rt.node.IsLeader, Changed: rt.node.Changed(),
			GetState: rt.node.State, SetState: rt.node.SetState, Checkpoint: rt.db.Get,
			Self: rt.node.Name(), StateWriter: rt.node.StateWriter, DeleteState: rt.node.DeleteState,
			Duties: rt.node.SetDuties}
	}
	cfg.HandoverWait = 0
	var mu sync.Mutex
	state := map[string][]byte{}
	return logs.Duty{
		IsLeader: func(string) bool { return true },
		GetState: func(k string) ([]byte, bool) {
			mu.Lock()
			defer mu.Unlock()
			v, ok := state[k]
			return v, ok
		},
		SetState: func(k string, v []byte) error {
			mu.Lock()
			defer mu.Unlock()
			state[k] = append([]byte(nil), v...)
			return nil
		},
		Checkpoint: rt.db.Get,
	}
}

// sharding tells scrape receivers which targets are theirs: gateways
// share every target by rendezvous over the live gateways, agents keep
// the targets of their own node, and a member without a cluster keeps all.
func (rt *runtime) sharding() scrape.Sharding {
	sh := scrape.Sharding{Mode: "none", NodeName: rt.opts.NodeName}
	if rt.node == nil {
		return sh
	}
	sh.Seed = rt.node.Snapshot().Cluster
	sh.Self = rt.node.Name()
	sh.Owner = func(key string) (string, bool) { return rt.node.Owner(key, cluster.RoleGateway) }
	sh.Changed = rt.node.Changed()
	// The live gateways, with their start times: the Target Allocator API
	// lists idle ones too, and a joining gateway's start time sets the
	// instant its targets change hands.
	sh.Members = func() []scrape.Member {
		var out []scrape.Member
		for _, m := range rt.node.Members() {
			if m.State == cluster.StateAlive && (m.Meta.Role == cluster.RoleGateway || m.Meta.Role == cluster.RoleAll) {
				out = append(out, scrape.Member{Name: m.Name, Start: m.Meta.Start})
			}
		}
		return out
	}
	sh.Mode = "cluster"
	if rt.opts.Role == Agent {
		sh.Mode = "node"
	}
	if n, ok := os.LookupEnv("K8S_NODE_NAME"); ok && n != "" {
		sh.NodeName = n
	}
	return sh
}

// otlpEndpoint is the gRPC endpoint of this member's first OTLP receiver,
// advertised so agents can send to it.
func (rt *runtime) otlpEndpoint() string {
	for _, id := range sortedIDs(rt.plan.file.Receivers) {
		if cfg, ok := rt.plan.settings[kindReceiver][id].(export.OTLPReceiverConfig); ok && cfg.Protocols.GRPC != nil {
			return cfg.Protocols.GRPC.Endpoint
		}
	}
	return ""
}

func splitHostPort(s string, defPort int) (string, int, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		// a bare host
		return s, defPort, nil //nolint:nilerr
	}
	var port int
	if _, err := fmt.Sscanf(p, "%d", &port); err != nil {
		return "", 0, fmt.Errorf("port %q: want a number", p)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

func freeBytes(dir string) (int64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * st.Bsize, true
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// build spawns every pipeline from its exporters back to its receivers.
func (rt *runtime) build() error {
	p := rt.plan
	f := p.file
	expMetrics := export.NewExporterMetrics(rt.reg)
	refused := export.NewRefusedCounter(rt.reg)

	// Exporter settings for WAL-side batching come from the batch
	// processors of the pipelines that use the exporter.
	batchOf := map[config.ID]enrich.BatchConfig{}
	for _, pl := range p.order {
		for _, pid := range pl.Processors {
			if bc, ok := p.settings[kindProcessor][pid].(enrich.BatchConfig); ok {
				for _, e := range pl.Exporters {
					if cur, ok := batchOf[e]; !ok || bc.SendBatchSize > cur.SendBatchSize {
						batchOf[e] = bc
					}
				}
			}
		}
	}

	// Exporters and their queues.
	usedExporters := map[config.ID]bool{}
	for _, pl := range p.order {
		for _, e := range pl.Exporters {
			if _, ok := f.Exporters[e]; ok {
				usedExporters[e] = true
			}
		}
	}
	for _, id := range sortedIDs(f.Exporters) {
		if !usedExporters[id] {
			continue
		}
		q, err := rt.db.Queue(id.String())
		if err != nil {
			return fmt.Errorf("exporter %s: %w", id, err)
		}
		rt.queues[id] = q
		sender, ecfg, err := rt.newSender(id, p.settings[kindExporter][id])
		if err != nil {
			return fmt.Errorf("exporter %s: %w", id, err)
		}
		if bc, ok := batchOf[id]; ok {
			ecfg.BatchSize, ecfg.MaxBatchSize, ecfg.Timeout = bc.SendBatchSize, bc.SendBatchMaxSize, bc.Timeout
		}
		rt.exporters = append(rt.exporters, export.NewExporter(id.String(), q, sender, ecfg, expMetrics, rt.log))
	}

	// Pipelines, consumers of connectors first.
	connStages := map[config.ID]*actors.Ref{}
	var order [][]*actors.Ref // per pipeline, head first
	for _, pl := range p.order {
		var targets []*actors.Ref
		var queues []*wal.Queue
		for _, e := range pl.Exporters {
			if q, ok := rt.queues[e]; ok {
				queues = append(queues, q)
				continue
			}
			ref, err := rt.connector(e, connStages)
			if err != nil {
				return err
			}
			targets = append(targets, ref)
		}
		var chain []*actors.Ref
		if len(queues) > 0 {
			w := export.NewQueueWriter(pl.ID.String(), rt.db, queues, 16, refused)
			ref, err := rt.sys.Spawn(pl.ID.String()+"/wal", w, nil)
			if err != nil {
				return err
			}
			targets = append([]*actors.Ref{ref}, targets...)
			chain = append(chain, ref)
		}
		tail := targets[0]
		if len(targets) > 1 {
			ref, err := rt.sys.Spawn(pl.ID.String()+"/fanout", &actors.Fanout{Next: targets}, nil)
			if err != nil {
				return err
			}
			tail = ref
			chain = append([]*actors.Ref{ref}, chain...)
		}
		next := tail
		for i := len(pl.Processors) - 1; i >= 0; i-- {
			pid := pl.Processors[i]
			ref, err := rt.spawnProcessor(pl.ID, pid, p.settings[kindProcessor][pid], next)
			if err != nil {
				return err
			}
			chain = append([]*actors.Ref{ref}, chain...)
			next = ref
		}
		rt.heads[pl.ID] = next
		order = append(order, chain)
		rt.pipeInfo = append(rt.pipeInfo, pipelineInfo{ID: pl.ID.String(),
			Receivers: idStrings(pl.Receivers), Processors: idStrings(pl.Processors), Exporters: idStrings(pl.Exporters)})
	}
	// Stop order: pipelines that feed connectors (built last) stop first,
	// each from its head down; a connector stops after all its feeders and
	// before the first pipeline it feeds, so what it holds still has
	// somewhere to go.
	stopped := map[config.ID]bool{}
	for i := len(order) - 1; i >= 0; i-- {
		for _, r := range p.order[i].Receivers {
			if ref, ok := connStages[r]; ok && !stopped[r] {
				stopped[r] = true
				rt.stopOrder = append(rt.stopOrder, ref)
			}
		}
		rt.stopOrder = append(rt.stopOrder, order[i]...)
	}

	// Receivers: each hands a batch to the first stage of every pipeline
	// of that signal that lists it.
	for _, id := range sortedIDs(f.Receivers) {
		heads := map[actors.Signal][]*actors.Ref{}
		for _, pl := range p.order {
			if slices.Contains(pl.Receivers, id) {
				sig := p.signal[pl.ID]
				heads[sig] = append(heads[sig], rt.heads[pl.ID])
			}
		}
		if len(heads) == 0 {
			continue
		}
		consume := map[actors.Signal]consumeFunc{}
		for sig, hs := range heads {
			consume[sig] = consumeInto(id.String(), hs)
		}
		r, err := rt.newReceiver(id, p.settings[kindReceiver][id], consume)
		if err != nil {
			return fmt.Errorf("receiver %s: %w", id, err)
		}
		rt.receivers = append(rt.receivers, r)
	}
	return nil
}

// receiver is what every receiver type offers the run: Run until ctx
// ends. Those that bind ports also implement starter, so a bind error
// stops the start instead of surfacing later.
type receiver interface {
	Run(ctx context.Context) error
}

type starter interface {
	Start() error
}

// consumeFunc hands a batch, and the key/values that must be committed
// with it, to the pipelines; it returns once they are durable.
type consumeFunc func(ctx context.Context, b actors.Batch, extra []actors.KV) error

func (rt *runtime) newReceiver(id config.ID, settings any, consume map[actors.Signal]consumeFunc) (receiver, error) {
	switch cfg := settings.(type) {
	case export.OTLPReceiverConfig:
		fns := map[actors.Signal]export.ConsumeFunc{}
		for sig, f := range consume {
			fns[sig] = func(ctx context.Context, b actors.Batch) error { return f(ctx, b, nil) }
		}
		return export.NewOTLPReceiver(id.String(), cfg, fns, rt.log, rt.reg)
	case scrape.PrometheusConfig:
		r, err := scrape.NewPrometheusReceiver(id.String(), cfg, consume[actors.SignalMetrics], rt.sharding(),
			rt.log.With("component", "receivers."+id.String()), rt.reg)
		if err != nil {
			return nil, err
		}
		rt.scrapers = append(rt.scrapers, r)
		return r, nil
	case scrape.HostMetricsConfig:
		return scrape.NewHostMetricsReceiver(id.String(), cfg, consume[actors.SignalMetrics],
			rt.log.With("component", "receivers."+id.String()), rt.reg)
	case scrape.KubeletStatsConfig:
		return scrape.NewKubeletStatsReceiver(id.String(), cfg, consume[actors.SignalMetrics],
			rt.log.With("component", "receivers."+id.String()), rt.reg)
	case logs.K8sEventsConfig:
		client, err := logs.NewKubeClient(cfg.AuthType, "", cfg.Context)
		if err != nil {
			return nil, err
		}
		return logs.NewK8sEventsReceiver(id.String(), cfg, client, consume[actors.SignalLogs], rt.eventsDuty(&cfg),
			rt.log.With("component", "receivers."+id.String()), rt.reg)
	case logs.FilelogConfig:
		return logs.NewFilelogReceiver(id.String(), cfg, consume[actors.SignalLogs], rt.db.Get,
			rt.log.With("component", "receivers."+id.String()), rt.reg)
	}
	return nil, fmt.Errorf("BUG: receiver %s has no constructor (%T)", id, settings)
}

// consumeInto returns the receiver's ConsumeFunc: it hands a batch to every
// head and answers only when each copy is durable in the WAL (or failed).
// A pipeline that stays full for pipelineFullWait refuses, so the client
// backs off instead of holding a connection forever.
func consumeInto(origin string, heads []*actors.Ref) consumeFunc {
	return func(ctx context.Context, b actors.Batch, extra []actors.KV) error {
		ack := actors.NewAck()
		ack.Add(len(heads) - 1)
		sendCtx, cancel := context.WithTimeout(ctx, pipelineFullWait)
		defer cancel()
		for i, h := range heads {
			bb := b
			if i < len(heads)-1 {
				bb = b.Clone()
			}
			env := &actors.Envelope{Batch: bb, Origin: origin, Peer: actors.PeerFrom(ctx), Ack: ack, Extra: extra}
			if err := h.Send(sendCtx, env); err != nil {
				if ctx.Err() == nil {
					err = &actors.RefusedError{Reason: "pipeline_full", RetryAfter: time.Second}
				}
				ack.Done(err)
			}
		}
		return ack.Wait(ctx)
	}
}

func (rt *runtime) spawnProcessor(pipe config.PipelineID, id config.ID, settings any, next *actors.Ref) (*actors.Ref, error) {
	name := pipe.String() + "/" + id.String()
	log := rt.log.With("component", "processors."+id.String(), "pipeline", pipe.String())
	switch cfg := settings.(type) {
	case enrich.BatchConfig:
		b, err := enrich.NewBatch(cfg, nil, log)
		if err != nil {
			return nil, fmt.Errorf("processor %s: %w", id, err)
		}
		ref, err := rt.sys.Spawn(name, b, next)
		if err != nil {
			return nil, err
		}
		b.SetQueued(ref.Len)
		return ref, nil
	case enrich.MemoryLimiterConfig:
		// One limiter per pipeline: its metrics are labelled by both.
		m, err := enrich.NewMemoryLimiter(name, cfg, log, rt.reg)
		if err != nil {
			return nil, fmt.Errorf("processor %s: %w", id, err)
		}
		return rt.sys.Spawn(name, m, next)
	case enrich.AttributesConfig:
		if err := cfg.ValidateFor(rt.plan.signal[pipe]); err != nil {
			return nil, fmt.Errorf("processor %s in pipeline %s: %w", id, pipe, err)
		}
	}
	fn, err := rt.processFunc(id, settings, log)
	if err != nil {
		return nil, err
	}
	return rt.sys.Spawn(name, actors.Processor{Fn: fn}, next)
}

// kubeCache returns the process's one informer cache, creating it (and
// its API client) on first use; runAndStop runs it.
func (rt *runtime) kubeCache(authType string) (*enrich.K8sCache, error) {
	if rt.k8sCache != nil {
		return rt.k8sCache, nil
	}
	client, err := enrich.KubeClient(authType, "")
	if err != nil {
		return nil, err
	}
	rt.k8sCache, err = enrich.NewK8sCache(client, rt.log.With("component", "k8s-cache"), rt.reg)
	return rt.k8sCache, err
}

// processFunc builds a transform once per processor id: every pipeline
// naming it runs the same func (they are safe for concurrent use) and
// shares its counters.
func (rt *runtime) processFunc(id config.ID, settings any, log *slog.Logger) (actors.ProcessFunc, error) {
	if fn, ok := rt.procFuncs[id]; ok {
		return fn, nil
	}
	var (
		fn  actors.ProcessFunc
		err error
	)
	switch cfg := settings.(type) {
	case enrich.ResourceConfig:
		fn, err = enrich.NewResource(id.String(), cfg, log, rt.reg)
	case enrich.AttributesConfig:
		fn, err = enrich.NewAttributes(id.String(), cfg, log, rt.reg)
	case enrich.MetricsTransformConfig:
		fn, err = enrich.NewMetricsTransform(id.String(), cfg, log, rt.reg)
	case enrich.FilterConfig:
		fn, err = enrich.NewFilter(id.String(), cfg, log, rt.reg)
	case enrich.K8sAttributesConfig:
		var cache *enrich.K8sCache
		if !cfg.Passthrough {
			// Agents pass through and never touch the API server; gateways
			// share one informer cache per process.
			if cache, err = rt.kubeCache(cfg.AuthType); err != nil {
				return nil, fmt.Errorf("processor %s: %w", id, err)
			}
		}
		var k *enrich.K8sAttributes
		if k, err = enrich.NewK8sAttributes(id.String(), cfg, cache, actors.PeerFrom, log, rt.reg); err == nil {
			fn = k.Process
		}
	case enrich.ResourceDetectionConfig:
		var client kubernetes.Interface
		if slices.Contains(cfg.Detectors, "k8snode") {
			if client, err = enrich.KubeClient(cfg.K8sNode.AuthType, ""); err != nil {
				return nil, fmt.Errorf("processor %s: %w", id, err)
			}
		}
		var d *enrich.ResourceDetection
		if d, err = enrich.NewResourceDetection(id.String(), cfg, client, log, rt.reg); err == nil {
			// Detect once at start, as the Collector does: a detector that
			// fails stops the start with its reason.
			if err = d.Detect(context.Background()); err == nil {
				fn = d.Process
			}
		}
	default:
		return nil, fmt.Errorf("BUG: processor %s has no stage (%T)", id, settings)
	}
	if err != nil {
		return nil, fmt.Errorf("processor %s: %w", id, err)
	}
	rt.procFuncs[id] = fn
	return fn, nil
}

// connector returns the stage of connector id, spawning it on first use.
// Its consumers (pipelines listing it as a receiver) are already built.
func (rt *runtime) connector(id config.ID, stages map[config.ID]*actors.Ref) (*actors.Ref, error) {
	if ref, ok := stages[id]; ok {
		return ref, nil
	}
	heads := map[string]*actors.Ref{}
	for _, pl := range rt.plan.order {
		if slices.Contains(pl.Receivers, id) {
			if h, ok := rt.heads[pl.ID]; ok {
				heads[pl.ID.String()] = h
			}
		}
	}
	switch cfg := rt.plan.settings[kindConnector][id].(type) {
	case enrich.RoutingConfig:
		r, err := enrich.NewRouting(id.String(), cfg, heads, rt.reg)
		if err != nil {
			return nil, fmt.Errorf("connector %s: %w", id, err)
		}
		ref, err := rt.sys.Spawn("connectors/"+id.String(), r, nil)
		if err != nil {
			return nil, err
		}
		stages[id] = ref
		return ref, nil
	}
	return nil, fmt.Errorf("BUG: connector %s has no stage", id)
}

func (rt *runtime) newSender(id config.ID, settings any) (export.Sender, export.ExporterConfig, error) {
	log := rt.log.With("component", "exporters."+id.String())
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"exporter": id.String()}, rt.reg)
	ecfg := export.ExporterConfig{Retry: export.DefaultRetryConfig()}
	switch cfg := settings.(type) {
	case export.OTLPExporterConfig:
		ecfg.Retry = cfg.RetryOnFailure
		ecfg.Consumers = cfg.SendingQueue.NumConsumers
		if cfg.Endpoint == export.ClusterGateway {
			if rt.node == nil {
				return nil, ecfg, fmt.Errorf("endpoint %s needs the cluster (drop --no-cluster)", export.ClusterGateway)
			}
			s, err := export.NewBalancingSender(cfg, rt.gatewayRoute, log, reg)
			return s, ecfg, err
		}
		s, err := export.NewOTLPSender(cfg, log, reg)
		return s, ecfg, err
	case export.OTLPHTTPExporterConfig:
		ecfg.Retry = cfg.RetryOnFailure
		ecfg.Consumers = cfg.SendingQueue.NumConsumers
		s, err := export.NewOTLPHTTPSender(cfg, log, reg)
		return s, ecfg, err
	case export.DebugExporterConfig:
		s, err := export.NewDebugSender(cfg, os.Stderr, log)
		return s, ecfg, err
	case export.FileExporterConfig:
		s, err := export.NewFileSender(cfg, log)
		return s, ecfg, err
	}
	return nil, ecfg, fmt.Errorf("BUG: exporter %s has no sender (%T)", id, settings)
}

func idStrings(ids []config.ID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}
