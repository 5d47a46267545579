package summary

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-dev/vigil/query/chread"
)

// tableRunner answers by the table a statement reads and records the
// statements and their arguments.
type tableRunner struct {
	rows  map[string][][]any
	sqls  []string
	args  [][]any
	fails string
}

func (r *tableRunner) Query(_ context.Context, sql string, args ...any) (*chread.Result, error) {
	r.sqls, r.args = append(r.sqls, sql), append(r.args, args)
	for _, table := range []string{"anomalies", "incidents", "exec_events", "tcp_events"} {
		if strings.Contains(strings.SplitN(sql, "\nWHERE", 2)[0], "vigil."+table) {
			if table == r.fails {
				return nil, errors.New("boom")
			}
			rows := r.rows[table]
			if table == "exec_events" && strings.Contains(sql, "LIMIT 1 BY") {
				rows = r.rows["parents"]
			}
			return &chread.Result{Rows: rows}, nil
		}
	}
	return &chread.Result{}, nil
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestBuild(t *testing.T) {
	const id = "6f1c2a3e-0b7d-4c55-9a51-2f0e8d7c1a01"
	hostile := "x') OR 1=1 --"
	r := &tableRunner{rows: map[string][][]any{
		"incidents": {{id, ts("2026-11-24T14:02:10Z"), ts("2026-11-24T14:09:40Z"), (*time.Time)(nil), "open", "high", "t", []string{"web-1"}, []string{"comm:curl"}}},
		"anomalies": {{"a1", ts("2026-11-24T14:02:10Z"), "web-1", "comm", "curl", "tcp_new_destinations", "rrcf/1", 0.97, "high", 0.2, 14.0,
			ts("2026-11-24T14:01:00Z"), ts("2026-11-24T14:02:00Z"), "{}"}},
		"exec_events": {{"web-1", ts("2026-11-24T14:01:58Z"), uint32(4121), uint32(4120), uint32(33), "curl", "/usr/bin/curl", []string{"curl", hostile}, uint32(4120)}},
		"parents":     {{"web-1", ts("2026-11-24T14:01:57Z"), uint32(4120), uint32(1), uint32(33), "sh", "/bin/sh", []string{"sh"}, uint32(1)}},
		"tcp_events": {{"web-1", uint32(4121), "curl", "connect", "203.0.113.50", uint16(443), uint64(14),
			ts("2026-11-24T14:01:58Z"), ts("2026-11-24T14:02:40Z"), uint64(0), uint64(0)}},
	}}
	f, err := Build(context.Background(), r, id, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Incident.ID != id || len(f.Anomalies) != 1 || len(f.Processes) != 2 || len(f.Connections) != 1 {
		t.Fatalf("fact sheet %+v", f)
	}
	if f.Processes[0].Comm != "sh" || f.Processes[0].Ref != "P1" || f.Connections[0].Dport != 443 || f.Anomalies[0].Observed != 14 {
		t.Errorf("facts %+v", f)
	}
	if f.Timeline[0].Text != "exec sh pid 4120 (parent 1)" || len(f.Timeline) != 5 {
		t.Errorf("timeline %+v", f.Timeline)
	}
	for i, sql := range r.sqls {
		if strings.Contains(sql, id) || strings.Contains(sql, "curl") {
			t.Errorf("value spliced into SQL %d: %s", i, sql)
		}
	}
	if r.args[0][0] != id {
		t.Errorf("incident id not bound: %v", r.args[0])
	}

	t.Run("processes the anomalies name come first", func(t *testing.T) {
		r2 := &tableRunner{rows: map[string][][]any{}}
		for k, v := range r.rows {
			r2.rows[k] = v
		}
		a := slices.Clone(r.rows["anomalies"][0])
		a[13] = `{"value":"x","comm":"curl","pid":4121}`
		r2.rows["anomalies"] = [][]any{a}
		f, err := Build(context.Background(), r2, id, BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if f.Anomalies[0].PID != 4121 || f.Anomalies[0].Comm != "curl" || f.Anomalies[0].Value != "x" {
			t.Errorf("evidence not read: %+v", f.Anomalies[0])
		}
		var execs []string
		for i, sql := range r2.sqls {
			if strings.Contains(sql, "exec_events") {
				execs = append(execs, sql)
				if strings.Contains(sql, "pid IN") && len(execs) == 1 && !slices.Equal(r2.args[i][1].([]uint32), []uint32{4121}) {
					t.Errorf("named pids bound as %v", r2.args[i][1])
				}
			}
		}
		if len(execs) < 2 || !strings.Contains(execs[0], "pid IN") || !strings.Contains(execs[1], "dateDiff") {
			t.Errorf("want the named pids read before the nearest processes, got:\n%s", strings.Join(execs, "\n---\n"))
		}
	})
	t.Run("a subshell's child finds the shell that forked it", func(t *testing.T) {
		// curl's parent 4125 is a subshell of sh 4120: forked, never
		// exec'd, so it has no exec row; the ancestor is the one to read.
		r3 := &tableRunner{rows: map[string][][]any{}}
		for k, v := range r.rows {
			r3.rows[k] = v
		}
		c := slices.Clone(r.rows["exec_events"][0])
		c[3] = uint32(4125)
		r3.rows["exec_events"] = [][]any{c}
		f, err := Build(context.Background(), r3, id, BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var bound []uint32
		for i, sql := range r3.sqls {
			if strings.Contains(sql, "LIMIT 1 BY") {
				bound = r3.args[i][1].([]uint32)
			}
		}
		if !slices.Equal(bound, []uint32{4120}) {
			t.Errorf("parents looked up as %v, want the exec'd ancestor [4120]", bound)
		}
		if len(f.Processes) != 2 || f.Processes[1].PPID != 4125 || f.Processes[1].Ancestor != 4120 {
			t.Errorf("processes %+v", f.Processes)
		}
	})
	t.Run("not found", func(t *testing.T) {
		_, err := Build(context.Background(), &tableRunner{}, "nope", BuildOptions{})
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("query error", func(t *testing.T) {
		r.fails = "tcp_events"
		if _, err := Build(context.Background(), r, id, BuildOptions{}); err == nil || !strings.Contains(err.Error(), "read connections") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("truncation noted", func(t *testing.T) {
		r.fails = ""
		f, err := Build(context.Background(), r, id, BuildOptions{MaxConnections: 1, MaxAnomalies: 1})
		if err != nil {
			t.Fatal(err)
		}
		r.rows["tcp_events"] = append(r.rows["tcp_events"], r.rows["tcp_events"][0])
		f, _ = Build(context.Background(), r, id, BuildOptions{MaxConnections: 1})
		if len(f.Connections) != 1 || len(f.Truncated) != 1 || f.Truncated[0] != "connections" {
			t.Errorf("truncated %v, %d connections", f.Truncated, len(f.Connections))
		}
	})
}
