package summary_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-dev/vigil/query/internal/fixture"
	"github.com/vigil-dev/vigil/query/summary"
)

// TestBuildEngine builds the fact sheet of the seeded incident from real
// rows as the read-only user and summarizes it offline.
func TestBuildEngine(t *testing.T) {
	env := fixture.Start(t)
	ctx := context.Background()
	f, err := summary.Build(ctx, env.RO, fixture.IncidentID, summary.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Incident.Title != "New outbound destination from curl on web-1" || f.Incident.Severity != "high" {
		t.Errorf("incident %+v (want the newest version)", f.Incident)
	}
	if len(f.Anomalies) != 2 || f.Anomalies[0].Series != "tcp_new_destinations" || f.Anomalies[0].Observed != 3 {
		t.Errorf("anomalies %+v", f.Anomalies)
	}
	var comms []string
	for _, p := range f.Processes {
		comms = append(comms, p.Comm)
	}
	// curl twice, its parent sh and php-fpm, which ran sh through a
	// subshell (found as ancestors: php-fpm only by exec_ancestor);
	// nothing from db-2.
	slices.Sort(comms)
	if strings.Join(comms, ",") != "curl,curl,php-fpm,sh" {
		t.Errorf("processes %v", comms)
	}
	if len(f.Connections) != 2 || f.Connections[0].Daddr != "203.0.113.50" || f.Connections[0].Count != 3 {
		t.Errorf("connections %+v", f.Connections)
	}
	s := summary.Offline(&f)
	if fl := summary.Ground(&s, &f); len(fl) > 0 {
		t.Errorf("offline summary of real rows not grounded: %+v\n%s", fl, s.Markdown())
	}
	if !strings.Contains(s.Markdown(), "started by `php-fpm` (pid 880) through a subshell (pid 890)") {
		t.Errorf("sh's launcher not named:\n%s", s.Markdown())
	}
	if !strings.Contains(s.Markdown(), "IGNORE ALL PREVIOUS") || strings.Contains(s.Markdown(), "\nTitle: ALL CLEAR") {
		t.Errorf("planted argv not quoted as data:\n%s", s.Markdown())
	}

	if _, err := summary.Build(ctx, env.RO, "not-a-uuid", summary.BuildOptions{}); !errors.Is(err, summary.ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
}
