package scenarios

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// bigUpload is the size from which a connection to the sync sink counts as
// the exfiltration upload.
const bigUpload = 100 << 20

// syncScript is vbench-sync: every second it connects to the sink, sends
// 2-6 KB and closes (bytes are counted per connection at close). On SIGUSR1
// its next connection sends the size given as its second argument. It exits
// after 30 failed connects in a row, should the bench be gone.
const syncScript = `
use IO::Socket::INET;
my ($addr, $bigsz) = @ARGV;
my $big = 0;
$SIG{USR1} = sub { $big = 1 };
my $chunk = "s" x 65536;
my $fails = 0;
while (1) {
    my $n = 2048 + int(rand(4096));
    if ($big) { $n = $bigsz; $big = 0 }
    if (my $c = IO::Socket::INET->new(PeerAddr => $addr, Timeout => 2)) {
        $fails = 0;
        while ($n > 0) {
            my $w = syswrite($c, $chunk, $n < 65536 ? $n : 65536);
            last unless defined $w && $w > 0;
            $n -= $w;
        }
        close $c;
    } elsif (++$fails > 30) {
        exit 1;
    }
    select(undef, undef, undef, 1) unless $big;
}
`

// baseline is the benign background workload of a busy server: a loopback
// HTTP server and its clients, a cron-like job, a build-like job spawning
// short children, package-manager-like file churn, vbench-sync sending a
// little every second, and each scenario actor run with benign arguments.
// It runs until Stop.
type baseline struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup // every loop, the servers and the sync process's waiter
	srv    *http.Server
	sink   net.Listener // where vbench-sync sends
	dir    string
	syncer *exec.Cmd  // vbench-sync; exfiltration signals it
	big    chan int64 // sizes of sink connections of at least bigUpload; buffered, never blocks
	syncEr chan error // vbench-sync's exit
	stop   sync.Once
}

func startBaseline(ctx context.Context, bins map[string]string) (*baseline, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("baseline listen: %w", err)
	}
	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("baseline sink listen: %w", err)
	}
	dir, err := os.MkdirTemp("", "vigil-bench-pkg-")
	if err != nil {
		ln.Close()
		sink.Close()
		return nil, fmt.Errorf("baseline dir: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	b := &baseline{cancel: cancel, dir: dir, sink: sink, big: make(chan int64, 4), syncEr: make(chan error, 1)}
	b.syncer = command(ctx, bins["vbench-sync"], "-e", syncScript, sink.Addr().String(), fmt.Sprint(300<<20))
	if err := b.syncer.Start(); err != nil {
		cancel()
		ln.Close()
		sink.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start vbench-sync: %w", err)
	}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	}), ReadHeaderTimeout: 5 * time.Second}
	loops := []func(){
		func() { _ = b.srv.Serve(ln) },
		func() { b.sinkLoop() },
		func() { b.syncEr <- b.syncer.Wait() },
		func() { httpClientLoop(ctx, "http://"+ln.Addr().String()+"/") },
		func() { cronLoop(ctx) },
		func() { buildLoop(ctx) },
		func() { packageLoop(ctx, dir) },
		func() { warmLoop(ctx, bins) },
	}
	b.wg.Add(len(loops))
	for _, f := range loops {
		go func() { defer b.wg.Done(); f() }()
	}
	return b, nil
}

// Stop ends the workload and waits for it; safe to call twice.
func (b *baseline) Stop() {
	b.stop.Do(func() {
		b.cancel()
		_ = b.srv.Close()
		_ = b.sink.Close()
		b.wg.Wait()
		_ = os.RemoveAll(b.dir)
	})
}

// syncAlive reports whether vbench-sync still runs.
func (b *baseline) syncAlive() error {
	select {
	case err := <-b.syncEr:
		b.syncEr <- err
		return fmt.Errorf("vbench-sync exited: %v", err)
	default:
		return nil
	}
}

// sinkLoop accepts vbench-sync's connections and discards what they send,
// reporting the big ones.
func (b *baseline) sinkLoop() {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := b.sink.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(time.Minute))
			n, _ := io.Copy(io.Discard, c)
			if n >= bigUpload {
				select {
				case b.big <- n:
				default:
				}
			}
		}()
	}
}

func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		f()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func httpClientLoop(ctx context.Context, url string) {
	c := &http.Client{Timeout: 2 * time.Second}
	every(ctx, 100*time.Millisecond, func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return
		}
		if resp, err := c.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// cronLoop runs a short command a second, including what the scenarios
// use as tools (sleep, ip, tc), as monitoring jobs do.
func cronLoop(ctx context.Context) {
	cmds := [][]string{
		{"/bin/date"},
		{"/bin/sh", "-c", "uptime >/dev/null; ls /tmp >/dev/null"},
		{"/bin/true"},
		{"/bin/sleep", "0.1"},
		{"ip", "-o", "link", "show"},
		{"tc", "qdisc", "show"},
	}
	i := 0
	every(ctx, time.Second, func() {
		c := cmds[i%len(cmds)]
		i++
		_ = command(ctx, c[0], c[1:]...).Run()
	})
}

// buildLoop is a compiler driver: every 5 s a shell runs a few short tools.
func buildLoop(ctx context.Context) {
	script := `for f in /etc/hostname /etc/os-release; do sed 's/a/b/' "$f" >/dev/null; tr a-z A-Z <"$f" >/dev/null; done; sort /etc/os-release | wc -l >/dev/null`
	every(ctx, 5*time.Second, func() {
		_ = command(ctx, "/bin/sh", "-c", script).Run()
	})
}

func packageLoop(ctx context.Context, dir string) {
	i := 0
	every(ctx, 500*time.Millisecond, func() {
		p := filepath.Join(dir, fmt.Sprintf("pkg-%d.deb", i%20))
		i++
		_ = os.WriteFile(p, make([]byte, 4096), 0o644)
		_, _ = os.ReadFile(p)
		if i%5 == 0 {
			_ = os.Remove(p)
		}
	})
}

// warmLoop runs every actor with benign arguments once a minute, so their
// binaries and exec pairs are known before the scenarios.
func warmLoop(ctx context.Context, bins map[string]string) {
	every(ctx, time.Minute, func() {
		for _, a := range actors {
			if a.warm != nil {
				_ = command(ctx, bins[a.name], a.warm...).Run()
			}
		}
	})
}
