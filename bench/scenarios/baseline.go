package scenarios

import (
	"context"
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

// baseline is the benign background workload: a loopback HTTP server and a
// client loop, a cron-like job spawning short commands, and package-manager
// like file churn in a temp dir. It runs until Stop.
type baseline struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup // the three loops and the HTTP server
	srv    *http.Server
	dir    string
}

func startBaseline(ctx context.Context) (*baseline, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("baseline listen: %w", err)
	}
	dir, err := os.MkdirTemp("", "vigil-bench-pkg-")
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("baseline dir: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	b := &baseline{cancel: cancel, dir: dir}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	}), ReadHeaderTimeout: 5 * time.Second}
	b.wg.Add(4)
	go func() { defer b.wg.Done(); _ = b.srv.Serve(ln) }()
	go func() { defer b.wg.Done(); httpClientLoop(ctx, "http://"+ln.Addr().String()+"/") }()
	go func() { defer b.wg.Done(); cronLoop(ctx) }()
	go func() { defer b.wg.Done(); packageLoop(ctx, dir) }()
	return b, nil
}

// Stop ends the workload and waits for it; safe to call twice.
func (b *baseline) Stop() {
	b.cancel()
	_ = b.srv.Close()
	b.wg.Wait()
	_ = os.RemoveAll(b.dir)
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

func cronLoop(ctx context.Context) {
	cmds := [][]string{{"/bin/date"}, {"/bin/sh", "-c", "uptime >/dev/null; ls /tmp >/dev/null"}, {"/bin/true"}}
	i := 0
	every(ctx, time.Second, func() {
		c := cmds[i%len(cmds)]
		i++
		_ = exec.CommandContext(ctx, c[0], c[1:]...).Run()
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
