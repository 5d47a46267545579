package main

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/vigil-dev/vigil/pipeline/engine"
)

func newClickHouseCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "clickhouse",
		Short: "Run only the embedded ClickHouse engine in the foreground (127.0.0.1)",
		Long: `Runs the ClickHouse engine vigil up uses, on its own, with the same data dir and
ports: point clickhouse-client, Grafana, DBeaver or curl at it.`,
		Example: `  vigil clickhouse --data-dir ./data
  curl 'http://127.0.0.1:8123/?query=SELECT+count()+FROM+vigil.exec_events'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := setup(cmd)
			if err != nil {
				return err
			}
			if cfg.ClickHouse.DSN != "" {
				return fmt.Errorf("--clickhouse %s names an external server: vigil clickhouse runs the embedded engine only", cfg.ClickHouse.DSN)
			}
			opts := engineOptions(cfg, log)
			log.Info("clickhouse engine starting", "native", engine.DSN(opts.TCPPort), "http", engine.HTTPURL(opts.HTTPPort), "data_dir", opts.DataDir)
			return engine.RunForeground(cmd.Context(), opts)
		},
	}
}

// engineOptions maps the configuration onto the engine's options; both the
// supervisor in `vigil up` and the foreground `vigil clickhouse` child use
// it, so they always agree on the data dir and ports.
func engineOptions(cfg Config, log *slog.Logger) engine.Options {
	return engine.Options{
		DataDir:   filepath.Join(cfg.DataDir, "clickhouse"),
		TCPPort:   cfg.ClickHouse.TCPPort,
		HTTPPort:  cfg.ClickHouse.HTTPPort,
		LibPath:   cfg.ClickHouse.Lib,
		Logger:    log,
		ChildArgs: engineChildArgs(cfg),
	}
}

// engineChildArgs are the arguments the supervisor re-executes this binary
// with: `vigil clickhouse` with the same settings.
func engineChildArgs(cfg Config) []string {
	args := []string{"clickhouse",
		"--data-dir", cfg.DataDir,
		"--ch-tcp-port", strconv.Itoa(cfg.ClickHouse.TCPPort),
		"--ch-http-port", strconv.Itoa(cfg.ClickHouse.HTTPPort),
		"--log-level", cfg.LogLevel,
	}
	if cfg.ClickHouse.Lib != "" {
		args = append(args, "--ch-lib", cfg.ClickHouse.Lib)
	}
	return args
}
