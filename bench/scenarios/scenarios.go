// Package scenarios runs attack-like workloads against a live `vigil up`
// beside a benign baseline, and measures which of them the models turn into
// incidents, how fast, and whether the incident names the right entity.
//
// Every scenario is bounded in time and touches only loopback, temp
// directories it creates, and (read-only) /etc/shadow.
package scenarios

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
)

// Scenario is one attack-like workload.
type Scenario struct {
	Name string
	// Run ends by itself within a bounded time.
	Run func(ctx context.Context) error
	// Entity is a substring the flagged anomaly's entity or evidence must
	// contain for the detection to count as naming the right entity.
	Entity string
	// Expected says what the current models are expected to catch it with,
	// or why they are not.
	Expected string
}

// Table is every scenario, in the order Run plays them.
func Table() []Scenario {
	return []Scenario{
		{Name: "reverse-shell", Run: reverseShell, Entity: "sh", Expected: "novel parent→child exec pair"},
		{Name: "new-binary-tmp", Run: newBinaryInTmp, Entity: "vbench-dropper", Expected: "new binary per host"},
		{Name: "priv-escalation", Run: privEscalation, Entity: "perl", Expected: "rare privilege change"},
		{Name: "credential-access", Run: credentialAccess, Entity: "vbench-reader", Expected: "new binary; sensitive file opens are not modelled yet"},
		{Name: "crypto-miner", Run: cryptoMiner, Entity: "vbench-miner", Expected: "new binary; CPU burn itself needs the numeric detector's warm-up"},
		{Name: "port-scan", Run: portScan, Entity: "", Expected: "connect failures are not a modelled series yet"},
		{Name: "fork-storm", Run: forkStorm, Entity: "true", Expected: "exec rate spike needs ~150 points of numeric warm-up"},
		{Name: "ptrace-inject", Run: ptraceInject, Entity: "ptrace", Expected: "rare privilege change (ptrace)"},
	}
}

// copyBinary copies src to a fresh temp dir under /tmp as name, so the
// kernel sees a binary path never executed before.
func copyBinary(src, name string) (path string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("/tmp", "vigil-bench-")
	if err != nil {
		return "", nil, fmt.Errorf("temp dir: %w", err)
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	in, err := os.Open(src)
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("open %s: %w", src, err)
	}
	defer in.Close()
	path = filepath.Join(dir, name)
	out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		cleanup()
		return "", nil, fmt.Errorf("copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("close %s: %w", path, err)
	}
	return path, cleanup, nil
}

func bounded(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// reverseShell listens on loopback, connects to itself, and runs /bin/sh with
// stdin and stdout on the accepted TCP socket; the "attacker" end sends a
// command and exit.
func reverseShell(ctx context.Context) error {
	ctx, cancel := bounded(ctx, 15*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	attacker := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			attacker <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "id; uname -a; exit\n"); err != nil {
			attacker <- err
			return
		}
		_, err = io.Copy(io.Discard, c)
		attacker <- err
	}()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	f, err := conn.(*net.TCPConn).File()
	conn.Close()
	if err != nil {
		return fmt.Errorf("socket file: %w", err)
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, "/bin/sh")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = f, f, f
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("shell: %w", err)
	}
	f.Close()
	select {
	case err := <-attacker:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// newBinaryInTmp runs a freshly copied binary from /tmp a few times.
func newBinaryInTmp(ctx context.Context) error {
	path, cleanup, err := copyBinary("/bin/true", "vbench-dropper")
	if err != nil {
		return err
	}
	defer cleanup()
	for range 3 {
		if err := exec.CommandContext(ctx, path).Run(); err != nil {
			return fmt.Errorf("run dropper: %w", err)
		}
	}
	return nil
}

// privEscalation runs a child that drops to nobody and then asks for uid 0
// back, which fails.
func privEscalation(ctx context.Context) error {
	ctx, cancel := bounded(ctx, 10*time.Second)
	defer cancel()
	script := `use POSIX; POSIX::setuid(65534) or die "drop: $!"; POSIX::setuid(0) and die "setuid(0) succeeded"; exit 0`
	out, err := exec.CommandContext(ctx, "perl", "-e", script).CombinedOutput()
	if err != nil {
		return fmt.Errorf("perl: %w: %s", err, out)
	}
	return nil
}

// credentialAccess reads /etc/shadow with a fresh copy of cat, and writes
// then reads a throwaway key under /root/.ssh, removing only what it made.
func credentialAccess(ctx context.Context) error {
	ctx, cancel := bounded(ctx, 10*time.Second)
	defer cancel()
	path, cleanup, err := copyBinary("/bin/cat", "vbench-reader")
	if err != nil {
		return err
	}
	defer cleanup()
	if err := exec.CommandContext(ctx, path, "/etc/shadow").Run(); err != nil {
		return fmt.Errorf("read shadow: %w", err)
	}
	sshDir := "/root/.ssh"
	made := false
	if _, err := os.Stat(sshDir); errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir(sshDir, 0o700); err != nil {
			return fmt.Errorf("mkdir %s: %w", sshDir, err)
		}
		made = true
	}
	key, err := os.CreateTemp(sshDir, "vigil-bench-key-")
	if err != nil {
		return fmt.Errorf("create key: %w", err)
	}
	keyPath := key.Name()
	defer func() {
		_ = os.Remove(keyPath)
		if made {
			_ = os.Remove(sshDir)
		}
	}()
	_, _ = key.WriteString("-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n")
	key.Close()
	if err := exec.CommandContext(ctx, path, keyPath).Run(); err != nil {
		return fmt.Errorf("read key: %w", err)
	}
	return nil
}

// cryptoMiner burns one CPU for a few seconds from a new binary in /tmp.
func cryptoMiner(ctx context.Context) error {
	path, cleanup, err := copyBinary("/usr/bin/yes", "vbench-miner")
	if err != nil {
		return err
	}
	defer cleanup()
	ctx, cancel := bounded(ctx, 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "hash")
	if err := cmd.Run(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("miner: %w", err)
	}
	return nil
}

// portScan connects to 500 ports on 127.0.0.1, almost all closed.
func portScan(ctx context.Context) error {
	ctx, cancel := bounded(ctx, 20*time.Second)
	defer cancel()
	d := net.Dialer{Timeout: 200 * time.Millisecond}
	for p := 40000; p < 40500; p++ {
		if ctx.Err() != nil {
			return nil
		}
		if c, err := d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			c.Close()
		}
	}
	return nil
}

// forkStorm starts 300 short children from one shell, 50 at a time.
func forkStorm(ctx context.Context) error {
	ctx, cancel := bounded(ctx, 20*time.Second)
	defer cancel()
	script := `i=0; while [ $i -lt 6 ]; do j=0; while [ $j -lt 50 ]; do /bin/true & j=$((j+1)); done; wait; i=$((i+1)); done`
	if out, err := exec.CommandContext(ctx, "/bin/sh", "-c", script).CombinedOutput(); err != nil {
		return fmt.Errorf("fork storm: %w: %s", err, out)
	}
	return nil
}

// ptraceInject attaches with ptrace to a child it started, then detaches.
func ptraceInject(ctx context.Context) error {
	ctx, cancel := bounded(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sleep", "5")
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start target: %w", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	done := make(chan error, 1)
	go func() {
		// ptrace requests must come from the attaching thread; the thread
		// stays locked and exits with this goroutine.
		runtime.LockOSThread()
		pid := cmd.Process.Pid
		if err := syscall.PtraceAttach(pid); err != nil {
			done <- fmt.Errorf("ptrace attach: %w", err)
			return
		}
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &ws, syscall.WALL, nil); err != nil {
			done <- fmt.Errorf("wait traced: %w", err)
			return
		}
		if _, err := syscall.PtracePeekData(pid, 0x400000, make([]byte, 8)); err != nil {
			_ = err // the address may be unmapped under PIE; the attach is the signal
		}
		done <- syscall.PtraceDetach(pid)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
