package scenarios

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// Options configures Run. Zero values take the defaults noted.
type Options struct {
	Binary   string        // the vigil binary; required
	Only     []string      // scenario names to play; all when empty
	Baseline time.Duration // warm-up with the baseline alone, also the models' learning period; default 3m
	Quiet    time.Duration // baseline alone after the scenarios, counting false positives; default 10m
	Wait     time.Duration // how long to wait for each detection; default 30s
	Step     time.Duration // the models' step (vigil up --model-step); default 1s
	Out      io.Writer     // the table; nil for none
	Logger   *slog.Logger  // nil discards
}

// Outcome is what one scenario produced.
type Outcome struct {
	Name     string        `json:"name"`
	Error    string        `json:"error,omitempty"`
	RunTime  time.Duration `json:"run_ns"` // the scenario's own run (detection is polled meanwhile)
	Expected string        `json:"expected"`
	Note     string        `json:"note,omitempty"` // what the scenario reports about itself, e.g. the loss mechanism

	// Detected: a new anomaly was grouped into an incident within the wait.
	Detected    bool          `json:"detected"`
	TimeToAlert time.Duration `json:"time_to_detect_ns,omitempty"` // until the poll saw the reported anomaly grouped
	// ExpectedEntity is the scenario's entity, as "kind:name".
	ExpectedEntity string `json:"expected_entity"`
	// EntityRight: an anomaly newer than the start has exactly the expected
	// entity_kind and entity, and its incident's entities include it.
	EntityRight bool `json:"entity_right"`
	// ActorInEvidence: the reported anomaly's evidence names the actor's
	// comm although its entity is a wider scope (the host or container),
	// as the categorical detectors record it. Not counted as entity_right.
	ActorInEvidence bool     `json:"actor_in_evidence"`
	Entity          string   `json:"entity,omitempty"` // entity_kind:entity of the reported anomaly
	Series          string   `json:"series,omitempty"`
	Detector        string   `json:"detector,omitempty"`
	Evidence        string   `json:"evidence,omitempty"`
	IncidentID      string   `json:"incident_id,omitempty"`
	IncidentEntity  []string `json:"incident_entities,omitempty"`
	Title           string   `json:"title,omitempty"`
	// Others is every new grouped anomaly seen in the wait, as
	// "entity series detector comm=<evidence comm> ×count", to tell a wrong
	// pick from a miss.
	Others  []string `json:"other_anomalies,omitempty"`
	Summary string   `json:"summary,omitempty"`

	// Telemetry is how many of the scenario's own rows reached ClickHouse
	// (TelemetryProbe says which): 0 is a probe miss, rows without
	// detection a model miss. -1 if the count failed.
	Telemetry      int64  `json:"telemetry_rows"`
	TelemetryProbe string `json:"telemetry_probe"`
}

// Result is the whole run, JSON-able.
type Result struct {
	Scenarios      []Outcome     `json:"scenarios"`
	Baseline       time.Duration `json:"baseline_ns"`
	Step           time.Duration `json:"step_ns"`
	Quiet          time.Duration `json:"quiet_ns"`
	FalsePositives int           `json:"false_positive_incidents"`
	FPTitles       []string      `json:"false_positive_titles,omitempty"`
	Anomalies      string        `json:"anomalies"` // totals over the whole run
}

// Run starts `vigil up`, warms it up with the baseline, plays each scenario
// and reports what was detected, then counts incidents raised by the
// baseline alone.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Binary == "" {
		return Result{}, errors.New("no vigil binary")
	}
	if o.Step <= 0 {
		o.Step = time.Second
	}
	if o.Baseline <= 0 {
		o.Baseline = 3 * time.Minute
	}
	if o.Quiet < 0 {
		o.Quiet = 0
	}
	if o.Wait <= 0 {
		o.Wait = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var table []Scenario
	for _, s := range Table() {
		if len(o.Only) == 0 || slices.Contains(o.Only, s.Name) {
			table = append(table, s)
		}
	}
	if len(table) == 0 {
		return Result{}, fmt.Errorf("no scenario matches %v", o.Only)
	}

	bins, cleanup, err := installActors()
	if err != nil {
		return Result{}, err
	}
	defer cleanup()

	srv, err := startVigil(ctx, o.Binary, o.Baseline, o.Step, o.Logger)
	if err != nil {
		return Result{}, err
	}
	defer srv.stop()

	base, err := startBaseline(ctx, bins)
	if err != nil {
		return Result{}, err
	}
	defer base.Stop()
	o.Logger.Info("baseline warm-up", "for", o.Baseline)
	if err := sleep(ctx, o.Baseline); err != nil {
		return Result{}, err
	}

	res := Result{Baseline: o.Baseline, Step: o.Step}
	seen := map[string]bool{} // anomaly ids already attributed
	srv.markSeen(ctx, seen)
	for _, s := range table {
		o.Logger.Info("scenario", "name", s.Name)
		env := &Env{bins: bins, base: base}
		oc := Outcome{Name: s.Name, Expected: s.Expected, ExpectedEntity: s.Entity.String(), TelemetryProbe: s.Telemetry.String()}
		// detection is polled while the scenario runs, so time to detect
		// does not include the rest of a long scenario
		start := time.Now()
		type ran struct {
			err error
			d   time.Duration
		}
		done := make(chan ran, 1)
		go func() {
			err := s.Run(ctx, env)
			done <- ran{err, time.Since(start)}
		}()
		derr := srv.detect(ctx, start, s.Entity, o.Wait, seen, &oc)
		r := <-done
		rerr := r.err
		oc.RunTime = r.d
		if derr != nil {
			return res, derr
		}
		if rerr != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			oc.Error = rerr.Error()
		}
		oc.Note = strings.Join(env.note, "; ")
		// let stragglers from this scenario land before the next starts
		if err := sleep(ctx, 3*time.Second); err != nil {
			return res, err
		}
		if oc.IncidentID != "" {
			// The summary is written a little after the incident opens (the
			// summarizer reads its facts back from ClickHouse); waiting for
			// it is not part of the time to detect.
			sum, err := srv.awaitSummary(ctx, oc.IncidentID, summaryWait)
			if err != nil {
				return res, err
			}
			oc.Summary = sum
		}
		oc.Telemetry = srv.count(ctx, start, s.Telemetry)
		o.Logger.Info("scenario done", "name", s.Name, "detected", oc.Detected, "entity_right", oc.EntityRight, "telemetry", oc.Telemetry, "note", oc.Note, "error", oc.Error)
		res.Scenarios = append(res.Scenarios, oc)
		srv.markSeen(ctx, seen)
	}

	o.Logger.Info("quiet baseline", "for", o.Quiet)
	qStart := time.Now()
	if err := sleep(ctx, o.Quiet); err != nil {
		return res, err
	}
	res.Quiet = o.Quiet
	titles, err := srv.incidentsSince(ctx, qStart)
	if err != nil {
		return res, err
	}
	res.FalsePositives, res.FPTitles = len(titles), titles
	if rows, err := srv.query(ctx, `SELECT count() AS n, countIf(incident_id IS NOT NULL) AS grouped FROM vigil.anomalies`); err == nil && len(rows) == 1 {
		res.Anomalies = fmt.Sprint(rows[0]["n"], " anomalies, ", rows[0]["grouped"], " grouped into incidents")
	}
	if o.Out != nil {
		writeTable(o.Out, res)
	}
	return res, nil
}

// summaryWait bounds how long a scenario's report waits for its incident's
// summary; the offline summarizer takes well under a second, so running
// out means the summary stage is stuck or failing.
const summaryWait = 20 * time.Second

// awaitSummary polls the incident until it has a summary, for at most d;
// "" if it has none by then. Only a cancelled ctx is an error.
func (v *vigil) awaitSummary(ctx context.Context, id string, d time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	for {
		rows, err := v.query(ctx, fmt.Sprintf(`SELECT summary FROM vigil.incidents FINAL WHERE id = toUUID('%s')`, id))
		if err == nil && len(rows) > 0 {
			if s := str(rows[0], "summary"); s != "" {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			return "", nil
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return "", err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func writeTable(w io.Writer, r Result) {
	fmt.Fprintf(w, "model step %s, baseline %s\n", r.Step, r.Baseline)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tran\tdetected\ttime\tentity ok\tentity\tdetector\ttelemetry\ttitle")
	for _, s := range r.Scenarios {
		t := "-"
		if s.Detected {
			t = s.TimeToAlert.Round(100 * time.Millisecond).String()
		}
		ok := fmt.Sprint(s.EntityRight)
		if !s.EntityRight && s.ActorInEvidence {
			ok = "evidence"
		}
		ent := s.Entity
		if ent == "" {
			ent = "(want " + s.ExpectedEntity + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\t%s\t%d\t%s\n", s.Name, s.RunTime.Round(100*time.Millisecond), s.Detected, t, ok, ent, s.Detector, s.Telemetry, s.Title)
	}
	tw.Flush()
	for _, s := range r.Scenarios {
		if s.Error != "" {
			fmt.Fprintf(w, "  %s: error: %s\n", s.Name, s.Error)
		}
		if s.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", s.Name, s.Note)
		}
	}
	for _, s := range r.Scenarios {
		switch {
		case s.Summary != "":
			fmt.Fprintf(w, "  %s summary: %s\n", s.Name, summaryLine(s.Summary, 400))
		case s.Detected:
			fmt.Fprintf(w, "  %s summary: (none within %s)\n", s.Name, summaryWait)
		}
	}
	fmt.Fprintf(w, "quiet baseline %s: %d incident(s); whole run: %s\n", r.Quiet, r.FalsePositives, r.Anomalies)
	for _, t := range r.FPTitles {
		fmt.Fprintf(w, "  %s\n", t)
	}
}

// summaryLine is the line of a summary the text report shows: the first
// claim under "Likely cause:", else the first claim, cut at max bytes (on a
// rune boundary). The JSON has the whole summary.
func summaryLine(md string, max int) string {
	var first, cause string
	inCause := false
	for line := range strings.SplitSeq(md, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasSuffix(line, ":") && !strings.HasPrefix(line, "- "):
			inCause = line == "Likely cause:"
		case strings.HasPrefix(line, "- "):
			if first == "" {
				first = line[2:]
			}
			if inCause && cause == "" {
				cause = line[2:]
			}
		}
	}
	p := cmp.Or(cause, first)
	if len(p) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(p[cut]) {
			cut--
		}
		p = p[:cut] + "…"
	}
	return p
}

// vigil is a running `vigil up`.
type vigil struct {
	cmd      *exec.Cmd
	httpPort int
	exited   chan struct{}
	mu       sync.Mutex      // guards out
	out      strings.Builder // combined output
	dataDir  string
	stopOnce sync.Once
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startVigil(ctx context.Context, bin string, learning, step time.Duration, log *slog.Logger) (*vigil, error) {
	dir, err := os.MkdirTemp("", "vigil-bench-data-")
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	var ports [3]int
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("free port: %w", err)
		}
	}
	v := &vigil{httpPort: ports[0], exited: make(chan struct{}), dataDir: dir}
	v.cmd = exec.Command(bin, "up",
		"--data-dir", dir,
		"--ch-http-port", strconv.Itoa(ports[0]),
		"--ch-tcp-port", strconv.Itoa(ports[1]),
		"--listen", fmt.Sprintf("127.0.0.1:%d", ports[2]),
		"--token", "bench-scenarios-token-0123456789",
		"--model-step", step.String(),
		"--model-learning", learning.String())
	pr, pw := io.Pipe()
	v.cmd.Stdout, v.cmd.Stderr = pw, pw
	if err := v.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start vigil: %w", err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			v.mu.Lock()
			if v.out.Len() < 1<<20 {
				v.out.WriteString(line + "\n")
			}
			v.mu.Unlock()
			if strings.Contains(line, "dashboard: http") {
				once.Do(func() { close(ready) })
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() { _ = v.cmd.Wait(); pw.Close(); close(v.exited) }()
	select {
	case <-ready:
		log.Info("vigil up", "ch_http_port", ports[0])
		return v, nil
	case <-v.exited:
		v.stop()
		return nil, fmt.Errorf("vigil up exited early: %s", v.output())
	case <-time.After(120 * time.Second):
		v.stop()
		return nil, fmt.Errorf("vigil up not ready within 120s: %s", v.output())
	case <-ctx.Done():
		v.stop()
		return nil, ctx.Err()
	}
}

func (v *vigil) output() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.out.String()
}

// stop sends SIGTERM, waits up to 15s, then kills; safe to call twice.
func (v *vigil) stop() {
	v.stopOnce.Do(func() {
		_ = v.cmd.Process.Signal(os.Interrupt)
		select {
		case <-v.exited:
		case <-time.After(15 * time.Second):
			_ = v.cmd.Process.Kill()
			<-v.exited
		}
		_ = os.RemoveAll(v.dataDir)
	})
}

func (v *vigil) query(ctx context.Context, sql string) ([]map[string]any, error) {
	u := fmt.Sprintf("http://127.0.0.1:%d/?query=%s", v.httpPort, url.QueryEscape(sql+" FORMAT JSONEachRow"))
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		// Say whether vigil itself is gone, with the end of what it
		// printed: the engine being down is a finding, not a bench bug.
		state := "vigil up is still running"
		select {
		case <-v.exited:
			state = "vigil up has exited"
		default:
		}
		out := v.output()
		return nil, fmt.Errorf("clickhouse query: %w (%s; its output ends:\n%s)", err, state, out[max(0, len(out)-4000):])
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("clickhouse query: %s: %s", resp.Status, body)
	}
	var rows []map[string]any
	dec := json.NewDecoder(strings.NewReader(string(body)))
	for dec.More() {
		var r map[string]any
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("decode row: %w", err)
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func str(r map[string]any, k string) string {
	s, _ := r[k].(string)
	return s
}

// detect waits up to wait for an anomaly grouped into an incident, newer
// than start and not seen before, and fills oc. It stops early once an
// anomaly names want (by entity, or in its evidence) and its incident is
// readable; otherwise it reports the first new anomaly at the deadline.
func (v *vigil) detect(ctx context.Context, start time.Time, want Entity, wait time.Duration, seen map[string]bool, oc *Outcome) error {
	deadline := time.Now().Add(wait)
	sql := fmt.Sprintf(`SELECT toString(id) AS id, entity_kind, entity, series, detector, evidence, toString(incident_id) AS incident
		FROM vigil.anomalies WHERE ts >= fromUnixTimestamp64Nano(%d) AND incident_id IS NOT NULL ORDER BY ts`, start.Add(-time.Second).UnixNano())
	firstAt := map[string]time.Duration{} // anomaly id → when the poll first saw it
	var qerr error                        // the last poll's, if it failed
	for {
		rows, err := v.query(ctx, sql)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			qerr = err
		} else {
			qerr = nil
		}
		var first, exact, inEvidence map[string]any
		for _, r := range rows {
			id := str(r, "id")
			if seen[id] {
				continue
			}
			if _, ok := firstAt[id]; !ok {
				firstAt[id] = time.Since(start)
			}
			if first == nil {
				first = r
			}
			switch {
			case exact == nil && str(r, "entity_kind") == want.Kind && str(r, "entity") == want.Name:
				exact = r
			case inEvidence == nil && want.Kind == "comm" && evidenceComm(str(r, "evidence")) == want.Name:
				inEvidence = r
			}
		}
		last := time.Now().After(deadline)
		pick, pickedExact := exact, exact != nil
		if pick == nil {
			pick = inEvidence
		}
		if pick == nil && last {
			pick = first
		}
		if pick != nil {
			inc, err := v.query(ctx, fmt.Sprintf(`SELECT title, summary, entities FROM vigil.incidents FINAL WHERE id = toUUID('%s')`, str(pick, "incident")))
			if err == nil && len(inc) > 0 || last {
				oc.Detected = true
				oc.TimeToAlert = firstAt[str(pick, "id")]
				oc.Entity = str(pick, "entity_kind") + ":" + str(pick, "entity")
				oc.Series, oc.Detector, oc.Evidence = str(pick, "series"), str(pick, "detector"), str(pick, "evidence")
				oc.IncidentID = str(pick, "incident")
				oc.ActorInEvidence = want.Kind == "comm" && evidenceComm(oc.Evidence) == want.Name
				if len(inc) > 0 {
					oc.Title, oc.Summary = str(inc[0], "title"), str(inc[0], "summary")
					if es, ok := inc[0]["entities"].([]any); ok {
						for _, e := range es {
							if s, ok := e.(string); ok {
								oc.IncidentEntity = append(oc.IncidentEntity, s)
							}
						}
					}
				}
				oc.EntityRight = pickedExact && slices.Contains(oc.IncidentEntity, want.String())
				oc.Others = summarize(rows, seen)
				for _, r := range rows {
					seen[str(r, "id")] = true
				}
				return nil
			}
		}
		if last {
			if qerr != nil {
				oc.Error = "poll anomalies: " + qerr.Error()
			}
			return nil
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}
}

// summarize lists the anomalies of rows not in seen, the same ones counted
// once.
func summarize(rows []map[string]any, seen map[string]bool) []string {
	var order []string
	n := map[string]int{}
	for _, r := range rows {
		if seen[str(r, "id")] {
			continue
		}
		k := fmt.Sprintf("%s:%s %s %s comm=%s", str(r, "entity_kind"), str(r, "entity"), str(r, "series"), str(r, "detector"), evidenceComm(str(r, "evidence")))
		if n[k] == 0 {
			order = append(order, k)
		}
		n[k]++
	}
	for i, k := range order {
		if n[k] > 1 {
			order[i] = fmt.Sprintf("%s ×%d", k, n[k])
		}
	}
	return order
}

// evidenceComm is the comm an anomaly's evidence JSON names, if any.
func evidenceComm(evidence string) string {
	var e struct {
		Comm string `json:"comm"`
	}
	_ = json.Unmarshal([]byte(evidence), &e)
	return e.Comm
}

// count returns how many rows p matches since start, or -1 if the query
// fails.
func (v *vigil) count(ctx context.Context, start time.Time, p Probe) int64 {
	rows, err := v.query(ctx, fmt.Sprintf(`SELECT count() AS n FROM vigil.%s WHERE ts >= fromUnixTimestamp64Nano(%d) AND (%s)`,
		p.Table, start.Add(-time.Second).UnixNano(), p.Where))
	if err != nil || len(rows) != 1 {
		return -1
	}
	switch n := rows[0]["n"].(type) {
	case string: // UInt64 is quoted in JSON
		i, _ := strconv.ParseInt(n, 10, 64)
		return i
	case float64:
		return int64(n)
	}
	return -1
}

// markSeen marks every anomaly so far as attributed.
func (v *vigil) markSeen(ctx context.Context, seen map[string]bool) {
	rows, _ := v.query(ctx, `SELECT toString(id) AS id FROM vigil.anomalies WHERE ts > now() - INTERVAL 10 MINUTE`)
	for _, r := range rows {
		seen[str(r, "id")] = true
	}
}

// incidentsSince returns the titles of incidents opened at or after t.
func (v *vigil) incidentsSince(ctx context.Context, t time.Time) ([]string, error) {
	rows, err := v.query(ctx, fmt.Sprintf(`SELECT title FROM vigil.incidents FINAL WHERE opened >= fromUnixTimestamp64Nano(%d) ORDER BY opened`, t.UnixNano()))
	if err != nil {
		return nil, err
	}
	var titles []string
	for _, r := range rows {
		titles = append(titles, str(r, "title"))
	}
	return titles, nil
}
