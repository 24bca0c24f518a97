// Command obs is one binary for a whole OpenTelemetry Collector fleet:
// agents, gateways and the cluster-wide duties, found by gossip.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/obs-dev/obs/roles"
)

func main() {
	app := newApp(os.Stdout, os.Stderr)
	if err := app.Run(os.Args); err != nil {
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			if msg := ec.Error(); msg != "" {
				fmt.Fprintln(os.Stderr, msg)
			}
			os.Exit(ec.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "obs:", err)
		os.Exit(1)
	}
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:      "obs",
		Usage:     "one binary for OpenTelemetry agents, gateways and cluster duties",
		Writer:    stdout,
		ErrWriter: stderr,
		Commands: []*cli.Command{
			runCommand(),
			validateCommand(),
			walCommand(),
			membersCommand(),
			targetsCommand(),
			versionCommand(),
		},
	}
}

func env(names ...string) []string { return names }

var (
	roleFlag = &cli.StringFlag{Name: "role", Value: "all", EnvVars: env("OBS_ROLE"),
		Usage: "what this member does: agent, gateway or all"}
	configFlag = &cli.StringFlag{Name: "config", EnvVars: env("OBS_CONFIG"),
		Usage: "Collector-shaped YAML config; empty runs the role's built-in default"}
	dataDirFlag = &cli.StringFlag{Name: "data-dir", Value: "data", EnvVars: env("OBS_DATA_DIR"),
		Usage: "directory of the write-ahead log and checkpoints"}
	adminFlag = &cli.StringFlag{Name: "admin-addr", Value: ":8888", EnvVars: env("OBS_ADMIN_ADDR"),
		Usage: "HOST:PORT of /metrics, /healthz, /readyz, /config, /cluster and the status page"}
	nodeNameFlag = &cli.StringFlag{Name: "node-name", EnvVars: env("OBS_NODE_NAME"),
		Usage: "member name in the cluster (default: the hostname, i.e. the pod name)"}
	logLevelFlag = &cli.StringFlag{Name: "log-level", Value: "info", EnvVars: env("OBS_LOG_LEVEL"),
		Usage: "debug, info, warn or error"}
	logFormatFlag = &cli.StringFlag{Name: "log-format", Value: "text", EnvVars: env("OBS_LOG_FORMAT"),
		Usage: "text or json"}
	shutdownFlag = &cli.DurationFlag{Name: "shutdown-timeout", Value: 20 * time.Second, EnvVars: env("OBS_SHUTDOWN_TIMEOUT"),
		Usage: "how long a stop may drain in-flight batches into the WAL"}
	clusterBindFlag = &cli.StringFlag{Name: "cluster-bind", Value: ":7946", EnvVars: env("OBS_CLUSTER_BIND"),
		Usage: "HOST:PORT for gossip"}
	clusterAdvertiseFlag = &cli.StringFlag{Name: "cluster-advertise", EnvVars: env("OBS_CLUSTER_ADVERTISE"),
		Usage: "HOST:PORT other members reach this one at (default: the bind address)"}
	joinFlag = &cli.StringSliceFlag{Name: "join", EnvVars: env("OBS_JOIN"),
		Usage: "HOST[:PORT] of members to join, repeatable or comma-separated; names are re-resolved on every attempt"}
	clusterNameFlag = &cli.StringFlag{Name: "cluster-name", Value: "obs", EnvVars: env("OBS_CLUSTER_NAME"),
		Usage: "members of another cluster name are refused"}
	clusterKeyFlag = &cli.StringFlag{Name: "cluster-key-file", EnvVars: env("OBS_CLUSTER_KEY_FILE"),
		Usage: "file of base64 gossip keys, one per line; the first encrypts, all decrypt"}
	noClusterFlag = &cli.BoolFlag{Name: "no-cluster", EnvVars: env("OBS_NO_CLUSTER"),
		Usage: "run alone without gossip"}
	kubeconfigFlag = &cli.StringFlag{Name: "kubeconfig", EnvVars: env("OBS_KUBECONFIG"),
		Usage: "kubeconfig for components with auth_type: kubeConfig (default $KUBECONFIG); in a pod, serviceAccount needs none"}
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "run pipelines for a role",
		Flags: []cli.Flag{roleFlag, configFlag, dataDirFlag, adminFlag, nodeNameFlag, logLevelFlag, logFormatFlag,
			shutdownFlag, clusterBindFlag, clusterAdvertiseFlag, joinFlag, clusterNameFlag, clusterKeyFlag, noClusterFlag,
			kubeconfigFlag},
		Action: runAction,
	}
}

func runAction(c *cli.Context) error {
	log, err := newLogger(c.App.ErrWriter, c.String(logLevelFlag.Name), c.String(logFormatFlag.Name))
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	role, err := roles.ParseRole(c.String(roleFlag.Name))
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	if kc := c.String(kubeconfigFlag.Name); kc != "" {
		// client-go's kubeConfig loading reads $KUBECONFIG; the flag is
		// the laptop and test spelling of it. client-go skips a missing
		// file in $KUBECONFIG silently, and the error that follows names
		// no file: check it here.
		if _, err := os.Stat(kc); err != nil {
			return cli.Exit("obs: --kubeconfig: "+err.Error(), 2)
		}
		if err := os.Setenv("KUBECONFIG", kc); err != nil {
			return cli.Exit("obs: --kubeconfig: "+err.Error(), 2)
		}
	}
	opts := roles.Options{
		Role:             role,
		ConfigPath:       c.String(configFlag.Name),
		DataDir:          c.String(dataDirFlag.Name),
		AdminAddr:        c.String(adminFlag.Name),
		NodeName:         c.String(nodeNameFlag.Name),
		ShutdownTimeout:  c.Duration(shutdownFlag.Name),
		ClusterBind:      c.String(clusterBindFlag.Name),
		ClusterAdvertise: c.String(clusterAdvertiseFlag.Name),
		Join:             splitList(c.StringSlice(joinFlag.Name)),
		ClusterName:      c.String(clusterNameFlag.Name),
		ClusterKeyFile:   c.String(clusterKeyFlag.Name),
		NoCluster:        c.Bool(noClusterFlag.Name),
		Version:          version(),
		Stdout:           c.App.Writer,
	}
	if opts.NodeName == "" {
		opts.NodeName, _ = os.Hostname()
	}

	// The first SIGTERM/SIGINT starts the ordered stop; a second one exits
	// at once (the WAL commits are fsync'd, so it stays consistent).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	go func() {
		s, ok := <-sigs
		if !ok {
			return
		}
		log.Info("stopping: receivers first, then drain into the WAL", "signal", s.String(), "deadline", opts.ShutdownTimeout)
		cancel()
		if s, ok = <-sigs; ok {
			log.Warn("second signal: exiting now", "signal", s.String())
			os.Exit(130)
		}
	}()

	if err := roles.Run(ctx, opts, log); err != nil {
		return cli.Exit("obs: "+err.Error(), 1)
	}
	return nil
}

func validateCommand() *cli.Command {
	return &cli.Command{
		Name:      "validate",
		Usage:     "load, expand and check a config without starting anything",
		ArgsUsage: " ",
		Flags:     []cli.Flag{&cli.StringFlag{Name: "config", Required: true, EnvVars: env("OBS_CONFIG")}, roleFlag},
		Action: func(c *cli.Context) error {
			role, err := roles.ParseRole(c.String(roleFlag.Name))
			if err != nil {
				return cli.Exit(err.Error(), 2)
			}
			summary, warnings, err := roles.Validate(c.String("config"), role)
			for _, w := range warnings {
				fmt.Fprintln(c.App.ErrWriter, "warning:", w)
			}
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			fmt.Fprintln(c.App.Writer, summary)
			return nil
		},
	}
}

func walCommand() *cli.Command {
	dir := &cli.StringFlag{Name: "data-dir", Value: "data", EnvVars: env("OBS_DATA_DIR")}
	queue := &cli.StringFlag{Name: "queue", Usage: "exporter id, e.g. otlp/backend"}
	return &cli.Command{
		Name:  "wal",
		Usage: "inspect the write-ahead log of a stopped member",
		Subcommands: []*cli.Command{
			{
				Name:  "stats",
				Usage: "queue depth, bytes and oldest entry age per exporter",
				Flags: []cli.Flag{dir},
				Action: func(c *cli.Context) error {
					rows, err := roles.WALStats(c.String("data-dir"))
					if err != nil {
						return cli.Exit("obs: "+err.Error(), 1)
					}
					tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "QUEUE\tENTRIES\tBYTES\tOLDEST\tDEAD")
					for _, r := range rows {
						fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\n", r.Queue, r.Entries, r.Bytes, r.OldestAge.Round(time.Second), r.Dead)
					}
					return tw.Flush()
				},
			},
			{
				Name:  "dead",
				Usage: "list dead-lettered batches of a queue",
				Flags: []cli.Flag{dir, queue},
				Action: func(c *cli.Context) error {
					rows, err := roles.WALDead(c.String("data-dir"), c.String("queue"))
					if err != nil {
						return cli.Exit("obs: "+err.Error(), 1)
					}
					tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "QUEUE\tSEQ\tRECORDS\tBYTES\tTIME\tREASON")
					for _, r := range rows {
						fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\n", r.Queue, r.Seq, r.Records, r.Bytes, r.Time.Format(time.RFC3339), r.Reason)
					}
					return tw.Flush()
				},
			},
			{
				Name:  "replay",
				Usage: "re-enqueue dead-lettered batches of a queue (all, or --seq N ...)",
				Flags: []cli.Flag{dir, queue, &cli.Uint64SliceFlag{Name: "seq"}},
				Action: func(c *cli.Context) error {
					if c.String("queue") == "" {
						return cli.Exit("obs: --queue is required", 2)
					}
					n, err := roles.WALReplay(c.String("data-dir"), c.String("queue"), c.Uint64Slice("seq")...)
					if err != nil {
						return cli.Exit("obs: "+err.Error(), 1)
					}
					fmt.Fprintf(c.App.Writer, "re-enqueued %d batches on %s\n", n, c.String("queue"))
					return nil
				},
			},
		},
	}
}

func membersCommand() *cli.Command {
	return &cli.Command{
		Name:  "members",
		Usage: "print the cluster members as a running member sees them",
		Flags: []cli.Flag{&cli.StringFlag{Name: "admin-addr", Value: "127.0.0.1:8888", EnvVars: env("OBS_ADMIN_ADDR")}},
		Action: func(c *cli.Context) error {
			if err := roles.PrintMembers(c.Context, c.App.Writer, c.String("admin-addr")); err != nil {
				return cli.Exit("obs: "+err.Error(), 1)
			}
			return nil
		},
	}
}

func targetsCommand() *cli.Command {
	return &cli.Command{
		Name:  "targets",
		Usage: "print which member scrapes which target (the Target Allocator's view)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "admin-addr", Value: "127.0.0.1:8888", EnvVars: env("OBS_ADMIN_ADDR")},
			&cli.StringFlag{Name: "job", Usage: "only this job"},
		},
		Action: func(c *cli.Context) error {
			if err := roles.PrintTargets(c.Context, c.App.Writer, c.String("admin-addr"), c.String("job")); err != nil {
				return cli.Exit("obs: "+err.Error(), 1)
			}
			return nil
		},
	}
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print version, commit and Go version",
		Action: func(c *cli.Context) error {
			fmt.Fprintln(c.App.Writer, versionLine())
			return nil
		},
	}
}

func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok || bi.Main.Version == "" {
		return "(devel)"
	}
	return bi.Main.Version
}

func versionLine() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "obs (no build info)"
	}
	commit, modified := "unknown", ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			commit = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+dirty"
			}
		}
	}
	return fmt.Sprintf("obs %s commit %s%s %s", version(), commit, modified, bi.GoVersion)
}

func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	o := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
