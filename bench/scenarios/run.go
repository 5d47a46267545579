package scenarios

import (
	"bufio"
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
)

// Options configures Run. Zero values take the defaults noted.
type Options struct {
	Binary   string        // the vigil binary; required
	Only     []string      // scenario names to play; all when empty
	Baseline time.Duration // warm-up with the baseline alone; default 60s
	Quiet    time.Duration // baseline alone after the scenarios, counting false positives; default 60s
	Wait     time.Duration // how long to wait for each detection; default 30s
	Out      io.Writer     // the table; nil for none
	Logger   *slog.Logger  // nil discards
}

// Outcome is what one scenario produced.
type Outcome struct {
	Name        string        `json:"name"`
	Error       string        `json:"error,omitempty"`
	Detected    bool          `json:"detected"`
	TimeToAlert time.Duration `json:"time_to_detect_ns,omitempty"`
	EntityRight bool          `json:"entity_right"`
	Entity      string        `json:"entity,omitempty"`   // entity_kind:entity of the anomaly reported
	Detector    string        `json:"detector,omitempty"` // its detector
	IncidentID  string        `json:"incident_id,omitempty"`
	Title       string        `json:"title,omitempty"`
	Summary     string        `json:"summary,omitempty"`
	Expected    string        `json:"expected"`
}

// Result is the whole run, JSON-able.
type Result struct {
	Scenarios      []Outcome     `json:"scenarios"`
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
	if o.Baseline <= 0 {
		o.Baseline = time.Minute
	}
	if o.Quiet <= 0 {
		o.Quiet = time.Minute
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

	srv, err := startVigil(ctx, o.Binary, o.Baseline, o.Logger)
	if err != nil {
		return Result{}, err
	}
	defer srv.stop()

	base, err := startBaseline(ctx)
	if err != nil {
		return Result{}, err
	}
	defer base.Stop()
	o.Logger.Info("baseline warm-up", "for", o.Baseline)
	if err := sleep(ctx, o.Baseline); err != nil {
		return Result{}, err
	}

	seen := map[string]bool{} // anomaly ids already attributed
	var res Result
	for _, s := range table {
		o.Logger.Info("scenario", "name", s.Name)
		oc := Outcome{Name: s.Name, Expected: s.Expected}
		start := time.Now()
		if err := s.Run(ctx); err != nil {
			oc.Error = err.Error()
		}
		if err := srv.detect(ctx, start, s.Entity, o.Wait, seen, &oc); err != nil {
			return res, err
		}
		res.Scenarios = append(res.Scenarios, oc)
		// let stragglers from this scenario land before the next starts
		if err := sleep(ctx, 3*time.Second); err != nil {
			return res, err
		}
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

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func writeTable(w io.Writer, r Result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tdetected\ttime\tentity ok\tentity\ttitle")
	for _, s := range r.Scenarios {
		t := "-"
		if s.Detected {
			t = s.TimeToAlert.Round(100 * time.Millisecond).String()
		}
		name := s.Name
		if s.Error != "" {
			name += " (error: " + s.Error + ")"
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%v\t%s\t%s\n", name, s.Detected, t, s.EntityRight, s.Entity, s.Title)
	}
	tw.Flush()
	fmt.Fprintf(w, "quiet baseline %s: %d incident(s); whole run: %s\n", r.Quiet, r.FalsePositives, r.Anomalies)
	for _, t := range r.FPTitles {
		fmt.Fprintf(w, "  %s\n", t)
	}
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

func startVigil(ctx context.Context, bin string, learning time.Duration, log *slog.Logger) (*vigil, error) {
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
		"--model-step", "1s",
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
		return nil, fmt.Errorf("clickhouse query: %w", err)
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
// than start and not seen before, and fills oc. A match on needle wins over
// any other anomaly.
func (v *vigil) detect(ctx context.Context, start time.Time, needle string, wait time.Duration, seen map[string]bool, oc *Outcome) error {
	deadline := time.Now().Add(wait)
	sql := fmt.Sprintf(`SELECT toString(id) AS id, toUnixTimestamp64Nano(ts) AS ts_ns, entity_kind, entity, detector, evidence, toString(incident_id) AS incident
		FROM vigil.anomalies WHERE ts >= fromUnixTimestamp64Nano(%d) AND incident_id IS NOT NULL ORDER BY ts`, start.Add(-time.Second).UnixNano())
	for {
		rows, err := v.query(ctx, sql)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			oc.Error = err.Error()
		}
		var first, match map[string]any
		for _, r := range rows {
			if seen[str(r, "id")] {
				continue
			}
			if first == nil {
				first = r
			}
			hay := strings.ToLower(str(r, "entity") + " " + str(r, "evidence"))
			if needle != "" && match == nil && strings.Contains(hay, strings.ToLower(needle)) {
				match = r
			}
		}
		pick := match
		if pick == nil && time.Now().After(deadline) {
			pick = first
		}
		if pick != nil {
			oc.Detected = true
			oc.EntityRight = match != nil
			oc.Entity = str(pick, "entity_kind") + ":" + str(pick, "entity")
			oc.Detector = str(pick, "detector")
			oc.IncidentID = str(pick, "incident")
			// wall time until the poll (1s period) saw it grouped: the
			// anomaly's own ts is step-aligned and can precede start
			oc.TimeToAlert = time.Since(start)
			for _, r := range rows {
				seen[str(r, "id")] = true
			}
			inc, err := v.query(ctx, fmt.Sprintf(`SELECT title, summary FROM vigil.incidents FINAL WHERE id = toUUID('%s')`, oc.IncidentID))
			if err == nil && len(inc) > 0 {
				oc.Title, oc.Summary = str(inc[0], "title"), str(inc[0], "summary")
			}
			return nil
		}
		if time.Now().After(deadline) {
			return nil
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}
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
