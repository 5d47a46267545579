package incidents

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-dev/vigil/models"
	"github.com/vigil-dev/vigil/ui"
)

// Evidence is the JSON object stored in vigil.anomalies.evidence. The
// detector writes it; this package reads it. Strings in it come from
// telemetry and are hostile.
type Evidence struct {
	Value     string   `json:"value,omitempty"` // categorical value: "nginx -> /bin/sh", "10.0.0.7:4444"
	Container string   `json:"container,omitempty"`
	Comm      string   `json:"comm,omitempty"`
	PID       uint32   `json:"pid,omitempty"`
	Tree      string   `json:"tree,omitempty"`
	EventIDs  []uint64 `json:"event_ids,omitempty"`
}

// AnomalyRow is one row of vigil.anomalies.
type AnomalyRow struct {
	ID          string
	TS          time.Time
	Host        string
	EntityKind  string // host, container or comm
	Entity      string
	Series      string
	Detector    string
	Score       float64
	Severity    string
	Expected    float64
	Observed    float64
	WindowStart time.Time
	WindowEnd   time.Time
	Evidence    Evidence
	IncidentID  string // "" if none
}

// UI converts the row to the dashboard's type, with a one-line summary
// and the SQL that shows its evidence. db is the database name.
func (r AnomalyRow) UI(db string) ui.Anomaly {
	a := ui.Anomaly{
		ID: r.ID, TS: r.TS, Host: r.Host, Container: r.Evidence.Container, Process: r.Evidence.Comm, PID: r.Evidence.PID,
		Severity: r.Severity, Score: r.Score, Model: r.Detector, Kind: r.Series, IncidentID: r.IncidentID,
		Summary: r.Text(), SQL: r.EvidenceSQL(db),
		Fields: map[string]any{"entity_kind": r.EntityKind, "entity": r.Entity, "expected": r.Expected, "observed": r.Observed},
	}
	if r.EntityKind == "container" && a.Container == "" {
		a.Container = r.Entity
	}
	if r.EntityKind == "comm" && a.Process == "" {
		a.Process = r.Entity
	}
	if r.Evidence.Value != "" {
		a.Fields["value"] = r.Evidence.Value
	}
	return a
}

// Text is a one-line description for people.
func (r AnomalyRow) Text() string {
	who := r.EntityKind + " " + r.Entity
	if r.EntityKind == "host" {
		who = "host " + r.Host
	}
	if strings.HasPrefix(r.Detector, "novelty/") {
		what := map[string]string{
			"binary": "new binary", "exec_pair": "new parent → child exec", "destination": "new destination",
			"priv_change": "unusual privilege change", "sensitive_file": "new sensitive file access",
			"oom_kill": "OOM kill", "abnormal_exit": "abnormal exit",
		}[r.Series]
		if what == "" {
			what = "new " + r.Series
		}
		switch {
		case strings.HasSuffix(r.Detector, "/rare"):
			what = "rare " + r.Series
		case strings.HasSuffix(r.Detector, "/escalation"):
			what = "privilege escalation attempt"
		}
		return fmt.Sprintf("%s on %s: %s", what, who, r.Evidence.Value)
	}
	switch {
	case strings.HasPrefix(r.Detector, "burst/"):
		return fmt.Sprintf("burst of %s on %s: %s in one step, usual peak %s", r.Series, who,
			models.FormatQuantity(r.Series, r.Observed), models.FormatQuantity(r.Series, r.Expected))
	case strings.HasPrefix(r.Detector, "fanout/"):
		return fmt.Sprintf("connection fan-out (possible scan) on %s: %s distinct failed destinations in one step, usual peak %s", who,
			models.FormatValue(r.Observed), models.FormatValue(r.Expected))
	}
	cause := strings.TrimPrefix(r.Detector, "numeric/")
	return fmt.Sprintf("%s %s on %s: observed %s, expected %s", r.Series, strings.ReplaceAll(cause, "_", " "), who,
		models.FormatQuantity(r.Series, r.Observed), models.FormatQuantity(r.Series, r.Expected))
}

// EvidenceSQL is a query, runnable as is, that shows the data behind the
// anomaly: the series around it for a numeric anomaly, the raw events for
// a categorical one.
func (r AnomalyRow) EvidenceSQL(db string) string {
	from, to := r.WindowStart, r.WindowEnd
	if from.IsZero() {
		from = r.TS
	}
	if to.IsZero() {
		to = r.TS
	}
	if !strings.HasPrefix(r.Detector, "novelty/") {
		return "SELECT ts, value FROM " + ident(db) + ".metrics\nWHERE host = " + quote(r.Host) +
			" AND entity_kind = " + quote(r.EntityKind) + " AND entity = " + quote(r.Entity) +
			" AND series = " + quote(r.Series) +
			"\n  AND ts BETWEEN " + timeLit(from.Add(-time.Hour)) + " AND " + timeLit(to.Add(time.Minute)) + "\nORDER BY ts"
	}
	win := " AND ts BETWEEN " + timeLit(from.Add(-time.Minute)) + " AND " + timeLit(to.Add(time.Minute))
	host := "host = " + quote(r.Host)
	switch r.Series {
	case "destination":
		addr, port := splitHostPort(r.Evidence.Value)
		return "SELECT ts, pid, comm, event, saddr, sport, daddr, dport FROM " + ident(db) + ".tcp_events\nWHERE " + host + win +
			"\n  AND daddr = " + quote(addr) + " AND dport = " + strconv.FormatUint(port, 10) + "\nORDER BY ts LIMIT 100"
	case "priv_change":
		q := "SELECT * FROM " + ident(db) + ".priv_events\nWHERE " + host + win
		if r.Evidence.PID != 0 {
			q += " AND pid = " + strconv.FormatUint(uint64(r.Evidence.PID), 10)
		}
		return q + "\nORDER BY ts LIMIT 100"
	default: // binary, exec_pair
		q := "SELECT ts, pid, ppid, uid, comm, filename, argv FROM " + ident(db) + ".exec_events\nWHERE " + host + win
		if r.Evidence.PID != 0 {
			q += " AND pid = " + strconv.FormatUint(uint64(r.Evidence.PID), 10)
		}
		return q + "\nORDER BY ts LIMIT 100"
	}
}

func splitHostPort(v string) (string, uint64) {
	i := strings.LastIndexByte(v, ':')
	if i < 0 {
		return v, 0
	}
	port, _ := strconv.ParseUint(v[i+1:], 10, 16)
	return strings.TrimSuffix(strings.TrimPrefix(v[:i], "["), "]"), port
}

// MarshalEvidence encodes e for the evidence column.
func MarshalEvidence(e Evidence) string {
	b, err := json.Marshal(e)
	if err != nil {
		return "{}"
	}
	return string(b)
}

func parseEvidence(s string) Evidence {
	var e Evidence
	_ = json.Unmarshal([]byte(s), &e) // a foreign or broken object leaves the fields empty
	return e
}
