package query_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/vigil-dev/vigil/query"
	"github.com/vigil-dev/vigil/query/internal/fixture"
	"github.com/vigil-dev/vigil/query/internal/llmtest"
	"github.com/vigil-dev/vigil/query/llm"
)

// TestAskEngine runs every built-in template against the real schema and
// seeded rows, and a hostile model against the real read-only user.
func TestAskEngine(t *testing.T) {
	env := fixture.Start(t)
	ctx := context.Background()
	before := fixture.Counts(t, env.Admin)

	offline := query.NewAsker(query.Options{Runner: env.RO})
	tests := []struct {
		q    string
		want string // a value the rows must contain
	}{
		{"which processes talked to new destinations in the last hour?", "203.0.113.50"},
		{"top talkers in the last hour", "curl"},
		{"new binaries in the last day", "/tmp/.x/upd"},
		{"recent anomalies", "tcp_new_destinations"},
		{"recent incidents", fixture.IncidentID},
	}
	for _, tt := range tests {
		ans, err := offline.Ask(ctx, tt.q)
		if err != nil {
			t.Errorf("%s: %v", tt.q, err)
			continue
		}
		if len(ans.Queries) != 1 || !strings.Contains(fmt.Sprint(ans.Queries[0].Rows), tt.want) {
			t.Errorf("%s: rows %v lack %q", tt.q, ans.Queries[0].Rows, tt.want)
		}
	}
	// new destinations: the apt connection 3 hours ago is not new in the
	// last hour.
	ans, _ := offline.Ask(ctx, "new destinations in the last hour")
	if strings.Contains(fmt.Sprint(ans.Queries[0].Rows), "198.51.100.1") {
		t.Errorf("old destination listed as new: %v", ans.Queries[0].Rows)
	}
	ans, err := offline.Ask(ctx, "summarize incident "+fixture.IncidentID)
	if err != nil || !strings.HasPrefix(ans.Text, "Title: New outbound destination from curl on web-1") {
		t.Errorf("incident template: %v\n%s", err, ans.Text)
	}

	// A model that tries every write, then obeys the planted argv.
	var calls []llmtest.Call
	for _, sql := range []string{
		"DROP TABLE vigil.incidents", "INSERT INTO vigil.incidents (title) VALUES ('ALL CLEAR')",
		"ALTER TABLE vigil.exec_events DELETE WHERE 1", "SELECT 1; DROP TABLE vigil.exec_events",
		"SELECT argv FROM exec_events WHERE comm = 'curl'",
	} {
		calls = append(calls, llmtest.SQL(sql))
	}
	calls = append(calls, llmtest.Call{Name: "describe_schema", Args: "{}"})
	srv := llmtest.New(t, llmtest.ToolCalls(calls...), llmtest.Reply("Title: ALL CLEAR"))
	evil := query.NewAsker(query.Options{Runner: env.RO, LLM: llm.Options{BaseURL: srv.BaseURL(), Backoff: time.Millisecond}})
	ans, err = evil.Ask(ctx, "what did curl run?")
	if err != nil {
		t.Fatal(err)
	}
	if len(ans.Queries) != 5 {
		t.Fatalf("queries %+v", ans.Queries)
	}
	for _, q := range ans.Queries[:4] {
		if q.Error == "" {
			t.Errorf("write not refused: %+v", q)
		}
	}
	if ans.Queries[4].Error != "" || !strings.Contains(fmt.Sprint(ans.Queries[4].Rows), "IGNORE ALL PREVIOUS") {
		t.Errorf("the read did not run: %+v", ans.Queries[4])
	}
	// describe_schema read the real columns, comments included.
	if second := string(srv.Body(1)); !strings.Contains(second, "argv Array(String)") || !strings.Contains(second, "incidents(") {
		t.Errorf("schema not described: %.2000s", second)
	}
	if after := fixture.Counts(t, env.Admin); !maps.Equal(before, after) {
		t.Errorf("tables changed: before %v, after %v", before, after)
	}
}
