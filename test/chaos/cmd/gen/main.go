// Command gen is the chaos suite's load: it sends OTLP gRPC log batches
// with unique "chaos.id" attributes to the given targets (round robin),
// retrying each batch, on the next target, until one acknowledges it. Each
// batch carries one resource out of -resources, so a gateway balancer
// spreads them. An HTTP status port reports what was acknowledged.
//
//	GET  /acked  JSON {"acked": [...ids], "batches": N, "retries": N, "stopped": bool}
//	POST /stop   stop starting new batches; the batch in flight is still retried
//	GET  /healthz
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

const idAttr = "chaos.id"

func main() {
	targets := flag.String("targets", "agent1:4317,agent2:4317", "comma-separated OTLP gRPC endpoints")
	httpAddr := flag.String("http", ":8080", "status HTTP listen address")
	batch := flag.Int("batch", 50, "records per batch")
	interval := flag.Duration("interval", 50*time.Millisecond, "pause between acknowledged batches")
	resources := flag.Int("resources", 16, "distinct resources the batches cycle through")
	maxBatches := flag.Int("max-batches", 100000, "stop after this many batches")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	g := &gen{targets: strings.Split(*targets, ","), batch: *batch, interval: *interval,
		resources: *resources, maxBatches: *maxBatches, log: log, stopc: make(chan struct{})}
	if err := g.run(ctx, *httpAddr); err != nil {
		log.Error("gen stopped", "err", err)
		os.Exit(1)
	}
}

type gen struct {
	targets    []string
	batch      int
	interval   time.Duration
	resources  int
	maxBatches int
	log        *slog.Logger

	stopOnce sync.Once
	stopc    chan struct{}

	mu      sync.Mutex
	acked   []int64
	batches int
	retries int
	stopped bool
	lastErr string
}

func (g *gen) run(ctx context.Context, httpAddr string) error {
	hl, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return fmt.Errorf("listen http: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /acked", g.serveAcked)
	mux.HandleFunc("POST /stop", func(w http.ResponseWriter, _ *http.Request) {
		g.stopOnce.Do(func() { close(g.stopc) })
		fmt.Fprintln(w, "stopping")
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := hs.Serve(hl); !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("serve http", "err", err)
		}
	}()

	clients := make([]plogotlp.GRPCClient, len(g.targets))
	var conns []*grpc.ClientConn
	for i, t := range g.targets {
		cc, err := grpc.NewClient(t, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithNoProxy())
		if err != nil {
			_ = hs.Close()
			wg.Wait()
			return fmt.Errorf("dial %s: %w", t, err)
		}
		conns = append(conns, cc)
		clients[i] = plogotlp.NewGRPCClient(cc)
	}
	g.log.Info("gen sending", "targets", g.targets, "batch", g.batch, "interval", g.interval)
	g.send(ctx, clients)
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
	g.log.Info("gen done", "batches", g.batches, "retries", g.retries)

	<-ctx.Done() // keep serving the results until the container stops
	for _, cc := range conns {
		_ = cc.Close()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	wg.Wait()
	return nil
}

// send runs batches until stopped; every batch is retried until acked.
func (g *gen) send(ctx context.Context, clients []plogotlp.GRPCClient) {
	next := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for b := 0; b < g.maxBatches; b++ {
		select {
		case <-ctx.Done():
			return
		case <-g.stopc:
			return
		case <-timer.C:
		}
		req := g.request(b)
		for attempt := 0; ; attempt++ {
			c := clients[next%len(clients)]
			next++
			err := g.export(ctx, c, req)
			if err == nil {
				break
			}
			g.mu.Lock()
			g.retries++
			g.lastErr = err.Error()
			g.mu.Unlock()
			if attempt%20 == 0 {
				g.log.Warn("batch not acknowledged, retrying", "batch", b, "attempt", attempt, "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
		g.mu.Lock()
		for i := range g.batch {
			g.acked = append(g.acked, int64(b*g.batch+i))
		}
		g.batches++
		g.mu.Unlock()
		timer.Reset(g.interval)
	}
}

func (g *gen) export(ctx context.Context, c plogotlp.GRPCClient, req plogotlp.ExportRequest) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rsp, err := c.Export(cctx, req)
	if err != nil {
		return err
	}
	if n := rsp.PartialSuccess().RejectedLogRecords(); n > 0 {
		return fmt.Errorf("%d records rejected: %s", n, rsp.PartialSuccess().ErrorMessage())
	}
	return nil
}

// request builds batch b: ids b*batch … b*batch+batch-1, one resource.
func (g *gen) request(b int) plogotlp.ExportRequest {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "chaos-gen")
	rl.Resource().Attributes().PutStr("service.instance.id", fmt.Sprintf("r%d", b%g.resources))
	sl := rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName("chaos")
	now := time.Now()
	for i := range g.batch {
		id := int64(b*g.batch + i)
		lr := sl.LogRecords().AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(now))
		lr.Body().SetStr(fmt.Sprintf("chaos record %d", id))
		lr.Attributes().PutInt(idAttr, id)
	}
	return plogotlp.NewExportRequestFromLogs(ld)
}

type ackedReply struct {
	Acked   []int64 `json:"acked"`
	Batches int     `json:"batches"`
	Retries int     `json:"retries"`
	Stopped bool    `json:"stopped"`
	LastErr string  `json:"last_error,omitempty"`
}

func (g *gen) serveAcked(w http.ResponseWriter, _ *http.Request) {
	g.mu.Lock()
	rep := ackedReply{Acked: append([]int64{}, g.acked...), Batches: g.batches, Retries: g.retries, Stopped: g.stopped, LastErr: g.lastErr}
	g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(rep)
}
