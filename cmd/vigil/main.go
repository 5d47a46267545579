// Command vigil is the single Vigil binary: `vigil up` runs the whole
// platform on one host; the other subcommands run one stage on its own.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vigil:", err)
		var ec exitCoder
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

// exitCoder lets a command choose its exit status (bench goals not met, say).
type exitCoder interface{ ExitCode() int }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "vigil",
		Short:         "Anomaly detection over eBPF telemetry, stored in ClickHouse",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	addConfigFlags(root.PersistentFlags())
	root.AddCommand(
		newUpCmd(),
		newClickHouseCmd(),
		newCollectCmd(),
		newConfigCmd(),
		newAskCmd(),
		newReplayCmd(),
		newPipelineCmd(),
		newBenchCmd(),
	)
	return root
}

// setup loads the configuration for a command and builds its logger. Every
// command goes through it so flags, file and environment mean the same
// everywhere.
func setup(cmd *cobra.Command) (Config, *slog.Logger, error) {
	cfg, err := loadConfig(cmd.Flags(), os.Environ())
	if err != nil {
		return cfg, nil, err
	}
	level, _ := parseLogLevel(cfg.LogLevel)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	return cfg, log, nil
}

func newConfigCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Print the effective configuration (after file, environment and flags) as YAML",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := setup(cmd)
			if err != nil {
				return err
			}
			return printConfig(cmd.OutOrStdout(), cfg)
		},
	}
}
