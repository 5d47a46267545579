// Package scenarios runs attack-like workloads and faults against a live
// `vigil up` beside a benign baseline, and measures which of them the models
// turn into incidents, how fast, and whether the incident names the right
// entity.
//
// Every scenario is bounded in time, acts through its own process with a
// distinctive comm (vbench-*), and touches only loopback, temp directories,
// network namespaces and cgroups it creates (and, read-only, /etc/shadow).
package scenarios

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Entity is what a correct incident names, as vigil.anomalies stores it
// (entity_kind, entity) and vigil.incidents lists it ("kind:name").
type Entity struct {
	Kind string // comm, host or container
	Name string
}

func (e Entity) String() string { return e.Kind + ":" + e.Name }

// Probe counts the rows of one telemetry table that a scenario must
// produce, so that a miss can be told apart: no rows is a probe miss, rows
// without an incident is a model miss.
type Probe struct {
	Table string // table in the vigil database
	Where string // SQL condition, ANDed with ts >= the scenario's start
}

func (p Probe) String() string { return p.Table + " where " + p.Where }

// Scenario is one attack-like workload or fault.
type Scenario struct {
	Name string
	// Run ends by itself within a bounded time and cleans up what it made,
	// also on error and cancel.
	Run func(ctx context.Context, e *Env) error
	// Entity is what the incident must name: an anomaly newer than the
	// scenario's start with this entity, grouped into an incident whose
	// entities include it.
	Entity Entity
	// Telemetry is the scenario's own rows, counted after it ran.
	Telemetry Probe
	// Expected says what the models are expected to catch it with, or why
	// they are not, and what the scenario does instead of the real thing
	// where it has to.
	Expected string
}

// Table is every scenario, in the order Run plays them.
func Table() []Scenario {
	return []Scenario{
		{
			Name: "reverse-shell", Run: reverseShell, Entity: Entity{"comm", "sh"},
			Telemetry: Probe{"exec_events", "comm = 'sh' AND ppid IN (SELECT pid FROM vigil.exec_events WHERE comm = 'vbench-websrv' AND ts > now() - INTERVAL 10 MINUTE)"},
			Expected:  "novel parent→child exec pair vbench-websrv → /bin/sh (a loopback server that runs a shell on its accepted socket)",
		},
		{
			Name: "new-binary-tmp", Run: newBinaryInTmp, Entity: Entity{"comm", "vbench-dropper"},
			Telemetry: Probe{"exec_events", "comm = 'vbench-dropper'"},
			Expected:  "new binary per host (a fresh copy of /bin/true in /tmp)",
		},
		{
			Name: "priv-escalation", Run: privEscalation, Entity: Entity{"comm", "vbench-priv"},
			Telemetry: Probe{"priv_events", "comm = 'vbench-priv'"},
			Expected:  "rare privilege change: drops to nobody, then a failing setuid(0)",
		},
		{
			Name: "credential-access", Run: credentialAccess, Entity: Entity{"comm", "vbench-reader"},
			Telemetry: Probe{"file_events", "comm = 'vbench-reader'"},
			Expected:  "sensitive opens (/etc/shadow, ~/.ssh key) by a process that never opened them",
		},
		{
			Name: "crypto-miner", Run: cryptoMiner, Entity: Entity{"comm", "vbench-miner"},
			Telemetry: Probe{"exec_events", "comm = 'vbench-miner'"},
			Expected:  "new binary in /tmp (a copy of yes burning one CPU for 8 s); the CPU burn itself needs a per-comm CPU series",
		},
		{
			Name: "port-scan", Run: portScan, Entity: Entity{"comm", "vbench-scan"},
			Telemetry: Probe{"tcp_events", "event = 'connect_failed' AND comm = 'vbench-scan'"},
			Expected:  "connect-failure spike of one comm: 500 closed loopback ports",
		},
		{
			Name: "fork-storm", Run: forkStorm, Entity: Entity{"comm", "vbench-forker"},
			Telemetry: Probe{"exit_events", "comm = 'vbench-forker'"},
			Expected:  "fork/exit rate spike: 3000 short subshells of one shell (host-level series today)",
		},
		{
			Name: "ptrace-inject", Run: ptraceInject, Entity: Entity{"comm", "vbench-inject"},
			Telemetry: Probe{"priv_events", "syscall = 'ptrace' AND comm = 'vbench-inject'"},
			Expected:  "rare privilege change: ptrace attach to another process",
		},
		{
			Name: "exfiltration", Run: exfiltration, Entity: Entity{"comm", "vbench-sync"},
			Telemetry: Probe{"tcp_events", "event = 'close' AND comm = 'vbench-sync' AND bytes_sent >= 100000000"},
			Expected:  "bytes-out spike of a comm that sends a few KB a second in the baseline: one 300 MB loopback upload",
		},
		{
			Name: "retransmit-storm", Run: retransmitStorm, Entity: Entity{"comm", "vbench-xfer"},
			Telemetry: Probe{"retransmit_events", "comm = 'vbench-xfer'"},
			Expected: "retransmit spike: a TCP transfer across a router namespace that loses packets " +
				"(netem loss if the kernel has sch_netem, else nftables or iptables random drop, else an " +
				"HTB bottleneck with a 2-packet queue, i.e. tail-drop congestion loss; the note says which)",
		},
		{
			Name: "oom-kill", Run: oomKill, Entity: Entity{"comm", "vbench-hog"},
			Telemetry: Probe{"oom_events", "comm = 'vbench-hog'"},
			Expected:  "OOM kill: a memory hog in a 64 MiB memory cgroup",
		},
	}
}

// Env is what scenarios run with: the actor programs installed for this run,
// the baseline they play against, and a note for the report.
type Env struct {
	bins map[string]string // actor name → path of its copy
	base *baseline         // nil in unit tests
	note []string          // what the current scenario wants reported
}

// Notef records a line for the scenario's outcome, such as which loss
// mechanism it used.
func (e *Env) Notef(format string, args ...any) {
	e.note = append(e.note, fmt.Sprintf(format, args...))
}

func (e *Env) bin(name string) string {
	p, ok := e.bins[name]
	if !ok {
		panic("scenarios: unknown actor " + name) // a table bug, caught by TestActors
	}
	return p
}

// actor is a program a scenario acts through: a copy of a system binary
// under a vbench-* name, so its comm is its own. The baseline runs each one
// with benign arguments, so that what the models see in the scenario is new
// behaviour of a known program, not a new binary (new-binary-tmp and
// crypto-miner drop fresh binaries on purpose).
type actor struct {
	name string
	src  string   // "perl" is looked up in PATH
	warm []string // benign arguments the baseline runs it with
}

var actors = []actor{
	{"vbench-websrv", "perl", []string{"-e", "0"}},
	{"vbench-priv", "perl", []string{"-e", "0"}},
	{"vbench-reader", "/bin/cat", []string{"/etc/hostname"}},
	{"vbench-scan", "perl", []string{"-e", "0"}},
	{"vbench-forker", "/bin/sh", []string{"-c", ":"}},
	{"vbench-inject", "perl", []string{"-e", "0"}},
	{"vbench-sync", "perl", nil}, // runs for the whole baseline
	{"vbench-xfer", "perl", []string{"-e", "0"}},
	{"vbench-hog", "perl", []string{"-e", "0"}},
}

// installActors copies every actor into a fresh directory under /tmp.
func installActors() (bins map[string]string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("/tmp", "vigil-bench-actors-")
	if err != nil {
		return nil, nil, fmt.Errorf("actors dir: %w", err)
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	bins = map[string]string{}
	for _, a := range actors {
		src := a.src
		if !filepath.IsAbs(src) {
			if src, err = exec.LookPath(src); err != nil {
				cleanup()
				return nil, nil, fmt.Errorf("actor %s: %w", a.name, err)
			}
		}
		p := filepath.Join(dir, a.name)
		if err := copyFile(src, p); err != nil {
			cleanup()
			return nil, nil, err
		}
		bins[a.name] = p
	}
	return bins, cleanup, nil
}

// copyBinary copies src to a fresh temp dir under /tmp as name, so the
// kernel sees a binary path never executed before.
func copyBinary(src, name string) (path string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("/tmp", "vigil-bench-")
	if err != nil {
		return "", nil, fmt.Errorf("temp dir: %w", err)
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	path = filepath.Join(dir, name)
	if err := copyFile(src, path); err != nil {
		cleanup()
		return "", nil, err
	}
	return path, cleanup, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return fmt.Errorf("create %s: %w", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("close %s: %w", dst, err)
	}
	return nil
}

func bounded(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// command is exec.CommandContext that also kills the child if this process
// dies. When ctx ends it sends SIGTERM, and SIGKILL only 2 s later: a
// SIGKILL is what a crash or a kill looks like to the models, and the bench
// must not make one where the scenario does not.
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, name, args...)
	c.SysProcAttr = deathSig()
	c.Cancel = func() error { return c.Process.Signal(syscall.SIGTERM) }
	c.WaitDelay = 2 * time.Second
	return c
}

// background is a started helper process (a server, a receiver) whose
// stdout the scenario reads line by line.
type background struct {
	cmd    *exec.Cmd
	out    *bufio.Reader
	waited bool
}

// startBackground starts cmd with its stdout piped; defer stop right after.
func startBackground(cmd *exec.Cmd, what string) (*background, error) {
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%s stdout: %w", what, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", what, err)
	}
	return &background{cmd: cmd, out: bufio.NewReader(stdout)}, nil
}

// wait waits for the process to exit by itself.
func (b *background) wait() error {
	b.waited = true
	return b.cmd.Wait()
}

// stop ends the process unless it was waited for: a scenario that fails
// half-way must not leave it behind.
func (b *background) stop() {
	if !b.waited {
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		_ = b.cmd.Wait()
	}
}

// run runs a command and returns its error with its output.
func run(ctx context.Context, name string, args ...string) error {
	out, err := command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
