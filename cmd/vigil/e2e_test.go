package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests run the real binary as a user would: real kernel probes, the
// real embedded ClickHouse engine. They need root, BTF and the engine; with
// CI=true a missing component fails the test instead of skipping it.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// vigilBinary builds bin/vigil once per test run into a temp dir.
func vigilBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vigil-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "vigil")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// requireRoot fails under CI and skips elsewhere when the kernel probes cannot
// be loaded by this user.
func requireRoot(t *testing.T) {
	t.Helper()
	var why string
	switch {
	case os.Geteuid() != 0:
		why = "kernel probes need root"
	case !fileExists("/sys/kernel/btf/vmlinux"):
		why = "kernel has no BTF (/sys/kernel/btf/vmlinux)"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s", why)
	}
	t.Skip(why)
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// uniqueExec runs /bin/true… with an argv no other process has, and returns
// that marker.
func uniqueExec(t *testing.T) string {
	t.Helper()
	marker := fmt.Sprintf("vigil-e2e-%d-%d", os.Getpid(), time.Now().UnixNano())
	if err := exec.Command("/bin/sh", "-c", "exit 0", "sh", marker).Run(); err != nil {
		t.Fatalf("run marker process: %v", err)
	}
	return marker
}

func TestCollectJSONLShowsExec(t *testing.T) {
	requireRoot(t)
	bin := vigilBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "collect", "--probes", "exec", "--format", "jsonl", "--duration", "5s")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// The probe is attached once collect says so on stderr; poll by running
	// the marker repeatedly until it shows up.
	deadline := time.After(30 * time.Second)
	var marker string
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	markers := map[string]bool{}
	for {
		select {
		case <-tick.C:
			marker = uniqueExec(t)
			markers[marker] = true
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("collect ended without showing the marker exec; stderr:\n%s", stderr.String())
			}
			var ev map[string]any
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("collect printed a line that is not JSON: %q: %v", line, err)
			}
			if ev["kind"] != "exec" {
				t.Fatalf("kind = %v, want exec: %s", ev["kind"], line)
			}
			argv, _ := ev["argv"].([]any)
			for _, a := range argv {
				if s, _ := a.(string); markers[s] {
					if ev["pid"] == nil || ev["comm"] == nil || ev["filename"] == nil {
						t.Fatalf("exec event lacks fields: %s", line)
					}
					cancel()
					_ = cmd.Wait()
					return
				}
			}
		case <-deadline:
			t.Fatalf("no exec event with a marker argv within 30s; stderr:\n%s", stderr.String())
		}
	}
}

// upProcess is a running `vigil up`.
type upProcess struct {
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the process has been waited for
	waitErr  error
	dataDir  string
	httpPort int
	tcpPort  int
	listen   string
	token    string
	out      *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startUp(t *testing.T, extra ...string) *upProcess {
	return startServer(t, "up", "dashboard: http", extra...)
}

// startServer runs `vigil <command>` (up or pipeline) on a temp data dir and
// free ports, and waits for the line that says it is ready. The process is
// killed when the test ends, and its output logged if the test failed.
func startServer(t *testing.T, command, ready string, extra ...string) *upProcess {
	t.Helper()
	requireRoot(t)
	bin := vigilBinary(t)
	u := &upProcess{
		dataDir:  t.TempDir(),
		httpPort: freePort(t),
		tcpPort:  freePort(t),
		listen:   fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		token:    "e2e-token-0123456789abcdef",
		out:      &lockedBuffer{},
	}
	args := append([]string{command,
		"--data-dir", u.dataDir,
		"--ch-tcp-port", strconv.Itoa(u.tcpPort),
		"--ch-http-port", strconv.Itoa(u.httpPort),
		"--listen", u.listen,
		"--token", u.token,
	}, extra...)
	u.cmd = exec.Command(bin, args...)
	u.cmd.Stdout = u.out
	u.cmd.Stderr = u.out
	if err := u.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	u.exited = make(chan struct{})
	go func() { u.waitErr = u.cmd.Wait(); close(u.exited) }()
	t.Cleanup(func() {
		select {
		case <-u.exited:
		default:
			_ = u.cmd.Process.Kill()
			<-u.exited
		}
		if t.Failed() {
			t.Logf("vigil %s output:\n%s", command, u.out.String())
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(u.out.String(), ready) {
		if time.Now().After(deadline) {
			t.Fatalf("vigil %s did not print %q within 90s:\n%s", command, ready, u.out.String())
		}
		select {
		case <-u.exited:
			t.Fatalf("vigil %s exited early (%v):\n%s", command, u.waitErr, u.out.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
	return u
}

// chQuery runs sql over the ClickHouse HTTP port, the way curl would.
func (u *upProcess) chQuery(sql string) (string, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/?query=%s", u.httpPort, url.QueryEscape(sql)))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("clickhouse http %d: %s", resp.StatusCode, body)
	}
	return strings.TrimSpace(string(body)), nil
}

// stop sends SIGTERM and requires a clean exit within 10 s.
func (u *upProcess) stop(t *testing.T) {
	t.Helper()
	if err := u.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-u.exited:
		if u.waitErr != nil {
			t.Fatalf("vigil up exited with %v after SIGTERM:\n%s", u.waitErr, u.out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("vigil up still running 10s after SIGTERM:\n%s", u.out.String())
	}
}

// processesMentioning lists pids whose command line contains s.
func processesMentioning(s string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestUpStoresExecInClickHouseAndStopsClean(t *testing.T) {
	u := startUp(t)

	// The row must be found through ClickHouse's own HTTP port, as a data
	// scientist with curl would find it.
	deadline := time.Now().Add(30 * time.Second)
	var marker, got string
	var err error
	for time.Now().Before(deadline) {
		marker = uniqueExec(t)
		time.Sleep(1500 * time.Millisecond)
		got, err = u.chQuery(fmt.Sprintf("SELECT count() FROM vigil.exec_events WHERE has(argv, '%s')", marker))
		if err == nil && got == "1" {
			break
		}
	}
	if got != "1" {
		t.Fatalf("exec with argv %q not found once in vigil.exec_events (got %q, err %v)", marker, got, err)
	}

	// The dashboard answers with the token and refuses without it.
	resp, err := http.Get("http://" + u.listen + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("dashboard without token: status %d, want 401", resp.StatusCode)
	}

	// Prometheus scrapes /metrics with the token as a bearer token.
	req, _ := http.NewRequest("GET", "http://"+u.listen+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+u.token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`vigil_probe_events_total{kind="exec",probe="exec"}`, "vigil_store_insert_seconds_bucket", `vigil_probe_ring_size_bytes{kind="exec",probe="exec"}`, "vigil_llm_requests_total", "vigil_spool_bytes", "vigil_spool_waiting_seconds", "vigil_detect_sink_held_rows", "vigil_pipeline_queue_depth", "vigil_ui_clients", "vigil_anomalies_total"} {
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("/metrics: status %d, no %s:\n%.1500s", resp.StatusCode, want, body)
		}
	}

	// Ingest lag is how long rows wait for ClickHouse, which is up: a
	// fraction of a second, whenever the host last ran a program.
	req, _ = http.NewRequest("GET", "http://"+u.listen+"/api/health", nil)
	req.Header.Set("Authorization", "Bearer "+u.token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var stats struct {
		Health struct {
			IngestLag *float64 `json:"ingest_lag_s"`
		} `json:"health"`
	}
	err = json.NewDecoder(resp.Body).Decode(&stats)
	resp.Body.Close()
	if lag := stats.Health.IngestLag; err != nil || lag == nil || *lag < 0 || *lag > 5 {
		t.Errorf("/api/health: ingest_lag_s %v (err %v), want 0-5 s with ClickHouse up", lag, err)
	}

	// An analyst's question, answered offline by a template, through the
	// CLI as the read-only user: the marker binary is among the new ones.
	out, err := exec.Command(vigilBinary(t), "ask", "--ch-tcp-port", strconv.Itoa(u.tcpPort), "new binaries in the last hour").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "/bin/sh") || !strings.Contains(string(out), "SELECT") {
		t.Errorf("vigil ask: err=%v, want the SQL and /bin/sh in:\n%s", err, out)
	}
	// The same through the API.
	req, _ = http.NewRequest("POST", "http://"+u.listen+"/api/ask", strings.NewReader(`{"question":"recent incidents"}`))
	req.Header.Set("Authorization", "Bearer "+u.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "incidents") {
		t.Errorf("POST /api/ask: status %d: %s", resp.StatusCode, body)
	}

	u.stop(t)
	if pids := processesMentioning(u.dataDir); len(pids) > 0 {
		t.Fatalf("processes left behind after SIGTERM: %v", pids)
	}
}

func TestBadInputGivesOneLineErrors(t *testing.T) {
	bin := vigilBinary(t)
	cases := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"unknown flag", []string{"up", "--no-such-flag"}, nil, "unknown flag: --no-such-flag"},
		{"unknown probe", []string{"collect", "--probes", "exec,nosuch"}, nil, `unknown probe "nosuch"`},
		{"bad port", []string{"up", "--ch-tcp-port", "70000"}, nil, "70000 is not a port"},
		{"bad listen", []string{"up", "--listen", "nocolon"}, nil, "want host:port"},
		{"bad dsn", []string{"up", "--clickhouse", "http://x"}, nil, "want clickhouse://host:port"},
		{"unknown env", []string{"config"}, []string{"VIGIL_DATADIR=/x"}, "unknown environment variable VIGIL_DATADIR"},
		{"nab every 0", []string{"bench", "nab", "--data", ".", "--every", "0"}, nil, "--every 0: must be at least 1"},
		{"nab offset past every", []string{"bench", "nab", "--data", ".", "--every", "2", "--offset", "2"}, nil, "--offset 2: must be from 0 to --every minus 1 (1)"},
		{"nab baseline without labels", []string{"bench", "nab", "--data", ".", "--baseline"}, nil, "need --labels"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(bin, c.args...)
			cmd.Env = append(os.Environ(), c.env...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("want an error, got success:\n%s", out)
			}
			if !strings.Contains(string(out), c.want) {
				t.Fatalf("output lacks %q:\n%s", c.want, out)
			}
			if strings.Contains(string(out), "goroutine ") {
				t.Fatalf("stack trace in output:\n%s", out)
			}
		})
	}
}

func TestUnknownConfigKeyRejected(t *testing.T) {
	bin := vigilBinary(t)
	f := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(f, []byte("listen: 127.0.0.1:9999\nclickhouse:\n  tcp_prot: 9001\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "config", "--config", f).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "tcp_prot") {
		t.Fatalf("want an error naming tcp_prot, got err=%v:\n%s", err, out)
	}
}
