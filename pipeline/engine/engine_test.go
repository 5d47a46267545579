package engine_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/vigil-dev/vigil/pipeline/engine"
	"github.com/vigil-dev/vigil/pipeline/engine/enginetest"
)

func TestStartPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct {
		name      string
		tcp, http int
		wantFlag  string
		wantProto string
	}{
		{"native", busy, busy + 1, "--ch-tcp-port", "tcp"},
		{"http", busy + 1, busy, "--ch-http-port", "http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := engine.Start(context.Background(), engine.Options{
				TCPPort: tc.tcp, HTTPPort: tc.http, ChildArgs: []string{"clickhouse"}, Executable: "/bin/false",
			})
			var pe *engine.PortInUseError
			if !errors.As(err, &pe) || pe.Protocol != tc.wantProto || pe.Port != busy {
				t.Fatalf("err = %v, want PortInUseError for %s port %d", err, tc.wantProto, busy)
			}
			if !strings.Contains(err.Error(), tc.wantFlag) {
				t.Errorf("error %q does not name %s", err, tc.wantFlag)
			}
		})
	}
}

func TestAvailableNoEngine(t *testing.T) {
	err := engine.Available(engine.Options{LibPath: "/nonexistent/libchdb.so", BinaryPath: "-"})
	if !errors.Is(err, engine.ErrNoEngine) {
		t.Fatalf("err = %v, want ErrNoEngine", err)
	}
	for _, hint := range []string{"make chdb", "VIGIL_CHDB_LIB", "--clickhouse"} {
		if !strings.Contains(err.Error(), hint) {
			t.Errorf("error %q lacks the hint %q", err, hint)
		}
	}
}

func TestStartFailsWithStderr(t *testing.T) {
	// A child that dies at once: Start must fail fast with its output.
	_, err := engine.Start(context.Background(), engine.Options{
		TCPPort: freePort(t), HTTPPort: freePort(t), Executable: "/bin/sh",
		ChildArgs: []string{"-c", "echo no engine here >&2; exit 3"}, StartTimeout: 20 * time.Second,
	})
	if err == nil || !strings.Contains(err.Error(), "no engine here") {
		t.Fatalf("err = %v, want one with the child's stderr", err)
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestSupervisor(t *testing.T) {
	h := enginetest.Start(t)
	ctx := context.Background()

	t.Run("restarts a dead child", func(t *testing.T) {
		pid := h.Supervisor.PID()
		if pid == 0 {
			t.Fatal("no child pid")
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			conn := h.Conn(t)
			var one uint8
			if p := h.Supervisor.PID(); p != 0 && p != pid && conn.QueryRow(ctx, "SELECT 1").Scan(&one) == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("engine not back within 30 s; output:\n%s", h.Supervisor.StderrTail())
			}
			time.Sleep(200 * time.Millisecond)
		}
		if n := h.Supervisor.Restarts(); n != 1 {
			t.Errorf("Restarts() = %d, want 1", n)
		}
	})

	t.Run("comes back after a failed native login", func(t *testing.T) {
		// chdb 26.7 aborts the whole engine on a failed native-protocol
		// login; the supervisor must restart it.
		pid := h.Supervisor.PID()
		bad, err := clickhouse.Open(&clickhouse.Options{Addr: []string{h.Addr}, Auth: clickhouse.Auth{Username: "nobody", Password: "wrong"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := bad.Ping(ctx); err == nil {
			t.Fatal("login as nobody succeeded")
		}
		_ = bad.Close()
		start := time.Now()
		for {
			var one uint8
			// The old engine may still answer for a moment before it aborts:
			// wait for a new child. If none comes within 5 s the engine
			// survived the login, which a newer chdb may well do.
			p := h.Supervisor.PID()
			answers := p != 0 && h.Conn(t).QueryRow(ctx, "SELECT 1").Scan(&one) == nil
			if answers && p != pid {
				t.Logf("engine aborted and was restarted: pid %d -> %d", pid, p)
				break
			}
			if answers && time.Since(start) > 5*time.Second {
				t.Logf("engine survived a failed native login")
				break
			}
			if time.Since(start) > 30*time.Second {
				t.Fatalf("engine not answering 30 s after a failed login; output:\n%s", h.Supervisor.StderrTail())
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	t.Run("read-only user", func(t *testing.T) {
		ro := h.ConnAs(t, engine.ReadOnlyUser)
		var readonly string
		if err := ro.QueryRow(ctx, "SELECT toString(getSetting('readonly'))").Scan(&readonly); err != nil {
			t.Fatal(err)
		}
		if readonly != "1" {
			t.Errorf("readonly = %s, want 1", readonly)
		}
		for _, q := range []string{
			"CREATE TABLE default.ro_test (a UInt8) ENGINE = Memory",
			"INSERT INTO system.numbers SELECT 1",
			"SET max_result_rows = 0",
		} {
			if err := ro.Exec(ctx, q); err == nil {
				t.Errorf("%s: succeeded as %s", q, engine.ReadOnlyUser)
			}
		}
		rows, err := ro.Query(ctx, "SELECT number FROM system.numbers LIMIT 200000")
		if err == nil {
			for rows.Next() {
			}
			err = rows.Err()
			rows.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "Limit for result exceeded") {
			t.Errorf("200k rows as %s: err = %v, want the result row limit", engine.ReadOnlyUser, err)
		}
	})

	t.Run("close is idempotent and leaves no process", func(t *testing.T) {
		pid := h.Supervisor.PID()
		if pid == 0 {
			t.Fatalf("no child running; output:\n%s", h.Supervisor.StderrTail())
		}
		for range 2 {
			if err := h.Supervisor.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("child %d still exists after Close (kill 0: %v)", pid, err)
		}
	})
	t.Run("data survives a restart", func(t *testing.T) {
		h.Restart(t) // closed by the previous subtest
		conn := h.Conn(t)
		for _, q := range []string{
			"CREATE TABLE default.survive (a UInt32) ENGINE = MergeTree ORDER BY a",
			"INSERT INTO default.survive SELECT number FROM numbers(1000)",
		} {
			if err := conn.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		old := h.Supervisor.PID()
		start := time.Now()
		h.Restart(t) // the new engine stops when this subtest ends
		t.Logf("restart took %s", time.Since(start))
		if err := syscall.Kill(old, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("old child %d still exists after Close (kill 0: %v)", old, err)
		}
		var n uint64
		if err := h.Conn(t).QueryRow(ctx, "SELECT count() FROM default.survive").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1000 {
			t.Errorf("rows after restart = %d, want 1000", n)
		}
	})

}
