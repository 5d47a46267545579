package scenarios

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTable(t *testing.T) {
	names := map[string]bool{}
	for _, s := range Table() {
		if s.Name == "" || s.Run == nil || s.Expected == "" {
			t.Errorf("incomplete scenario %+v", s)
		}
		if names[s.Name] {
			t.Errorf("duplicate scenario %q", s.Name)
		}
		names[s.Name] = true
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

// TestDetects plays the scenarios the current models catch with a short
// baseline, and requires each to be detected with the right entity.
func TestDetects(t *testing.T) {
	requireRoot(t)
	if testing.Short() {
		t.Skip("-short")
	}
	only := []string{"reverse-shell", "new-binary-tmp", "priv-escalation"}
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
		Baseline: 20 * time.Second,
		Quiet:    quiet,
		Wait:     45 * time.Second,
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
		if !s.Detected || !s.EntityRight {
			t.Errorf("%s: detected=%v entity_right=%v entity=%s", s.Name, s.Detected, s.EntityRight, s.Entity)
		}
	}
}
