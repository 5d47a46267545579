package incidents

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/vigil-dev/vigil/query/internal/fixture"
	"github.com/vigil-dev/vigil/ui"
)

// TestSourceEngine reads the seeded incident back as the read-only user.
func TestSourceEngine(t *testing.T) {
	env := fixture.Start(t)
	ctx := context.Background()
	src := New(env.RO, Options{})

	list, err := src.Incidents(ctx, ui.IncidentFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != fixture.IncidentID || list[0].Severity != "high" || list[0].Anomalies != 2 {
		t.Fatalf("incidents %+v (want one, its newest version)", list)
	}
	if l, err := src.Incidents(ctx, ui.IncidentFilter{State: "resolved"}); err != nil || len(l) != 0 {
		t.Errorf("resolved incidents %+v, %v", l, err)
	}

	d, err := src.Incident(ctx, fixture.IncidentID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Title != "New outbound destination from curl on web-1" || len(d.AnomalyList) != 2 {
		t.Errorf("detail %+v", d.Incident)
	}
	comms := map[string]bool{}
	for _, p := range d.ProcessTree {
		comms[p.Comm] = true
		if p.Host != "web-1" {
			t.Errorf("process from another host: %+v", p)
		}
	}
	// curl (in scope) and sh, which ran it through a subshell (found by
	// exec_ancestor, not by ppid).
	if !comms["curl"] || !comms["sh"] {
		t.Errorf("process tree %+v", d.ProcessTree)
	}
	for _, p := range d.ProcessTree {
		if want := map[uint32]uint32{4121: 4120, 4120: 880}[p.PID]; p.Launcher != want {
			t.Errorf("%s (pid %d, ppid %d): launcher %d, want %d", p.Comm, p.PID, p.PPID, p.Launcher, want)
		}
	}
	if len(d.Connections) == 0 || d.Connections[0].Dst != "203.0.113.50:443" {
		t.Errorf("connections %+v", d.Connections)
	}
	if len(d.Timeline) < len(d.ProcessTree) {
		t.Errorf("timeline %d entries", len(d.Timeline))
	}
	for _, sec := range []string{ui.SectionTimeline, ui.SectionProcessTree, ui.SectionConnections, ui.SectionAnomalies} {
		q := d.SQL[sec]
		if q == "" || strings.Contains(q, "?") {
			t.Errorf("section %s SQL not runnable as is: %q", sec, q)
			continue
		}
		// Runnable as shown.
		if _, err := env.RO.Query(ctx, q); err != nil {
			t.Errorf("section %s SQL: %v", sec, err)
		}
	}

	for _, id := range []string{"not-a-uuid", "6f1c2a3e-0b7d-4c55-9a51-2f0e8d7c1a01' OR 1=1 --", "00000000-0000-0000-0000-000000000000"} {
		if _, err := src.Incident(ctx, id); !errors.Is(err, ui.ErrNotFound) {
			t.Errorf("Incident(%q): %v, want ErrNotFound", id, err)
		}
	}

	tests := []struct {
		name string
		f    ui.AnomalyFilter
		want int
	}{
		{"all", ui.AnomalyFilter{}, 2},
		{"host substring, any case", ui.AnomalyFilter{Host: "WEB"}, 2},
		{"process", ui.AnomalyFilter{Process: "cur"}, 1},
		{"minimum severity", ui.AnomalyFilter{Severity: "high"}, 1},
		{"limit", ui.AnomalyFilter{Limit: 1}, 1},
		{"since", ui.AnomalyFilter{Since: env.Now}, 0},
		{"injection is just text", ui.AnomalyFilter{Host: "' OR 1=1 --"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := src.Anomalies(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.want {
				t.Errorf("%d anomalies, want %d: %+v", len(got), tc.want, got)
			}
			for _, a := range got {
				if a.IncidentID != fixture.IncidentID || a.SQL == "" || a.Summary == "" {
					t.Errorf("anomaly %+v", a)
				}
			}
		})
	}
}
