// Package incidents serves the dashboard's anomaly and incident views from
// ClickHouse: it implements ui.AnomalySource and ui.IncidentSource over the
// tables the detector writes (vigil.anomalies, vigil.incidents) and the raw
// event tables for an incident's process tree and connections.
package incidents

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-dev/vigil/query/chread"
	"github.com/vigil-dev/vigil/ui"
)

// Options configures a Source. Zero values mean defaults.
type Options struct {
	// Database holds Vigil's tables. Default "vigil".
	Database string
	// Limit is the list size when a filter gives none. Default 200.
	Limit int
	// MaxLimit caps any requested list size. Default 1000.
	MaxLimit int
	// Margin widens an incident's time range when looking for processes
	// and connections. Default 5 minutes.
	Margin time.Duration
	// MaxRows caps each detail section. Default 200.
	MaxRows int
}

func (o Options) withDefaults() Options {
	if o.Database == "" {
		o.Database = "vigil"
	}
	if o.Limit <= 0 {
		o.Limit = 200
	}
	if o.MaxLimit <= 0 {
		o.MaxLimit = 1000
	}
	if o.Margin <= 0 {
		o.Margin = 5 * time.Minute
	}
	if o.MaxRows <= 0 {
		o.MaxRows = 200
	}
	return o
}

// Source reads anomalies and incidents. It is safe for concurrent use if
// its Runner is.
type Source struct {
	r  chread.Runner
	o  Options
	db string // quoted database name
}

var (
	_ ui.AnomalySource  = (*Source)(nil)
	_ ui.IncidentSource = (*Source)(nil)
)

// New returns a Source reading through r, which should be the read-only
// connection (chread.NewClickHouse over the vigil_ro user).
func New(r chread.Runner, o Options) *Source {
	o = o.withDefaults()
	return &Source{r: r, o: o, db: ident(o.Database)}
}

func (s *Source) limit(n int) int {
	if n <= 0 {
		return s.o.Limit
	}
	return min(n, s.o.MaxLimit)
}

const anomalyCols = `toString(id), ts, host, entity_kind, entity, series, detector, score, severity, expected, observed,
       window_start, window_end, evidence, ifNull(toString(incident_id), '')`

func anomalyFrom(row []any) AnomalyRow {
	return AnomalyRow{
		ID: chread.String(row[0]), TS: chread.Time(row[1]), Host: chread.String(row[2]), EntityKind: chread.String(row[3]), Entity: chread.String(row[4]),
		Series: chread.String(row[5]), Detector: chread.String(row[6]), Score: chread.Float(row[7]), Severity: chread.String(row[8]),
		Expected: chread.Float(row[9]), Observed: chread.Float(row[10]), WindowStart: chread.Time(row[11]), WindowEnd: chread.Time(row[12]),
		Evidence: parseEvidence(chread.String(row[13])), IncidentID: chread.String(row[14]),
	}
}

// severitiesFrom returns the severities at or above min, or nil for no
// minimum (an unknown name is no minimum too: the filter must not hide
// everything because of a typo).
func severitiesFrom(min string) []string {
	i := slices.Index(ui.Severities, strings.ToLower(min))
	if i <= 0 {
		return nil
	}
	return ui.Severities[i:]
}

// Anomalies implements ui.AnomalySource. Filter strings are bound
// arguments, never spliced into the statement.
func (s *Source) Anomalies(ctx context.Context, f ui.AnomalyFilter) ([]ui.Anomaly, error) {
	var where []string
	var args []any
	if f.Host != "" {
		where = append(where, "positionCaseInsensitiveUTF8(host, ?) > 0")
		args = append(args, f.Host)
	}
	if f.Container != "" {
		where = append(where, "(positionCaseInsensitiveUTF8(JSONExtractString(evidence, 'container'), ?) > 0 OR (entity_kind = 'container' AND positionCaseInsensitiveUTF8(entity, ?) > 0))")
		args = append(args, f.Container, f.Container)
	}
	if f.Process != "" {
		where = append(where, "(positionCaseInsensitiveUTF8(JSONExtractString(evidence, 'comm'), ?) > 0 OR (entity_kind = 'comm' AND positionCaseInsensitiveUTF8(entity, ?) > 0))")
		args = append(args, f.Process, f.Process)
	}
	if sev := severitiesFrom(f.Severity); sev != nil {
		where = append(where, "severity IN ?")
		args = append(args, sev)
	}
	if !f.Since.IsZero() {
		where = append(where, "ts >= ?")
		args = append(args, f.Since.UTC())
	}
	q := "SELECT " + anomalyCols + "\nFROM " + s.db + ".anomalies"
	if len(where) > 0 {
		q += "\nWHERE " + strings.Join(where, " AND ")
	}
	q += "\nORDER BY ts DESC LIMIT ?"
	args = append(args, s.limit(f.Limit))
	res, err := s.r.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list anomalies: %w", err)
	}
	out := make([]ui.Anomaly, 0, len(res.Rows))
	for _, row := range res.Rows {
		out = append(out, anomalyFrom(row).UI(s.o.Database))
	}
	return out, nil
}

// latestIncidents selects each incident's newest version; the table is a
// ReplacingMergeTree and unmerged versions must not show twice.
func (s *Source) latestIncidents(where string) string {
	return `SELECT toString(id) AS id, argMax(opened, i.updated) AS opened, max(i.updated) AS updated,
       argMax(resolved, i.updated) AS resolved, argMax(state, i.updated) AS state, argMax(severity, i.updated) AS severity,
       argMax(title, i.updated) AS title, argMax(hosts, i.updated) AS hosts, argMax(entities, i.updated) AS entities,
       argMax(anomaly_ids, i.updated) AS anomaly_ids, argMax(summary, i.updated) AS summary
FROM ` + s.db + `.incidents AS i` + where + `
GROUP BY i.id`
}

// incidentFrom reads a latestIncidents row.
func incidentFrom(row []any) (ui.Incident, []string) {
	inc := ui.Incident{
		ID: chread.String(row[0]), Opened: chread.Time(row[1]), Updated: chread.Time(row[2]), State: chread.String(row[4]), Severity: chread.String(row[5]),
		Title: chread.String(row[6]), Hosts: chread.Strings(row[7]), Anomalies: len(uuids(row[9])), Summary: chread.String(row[10]),
	}
	return inc, chread.Strings(row[8])
}

// Incidents implements ui.IncidentSource.
func (s *Source) Incidents(ctx context.Context, f ui.IncidentFilter) ([]ui.Incident, error) {
	q := "SELECT * FROM (" + s.latestIncidents("") + ")"
	var args []any
	if f.State != "" {
		q += "\nWHERE state = ?"
		args = append(args, f.State)
	}
	q += "\nORDER BY updated DESC LIMIT ?"
	args = append(args, s.limit(f.Limit))
	res, err := s.r.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	out := make([]ui.Incident, 0, len(res.Rows))
	for _, row := range res.Rows {
		inc, _ := incidentFrom(row)
		out = append(out, inc)
	}
	return out, nil
}

// Incident implements ui.IncidentSource. The SQL of each section is built
// with literals (escaped, the id validated as a UUID first) so it can be
// copied into clickhouse-client; it is exactly what ran.
func (s *Source) Incident(ctx context.Context, id string) (ui.IncidentDetail, error) {
	var d ui.IncidentDetail
	if !ValidUUID(id) {
		return d, fmt.Errorf("incident %q: %w", id, ui.ErrNotFound)
	}
	id = strings.ToLower(id)
	res, err := s.r.Query(ctx, s.latestIncidents("\nWHERE i.id = "+uuidLit(id)))
	if err != nil {
		return d, fmt.Errorf("read incident: %w", err)
	}
	if len(res.Rows) == 0 {
		return d, fmt.Errorf("incident %s: %w", id, ui.ErrNotFound)
	}
	inc, entities := incidentFrom(res.Rows[0])
	d.Incident = inc
	d.SQL = map[string]string{}
	resolved := chread.TimePtr(res.Rows[0][3])

	// Anomalies: those that name the incident, and those it lists.
	d.SQL[ui.SectionAnomalies] = "SELECT " + anomalyCols + "\nFROM " + s.db + ".anomalies\nWHERE incident_id = " + uuidLit(id) +
		"\n   OR id IN (SELECT arrayJoin(anomaly_ids) FROM " + s.db + ".incidents WHERE id = " + uuidLit(id) + ")" +
		"\nORDER BY ts LIMIT " + strconv.Itoa(s.o.MaxRows)
	res, err = s.r.Query(ctx, d.SQL[ui.SectionAnomalies])
	if err != nil {
		return d, fmt.Errorf("read incident anomalies: %w", err)
	}
	var anomalies []AnomalyRow
	for _, row := range res.Rows {
		a := anomalyFrom(row)
		anomalies = append(anomalies, a)
		d.AnomalyList = append(d.AnomalyList, a.UI(s.o.Database))
	}

	sc := scopeOf(d.Incident, entities, anomalies, resolved, s.o.Margin)

	// Process tree: execs in scope during the incident, plus the latest
	// exec of each launcher outside the scope (who started them; one
	// level, so the statement stays one copyable query). The launcher is
	// the nearest ancestor that had exec'd: a subshell parent never has
	// an exec row of its own, the shell that forked it does.
	inScope := "host IN " + quoteList(sc.hosts) + " AND ts BETWEEN " + timeLit(sc.from) + " AND " + timeLit(sc.to) + sc.procCond()
	execCols := "host, ts, pid, ppid, comm, filename, argv, exec_ancestor"
	d.SQL[ui.SectionProcessTree] = "SELECT * FROM (\n  SELECT " + execCols + " FROM " + s.db + ".exec_events\n  WHERE " + inScope +
		"\n  UNION ALL\n  SELECT " + execCols + " FROM " + s.db + ".exec_events\n  WHERE host IN " + quoteList(sc.hosts) +
		" AND ts <= " + timeLit(sc.to) + "\n    AND pid IN (SELECT if(exec_ancestor = 0, ppid, exec_ancestor) FROM " + s.db + ".exec_events WHERE " + inScope + ")" +
		"\n    AND pid NOT IN (SELECT pid FROM " + s.db + ".exec_events WHERE " + inScope + ")" +
		"\n  ORDER BY ts DESC LIMIT 1 BY host, pid\n)\nORDER BY ts LIMIT " + strconv.Itoa(s.o.MaxRows)
	res, err = s.r.Query(ctx, d.SQL[ui.SectionProcessTree])
	if err != nil {
		return d, fmt.Errorf("read process tree: %w", err)
	}
	var pids []uint32
	for _, row := range res.Rows {
		p := ui.Process{Host: chread.String(row[0]), Start: chread.Time(row[1]), PID: chread.Uint32(row[2]), PPID: chread.Uint32(row[3]), Comm: chread.String(row[4]), Argv: chread.Strings(row[6])}
		if a := chread.Uint32(row[7]); a != 0 && a != p.PPID {
			p.Launcher = a
		}
		if len(p.Argv) == 0 {
			p.Argv = []string{chread.String(row[5])}
		}
		p.Flagged = sc.flagged(p, chread.String(row[5]))
		d.ProcessTree = append(d.ProcessTree, p)
		if !slices.Contains(pids, p.PID) {
			pids = append(pids, p.PID)
		}
	}

	// Connections of those processes (or of the scope's comms) during it.
	connCond := " AND (pid IN " + uintList(pids) + sc.commCond() + ")"
	if sc.all {
		connCond = ""
	}
	connWhere := "host IN " + quoteList(sc.hosts) + " AND ts BETWEEN " + timeLit(sc.from) + " AND " + timeLit(sc.to) + connCond
	d.SQL[ui.SectionConnections] = "SELECT ts, pid, comm, event, saddr, sport, daddr, dport, bytes_sent + bytes_received AS bytes\nFROM " + s.db +
		".tcp_events\nWHERE " + connWhere + "\nORDER BY ts LIMIT " + strconv.Itoa(s.o.MaxRows)
	res, err = s.r.Query(ctx, d.SQL[ui.SectionConnections])
	if err != nil {
		return d, fmt.Errorf("read connections: %w", err)
	}
	for _, row := range res.Rows {
		d.Connections = append(d.Connections, ui.Connection{
			TS: chread.Time(row[0]), PID: chread.Uint32(row[1]), Comm: chread.String(row[2]), Proto: "tcp/" + chread.String(row[3]),
			Src: hostPortText(chread.String(row[4]), chread.Uint64(row[5])), Dst: hostPortText(chread.String(row[6]), chread.Uint64(row[7])), Bytes: chread.Uint64(row[8]),
		})
	}

	// Timeline: anomalies, execs and connections in one time order.
	d.SQL[ui.SectionTimeline] = "SELECT ts, kind, host, text FROM (\n" +
		"  SELECT ts, 'anomaly' AS kind, host, concat(severity, ' ', detector, ' on ', entity_kind, ' ', entity, ': ', series,\n" +
		"         if(JSONExtractString(evidence, 'value') = '', '', concat(' ', JSONExtractString(evidence, 'value')))) AS text\n" +
		"  FROM " + s.db + ".anomalies WHERE incident_id = " + uuidLit(id) + "\n" +
		"  UNION ALL\n" +
		"  SELECT ts, 'exec' AS kind, host, concat(comm, ' (pid ', toString(pid), ', parent ', toString(ppid), ') exec ', filename, ' ', arrayStringConcat(argv, ' ')) AS text\n" +
		"  FROM " + s.db + ".exec_events WHERE " + inScope + "\n" +
		"  UNION ALL\n" +
		"  SELECT ts, event AS kind, host, concat(comm, ' (pid ', toString(pid), ') ', event, ' ', daddr, ':', toString(dport)) AS text\n" +
		"  FROM " + s.db + ".tcp_events WHERE " + connWhere + "\n" +
		")\nORDER BY ts LIMIT " + strconv.Itoa(3*s.o.MaxRows)
	res, err = s.r.Query(ctx, d.SQL[ui.SectionTimeline])
	if err != nil {
		return d, fmt.Errorf("read timeline: %w", err)
	}
	for _, row := range res.Rows {
		d.Timeline = append(d.Timeline, ui.TimelineEntry{TS: chread.Time(row[0]), Kind: chread.String(row[1]), Host: chread.String(row[2]), Text: chread.String(row[3])})
	}
	return d, nil
}

func hostPortText(addr string, port uint64) string {
	if addr == "" {
		return ""
	}
	p := strconv.FormatUint(port, 10)
	if strings.Contains(addr, ":") {
		return "[" + addr + "]:" + p
	}
	return addr + ":" + p
}

// scope is where an incident's raw events are looked for.
type scope struct {
	hosts      []string
	from, to   time.Time
	comms      []string
	cgroups    []string
	containers []string
	pids       []uint32 // processes anomalies point at
	files      []string // binaries anomalies name
	all        bool     // no process named: every exec on the hosts counts
}

func scopeOf(inc ui.Incident, entities []string, anomalies []AnomalyRow, resolved *time.Time, margin time.Duration) scope {
	sc := scope{hosts: slices.Clone(inc.Hosts), from: inc.Opened, to: inc.Updated}
	if resolved != nil {
		sc.to = *resolved
	}
	add := func(kind, name string) {
		switch kind {
		case "comm", "process":
			sc.comms = append(sc.comms, name)
		case "cgroup":
			sc.cgroups = append(sc.cgroups, name)
		case "container":
			sc.containers = append(sc.containers, name)
		}
	}
	for _, e := range entities {
		if k, n, ok := strings.Cut(e, ":"); ok {
			add(k, n)
		}
	}
	for _, a := range anomalies {
		add(a.EntityKind, a.Entity)
		if a.Host != "" {
			sc.hosts = append(sc.hosts, a.Host)
		}
		if a.Evidence.PID != 0 {
			sc.pids = append(sc.pids, a.Evidence.PID)
		}
		if a.Evidence.Container != "" {
			sc.containers = append(sc.containers, a.Evidence.Container)
		}
		if a.Evidence.Comm != "" {
			sc.comms = append(sc.comms, a.Evidence.Comm)
		}
		if v := a.Evidence.Value; v != "" && (a.Series == "binary" || a.Series == "exec_pair") {
			if _, child, ok := strings.Cut(v, " -> "); ok {
				v = child
			}
			sc.files = append(sc.files, v)
		}
		if !a.WindowStart.IsZero() && a.WindowStart.Before(sc.from) {
			sc.from = a.WindowStart
		}
		if a.WindowEnd.After(sc.to) {
			sc.to = a.WindowEnd
		}
	}
	for _, ss := range []*[]string{&sc.hosts, &sc.comms, &sc.cgroups, &sc.containers, &sc.files} {
		slices.Sort(*ss)
		*ss = slices.Compact(*ss)
	}
	sc.all = len(sc.comms) == 0 && len(sc.cgroups) == 0 && len(sc.containers) == 0 && len(sc.pids) == 0
	sc.from, sc.to = sc.from.Add(-margin), sc.to.Add(margin)
	return sc
}

// procCond limits execs to the scope's processes (nothing when host-wide).
func (sc scope) procCond() string {
	if sc.all {
		return ""
	}
	c := " AND (pid IN " + uintList(sc.pids) + sc.commCond()
	if len(sc.cgroups) > 0 {
		c += " OR toString(cgroup_id) IN " + quoteList(sc.cgroups)
	}
	return c + ")"
}

// commCond adds the scope's comms and containers (columns that exec and
// tcp events share).
func (sc scope) commCond() string {
	c := ""
	if len(sc.comms) > 0 {
		c += " OR comm IN " + quoteList(sc.comms)
	}
	if len(sc.containers) > 0 {
		c += " OR container_id IN " + quoteList(sc.containers)
	}
	return c
}

func (sc scope) flagged(p ui.Process, filename string) bool {
	return slices.Contains(sc.pids, p.PID) || slices.Contains(sc.files, filename) ||
		(len(sc.pids) == 0 && slices.Contains(sc.comms, p.Comm))
}
