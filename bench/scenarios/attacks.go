package scenarios

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// deathSig kills a child when the thread that started it dies, so an
// interrupted bench leaves no actor running.
func deathSig() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// sysno is the syscall numbers the perl actors call directly.
var sysno = map[string]struct{ ptrace, setns int }{
	"amd64": {101, 308},
	"arm64": {117, 268},
}

func sysnos() (ptrace, setns int, err error) {
	n, ok := sysno[runtime.GOARCH]
	if !ok {
		return 0, 0, fmt.Errorf("no syscall numbers for %s", runtime.GOARCH)
	}
	return n.ptrace, n.setns, nil
}

// websrvScript is a loopback server that, like a web app with a command
// injection, runs /bin/sh with stdin, stdout and stderr on the accepted
// socket. It prints its port, serves one connection, and gives up after 20 s.
const websrvScript = `
use IO::Socket::INET;
alarm 20;
my $l = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0, Listen => 5, ReuseAddr => 1) or die "listen: $!";
$| = 1;
print $l->sockport, "\n";
my $c = $l->accept or die "accept: $!";
my $pid = fork // die "fork: $!";
if ($pid == 0) {
    open STDIN, "<&", $c or die; open STDOUT, ">&", $c or die; open STDERR, ">&", $c or die;
    exec "/bin/sh" or die "exec: $!";
}
close $c;
waitpid $pid, 0;
`

// reverseShell starts vbench-websrv and, as the attacker, sends the shell a
// command and exit over TCP.
func reverseShell(ctx context.Context, e *Env) error {
	ctx, cancel := bounded(ctx, 20*time.Second)
	defer cancel()
	srv, err := startBackground(command(ctx, e.bin("vbench-websrv"), "-e", websrvScript), "websrv")
	if err != nil {
		return err
	}
	defer srv.stop()
	port, err := srv.out.ReadString('\n')
	if err != nil {
		return fmt.Errorf("websrv port: %w", err)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", "127.0.0.1:"+strings.TrimSpace(port))
	if err != nil {
		return fmt.Errorf("dial websrv: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "id; uname -a; exit\n"); err != nil {
		return fmt.Errorf("send command: %w", err)
	}
	out, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("read shell output: %w", err)
	}
	if !strings.Contains(string(out), "uid=") {
		return fmt.Errorf("shell output without id: %q", out)
	}
	// websrv exits by itself once the shell has
	if err := srv.wait(); err != nil {
		return fmt.Errorf("websrv: %w", err)
	}
	return nil
}

// newBinaryInTmp runs a freshly copied binary from /tmp a few times.
func newBinaryInTmp(ctx context.Context, _ *Env) error {
	path, cleanup, err := copyBinary("/bin/true", "vbench-dropper")
	if err != nil {
		return err
	}
	defer cleanup()
	for range 3 {
		if err := run(ctx, path); err != nil {
			return err
		}
	}
	return nil
}

// privEscalation drops to nobody and then asks for uid 0 back, which fails.
func privEscalation(ctx context.Context, e *Env) error {
	ctx, cancel := bounded(ctx, 10*time.Second)
	defer cancel()
	script := `use POSIX; POSIX::setuid(65534) or die "drop: $!"; POSIX::setuid(0) and die "setuid(0) succeeded"; exit 0`
	return run(ctx, e.bin("vbench-priv"), "-e", script)
}

// credentialAccess reads /etc/shadow, then a throwaway key it writes under
// /root/.ssh, removing only what it made.
func credentialAccess(ctx context.Context, e *Env) error {
	ctx, cancel := bounded(ctx, 10*time.Second)
	defer cancel()
	reader := e.bin("vbench-reader")
	if err := run(ctx, reader, "/etc/shadow"); err != nil {
		return err
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return fmt.Errorf("home: %w", err)
	}
	sshDir := home + "/.ssh"
	made := false
	if _, err := os.Stat(sshDir); errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir(sshDir, 0o700); err != nil {
			return fmt.Errorf("mkdir %s: %w", sshDir, err)
		}
		made = true
	}
	key, err := os.CreateTemp(sshDir, "id_vigil_bench_")
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
	return run(ctx, reader, keyPath)
}

// cryptoMiner burns one CPU for 8 s from a new binary in /tmp.
func cryptoMiner(ctx context.Context, _ *Env) error {
	path, cleanup, err := copyBinary("/usr/bin/yes", "vbench-miner")
	if err != nil {
		return err
	}
	defer cleanup()
	ctx, cancel := bounded(ctx, 8*time.Second)
	defer cancel()
	if err := command(ctx, path, "hash").Run(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("miner: %w", err)
	}
	return nil
}

// portScan connects to 500 loopback ports from vbench-scan; almost all are
// closed and refuse at once.
func portScan(ctx context.Context, e *Env) error {
	ctx, cancel := bounded(ctx, 20*time.Second)
	defer cancel()
	script := `use IO::Socket::INET; my $end = time + 15; my $open = 0;
for my $p (40000 .. 40499) { last if time > $end; my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p", Timeout => 0.2); if ($s) { $open++; close $s } }
print "open $open\n";`
	return run(ctx, e.bin("vbench-scan"), "-e", script)
}

// ptraceInject starts a sleeping target and has vbench-inject attach to it
// with ptrace, wait for the stop, and detach.
func ptraceInject(ctx context.Context, e *Env) error {
	ctx, cancel := bounded(ctx, 15*time.Second)
	defer cancel()
	sysPtrace, _, err := sysnos()
	if err != nil {
		return err
	}
	target := command(ctx, "/bin/sleep", "12")
	if err := target.Start(); err != nil {
		return fmt.Errorf("start target: %w", err)
	}
	// SIGTERM: an ordinary shutdown, not a kill the models would flag
	defer func() { _ = target.Process.Signal(syscall.SIGTERM); _ = target.Wait() }()
	// syscall() passes numbers as integers only when they are numbers, so
	// the arguments are forced numeric; 16 is PTRACE_ATTACH, 17 DETACH.
	script := `my ($pid, $nr) = map { $_ + 0 } @ARGV;
syscall($nr, 16, $pid, 0, 0) == 0 or die "attach: $!";
waitpid($pid, 0x40000000) == $pid or die "wait: $!";
syscall($nr, 17, $pid, 0, 0) == 0 or die "detach: $!";`
	return run(ctx, e.bin("vbench-inject"), "-e", script, strconv.Itoa(target.Process.Pid), strconv.Itoa(sysPtrace))
}

// exfiltration has vbench-sync, which sends a few KB a second through the
// whole baseline, upload 300 MB in one connection.
func exfiltration(ctx context.Context, e *Env) error {
	if e.base == nil || e.base.syncer == nil {
		return errors.New("no baseline vbench-sync to signal")
	}
	if err := e.base.syncAlive(); err != nil {
		return err
	}
	ctx, cancel := bounded(ctx, 40*time.Second)
	defer cancel()
	for len(e.base.big) > 0 { // a leftover from an earlier run
		<-e.base.big
	}
	for attempt := 0; attempt < 3; attempt++ {
		if err := e.base.syncer.Process.Signal(syscall.SIGUSR1); err != nil {
			return fmt.Errorf("signal vbench-sync: %w", err)
		}
		select {
		case n := <-e.base.big:
			e.Notef("uploaded %d MB in one connection", n>>20)
			return nil
		case <-time.After(12 * time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return errors.New("vbench-sync did not upload")
}
