package summary

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/vigil-dev/vigil/query/chread"
)

// BuildOptions bounds a fact sheet. The zero value means defaults.
type BuildOptions struct {
	// Database holds Vigil's tables. Default "vigil".
	Database string
	// Margin widens the incident's time range on both sides when looking
	// for processes and connections. Default 5 minutes.
	Margin time.Duration
	// MaxAnomalies, MaxProcesses and MaxConnections cap each list; a cut
	// list is named in FactSheet.Truncated. Defaults 50, 50, 50.
	MaxAnomalies   int
	MaxProcesses   int
	MaxConnections int
	// AncestorDepth is how many generations of parents are looked up for
	// the process tree. Default 4.
	AncestorDepth int
}

func (o BuildOptions) withDefaults() BuildOptions {
	if o.Database == "" {
		o.Database = "vigil"
	}
	if o.Margin <= 0 {
		o.Margin = 5 * time.Minute
	}
	if o.MaxAnomalies <= 0 {
		o.MaxAnomalies = 50
	}
	if o.MaxProcesses <= 0 {
		o.MaxProcesses = 50
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = 50
	}
	if o.AncestorDepth <= 0 {
		o.AncestorDepth = 4
	}
	return o
}

// ErrNotFound means no incident has the id.
var ErrNotFound = errors.New("incident not found")

// Build reads the fact sheet of incident id. r should be a read-only
// connection; every value from the host is passed as a bound argument, never
// spliced into the SQL.
func Build(ctx context.Context, r chread.Runner, id string, o BuildOptions) (FactSheet, error) {
	o = o.withDefaults()
	db := o.Database
	var f FactSheet

	res, err := r.Query(ctx, `SELECT toString(id), opened, updated, resolved, state, severity, title, hosts, entities
FROM `+db+`.incidents FINAL WHERE id = toUUIDOrZero(?) LIMIT 1`, id)
	if err != nil {
		return f, fmt.Errorf("read incident: %w", err)
	}
	if len(res.Rows) == 0 {
		return f, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	row := res.Rows[0]
	f.Incident = Incident{
		ID: chread.String(row[0]), Opened: chread.Time(row[1]), Updated: chread.Time(row[2]), Resolved: chread.TimePtr(row[3]),
		State: chread.String(row[4]), Severity: chread.String(row[5]), Title: chread.String(row[6]), Hosts: chread.Strings(row[7]), Entities: chread.Strings(row[8]),
	}

	res, err = r.Query(ctx, `SELECT toString(id), ts, host, entity_kind, entity, series, detector, score, severity,
       expected, observed, window_start, window_end, evidence
FROM `+db+`.anomalies
WHERE incident_id = toUUIDOrZero(?)
   OR id IN (SELECT arrayJoin(anomaly_ids) FROM `+db+`.incidents FINAL WHERE id = toUUIDOrZero(?))
ORDER BY score DESC, ts LIMIT ?`, id, id, o.MaxAnomalies+1)
	if err != nil {
		return f, fmt.Errorf("read anomalies: %w", err)
	}
	for _, row := range capRows(&f, "anomalies", res.Rows, o.MaxAnomalies) {
		a := Anomaly{
			ID: chread.String(row[0]), TS: chread.Time(row[1]), Host: chread.String(row[2]), EntityKind: chread.String(row[3]), Entity: chread.String(row[4]),
			Series: chread.String(row[5]), Detector: chread.String(row[6]), Score: chread.Float(row[7]), Severity: chread.String(row[8]),
			Expected: chread.Float(row[9]), Observed: chread.Float(row[10]), WindowStart: chread.Time(row[11]), WindowEnd: chread.Time(row[12]), Evidence: chread.String(row[13]),
		}
		a.Value, a.Comm, a.PID, a.Tree = parseEvidence(a.Evidence)
		f.Anomalies = append(f.Anomalies, a)
	}

	// The scope: hosts, time range and the entities that name processes.
	hosts := slices.Clone(f.Incident.Hosts)
	from, to := f.Incident.Opened, f.Incident.Updated
	if f.Incident.Resolved != nil {
		to = *f.Incident.Resolved
	}
	comms, cgroups := []string{}, []string{}
	addEntity := func(kind, e string) {
		switch kind {
		case "comm", "process":
			comms = append(comms, e)
		case "cgroup":
			cgroups = append(cgroups, e)
		}
	}
	for _, e := range f.Incident.Entities {
		addEntity(parseEntity(e))
	}
	for _, a := range f.Anomalies {
		addEntity(a.EntityKind, a.Entity)
		hosts = append(hosts, a.Host)
		if !a.WindowStart.IsZero() && a.WindowStart.Before(from) {
			from = a.WindowStart
		}
		if a.WindowEnd.After(to) {
			to = a.WindowEnd
		}
	}
	slices.Sort(hosts)
	hosts = slices.Compact(hosts)
	coreFrom, coreTo := from, to
	from, to = from.Add(-o.Margin), to.Add(o.Margin)
	allComms := len(comms) == 0 && len(cgroups) == 0 // host-wide incident: every exec counts

	// Processes: first the ones the anomalies name by pid, whenever they
	// started; then the entities' processes nearest the incident's own
	// time range. Ordering by time from the start of the margin instead
	// would fill the list with a busy program's runs minutes before (a
	// shell run every second by cron) and cut the one that matters.
	seen := map[string]bool{}
	addProcs := func(rows [][]any) {
		for _, row := range rows {
			p := process(row)
			k := p.Host + "/" + strconv.FormatUint(uint64(p.PID), 10) + "/" + strconv.FormatInt(p.TS.UnixNano(), 10)
			if !seen[k] && len(f.Processes) < o.MaxProcesses {
				seen[k] = true
				f.Processes = append(f.Processes, p)
			}
		}
	}
	latestExecs := func(pids []uint32) error {
		if len(pids) == 0 || len(f.Processes) >= o.MaxProcesses {
			return nil
		}
		res, err := r.Query(ctx, `SELECT host, ts, pid, ppid, uid, comm, filename, argv, exec_ancestor
FROM `+db+`.exec_events
WHERE host IN ? AND pid IN ? AND ts <= ?
ORDER BY ts DESC LIMIT 1 BY host, pid`, hosts, pids, to)
		if err != nil {
			return err
		}
		addProcs(res.Rows)
		return nil
	}
	var named []uint32
	for _, a := range f.Anomalies {
		if a.PID != 0 && !slices.Contains(named, a.PID) {
			named = append(named, a.PID)
		}
	}
	if err := latestExecs(named); err != nil {
		return f, fmt.Errorf("read the anomalies' processes: %w", err)
	}
	room := o.MaxProcesses - len(f.Processes)
	res, err = r.Query(ctx, `SELECT host, ts, pid, ppid, uid, comm, filename, argv, exec_ancestor
FROM `+db+`.exec_events
WHERE host IN ? AND ts BETWEEN ? AND ? AND (? OR comm IN ? OR toString(cgroup_id) IN ?)
ORDER BY greatest(dateDiff('millisecond', ts, ?), dateDiff('millisecond', ?, ts), 0), ts LIMIT ?`,
		hosts, from, to, allComms, comms, cgroups, coreFrom, coreTo, room+1)
	if err != nil {
		return f, fmt.Errorf("read processes: %w", err)
	}
	addProcs(capRows(&f, "processes", res.Rows, room))

	pids := make([]uint32, 0, len(f.Processes))
	for _, p := range f.Processes {
		pids = append(pids, p.PID)
	}
	res, err = r.Query(ctx, `SELECT host, pid, comm, event, daddr, dport, count(), min(ts), max(ts), sum(bytes_sent), sum(bytes_received)
FROM `+db+`.tcp_events
WHERE host IN ? AND ts BETWEEN ? AND ? AND (? OR pid IN ? OR comm IN ?)
GROUP BY host, pid, comm, event, daddr, dport
ORDER BY greatest(dateDiff('millisecond', max(ts), ?), dateDiff('millisecond', ?, min(ts)), 0), min(ts) LIMIT ?`,
		hosts, from, to, allComms, pids, comms, coreFrom, coreTo, o.MaxConnections+1)
	if err != nil {
		return f, fmt.Errorf("read connections: %w", err)
	}
	for _, row := range capRows(&f, "connections", res.Rows, o.MaxConnections) {
		f.Connections = append(f.Connections, Connection{
			Host: chread.String(row[0]), PID: chread.Uint32(row[1]), Comm: chread.String(row[2]), Event: chread.String(row[3]), Daddr: chread.String(row[4]), Dport: uint16(chread.Uint64(row[5])),
			Count: chread.Uint64(row[6]), First: chread.Time(row[7]), Last: chread.Time(row[8]), BytesSent: chread.Uint64(row[9]), BytesRecv: chread.Uint64(row[10]),
		})
	}
	slices.SortStableFunc(f.Connections, func(a, b Connection) int { return a.First.Compare(b.First) })

	// A long-running process (a service started hours ago) has
	// connections in the window but its exec before it: find the exec.
	have := map[uint32]bool{}
	for _, p := range f.Processes {
		have[p.PID] = true
	}
	var connPIDs []uint32
	for _, c := range f.Connections {
		if !have[c.PID] && !slices.Contains(connPIDs, c.PID) {
			connPIDs = append(connPIDs, c.PID)
		}
	}
	if err := latestExecs(connPIDs); err != nil {
		return f, fmt.Errorf("read the connections' processes: %w", err)
	}

	// Ancestors make the tree readable: who started the suspicious process.
	for range o.AncestorDepth {
		missing := missingParents(f.Processes)
		if len(missing) == 0 || len(f.Processes) >= o.MaxProcesses {
			break
		}
		n := len(f.Processes)
		if err := latestExecs(missing); err != nil {
			return f, fmt.Errorf("read parent processes: %w", err)
		}
		if len(f.Processes) == n {
			break
		}
	}
	slices.SortStableFunc(f.Processes, func(a, b Process) int { return a.TS.Compare(b.TS) })
	f.number()
	return f, nil
}

func process(row []any) Process {
	return Process{Host: chread.String(row[0]), TS: chread.Time(row[1]), PID: chread.Uint32(row[2]), PPID: chread.Uint32(row[3]), UID: chread.Uint32(row[4]),
		Comm: chread.String(row[5]), Filename: chread.String(row[6]), Argv: chread.Strings(row[7]), Ancestor: chread.Uint32(row[8])}
}

func missingParents(ps []Process) []uint32 {
	have := map[uint32]bool{}
	for _, p := range ps {
		have[p.PID] = true
	}
	var out []uint32
	for _, p := range ps {
		if l := p.launcher(); l > 1 && !have[l] && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

// capRows keeps max rows (one more was asked for) and notes a cut.
func capRows(f *FactSheet, what string, rows [][]any, max int) [][]any {
	if len(rows) > max {
		f.Truncated = append(f.Truncated, what)
		return rows[:max]
	}
	return rows
}

// The converters accept the Go types clickhouse-go scans into and the
// obvious neighbours, and yield zero values otherwise: a schema change shows
// up as empty fields, not as a failed summary.

// parseEvidence reads the categorical value, comm, pid and process tree
// from an anomaly's evidence JSON. Evidence that is not such an object
// (hand-inserted rows, an older format) yields nothing rather than an
// error: the raw string stays in the fact sheet.
func parseEvidence(ev string) (value, comm string, pid uint32, tree string) {
	var e struct {
		Value string `json:"value"`
		Comm  string `json:"comm"`
		PID   uint32 `json:"pid"`
		Tree  string `json:"tree"`
	}
	if ev == "" || json.Unmarshal([]byte(ev), &e) != nil {
		return "", "", 0, ""
	}
	return e.Value, e.Comm, e.PID, e.Tree
}
