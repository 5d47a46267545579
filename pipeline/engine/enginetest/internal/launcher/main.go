// Command launcher runs an embedded ClickHouse engine in the foreground for
// enginetest, with the same arguments as `vigil clickhouse`, so that tests
// of any package exercise the real Supervisor and RunForeground without
// depending on cmd/vigil.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/vigil-dev/vigil/pipeline/engine"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "clickhouse" {
		args = args[1:]
	}
	fs := flag.NewFlagSet("launcher", flag.ExitOnError)
	var opts engine.Options
	fs.StringVar(&opts.DataDir, "data-dir", engine.DefaultDataDir, "data directory")
	fs.IntVar(&opts.TCPPort, "ch-tcp-port", engine.DefaultTCPPort, "native protocol port")
	fs.IntVar(&opts.HTTPPort, "ch-http-port", engine.DefaultHTTPPort, "HTTP port")
	_ = fs.Parse(args)
	opts.LibPath = os.Getenv("VIGIL_CHDB_LIB")
	opts.BinaryPath = os.Getenv("VIGIL_CLICKHOUSE_BINARY")
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := engine.RunForeground(ctx, opts); err != nil {
		fmt.Fprintln(os.Stderr, "launcher:", err)
		os.Exit(1)
	}
}
