package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/vigil-dev/vigil/collector"
	"github.com/vigil-dev/vigil/pipeline"
	"github.com/vigil-dev/vigil/pipeline/detect"
	"github.com/vigil-dev/vigil/pipeline/engine"
	"github.com/vigil-dev/vigil/pipeline/schema"
	"github.com/vigil-dev/vigil/pipeline/spool"
	"github.com/vigil-dev/vigil/pipeline/store"
	"github.com/vigil-dev/vigil/query"
	"github.com/vigil-dev/vigil/query/chread"
	"github.com/vigil-dev/vigil/query/incidents"
	"github.com/vigil-dev/vigil/query/llm"
	"github.com/vigil-dev/vigil/query/summary"
	"github.com/vigil-dev/vigil/ui"
)

func newUpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "up",
		Short: "Run Vigil: embedded ClickHouse, kernel probes, pipeline, models and the dashboard",
		Long: `Runs the whole platform on this host. Without --clickhouse it starts the embedded
ClickHouse engine on 127.0.0.1 (data under --data-dir). Prints the dashboard URL with
its access token. Ctrl-C or SIGTERM stops everything; events already handed to the
pipeline are written to ClickHouse first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := setup(cmd)
			if err != nil {
				return err
			}
			return runUp(cmd.Context(), cfg, log, cmd.OutOrStdout())
		},
	}
}

// runUp starts the stages in dependency order (store, dashboard, collector)
// and stops them in reverse once ctx is done: the collector first, then the
// pipeline drains into ClickHouse, then the dashboard, then ClickHouse.
func runUp(ctx context.Context, cfg Config, log *slog.Logger, stdout io.Writer) error {
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	token, err := accessToken(cfg)
	if err != nil {
		return err
	}

	// Probes first: without root or BTF nothing else is worth starting.
	col, err := collector.New(collector.Options{Probes: cfg.Probes, Host: cfg.HostName(), Logger: log.With("stage", "collector")})
	if err != nil {
		return err
	}
	defer col.Close()
	for _, perr := range col.Failed() {
		log.Warn("probe not loaded; the others keep running", "err", perr)
	}
	log.Info("probes loaded", "count", len(col.Stats().Probes))

	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()

	// plat's fields are all set before srv.Run starts serving requests.
	plat := &platform{store: st, host: cfg.HostName(), rates: map[string]rate{}, llmHealth: llmHealth(cfg), ping: &pinger{conn: st.conn}}
	ro, err := openReadOnly(ctx, cfg, st.dsn)
	if err != nil {
		return err
	}
	defer ro.Close()
	reg := newRegistry(plat)
	llmMetrics, err := llm.NewMetrics(reg)
	if err != nil {
		return fmt.Errorf("register LLM metrics: %w", err)
	}
	llmOpts := llmOptions(cfg, log)
	llmOpts.Metrics = llmMetrics
	roRunner := chread.NewClickHouse(ro, chread.Limits{})
	src := incidents.New(roRunner, incidents.Options{})
	asker := query.NewAsker(query.Options{
		LLM:    llmOpts,
		Runner: roRunner,
		Logger: log.With("stage", "ask"),
	})
	srv, err := ui.New(ui.Options{
		Registerer: reg,
		Metrics:    promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		Listen:     cfg.Listen,
		Token:      token,
		TLSCert:    cfg.TLSCert,
		TLSKey:     cfg.TLSKey,
		Events:     plat,
		Health:     plat,
		Asker:      askAdapter{asker},
		Anomalies:  src,
		Incidents:  src,
		Logger:     log.With("stage", "ui"),
	})
	if err != nil {
		return fmt.Errorf("dashboard: %w (choose another address with --listen)", err)
	}
	defer srv.Close()
	live := pipeline.NewLive(srv.Hub(), 50, 200)
	plat.live = live

	plat.collector = col

	det, sink := newDetection(cfg, log, llmOpts, st, roRunner, srv.Hub())
	// Deferred after srv.Close: runs before it, once the pipeline has
	// returned, so queued detections and summaries reach ClickHouse and
	// the hub first.
	defer sink.Close()
	plat.detect, plat.sink = det, sink

	sp, writer, err := newStoreStage(cfg, log, st, reg)
	if err != nil {
		return err
	}
	defer sp.Close()
	defer writer.Close()
	plat.writer, plat.spool = writer, sp
	pipe := pipeline.New(pipeline.Options{Logger: log.With("stage", "pipeline"), DrainTimeout: 6 * time.Second},
		pipeline.Stage{Name: "clickhouse", Consumer: sp, Queue: 256},
		pipeline.Stage{Name: "detect", Consumer: det, Queue: 256},
		pipeline.Stage{Name: "live", Consumer: live, Queue: 64},
	)
	plat.pipeline = pipe

	var wg sync.WaitGroup
	batches := make(chan collector.Batch, 64)
	colErr, pipeErr, uiErr := make(chan error, 1), make(chan error, 1), make(chan error, 1)
	uiCtx, stopUI := context.WithCancel(context.WithoutCancel(ctx))
	defer stopUI()
	wg.Go(func() { colErr <- col.Run(ctx, batches); close(batches) })
	wg.Go(func() { pipeErr <- pipe.Run(batches) })
	wg.Go(func() { uiErr <- srv.Run(uiCtx) })

	fmt.Fprintf(stdout, "vigil up: dashboard: %s\n", srv.URL())
	if st.httpURL != "" {
		fmt.Fprintf(stdout, "vigil up: clickhouse: %s (HTTP %s)\n", redactDSN(st.dsn), st.httpURL)
	} else {
		fmt.Fprintf(stdout, "vigil up: clickhouse: %s\n", redactDSN(st.dsn))
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("stopping")
	case runErr = <-uiErr:
		uiErr <- nil
	case <-st.died():
		runErr = fmt.Errorf("clickhouse engine stopped for good: %s", st.engineTail())
	}
	// Reverse order: no new events, everything queued into ClickHouse, then
	// the dashboard, then the engine (deferred).
	col.Close()
	errs := []error{runErr, <-colErr, <-pipeErr}
	stopUI()
	errs = append(errs, <-uiErr)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	log.Info("stopped cleanly")
	return nil
}

// storeConn is the ClickHouse side of `vigil up`: the engine it may own and
// the connection to it.
type storeConn struct {
	sup     *engine.Supervisor // nil with an external server
	conn    driver.Conn
	dsn     string
	httpURL string
}

func openStore(ctx context.Context, cfg Config, log *slog.Logger) (*storeConn, error) {
	st := &storeConn{dsn: cfg.ClickHouse.DSN}
	if st.dsn == "" {
		opts := engineOptions(cfg, log.With("stage", "clickhouse"))
		// The engine outlives ctx: it is stopped after the pipeline has
		// drained into it.
		sup, err := engine.Start(context.WithoutCancel(ctx), opts)
		if err != nil {
			return nil, err
		}
		st.sup, st.dsn, st.httpURL = sup, sup.DSN(), sup.HTTPURL()
	}
	opts, err := clickhouse.ParseDSN(st.dsn)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("clickhouse dsn %s: %w", st.dsn, err)
	}
	opts.MaxOpenConns = 8
	if st.sup != nil {
		opts.DialTimeout = engine.DialTimeout
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("connect to clickhouse %s: %w", st.dsn, err)
	}
	st.conn = conn
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := conn.Ping(pctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("connect to clickhouse %s: %w", st.dsn, err)
	}
	if err := schema.Migrate(ctx, conn, schema.Options{TTLDays: cfg.Retention, Logger: log.With("stage", "schema")}); err != nil {
		st.Close()
		return nil, fmt.Errorf("migrate schema: %w", err)
	}
	return st, nil
}

// died is closed when the embedded engine has stopped for good (never with
// an external server).
func (s *storeConn) died() <-chan struct{} {
	if s.sup == nil {
		return nil
	}
	return s.sup.Done()
}

func (s *storeConn) engineTail() string {
	if s.sup == nil {
		return ""
	}
	return s.sup.StderrTail()
}

func (s *storeConn) Close() error {
	var errs []error
	if s.conn != nil {
		errs = append(errs, s.conn.Close())
	}
	if s.sup != nil {
		errs = append(errs, s.sup.Close())
	}
	return errors.Join(errs...)
}

// llmHealth is what the dashboard shows for the LLM: which endpoint and
// model, or that the offline summarizer is in use.
func llmHealth(cfg Config) ui.ComponentHealth {
	if opts := llmOptions(cfg, slog.New(slog.DiscardHandler)); opts.Enabled() {
		return ui.ComponentHealth{State: ui.StateOK, Detail: cfg.LLM.Model + " at " + cfg.LLM.BaseURL}
	}
	return ui.ComponentHealth{State: ui.StateOff, Detail: "offline summarizer"}
}

// newDetection builds the models stage and the sink it reports to: anomalies,
// incidents and metrics into ClickHouse, live updates to the hub, summaries
// (LLM or offline) read through the read-only runner.
func newDetection(cfg Config, log *slog.Logger, llmOpts llm.Options, st *storeConn, ro chread.Runner, pub detect.Publisher) (*detect.Detector, *detect.Sink) {
	sink := detect.NewSink(detect.SinkOptions{
		Conn:       st.conn,
		Publisher:  pub,
		Summarizer: summary.New(summary.Options{LLM: llmOpts, Logger: log.With("stage", "summary")}),
		Reader:     ro,
		// Detections ClickHouse has not taken at a stop wait here for
		// the next start, beside the models' checkpoints.
		HoldFile: filepath.Join(cfg.DataDir, "models", "held-detections"),
		Logger:   log.With("stage", "detect"),
	})
	var own func(pid uint32) bool
	if sup := st.sup; sup != nil {
		// The embedded ClickHouse is a child process: vigil's own pid is
		// filtered in the kernel, the child's is not.
		own = func(pid uint32) bool { return pid != 0 && int(pid) == sup.PID() }
	}
	det := detect.New(detect.Options{
		Step:     cfg.Models.Step,
		Learning: cfg.Models.Learning,
		// /proc describes this machine only, not hosts sending to it.
		LocalHost: cfg.HostName(),
		Own:       own,
		StateDir:  filepath.Join(cfg.DataDir, "models"),
		Output:    sink,
		Logger:    log.With("stage", "detect"),
	})
	return det, sink
}

// redactDSN hides a password in a DSN before it is printed or logged.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "<unparsable DSN>"
	}
	return u.Redacted()
}

// newStoreStage is the ClickHouse consumer: a write-ahead spool under the
// data dir in front of the columnar writer, so nothing acknowledged is lost
// when ClickHouse is slow, down, or when vigil itself is killed.
func newStoreStage(cfg Config, log *slog.Logger, st *storeConn, reg prometheus.Registerer) (*spool.Writer, *store.Writer, error) {
	writer := store.NewWriter(st.conn, store.Options{Logger: log.With("stage", "store"), Registerer: reg})
	sp, err := spool.NewWriter(writer, spool.Options{
		Dir:        filepath.Join(cfg.DataDir, "spool"),
		MaxBytes:   cfg.Spool.MaxBytes,
		Logger:     log.With("stage", "spool"),
		Registerer: reg,
	})
	if err != nil {
		writer.Close()
		return nil, nil, fmt.Errorf("open spool (is another vigil using --data-dir %s?): %w", cfg.DataDir, err)
	}
	return sp, writer, nil
}
