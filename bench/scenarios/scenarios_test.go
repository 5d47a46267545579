package scenarios

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// detectsSubset is what TestDetects (part of make test) plays after a 30 s
// warm-up: every scenario but crypto-miner, whose detection (a new binary
// in /tmp) new-binary-tmp already covers and whose 8 s CPU burn would slow
// the rest of the suite. Keep the test under ~3 minutes.
var detectsSubset = []string{
	"reverse-shell", "new-binary-tmp", "priv-escalation", "credential-access", "port-scan",
	"fork-storm", "ptrace-inject", "exfiltration", "retransmit-storm", "oom-kill",
}

func TestTable(t *testing.T) {
	names := map[string]bool{}
	for _, s := range Table() {
		t.Run(s.Name, func(t *testing.T) {
			if s.Name == "" || s.Run == nil || s.Expected == "" {
				t.Errorf("incomplete scenario %+v", s)
			}
			if names[s.Name] {
				t.Errorf("duplicate scenario %q", s.Name)
			}
			names[s.Name] = true
			switch s.Entity.Kind {
			case "comm", "host", "container":
			default:
				t.Errorf("entity kind %q: want comm, host or container", s.Entity.Kind)
			}
			if s.Entity.Name == "" {
				t.Error("no expected entity name")
			}
			if s.Entity.Kind == "comm" && len(s.Entity.Name) > 15 {
				t.Errorf("comm %q longer than the kernel's 15 bytes", s.Entity.Name)
			}
			if s.Telemetry.Table == "" || s.Telemetry.Where == "" {
				t.Error("no telemetry probe")
			}
		})
	}
	for _, n := range detectsSubset {
		if !names[n] {
			t.Errorf("detectsSubset names unknown scenario %q", n)
		}
	}
}

func TestActors(t *testing.T) {
	seen := map[string]bool{}
	for _, a := range actors {
		if len(a.name) > 15 || !strings.HasPrefix(a.name, "vbench-") {
			t.Errorf("actor %q: want vbench-*, at most 15 bytes (the comm)", a.name)
		}
		if seen[a.name] {
			t.Errorf("duplicate actor %q", a.name)
		}
		seen[a.name] = true
	}
	e := &Env{bins: map[string]string{}}
	defer func() {
		if recover() == nil {
			t.Error("bin of an unknown actor did not panic")
		}
	}()
	e.bin("vbench-nope")
}

func TestEvidenceComm(t *testing.T) {
	for in, want := range map[string]string{
		`{"value":"vbench-websrv -> /bin/sh","comm":"sh","pid":7}`: "sh",
		`{"value":"x"}`: "",
		`not json`:      "",
	} {
		if got := evidenceComm(in); got != want {
			t.Errorf("evidenceComm(%s) = %q, want %q", in, got, want)
		}
	}
}

// requireRoot skips when not root, except under CI=true where the test must
// run and fails instead.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true: the scenario bench needs root (eBPF probes, /etc/shadow, setuid)")
	}
	t.Skip("needs root")
}

func buildVigil(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vigil")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/vigil-dev/vigil/cmd/vigil")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestDetects plays detectsSubset with a short baseline and requires each
// scenario to run cleanly, leave telemetry, and be detected within the
// wait by an anomaly whose entity is the scenario's actor, in an incident
// that names it (entity_right).
func TestDetects(t *testing.T) {
	requireRoot(t)
	if testing.Short() {
		t.Skip("-short")
	}
	only := detectsSubset
	quiet := 5 * time.Second
	if v := os.Getenv("BENCH_SCENARIOS"); v != "" { // full measurement, by hand
		only, quiet = nil, 60*time.Second
		if v != "all" {
			only = strings.Split(v, ",")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var out strings.Builder
	res, err := Run(ctx, Options{
		Binary:   buildVigil(t),
		Only:     only,
		Baseline: 30 * time.Second,
		Quiet:    quiet,
		Wait:     30 * time.Second,
		Out:      &out,
	})
	t.Logf("\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.MarshalIndent(res, "", "  ")
	t.Logf("%s", js)
	if os.Getenv("BENCH_SCENARIOS") != "" {
		return
	}
	for _, s := range res.Scenarios {
		if s.Error != "" {
			t.Errorf("%s: %s", s.Name, s.Error)
		}
		if s.Telemetry <= 0 {
			t.Errorf("%s: %d telemetry rows (%s)", s.Name, s.Telemetry, s.TelemetryProbe)
		}
		// The offline summary must exist and name the actor.
		if _, name, _ := strings.Cut(s.ExpectedEntity, ":"); s.Detected && !strings.Contains(s.Summary, "`"+name+"`") {
			t.Errorf("%s: the incident's summary does not name %q:\n%s", s.Name, name, s.Summary)
		}
		if !s.Detected || !s.EntityRight {
			t.Errorf("%s: detected=%v entity_right=%v: want %s, anomaly %s (%s), incident %v", s.Name, s.Detected, s.EntityRight,
				s.ExpectedEntity, s.Entity, s.Evidence, s.IncidentEntity)
		}
	}
}

// TestMechanics runs every scenario once without vigil, beside the
// baseline, and checks that it succeeds and leaves no network namespace or
// cgroup behind. Opt-in (BENCH_MECHANICS=1, as root): it burns a CPU for
// seconds and moves 300 MB over loopback.
func TestMechanics(t *testing.T) {
	if os.Getenv("BENCH_MECHANICS") == "" {
		t.Skip("set BENCH_MECHANICS=1 to run the scenarios without vigil")
	}
	requireRoot(t)
	bins, cleanup, err := installActors()
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	base, err := startBaseline(ctx, bins)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Stop()
	time.Sleep(2 * time.Second) // vbench-sync connects once
	for _, s := range Table() {
		t.Run(s.Name, func(t *testing.T) {
			e := &Env{bins: bins, base: base}
			start := time.Now()
			err := s.Run(ctx, e)
			t.Logf("%s in %s: %s", s.Name, time.Since(start).Round(time.Millisecond), strings.Join(e.note, "; "))
			if err != nil {
				t.Error(err)
			}
		})
	}
	out, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	if strings.Contains(string(out), fmt.Sprintf("vbench-%d-", os.Getpid())) {
		t.Errorf("network namespaces left behind: %s", out)
	}
	if m, _ := filepath.Glob(fmt.Sprintf("/sys/fs/cgroup/*/vigil-bench-oom-%d", os.Getpid())); len(m) > 0 {
		t.Errorf("cgroups left behind: %v", m)
	}
}

func TestSummaryLine(t *testing.T) {
	const md = "Title: T\n\nWhat happened:\n- a shell ran. [A1]\n\nLikely cause:\n- Most likely related: `sh`. [A1, P1]\n- other\n\nNext steps:\n- look"
	tests := []struct {
		md   string
		max  int
		want string
	}{
		{md, 100, "Most likely related: `sh`. [A1, P1]"},
		{"Title: T\n\nWhat happened:\n- only this", 100, "only this"},
		{"Title: T", 100, ""},
		{"What happened:\n- ééééé", 3, "é…"}, // never cuts a rune in half
		{"", 10, ""},
	}
	for _, tc := range tests {
		if got := summaryLine(tc.md, tc.max); got != tc.want {
			t.Errorf("summaryLine(%q, %d) = %q, want %q", tc.md, tc.max, got, tc.want)
		}
	}
}
