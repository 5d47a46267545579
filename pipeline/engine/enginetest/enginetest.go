// Package enginetest starts a throwaway embedded ClickHouse for tests of any
// package. It builds a small launcher binary once per test process (with the
// go command that runs the tests) and runs it under engine.Start, so every
// test that needs ClickHouse also exercises the real supervisor and libchdb
// loading.
//
// When no engine can be had (no libchdb.so, no clickhouse binary, no cgo),
// Start skips the test with the reason, or fails it when CI=true: CI must
// never pass by skipping the database tests.
package enginetest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vigil-dev/vigil/pipeline/engine"
)

const launcherPkg = "github.com/vigil-dev/vigil/pipeline/engine/enginetest/internal/launcher"

// Handle is a running test engine.
type Handle struct {
	DSN      string // clickhouse://127.0.0.1:PORT
	HTTPURL  string // http://127.0.0.1:PORT
	Addr     string // 127.0.0.1:PORT, native protocol
	TCPPort  int
	HTTPPort int
	DataDir  string
	// Supervisor runs the engine; tests may Close it early (Cleanup closes
	// it again harmlessly).
	Supervisor *engine.Supervisor
}

var (
	buildOnce sync.Once
	launcher  string
	buildErr  error
)

// Start launches an engine with a temporary data dir and free ports and stops
// it when the test ends.
func Start(t testing.TB) *Handle {
	t.Helper()
	opts := engine.Options{LibPath: os.Getenv("VIGIL_CHDB_LIB"), BinaryPath: os.Getenv("VIGIL_CLICKHOUSE_BINARY")}
	if err := engine.Available(opts); err != nil {
		unavailable(t, err)
	}
	buildOnce.Do(build)
	if buildErr != nil {
		unavailable(t, buildErr)
	}
	h := &Handle{DataDir: t.TempDir()}
	h.start(t, opts, true)
	return h
}

// Restart stops the engine and starts a new one on the same data dir and
// ports, as a restart of vigil would.
func (h *Handle) Restart(t testing.TB) {
	t.Helper()
	if err := h.Supervisor.Close(); err != nil {
		t.Fatalf("enginetest: stop engine: %v", err)
	}
	opts := engine.Options{LibPath: os.Getenv("VIGIL_CHDB_LIB"), BinaryPath: os.Getenv("VIGIL_CLICKHOUSE_BINARY"),
		TCPPort: h.TCPPort, HTTPPort: h.HTTPPort}
	h.start(t, opts, false)
}

func (h *Handle) start(t testing.TB, opts engine.Options, newPorts bool) {
	t.Helper()
	dir := h.DataDir
	var lastErr error
	// Free ports are found by binding :0 and closing; another process can take
	// one before the engine binds it, so retry a few times.
	for range 3 {
		tcp, http := opts.TCPPort, opts.HTTPPort
		if newPorts {
			var err error
			if tcp, http, err = freePorts(); err != nil {
				t.Fatalf("enginetest: %v", err)
			}
		}
		opts.DataDir = dir
		opts.TCPPort, opts.HTTPPort = tcp, http
		opts.Executable = launcher
		opts.ChildArgs = []string{"clickhouse", "--data-dir", dir, "--ch-tcp-port", strconv.Itoa(tcp), "--ch-http-port", strconv.Itoa(http)}
		opts.StartTimeout = 60 * time.Second
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
		sup, err := engine.Start(context.Background(), opts)
		if err != nil {
			lastErr = err
			continue
		}
		t.Cleanup(func() {
			if err := sup.Close(); err != nil {
				t.Errorf("enginetest: stop engine: %v", err)
			}
		})
		h.DSN, h.HTTPURL, h.Addr = sup.DSN(), sup.HTTPURL(), net.JoinHostPort(engine.ListenHost, strconv.Itoa(tcp))
		h.TCPPort, h.HTTPPort, h.Supervisor = tcp, http, sup
		return
	}
	t.Fatalf("enginetest: start engine: %v", lastErr)
}

// Conn opens a native-protocol connection as the default user, closed when
// the test ends.
func (h *Handle) Conn(t testing.TB) driver.Conn {
	return h.ConnAs(t, "default")
}

// ConnAs opens a connection as user (no password). Never use an unknown user:
// a failed native login aborts libchdb (the supervisor restarts it).
func (h *Handle) ConnAs(t testing.TB, user string) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: []string{h.Addr},
		Auth: clickhouse.Auth{Username: user},
	})
	if err != nil {
		t.Fatalf("enginetest: open conn: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("enginetest: no ClickHouse engine in CI: %v", err)
	}
	t.Skipf("enginetest: no ClickHouse engine: %v", err)
}

// build compiles the launcher into a cache folder shared by all test
// processes; building under a per-process name and renaming makes concurrent
// builds safe.
func build() {
	// go test puts its own GOROOT/bin first on PATH.
	gobin, err := exec.LookPath("go")
	if err != nil {
		buildErr = fmt.Errorf("build launcher: %w", err)
		return
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "vigil", "enginetest")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		buildErr = fmt.Errorf("build launcher: %w", err)
		return
	}
	tmp := filepath.Join(dir, fmt.Sprintf("launcher.%d.tmp", os.Getpid()))
	cmd := exec.Command(gobin, "build", "-o", tmp, launcherPkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.Remove(tmp)
		buildErr = fmt.Errorf("build launcher: %w: %s", err, out)
		return
	}
	// Replacing a binary another test process is running is fine on Linux:
	// it keeps the old inode.
	launcher = filepath.Join(dir, "launcher")
	if err := os.Rename(tmp, launcher); err != nil {
		buildErr = fmt.Errorf("build launcher: %w", err)
	}
}

func freePorts() (int, int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var ports []int
	for range 2 {
		l, err := net.Listen("tcp", engine.ListenHost+":0")
		if err != nil {
			return 0, 0, fmt.Errorf("find free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports[0], ports[1], nil
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
