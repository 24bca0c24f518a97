package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	promscrape "github.com/prometheus/prometheus/scrape"

	"github.com/obs-dev/obs/scrape"
	"github.com/obs-dev/obs/scrape/discard"
)

// The "Prometheus alone" row of the scrape scenario: this binary, started
// as `bench promfloor -config FILE`, runs Prometheus' discovery and scrape
// managers with obs' options and an appender that keeps nothing. Its CPU
// and memory are what the required library costs before obs
// stores or sends a single sample, measured in the same run as the others.

const promFloorCommand = "promfloor"

// runPromFloor scrapes until SIGTERM or SIGINT.
func runPromFloor(args []string) error {
	fs := flag.NewFlagSet(promFloorCommand, flag.ContinueOnError)
	path := fs.String("config", "", "Prometheus configuration file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return errors.New("promfloor: -config is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return promFloor(ctx, *path)
}

// promFloor scrapes what the Prometheus configuration at path names until
// ctx ends.
func promFloor(ctx context.Context, path string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg, err := promconfig.LoadFile(path, false, log)
	if err != nil {
		return fmt.Errorf("promfloor: %w", err)
	}
	scfgs, err := cfg.GetScrapeConfigs()
	if err != nil {
		return fmt.Errorf("promfloor: %w", err)
	}
	reg := prometheus.NewRegistry()
	mgr, err := promscrape.NewManager(scrape.ManagerOptions(), log, nil, nil, discard.Appendable{}, reg)
	if err != nil {
		return fmt.Errorf("promfloor: scrape manager: %w", err)
	}
	if err := mgr.ApplyConfig(cfg); err != nil {
		return fmt.Errorf("promfloor: %w", err)
	}
	sdMetrics, err := discovery.CreateAndRegisterSDMetrics(reg)
	if err != nil {
		return fmt.Errorf("promfloor: %w", err)
	}
	disc := discovery.NewManager(ctx, log, reg, sdMetrics, discovery.Name("scrape"))
	if disc == nil {
		return errors.New("promfloor: discovery manager could not register its metrics")
	}
	sd := make(map[string]discovery.Configs, len(scfgs))
	for _, sc := range scfgs {
		sd[sc.JobName] = sc.ServiceDiscoveryConfigs
	}
	if err := disc.ApplyConfig(sd); err != nil {
		return fmt.Errorf("promfloor: %w", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = disc.Run() })
	wg.Go(func() { _ = mgr.Run(disc.SyncCh()) })
	<-ctx.Done()
	mgr.Stop()
	wg.Wait()
	return nil
}
