package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-dev/vigil/collector"
	"github.com/vigil-dev/vigil/pipeline"
	"github.com/vigil-dev/vigil/pipeline/store"
)

func newReplayCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "replay FILE",
		Short: "Feed a recording (vigil collect --record) into the pipeline as if it were live",
		Long: `Reads a recording and sends every batch through the pipeline into ClickHouse (the
embedded engine under --data-dir, or --clickhouse), waiting for the store rather than
dropping. Exits when the whole file is stored.`,
		Example: `  vigil collect --duration 1m --record host.arrow
  vigil replay host.arrow`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, log, err := setup(cmd)
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("open recording: %w", err)
			}
			defer f.Close()
			ctx := cmd.Context()
			st, err := openStore(ctx, cfg, log)
			if err != nil {
				return err
			}
			defer st.Close()

			writer := store.NewWriter(st.conn, store.Options{Logger: log.With("stage", "store")})
			defer writer.Close()
			pipe := pipeline.New(pipeline.Options{Backpressure: true, Logger: log.With("stage", "pipeline")},
				pipeline.Stage{Name: "clickhouse", Consumer: writer, Queue: 16})
			batches := make(chan collector.Batch)
			pipeErr := make(chan error, 1)
			go func() { pipeErr <- pipe.Run(batches) }()

			start := time.Now()
			var rows, nb int64
			readErr := collector.ReadRecording(f, func(b collector.Batch) error {
				select {
				case batches <- b:
					rows += b.Record.NumRows()
					nb++
					return nil
				case <-ctx.Done():
					b.Record.Release()
					return ctx.Err()
				}
			})
			close(batches)
			if err := <-pipeErr; err != nil {
				return err
			}
			if readErr != nil {
				return fmt.Errorf("replay %s after %d rows: %w", args[0], rows, readErr)
			}
			ws := writer.Stats()
			fmt.Fprintf(cmd.OutOrStdout(), "replayed %d rows in %d batches from %s in %v; inserted %d rows, dropped %d\n",
				rows, nb, args[0], time.Since(start).Round(time.Millisecond), ws.Rows, ws.DroppedRows)
			if ws.DroppedRows > 0 {
				return fmt.Errorf("%d rows could not be stored (see the log)", ws.DroppedRows)
			}
			return nil
		},
	}
}
