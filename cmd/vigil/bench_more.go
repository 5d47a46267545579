package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-dev/vigil/bench/collect"
	"github.com/vigil-dev/vigil/bench/e2e"
	"github.com/vigil-dev/vigil/bench/overhead"
	"github.com/vigil-dev/vigil/bench/scenarios"
	"github.com/vigil-dev/vigil/bench/store"
	"github.com/vigil-dev/vigil/models"
)

// extraBenchCmds are the bench subcommands over the kernel and the store.
func extraBenchCmds() []*cobra.Command {
	return []*cobra.Command{newBenchCollectorCmd(), newBenchOverheadCmd(), newBenchStoreCmd(), newBenchE2ECmd(), newBenchScenariosCmd()}
}

func newBenchScenariosCmd() *cobra.Command {
	var o scenarios.Options
	cmd := &cobra.Command{
		Use:   "scenarios",
		Short: "Run real attacks and faults on this host under vigil up, with a busy-server baseline, and report what was detected",
		Long: `Starts this binary's vigil up (temporary data dir, free ports), runs the baseline workload as a
warm-up (also the models' learning period), then each scenario (all bounded in time, each acting
through its own vbench-* process, touching only loopback and the namespaces and cgroups they create),
and reports for each: detected or not, time to detection, whether an anomaly and its incident name the
expected entity (kind and name, exactly), the detector, how many of the scenario's own telemetry rows
reached ClickHouse (0: probe miss; rows but no detection: model miss), and the incident's title and
summary. Then runs the baseline alone and counts the incidents it raises. Needs root, perl and
iproute2 (retransmit-storm) and a memory cgroup (oom-kill, v2 or v1).
`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, log, err := setup(cmd)
			if err != nil {
				return err
			}
			if o.Baseline <= 0 || o.Quiet < 0 || o.Wait <= 0 || o.Step <= 0 {
				return fmt.Errorf("--baseline, --wait and --step must be positive, --quiet not negative")
			}
			if warm := models.DefaultBurstWarmup * o.Step; o.Baseline < warm {
				return fmt.Errorf("--baseline %s is shorter than the burst detectors' warm-up at --step %s (%d steps, %s): use --baseline %s or more",
					o.Baseline, o.Step, models.DefaultBurstWarmup, warm, warm+time.Minute)
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find this binary: %w", err)
			}
			o.Binary, o.Out, o.Logger = exe, cmd.OutOrStdout(), log
			started := time.Now()
			res, err := scenarios.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			out, _ := cmd.Flags().GetString("out")
			return writeReport(out, "scenarios", started, res)
		},
	}
	var names []string
	for _, s := range scenarios.Table() {
		names = append(names, s.Name)
	}
	cmd.Flags().StringSliceVar(&o.Only, "only", nil, "scenario names to run (default: all): "+strings.Join(names, ", "))
	cmd.Flags().DurationVar(&o.Baseline, "baseline", 3*time.Minute, "warm-up with the baseline workload alone; also the models' learning period (the numeric detector scores after 50 steps, the burst detectors after 20)")
	cmd.Flags().DurationVar(&o.Quiet, "quiet", 10*time.Minute, "baseline alone after the scenarios, counting false positives")
	cmd.Flags().DurationVar(&o.Wait, "wait", 30*time.Second, "how long to wait for each detection")
	cmd.Flags().DurationVar(&o.Step, "step", time.Second, "the models' step (vigil up --model-step); production runs at 10s")
	return cmd
}

func newBenchE2ECmd() *cobra.Command {
	var o e2e.Options
	cmd := &cobra.Command{
		Use:   "e2e",
		Short: "Latency of a kernel event to ClickHouse and to a websocket client (p50, p99) at a given rate",
		Long: `Starts this binary's vigil up (temporary data dir, free ports), generates marked events at
--rate, and measures when each becomes queryable in ClickHouse and when it reaches a dashboard
websocket client. Goal: queryable within 2 s at p99 at 100,000 events/s.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, log, err := setup(cmd)
			if err != nil {
				return err
			}
			if o.Rate <= 0 || o.Duration <= 0 {
				return fmt.Errorf("--rate and --duration must be positive")
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find this binary: %w", err)
			}
			o.Binary, o.Out, o.Logger = exe, cmd.OutOrStdout(), log
			started := time.Now()
			res, err := e2e.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			out, _ := cmd.Flags().GetString("out")
			return writeReport(out, "e2e", started, res)
		},
	}
	cmd.Flags().IntVar(&o.Rate, "rate", 100_000, "events per second")
	cmd.Flags().DurationVar(&o.Duration, "duration", 10*time.Second, "length of the load")
	return cmd
}

func newBenchCollectorCmd() *cobra.Command {
	var o collect.Options
	cmd := &cobra.Command{
		Use:   "collector",
		Short: "Events per second from the ring buffer to Arrow batches under a real in-kernel load, with drops",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, log, err := setup(cmd)
			if err != nil {
				return err
			}
			if o.Duration <= 0 || o.Workers <= 0 || o.Rate < 0 {
				return fmt.Errorf("--duration and --workers must be positive, --rate not negative")
			}
			o.Out, o.Logger = cmd.OutOrStdout(), log
			started := time.Now()
			res, err := collect.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			out, _ := cmd.Flags().GetString("out")
			return writeReport(out, "collector", started, res)
		},
	}
	cmd.Flags().DurationVar(&o.Duration, "duration", 5*time.Second, "length of the load")
	cmd.Flags().IntVar(&o.Workers, "workers", 1, "load threads")
	cmd.Flags().IntVar(&o.Rate, "rate", 0, "cap the load at this many events/s (0: as fast as it goes)")
	cmd.Flags().IntVar(&o.Burst, "burst", 0, "records per load syscall, written by a bench-only BPF program into the priv probe's ring buffer (0: one priv syscall per event); measures the collector's capacity, not syscall cost")
	return cmd
}

func newBenchOverheadCmd() *cobra.Command {
	var o overhead.Options
	cmd := &cobra.Command{
		Use:   "overhead",
		Short: "Cost of a tight write(/dev/null) loop with the probes attached versus none, in one run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := setup(cmd)
			if err != nil {
				return err
			}
			if o.Duration <= 0 {
				return fmt.Errorf("--duration must be positive")
			}
			o.Probes, o.Out, o.Logger = cfg.Probes, cmd.OutOrStdout(), log
			started := time.Now()
			res, err := overhead.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			out, _ := cmd.Flags().GetString("out")
			return writeReport(out, "overhead", started, res)
		},
	}
	cmd.Flags().DurationVar(&o.Duration, "duration", 2*time.Second, "length of each phase (without, with, without)")
	return cmd
}

func newBenchStoreCmd() *cobra.Command {
	var o store.Options
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Rows per second into ClickHouse, columnar Arrow path versus row-by-row clickhouse-go, in one run",
		Long: `Without --clickhouse it starts the embedded engine on the configured ports with a
temporary data dir, so your data is not touched.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := setup(cmd)
			if err != nil {
				return err
			}
			if o.Rows <= 0 || o.BatchRows <= 0 || o.Rounds <= 0 {
				return fmt.Errorf("--rows, --batch-rows and --rounds must be positive")
			}
			if cfg.ClickHouse.DSN == "" {
				tmp, err := os.MkdirTemp("", "vigil-bench-store")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				cfg.DataDir = tmp
			}
			st, err := openStore(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			defer st.Close()
			o.Conn = st.conn
			started := time.Now()
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Minute)
			defer cancel()
			res, err := store.Run(ctx, o)
			if err != nil {
				return err
			}
			if err := res.WriteTable(cmd.OutOrStdout()); err != nil {
				return err
			}
			out, _ := cmd.Flags().GetString("out")
			return writeReport(out, "store", started, res)
		},
	}
	cmd.Flags().IntVar(&o.Rows, "rows", 1_000_000, "rows per method per round")
	cmd.Flags().IntVar(&o.BatchRows, "batch-rows", 100_000, "rows per Arrow record and per INSERT")
	cmd.Flags().IntVar(&o.Rounds, "rounds", 3, "alternating rounds; each method's best is kept")
	return cmd
}
