package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/spf13/cobra"

	"github.com/vigil-dev/vigil/pipeline/engine"
	"github.com/vigil-dev/vigil/query"
	"github.com/vigil-dev/vigil/query/chread"
	"github.com/vigil-dev/vigil/query/llm"
)

func newAskCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ask QUESTION",
		Short: "Ask a question about the telemetry in plain language",
		Long: `Answers from ClickHouse, showing the SQL it ran and the rows it used. With an LLM
configured (--llm-base-url, OPENAI_API_KEY) the model plans the queries; every statement is
validated (one SELECT, known tables, a LIMIT) and runs as the read-only user vigil_ro. With
no LLM, built-in templates answer the common questions (recent incidents, top talkers, new
binaries, an incident by id). Needs a running vigil up (or --clickhouse).`,
		Example: `  vigil ask "recent incidents"
  vigil ask "which processes talked to new destinations in the last hour?"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, log, err := setup(cmd)
			if err != nil {
				return err
			}
			q := strings.TrimSpace(args[0])
			if q == "" {
				return fmt.Errorf("the question is empty")
			}
			conn, err := openReadOnly(cmd.Context(), cfg, "")
			if err != nil {
				return err
			}
			defer conn.Close()
			asker := query.NewAsker(query.Options{
				LLM:    llmOptions(cfg, log),
				Runner: chread.NewClickHouse(conn, chread.Limits{}),
				Logger: log,
			})
			ans, err := asker.Ask(cmd.Context(), q)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), ans.String())
			return nil
		},
	}
}

// llmOptions maps the configuration onto the LLM client's; an empty base
// URL and key leave the LLM off (offline summarizer and templates).
func llmOptions(cfg Config, log *slog.Logger) llm.Options {
	return llm.Options{
		BaseURL:   cfg.LLM.BaseURL,
		Model:     cfg.LLM.Model,
		APIKey:    cfg.LLM.APIKey,
		Timeout:   cfg.LLM.Timeout,
		MaxTokens: cfg.LLM.MaxTokens,
		Logger:    log.With("stage", "llm"),
	}
}

// openReadOnly connects as the read-only user, in database vigil, so that
// ClickHouse itself refuses anything but reads.
func openReadOnly(ctx context.Context, cfg Config, dsn string) (driver.Conn, error) {
	if dsn == "" {
		dsn = cfg.ClickHouse.DSN
	}
	embedded := dsn == ""
	if embedded {
		dsn = engine.DSN(cfg.ClickHouse.TCPPort)
	}
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("clickhouse dsn %s: %w", dsn, err)
	}
	if embedded {
		opts.DialTimeout = engine.DialTimeout
	}
	opts.Auth.Username = engine.ReadOnlyUser
	opts.Auth.Password = ""
	opts.Auth.Database = "vigil"
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to clickhouse %s as %s: %w", dsn, engine.ReadOnlyUser, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect to clickhouse %s as %s (is vigil up running?): %w", dsn, engine.ReadOnlyUser, err)
	}
	return conn, nil
}
