package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-dev/vigil/collector"
)

func newCollectCmd() *cobra.Command {
	var (
		format   string
		duration time.Duration
	)
	cmd := &cobra.Command{
		Use:   "collect",
		Short: "Run the kernel probes and print events (jsonl: one JSON object per event, field kind)",
		Example: `  vigil collect --probes exec --format jsonl --duration 5s
  vigil collect --probes exec,tcp | jq 'select(.kind=="exec") | .argv'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := setup(cmd)
			if err != nil {
				return err
			}
			if format != "jsonl" {
				return fmt.Errorf("--format %q: want jsonl", format)
			}
			if duration < 0 {
				return fmt.Errorf("--duration %v: must not be negative", duration)
			}
			ctx := cmd.Context()
			if duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, duration)
				defer cancel()
			}
			col, err := collector.New(collector.Options{Probes: cfg.Probes, Host: cfg.HostName(), Logger: log})
			if err != nil {
				return err
			}
			defer col.Close()
			for _, perr := range col.Failed() {
				log.Warn("probe not loaded", "err", perr)
			}
			log.Info("collecting", "probes", cfg.Probes, "duration", duration)

			batches := make(chan collector.Batch, 16)
			runErr := make(chan error, 1)
			go func() { runErr <- col.Run(ctx, batches); close(batches) }()

			var writeErr error
			for b := range batches {
				if writeErr == nil {
					writeErr = collector.WriteJSONL(cmd.OutOrStdout(), b)
					if writeErr != nil {
						// Stop reading the kernel once stdout is gone
						// (`vigil collect | head`), but drain what is queued.
						col.Close()
					}
				}
				b.Record.Release()
			}
			if err := <-runErr; err != nil {
				return err
			}
			if writeErr != nil && !errors.Is(writeErr, context.Canceled) {
				return fmt.Errorf("write events: %w", writeErr)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "jsonl", "output format: jsonl")
	cmd.Flags().DurationVar(&duration, "duration", 0, "stop after this long (default: until interrupted)")
	return cmd
}
