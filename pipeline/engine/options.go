package engine

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for Options. The ports are ClickHouse's own defaults so that tools
// find the engine without configuration.
const (
	DefaultDataDir  = "./data"
	DefaultTCPPort  = 9000
	DefaultHTTPPort = 8123

	// ListenHost is the only address the engine binds: libchdb aborts the whole
	// process on a failed native-protocol login, so it must never be reachable
	// from another machine.
	ListenHost = "127.0.0.1"

	// DialTimeout is for clients of the engine. clickhouse-go holds a new
	// connection's handshake for its dial timeout (30 s by default) whatever
	// the context says; on loopback a handshake takes milliseconds, so a
	// stopped or hung engine is given up on in 5 s, and vigil's stop is not
	// held 30 s by each insert in flight.
	DialTimeout = 5 * time.Second

	// ReadOnlyUser is the ClickHouse user for the LLM query layer and for data
	// scientists who want a safe session. ClickHouse itself enforces readonly=1
	// (no writes, no DDL, no changing settings) and the limits below. It has no
	// password and is reachable from loopback only.
	ReadOnlyUser = "vigil_ro"

	// DefaultReadOnlyMaxExecutionTime and DefaultReadOnlyMaxResultRows bound a
	// query of ReadOnlyUser.
	DefaultReadOnlyMaxExecutionTime = 30 * time.Second
	DefaultReadOnlyMaxResultRows    = 100_000

	defaultStartTimeout = 60 * time.Second
	defaultStopTimeout  = 10 * time.Second
)

// Options configures RunForeground and Start. The zero value means defaults;
// only cmd/ reads flags and the environment and fills this in.
type Options struct {
	// DataDir keeps the engine's databases across restarts. Default ./data.
	DataDir string
	// TCPPort serves the native protocol, HTTPPort serves HTTP. Defaults 9000
	// and 8123.
	TCPPort  int
	HTTPPort int

	// LibPath is libchdb.so. Default DefaultLibPath(); cmd/ passes
	// $VIGIL_CHDB_LIB when it is set.
	LibPath string
	// BinaryPath is an official clickhouse binary. Empty means look for
	// "clickhouse" on PATH; "-" means never use a binary, always libchdb.
	BinaryPath string

	// ReadOnlyMaxExecutionTime and ReadOnlyMaxResultRows limit ReadOnlyUser.
	ReadOnlyMaxExecutionTime time.Duration
	ReadOnlyMaxResultRows    int

	// Logger receives the supervisor's events and the child's stderr lines.
	// Default: discard.
	Logger *slog.Logger
	// Registerer, if set, receives vigil_engine_restarts_total and
	// vigil_engine_up from the Supervisor.
	Registerer prometheus.Registerer

	// Executable is the binary the Supervisor runs as the child. Default
	// os.Executable(), the current binary.
	Executable string
	// ChildArgs are the child's arguments, e.g. ["clickhouse", "--data-dir",
	// dir, "--ch-tcp-port", "9000", "--ch-http-port", "8123"]. The child must
	// call RunForeground with the same DataDir and ports.
	ChildArgs []string
	// ChildEnv is added to the child's environment (os.Environ() is
	// inherited).
	ChildEnv []string
	// StartTimeout bounds the wait for the first Ping. Default 60s.
	StartTimeout time.Duration
	// StopTimeout is how long Close waits after SIGTERM before SIGKILL.
	// Default 10s.
	StopTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.DataDir == "" {
		o.DataDir = DefaultDataDir
	}
	if o.TCPPort == 0 {
		o.TCPPort = DefaultTCPPort
	}
	if o.HTTPPort == 0 {
		o.HTTPPort = DefaultHTTPPort
	}
	if o.ReadOnlyMaxExecutionTime == 0 {
		o.ReadOnlyMaxExecutionTime = DefaultReadOnlyMaxExecutionTime
	}
	if o.ReadOnlyMaxResultRows == 0 {
		o.ReadOnlyMaxResultRows = DefaultReadOnlyMaxResultRows
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = defaultStartTimeout
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = defaultStopTimeout
	}
	return o
}

func (o Options) validate() error {
	if o.TCPPort < 0 || o.TCPPort > 65535 {
		return fmt.Errorf("tcp port %d out of range (--ch-tcp-port)", o.TCPPort)
	}
	if o.HTTPPort < 0 || o.HTTPPort > 65535 {
		return fmt.Errorf("http port %d out of range (--ch-http-port)", o.HTTPPort)
	}
	if o.TCPPort == o.HTTPPort {
		return fmt.Errorf("tcp and http port are both %d (--ch-tcp-port, --ch-http-port)", o.TCPPort)
	}
	return nil
}

// DefaultLibPath is where `make chdb` puts libchdb.so:
// $HOME/.cache/vigil/chdb/libchdb.so.
func DefaultLibPath() string {
	dir, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, ".cache", "vigil", "chdb", "libchdb.so")
}

// ErrNoEngine means neither a clickhouse binary nor libchdb.so was found.
var ErrNoEngine = errors.New("no ClickHouse engine found: run `make chdb` (fetches libchdb.so to $HOME/.cache/vigil/chdb/), set VIGIL_CHDB_LIB to a libchdb.so, put an official clickhouse binary on PATH, or pass --clickhouse DSN to use an external server (24.8 or newer)")

// PortInUseError reports a port the engine cannot bind.
type PortInUseError struct {
	Port int
	// Protocol is "tcp" (native) or "http".
	Protocol string
	Err      error
}

func (e *PortInUseError) Error() string {
	flag := "--ch-tcp-port"
	if e.Protocol == "http" {
		flag = "--ch-http-port"
	}
	return fmt.Sprintf("clickhouse %s port %s:%d is in use (choose another with %s): %v", e.Protocol, ListenHost, e.Port, flag, e.Err)
}

func (e *PortInUseError) Unwrap() error { return e.Err }
