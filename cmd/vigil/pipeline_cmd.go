package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/vigil-dev/vigil/collector"
	"github.com/vigil-dev/vigil/pipeline"
	"github.com/vigil-dev/vigil/pipeline/ingest"
	"github.com/vigil-dev/vigil/query/chread"
	"github.com/vigil-dev/vigil/query/llm"
)

func newPipelineCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "pipeline",
		Short: "Run only the pipeline: take Arrow streams from remote collectors (vigil collect --to) into ClickHouse and the models",
		Long: `Serves POST ` + ingest.Path + ` on --listen for collectors on other hosts, authenticated with the
access token (--token, VIGIL_TOKEN, or the one kept in the data dir), and writes what they send
through the spool into ClickHouse (embedded, or --clickhouse) and through the models. A full
queue answers 503 and the sender retries, so nothing accepted is lost. GET /metrics (same token)
serves Prometheus metrics. TLS with --tls-cert and --tls-key.`,
		Example: `  vigil pipeline --listen 0.0.0.0:8080 --clickhouse clickhouse://ch:9000/vigil
  vigil collect --to http://pipeline-host:8080     # on every node, with the same VIGIL_TOKEN`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := setup(cmd)
			if err != nil {
				return err
			}
			return runPipeline(cmd.Context(), cfg, log, cmd)
		},
	}
}

func runPipeline(ctx context.Context, cfg Config, log *slog.Logger, cmd *cobra.Command) error {
	token, err := accessToken(cfg)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()
	ro, err := openReadOnly(ctx, cfg, st.dsn)
	if err != nil {
		return err
	}
	defer ro.Close()

	reg := prometheus.NewRegistry()
	sp, writer, err := newStoreStage(cfg, log, st, reg)
	if err != nil {
		return err
	}
	defer sp.Close()
	defer writer.Close()
	llmOpts := llmOptions(cfg, log)
	if llmOpts.Metrics, err = llm.NewMetrics(reg); err != nil {
		return fmt.Errorf("register LLM metrics: %w", err)
	}
	det, sink := newDetection(cfg, log, llmOpts, st, chread.NewClickHouse(ro, chread.Limits{}), nil)
	defer sink.Close()

	// The handler is the only sender on batches (it is closed after the
	// server has shut down), and the fan-out waits rather than drops: a
	// full queue turns into 503 and the remote sender retries.
	batches := make(chan collector.Batch, 256)
	h, err := ingest.NewHandler(batches, ingest.HandlerOptions{Token: token, Logger: log.With("stage", "ingest"), Registerer: reg})
	if err != nil {
		return err
	}
	pipe := pipeline.New(pipeline.Options{Backpressure: true, DrainTimeout: 6 * time.Second, Logger: log.With("stage", "pipeline")},
		pipeline.Stage{Name: "clickhouse", Consumer: sp, Queue: 256},
		pipeline.Stage{Name: "detect", Consumer: det, Queue: 256},
	)
	mux := http.NewServeMux()
	mux.Handle(ingest.Path, h)
	mux.Handle("GET /metrics", bearer(token, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	srv := &http.Server{Addr: cfg.Listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 2 * time.Minute}

	pipeErr := make(chan error, 1)
	go func() { pipeErr <- pipe.Run(batches) }()
	serveErr := make(chan error, 1)
	go func() {
		if cfg.TLSCert != "" {
			serveErr <- srv.ListenAndServeTLS(cfg.TLSCert, cfg.TLSKey)
		} else {
			serveErr <- srv.ListenAndServe()
		}
	}()
	fmt.Fprintf(cmd.OutOrStdout(), "vigil pipeline: ingest on %s%s, clickhouse %s\n", cfg.Listen, ingest.Path, redactDSN(st.dsn))

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("stopping")
	case err := <-serveErr:
		runErr = fmt.Errorf("ingest server on %s (choose another address with --listen): %w", cfg.Listen, err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		runErr = errors.Join(runErr, fmt.Errorf("shut down ingest server: %w", err))
	}
	close(batches)
	return errors.Join(runErr, <-pipeErr)
}

// bearer guards h with the access token, as the dashboard guards its API.
func bearer(token string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !tokenMatches(r.Header.Get("Authorization"), token) {
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
