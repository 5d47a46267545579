package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-dev/vigil/collector"
	"github.com/vigil-dev/vigil/pipeline/ingest"
)

func newCollectCmd() *cobra.Command {
	var (
		format   string
		duration time.Duration
		record   string
		to       string
	)
	cmd := &cobra.Command{
		Use:   "collect",
		Short: "Run the kernel probes and print events (jsonl: one JSON object per event, field kind)",
		Example: `  vigil collect --probes exec --format jsonl --duration 5s
  vigil collect --duration 1m --record host.arrow && vigil replay host.arrow
  vigil collect --probes exec,tcp | jq 'select(.kind=="exec") | .argv'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := setup(cmd)
			if err != nil {
				return err
			}
			if format != "jsonl" && format != "arrow" {
				return fmt.Errorf("--format %q: want jsonl or arrow", format)
			}
			if to != "" {
				if u, err := url.Parse(to); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return fmt.Errorf("--to %q: want http(s)://host:port", to)
				}
				if cfg.Token == "" {
					return fmt.Errorf("--to needs the pipeline's access token: pass --token or set VIGIL_TOKEN")
				}
				if record != "" || format != "jsonl" {
					return fmt.Errorf("--to streams to a pipeline: it does not combine with --record or --format")
				}
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
			if to != "" {
				return sendTo(ctx, to, cfg, log, batches, runErr)
			}

			// write sends a batch to stdout in the chosen format and, with
			// --record, to the recording file.
			write := func(b collector.Batch) error { return collector.WriteJSONL(cmd.OutOrStdout(), b) }
			var recorders []*collector.Recorder
			if format == "arrow" {
				rec := collector.NewRecorder(cmd.OutOrStdout())
				recorders = append(recorders, rec)
				write = rec.Write
			}
			if record != "" {
				f, err := os.Create(record)
				if err != nil {
					return fmt.Errorf("--record: %w", err)
				}
				defer f.Close()
				rec := collector.NewRecorder(f)
				recorders = append(recorders, rec)
				stdout := write
				write = func(b collector.Batch) error {
					if err := rec.Write(b); err != nil {
						return fmt.Errorf("record: %w", err)
					}
					return stdout(b)
				}
			}
			var writeErr error
			for b := range batches {
				if writeErr == nil {
					writeErr = write(b)
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
			for _, r := range recorders {
				if err := r.Close(); err != nil && writeErr == nil {
					writeErr = err
				}
			}
			if writeErr != nil && !errors.Is(writeErr, context.Canceled) {
				return fmt.Errorf("write events: %w", writeErr)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "jsonl", "output on stdout: jsonl (one JSON object per event) or arrow (Arrow IPC streams, as --record writes)")
	cmd.Flags().StringVar(&to, "to", "", "stream the events to a pipeline (vigil up or vigil pipeline) at http(s)://host:port, with --token")
	cmd.Flags().StringVar(&record, "record", "", "also record every batch to this file, for `vigil replay`")
	cmd.Flags().DurationVar(&duration, "duration", 0, "stop after this long (default: until interrupted)")
	return cmd
}

// sendTo streams batches to a remote pipeline until the collector stops,
// then gives the sender up to 10 s to deliver what is queued. While the
// pipeline is unreachable the sender stops reading, the collector's queue
// fills, and the collector drops and counts: the kernel reader never waits.
func sendTo(ctx context.Context, to string, cfg Config, log *slog.Logger, batches <-chan collector.Batch, runErr <-chan error) error {
	s, err := ingest.NewSender(ingest.SenderOptions{URL: to, Token: cfg.Token, Logger: log.With("stage", "ingest")})
	if err != nil {
		return err
	}
	sendCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(10*time.Second, cancel) })
	defer stop()
	log.Info("streaming to pipeline", "url", to)
	if err := s.Run(sendCtx, batches); err != nil && !errors.Is(err, context.Canceled) {
		// The caller's deferred Close stops the collector.
		return err
	}
	return <-runErr
}
