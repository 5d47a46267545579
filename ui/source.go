package ui

import (
	"context"
	"errors"
	"time"
)

// The data sources behind the dashboard. Each is a small interface the
// server takes in Options; every one is optional, and a nil source makes its
// API answer 503 {"error":"not available"} and its view say so.
//
// All strings in these types may come from telemetry (argv, comm, paths,
// host and container names) and are hostile: the page renders them as text
// only.

// ErrNotFound is returned by IncidentSource.Incident for an unknown id; the
// API answers 404.
var ErrNotFound = errors.New("not found")

// Event is one telemetry event: "kind" plus the row's columns by name, e.g.
// ts, host, pid, ppid, comm, filename, argv for "exec". Values must be
// JSON-marshallable.
type Event map[string]any

// EventSource gives the newest events of a kind, newest first, for the live
// feed's first load and catch-up after a reconnect.
type EventSource interface {
	RecentEvents(ctx context.Context, kind string, n int) ([]Event, error)
}

// Severity names, lowest first. Unknown severities sort below "info".
var Severities = []string{"info", "low", "medium", "high", "critical"}

// Anomaly is one scored detection.
type Anomaly struct {
	ID         string         `json:"id"`
	TS         time.Time      `json:"ts"`
	Host       string         `json:"host"`
	Container  string         `json:"container,omitempty"`
	Process    string         `json:"process,omitempty"` // comm or executable
	PID        uint32         `json:"pid,omitempty"`
	Severity   string         `json:"severity"` // one of Severities
	Score      float64        `json:"score"`
	Model      string         `json:"model,omitempty"`
	Kind       string         `json:"kind,omitempty"` // event kind it was found in
	Summary    string         `json:"summary"`
	IncidentID string         `json:"incident_id,omitempty"`
	SQL        string         `json:"sql,omitempty"` // query that shows the evidence
	Fields     map[string]any `json:"fields,omitempty"`
}

// AnomalyFilter selects anomalies. Empty fields match everything. Host,
// Container and Process should match as case-insensitive substrings (the page
// filters live anomalies that way); Severity is a minimum. Limit ≤ 0 means the
// server's default (200).
type AnomalyFilter struct {
	Host      string    `json:"host,omitempty"`
	Container string    `json:"container,omitempty"`
	Process   string    `json:"process,omitempty"`
	Severity  string    `json:"severity,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	Limit     int       `json:"limit,omitempty"`
}

// AnomalySource lists anomalies matching a filter, newest first.
type AnomalySource interface {
	Anomalies(ctx context.Context, f AnomalyFilter) ([]Anomaly, error)
}

// Incident is a group of related anomalies.
type Incident struct {
	ID        string    `json:"id"`
	Title     string    `json:"title"`
	Severity  string    `json:"severity"`
	State     string    `json:"state"` // e.g. open, summarizing, resolved
	Opened    time.Time `json:"opened"`
	Updated   time.Time `json:"updated"`
	Hosts     []string  `json:"hosts,omitempty"`
	Anomalies int       `json:"anomalies"` // count
	Summary   string    `json:"summary,omitempty"`
}

// IncidentFilter selects incidents. Limit ≤ 0 means the server's default.
type IncidentFilter struct {
	State string `json:"state,omitempty"`
	Limit int    `json:"limit,omitempty"`
}

// TimelineEntry is one step of an incident's story.
type TimelineEntry struct {
	TS   time.Time `json:"ts"`
	Kind string    `json:"kind,omitempty"` // exec, connect, anomaly, …
	Host string    `json:"host,omitempty"`
	Text string    `json:"text"`
}

// Process is one node of an incident's process tree; the page links nodes by
// Launcher when it is set, else by PPID.
type Process struct {
	PID  uint32 `json:"pid"`
	PPID uint32 `json:"ppid"`
	// Launcher is the nearest ancestor that had exec'd when PPID is a
	// fork-only parent such as a subshell (which has no node of its own);
	// 0 when that ancestor is PPID or unknown.
	Launcher uint32    `json:"launcher,omitempty"`
	Comm     string    `json:"comm"`
	Argv     []string  `json:"argv,omitempty"`
	Start    time.Time `json:"start,omitzero"`
	Host     string    `json:"host,omitempty"`
	// Flagged marks processes an anomaly points at.
	Flagged bool `json:"flagged,omitempty"`
}

// Connection is one network connection seen during an incident.
type Connection struct {
	TS    time.Time `json:"ts"`
	PID   uint32    `json:"pid"`
	Comm  string    `json:"comm,omitempty"`
	Proto string    `json:"proto,omitempty"`
	Src   string    `json:"src,omitempty"`
	Dst   string    `json:"dst"`
	Bytes uint64    `json:"bytes,omitempty"`
}

// Evidence sections of an incident detail, the keys of IncidentDetail.SQL.
const (
	SectionTimeline    = "timeline"
	SectionProcessTree = "process_tree"
	SectionConnections = "connections"
	SectionAnomalies   = "anomalies"
)

// IncidentDetail is everything the incident view shows.
type IncidentDetail struct {
	Incident
	Timeline    []TimelineEntry `json:"timeline"`
	ProcessTree []Process       `json:"process_tree"`
	Connections []Connection    `json:"connections"`
	AnomalyList []Anomaly       `json:"anomaly_list"`
	// SQL maps each section (Section* constants) to the ClickHouse query
	// behind it, shown copyable next to the section.
	SQL map[string]string `json:"sql,omitempty"`
}

// IncidentSource lists incidents (newest first) and gives one in detail.
type IncidentSource interface {
	Incidents(ctx context.Context, f IncidentFilter) ([]Incident, error)
	// Incident returns ErrNotFound (possibly wrapped) for an unknown id.
	Incident(ctx context.Context, id string) (IncidentDetail, error)
}

// Answer is the reply to a question asked in plain language.
type Answer struct {
	Text    string   `json:"text"`
	SQL     string   `json:"sql,omitempty"`
	Columns []string `json:"columns,omitempty"`
	Rows    [][]any  `json:"rows,omitempty"`
}

// Asker answers questions about the telemetry, typically by having the LLM
// write SQL and running it.
type Asker interface {
	Ask(ctx context.Context, question string) (Answer, error)
}

// Component states for Health.
const (
	StateOK       = "ok"
	StateDegraded = "degraded"
	StateDown     = "down"
	StateOff      = "off"      // not configured
	StateLearning = "learning" // running, not alerting on everything yet
)

// ComponentHealth is the state of one dependency.
type ComponentHealth struct {
	State  string `json:"state"` // State* constants
	Detail string `json:"detail,omitempty"`
}

// Health is the platform's state, polled every Options.StatsInterval and
// pushed to the page as a "stats" message.
type Health struct {
	TS         time.Time       `json:"ts"`
	ClickHouse ComponentHealth `json:"clickhouse"`
	LLM        ComponentHealth `json:"llm"`
	// Models is StateLearning while a host's novelty baselines are still
	// learned silently, with when that ends in Detail.
	Models ComponentHealth `json:"models"`
	// Drops is the cumulative count of events lost (ring buffer, spool).
	Drops uint64 `json:"drops"`
	// IngestLag is how long the oldest row received but not yet in
	// ClickHouse has waited, in seconds: 0 when ClickHouse has everything
	// (rows batching in memory, at most a second, aside).
	IngestLag float64 `json:"ingest_lag_s"`
	// ProbeRates and HostRates are events per second over the last interval.
	ProbeRates map[string]float64 `json:"probe_rates"`
	HostRates  map[string]float64 `json:"host_rates"`
}

// HealthSource reports the platform's health.
type HealthSource interface {
	Health(ctx context.Context) (Health, error)
}

// SummaryToken is the data of a "summary_token" hub message: a piece of an
// incident summary as the LLM writes it. Done marks the end; Text is then the
// whole summary if the publisher has it, else empty.
type SummaryToken struct {
	IncidentID string `json:"incident_id"`
	Text       string `json:"text"`
	Done       bool   `json:"done,omitempty"`
}

// Func adapters, so cmd/vigil can wire a source from a closure:
//
//	Events: ui.EventsFunc(func(ctx context.Context, kind string, n int) ([]ui.Event, error) {
//		return convert(live.Recent(collector.Kind(kind), n)), nil
//	}),

// EventsFunc adapts a function to EventSource.
type EventsFunc func(ctx context.Context, kind string, n int) ([]Event, error)

// RecentEvents implements EventSource.
func (f EventsFunc) RecentEvents(ctx context.Context, kind string, n int) ([]Event, error) {
	return f(ctx, kind, n)
}

// AnomaliesFunc adapts a function to AnomalySource.
type AnomaliesFunc func(ctx context.Context, f AnomalyFilter) ([]Anomaly, error)

// Anomalies implements AnomalySource.
func (f AnomaliesFunc) Anomalies(ctx context.Context, flt AnomalyFilter) ([]Anomaly, error) {
	return f(ctx, flt)
}

// AskFunc adapts a function to Asker.
type AskFunc func(ctx context.Context, question string) (Answer, error)

// Ask implements Asker.
func (f AskFunc) Ask(ctx context.Context, question string) (Answer, error) { return f(ctx, question) }

// HealthFunc adapts a function to HealthSource.
type HealthFunc func(ctx context.Context) (Health, error)

// Health implements HealthSource.
func (f HealthFunc) Health(ctx context.Context) (Health, error) { return f(ctx) }
