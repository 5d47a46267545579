// Package summary writes incident summaries for the on-call engineer: a fact
// sheet read from ClickHouse, a summary in a fixed structure (title, what
// happened, impact, likely cause, next steps, each claim citing the facts it
// rests on), written by an LLM when one is configured and by a deterministic
// summarizer otherwise, and a grounding check that flags every pid, binary,
// address and number of the summary that the fact sheet does not contain.
package summary

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-dev/vigil/models"
)

// FactSheet is everything a summary may say about one incident. Each fact
// has a Ref (P1, C1, A1, T1) that summary claims cite as evidence.
type FactSheet struct {
	Incident    Incident     `json:"incident"`
	Anomalies   []Anomaly    `json:"anomalies"`
	Processes   []Process    `json:"processes"`
	Connections []Connection `json:"connections"`
	Timeline    []Event      `json:"timeline"`
	// Truncated names the lists that were cut to stay within budget, so a
	// summary does not present a partial list as complete.
	Truncated []string `json:"truncated,omitempty"`
}

// Incident is the incident row (newest version).
type Incident struct {
	ID       string     `json:"id"`
	Opened   time.Time  `json:"opened"`
	Updated  time.Time  `json:"updated"`
	Resolved *time.Time `json:"resolved,omitempty"`
	State    string     `json:"state"`
	Severity string     `json:"severity"`
	Title    string     `json:"title"`
	Hosts    []string   `json:"hosts"`
	Entities []string   `json:"entities"`
}

// Anomaly is one detection grouped into the incident.
type Anomaly struct {
	Ref         string    `json:"ref"`
	ID          string    `json:"id"`
	TS          time.Time `json:"ts"`
	Host        string    `json:"host"`
	EntityKind  string    `json:"entity_kind"`
	Entity      string    `json:"entity"`
	Series      string    `json:"series"`
	Detector    string    `json:"detector"`
	Score       float64   `json:"score"`
	Severity    string    `json:"severity"`
	Expected    float64   `json:"expected"`
	Observed    float64   `json:"observed"`
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	Evidence    string    `json:"evidence,omitempty"`
	// Value, Comm, PID and Tree are read from Evidence: the categorical
	// value ("nginx -> /bin/sh"), the process that did it, its pid and its
	// process tree ("tree:bash/812@web-1", rooted at pid 812). Empty for
	// series anomalies.
	Value string `json:"value,omitempty"`
	Comm  string `json:"comm,omitempty"`
	PID   uint32 `json:"pid,omitempty"`
	Tree  string `json:"tree,omitempty"`
}

// Process is one exec in or around the incident; PPID links the tree.
type Process struct {
	Ref  string    `json:"ref"`
	Host string    `json:"host"`
	TS   time.Time `json:"ts"`
	PID  uint32    `json:"pid"`
	PPID uint32    `json:"ppid"`
	// Ancestor is the nearest ancestor that had exec'd (exec_events'
	// exec_ancestor): PPID, or the process a fork-only parent such as a
	// subshell was forked from; 0 if unknown.
	Ancestor uint32   `json:"exec_ancestor,omitempty"`
	UID      uint32   `json:"uid"`
	Comm     string   `json:"comm"`
	Filename string   `json:"filename"`
	Argv     []string `json:"argv"`
}

// launcher is the process that ran p: its nearest ancestor that had
// exec'd. A subshell parent never has an exec row of its own, so this is
// the one to look for in the fact sheet.
func (p *Process) launcher() uint32 {
	if p.Ancestor != 0 {
		return p.Ancestor
	}
	return p.PPID
}

// Connection aggregates the TCP events of one process to one peer.
type Connection struct {
	Ref       string    `json:"ref"`
	Host      string    `json:"host"`
	PID       uint32    `json:"pid"`
	Comm      string    `json:"comm"`
	Event     string    `json:"event"`
	Daddr     string    `json:"daddr"`
	Dport     uint16    `json:"dport"`
	Count     uint64    `json:"count"`
	First     time.Time `json:"first"`
	Last      time.Time `json:"last"`
	BytesSent uint64    `json:"bytes_sent"`
	BytesRecv uint64    `json:"bytes_recv"`
}

// Event is one line of the incident's timeline, citing the fact it is about.
type Event struct {
	Ref  string    `json:"ref"`
	TS   time.Time `json:"ts"`
	Text string    `json:"text"`
	Of   string    `json:"of,omitempty"`
}

// Stats are the counts a summary may quote; they are derived, so they are
// computed rather than stored.
type Stats struct {
	Anomalies       int   `json:"anomalies"`
	Processes       int   `json:"processes"`
	Connections     int   `json:"connections"`
	Hosts           int   `json:"hosts"`
	DurationSeconds int64 `json:"duration_seconds"`
}

// Stats counts the fact sheet.
func (f *FactSheet) Stats() Stats {
	end := f.Incident.Updated
	if f.Incident.Resolved != nil {
		end = *f.Incident.Resolved
	}
	return Stats{
		Anomalies:       len(f.Anomalies),
		Processes:       len(f.Processes),
		Connections:     len(f.Connections),
		Hosts:           len(f.Incident.Hosts),
		DurationSeconds: int64(end.Sub(f.Incident.Opened) / time.Second),
	}
}

// Refs lists every fact reference.
func (f *FactSheet) Refs() []string {
	var refs []string
	for _, a := range f.Anomalies {
		refs = append(refs, a.Ref)
	}
	for _, p := range f.Processes {
		refs = append(refs, p.Ref)
	}
	for _, c := range f.Connections {
		refs = append(refs, c.Ref)
	}
	for _, e := range f.Timeline {
		refs = append(refs, e.Ref)
	}
	return refs
}

// number assigns refs in list order and derives the timeline. Build calls
// it; tests that load a recorded sheet get the same result.
func (f *FactSheet) number() {
	for i := range f.Anomalies {
		f.Anomalies[i].Ref = "A" + strconv.Itoa(i+1)
	}
	for i := range f.Processes {
		f.Processes[i].Ref = "P" + strconv.Itoa(i+1)
	}
	for i := range f.Connections {
		f.Connections[i].Ref = "C" + strconv.Itoa(i+1)
	}
	var tl []Event
	tl = append(tl, Event{TS: f.Incident.Opened, Text: "incident opened"})
	for _, a := range f.Anomalies {
		tl = append(tl, Event{TS: a.TS, Of: a.Ref, Text: fmt.Sprintf("%s anomaly: %s of %s %s observed %s, expected %s",
			a.Severity, a.Series, a.EntityKind, a.Entity, Num(a.Observed), Num(a.Expected))})
	}
	for _, p := range f.Processes {
		tl = append(tl, Event{TS: p.TS, Of: p.Ref, Text: fmt.Sprintf("exec %s pid %d (parent %d)", p.Comm, p.PID, p.PPID)})
	}
	for _, c := range f.Connections {
		tl = append(tl, Event{TS: c.First, Of: c.Ref, Text: fmt.Sprintf("%s %s pid %d %s:%d", c.Event, c.Comm, c.PID, c.Daddr, c.Dport)})
	}
	if r := f.Incident.Resolved; r != nil {
		tl = append(tl, Event{TS: *r, Text: "incident resolved"})
	}
	slices.SortStableFunc(tl, func(a, b Event) int { return a.TS.Compare(b.TS) })
	if len(tl) > maxTimeline {
		tl = tl[:maxTimeline]
		f.Truncated = append(f.Truncated, "timeline")
	}
	for i := range tl {
		tl[i].Ref = "T" + strconv.Itoa(i+1)
	}
	f.Timeline = tl
}

const maxTimeline = 100

// Num formats a value or a score for a summary: about four significant
// digits and no exponent (models.FormatValue). The grounding check accepts
// a number at the precision it is written with, so the rounding is safe.
func Num(v float64) string { return models.FormatValue(v) }

// TimeFormat is how summaries write times.
const TimeFormat = "2006-01-02 15:04:05 UTC"

func fmtTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// parseEntity splits "kind:entity".
func parseEntity(s string) (kind, entity string) {
	k, e, ok := strings.Cut(s, ":")
	if !ok {
		return "", s
	}
	return k, e
}
