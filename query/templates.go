package query

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-dev/vigil/query/summary"
)

// template is a built-in question: how to recognise it and the SQL that
// answers it. The SQL still goes through the guard like a model's, so the
// answer shows exactly what ran, and a template that drifts from the schema
// fails loudly in the real-engine test.
type template struct {
	name   string
	re     *regexp.Regexp
	window time.Duration // default look-back
	what   string        // "<what> in the last <window>"
	sql    string        // %d is the look-back in seconds
}

var (
	incidentIDRE = regexp.MustCompile(`(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`)
	windowRE     = regexp.MustCompile(`(?i)\b(?:last|past)\s+(\d{1,4})?\s*(minute|min|hour|hr|day|week)s?\b`)
)

// maxWindow bounds a look-back parsed from a question.
const maxWindow = 90 * 24 * time.Hour

// templates are tried in order; the first match answers.
var templates = []template{
	{
		name: "new_destinations", window: time.Hour,
		re:   regexp.MustCompile(`(?i)new (destination|peer|address|endpoint|connection|ip)|talk\w* to new|first[- ]time .*(connect|destination|peer)`),
		what: "Processes that connected to destinations first seen",
		sql: `SELECT comm, daddr, dport, min(ts) AS first_seen, count() AS connects
FROM vigil.tcp_events
WHERE event = 'connect'
GROUP BY comm, daddr, dport
HAVING first_seen > now() - toIntervalSecond(%d)
ORDER BY first_seen DESC`,
	},
	{
		name: "new_binaries", window: 24 * time.Hour,
		re:   regexp.MustCompile(`(?i)new (binar|program|executable|command)|first[- ]time .*(exec|binar|ran|run)|never (been )?(seen|run)`),
		what: "Binaries executed for the first time",
		sql: `SELECT filename, any(comm) AS comm, min(ts) AS first_seen, count() AS execs, uniqExact(host) AS hosts
FROM vigil.exec_events
GROUP BY filename
HAVING first_seen > now() - toIntervalSecond(%d)
ORDER BY first_seen DESC`,
	},
	{
		name: "top_talkers", window: time.Hour,
		re:   regexp.MustCompile(`(?i)top talker|talk\w* the most|most (connections|traffic|network)|busiest|chattiest`),
		what: "Processes with the most outgoing connections",
		sql: `SELECT comm, countIf(event = 'connect') AS connects, uniqExactIf(daddr, event = 'connect') AS destinations,
       sum(bytes_sent) AS bytes_sent, sum(bytes_received) AS bytes_recv
FROM vigil.tcp_events
WHERE ts > now() - toIntervalSecond(%d)
GROUP BY comm
ORDER BY connects DESC, bytes_sent DESC
LIMIT 20`,
	},
	{
		name: "recent_anomalies", window: 24 * time.Hour,
		re:   regexp.MustCompile(`(?i)anomal`),
		what: "Anomalies detected",
		sql: `SELECT ts, host, entity_kind, entity, series, severity, round(score, 3) AS score, expected, observed,
       toString(incident_id) AS incident
FROM vigil.anomalies
WHERE ts > now() - toIntervalSecond(%d)
ORDER BY ts DESC
LIMIT 100`,
	},
	{
		name: "recent_incidents", window: 7 * 24 * time.Hour,
		re:   regexp.MustCompile(`(?i)incident`),
		what: "Incidents updated",
		sql: `SELECT toString(id) AS id, opened, updated, state, severity, title
FROM vigil.incidents FINAL
WHERE updated > now() - toIntervalSecond(%d)
ORDER BY opened DESC
LIMIT 50`,
	},
}

// incidentTemplate answers "incident <uuid>" with the offline summary.
var incidentTemplate = template{name: "incident_by_id", re: incidentIDRE}

func matchTemplate(q string) (template, bool) {
	if incidentIDRE.MatchString(q) {
		return incidentTemplate, true
	}
	for _, t := range templates {
		if t.re.MatchString(q) {
			return t, true
		}
	}
	return template{}, false
}

// lookBack reads "last 3 hours", "past day", "last 30 minutes".
func lookBack(q string, def time.Duration) time.Duration {
	m := windowRE.FindStringSubmatch(q)
	if m == nil {
		return def
	}
	n := 1
	if m[1] != "" {
		n, _ = strconv.Atoi(m[1])
		n = max(n, 1)
	}
	unit := map[string]time.Duration{"minute": time.Minute, "min": time.Minute, "hour": time.Hour, "hr": time.Hour, "day": 24 * time.Hour, "week": 7 * 24 * time.Hour}
	return min(time.Duration(n)*unit[strings.ToLower(m[2])], maxWindow)
}

func humanDuration(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return plural(int(d/(24*time.Hour)), "day")
	case d%time.Hour == 0:
		return plural(int(d/time.Hour), "hour")
	default:
		return plural(int(d/time.Minute), "minute")
	}
}

func plural(n int, unit string) string {
	if n == 1 {
		return unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

func (a *Asker) askTemplate(ctx context.Context, q string, t template) (Answer, error) {
	ans := Answer{Question: q, Template: t.name}
	if t.name == incidentTemplate.name {
		id := incidentIDRE.FindString(q)
		f, err := summary.Build(ctx, a.opts.Runner, id, a.opts.Build)
		ans.Queries = append(ans.Queries, Query{Tool: "get_incident", Error: errString(err)})
		if err != nil {
			return ans, fmt.Errorf("incident %s: %w", id, err)
		}
		s := summary.Offline(&f)
		ans.Text = s.Markdown()
		return ans, nil
	}
	window := lookBack(q, t.window)
	sql := fmt.Sprintf(t.sql, int64(window/time.Second))
	run, err := a.guard.Query(ctx, sql)
	qr := Query{Tool: "template:" + t.name, SQL: sql, Executed: run.Executed}
	if err != nil {
		qr.Error = err.Error()
		ans.Queries = append(ans.Queries, qr)
		return ans, fmt.Errorf("template %s: %w", t.name, err)
	}
	qr.SQL, qr.Columns, qr.Rows, qr.Truncated = run.SQL, run.Result.Columns, run.Result.Rows, run.Result.Truncated
	ans.Queries = append(ans.Queries, qr)
	n := len(qr.Rows)
	switch {
	case n == 0:
		ans.Text = fmt.Sprintf("%s in the last %s: none.", t.what, humanDuration(window))
	case qr.Truncated:
		ans.Text = fmt.Sprintf("%s in the last %s: the first %d rows (more exist).", t.what, humanDuration(window), n)
	default:
		ans.Text = fmt.Sprintf("%s in the last %s: %d row(s).", t.what, humanDuration(window), n)
	}
	return ans, nil
}
