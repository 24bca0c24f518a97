// Command sink is the chaos suite's OTLP backend: an OTLP gRPC logs server
// that records the "chaos.id" attribute of every log record it receives,
// and an HTTP status port that serves what it recorded.
//
//	GET /ids    JSON {"records": N, "ids": [...]}: one id per received record, duplicates included
//	GET /healthz
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
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip" // the otlp exporter compresses with gzip by default
)

// IDAttr is the log record attribute that carries the generator's id.
const IDAttr = "chaos.id"

func main() {
	grpcAddr := flag.String("grpc", ":4317", "OTLP gRPC listen address")
	httpAddr := flag.String("http", ":8080", "status HTTP listen address")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, *grpcAddr, *httpAddr, log); err != nil {
		log.Error("sink stopped", "err", err)
		os.Exit(1)
	}
}

type recorder struct {
	plogotlp.UnimplementedGRPCServer
	mu       sync.Mutex
	ids      []int64
	noID     int
	requests int
}

func (r *recorder) Export(_ context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	var got []int64
	noID := 0
	rls := req.Logs().ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		sls := rls.At(i).ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				v, ok := lrs.At(k).Attributes().Get(IDAttr)
				if !ok {
					noID++
					continue
				}
				got = append(got, v.Int())
			}
		}
	}
	r.mu.Lock()
	r.ids = append(r.ids, got...)
	r.noID += noID
	r.requests++
	r.mu.Unlock()
	return plogotlp.NewExportResponse(), nil
}

type idsReply struct {
	Records  int     `json:"records"`
	NoID     int     `json:"no_id"`
	Requests int     `json:"requests"`
	IDs      []int64 `json:"ids"`
}

func (r *recorder) serveIDs(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	rep := idsReply{Records: len(r.ids), NoID: r.noID, Requests: r.requests, IDs: append([]int64{}, r.ids...)}
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(rep)
}

func run(ctx context.Context, grpcAddr, httpAddr string, log *slog.Logger) error {
	rec := &recorder{}
	gl, err := net.Listen("tcp", grpcAddr)
	if err != nil {
		return fmt.Errorf("listen otlp: %w", err)
	}
	hl, err := net.Listen("tcp", httpAddr)
	if err != nil {
		_ = gl.Close()
		return fmt.Errorf("listen http: %w", err)
	}
	gs := grpc.NewServer()
	plogotlp.RegisterGRPCServer(gs, rec)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ids", rec.serveIDs)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		errc <- gs.Serve(gl)
	}()
	go func() {
		defer wg.Done()
		if err := hs.Serve(hl); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	log.Info("sink serving", "otlp", gl.Addr().String(), "http", hl.Addr().String())
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	gs.Stop()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	wg.Wait()
	return err
}
