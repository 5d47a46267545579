package sqlguard_test

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/vigil-dev/vigil/query/internal/fixture"
	"github.com/vigil-dev/vigil/query/sqlguard"
)

// TestGuardEngine runs the guard against a real engine as vigil_ro: the
// table list comes from system.tables, ClickHouse's parser is the second
// layer, and writes are refused with the tables left intact, by the guard
// and, if it were bypassed, by ClickHouse itself.
func TestGuardEngine(t *testing.T) {
	env := fixture.Start(t)
	ctx := context.Background()
	before := fixture.Counts(t, env.Admin)
	g := sqlguard.New(env.RO, sqlguard.Options{MaxRows: 2})

	run, err := g.Query(ctx, "SELECT comm, count() AS n FROM exec_events GROUP BY comm ORDER BY n DESC, comm -- trailing comment")
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Result.Rows) != 2 || !run.Result.Truncated || run.Result.Rows[0][0] != "curl" {
		t.Errorf("result %+v", run.Result)
	}
	if _, err := g.Query(ctx, "WITH c AS (SELECT daddr FROM vigil.tcp_events) SELECT * FROM c ARRAY JOIN [1, 2] AS x"); err != nil {
		t.Errorf("CTE with ARRAY JOIN: %v", err)
	}

	// The AST layer sees `x IN table` on its own, in ClickHouse's real output.
	res, err := env.RO.Query(ctx, "EXPLAIN AST SELECT * FROM exec_events WHERE pid IN vigil.tcp_events AND comm IN ('a', 'b') AND uid IN (SELECT uid FROM anomalies)")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, r := range res.Rows {
		lines = append(lines, r[0].(string))
	}
	ast, err := sqlguard.ParseExplainAST(strings.Join(lines, "\n"))
	if err != nil || strings.Join(ast.Tables, ",") != "exec_events,vigil.tcp_events,anomalies" {
		t.Errorf("tables %v, err %v, from\n%s", ast.Tables, err, strings.Join(lines, "\n"))
	}

	refused := []struct {
		sql  string
		want error
	}{
		{"DROP TABLE vigil.exec_events", sqlguard.ErrNotSelect},
		{"INSERT INTO vigil.incidents (title) VALUES ('x')", sqlguard.ErrNotSelect},
		{"ALTER TABLE vigil.exec_events DELETE WHERE 1", sqlguard.ErrNotSelect},
		{"SELECT 1; DROP TABLE vigil.exec_events", sqlguard.ErrMultipleStatements},
		{"SELECT * FROM exec_events SETTINGS readonly = 0", sqlguard.ErrForbidden},
		{"SELECT * FROM system.users", sqlguard.ErrUnknownTable},
		{"SELECT * FROM url('http://127.0.0.1:1/', CSV, 'a String')", sqlguard.ErrTableFunction},
		{"SELECT * FROM exec_events WHERE", sqlguard.ErrSyntax}, // ClickHouse's parser says no
		{"SELECT * FROM nosuchtable", sqlguard.ErrUnknownTable},
	}
	for _, r := range refused {
		if _, err := g.Query(ctx, r.sql); !errors.Is(err, r.want) {
			t.Errorf("%s: err = %v, want %v", r.sql, err, r.want)
		}
	}

	// The last layer: vigil_ro cannot write even when nothing checks.
	for _, sql := range []string{
		"DROP TABLE vigil.exec_events",
		"INSERT INTO vigil.incidents (title) VALUES ('x')",
		"ALTER TABLE vigil.exec_events DELETE WHERE 1",
		"TRUNCATE TABLE vigil.anomalies",
		"CREATE TABLE vigil.x (a UInt8) ENGINE = Memory",
		"SELECT count() FROM vigil.exec_events SETTINGS readonly = 0",
	} {
		_, err := env.RO.Query(ctx, sql)
		if err == nil || !strings.Contains(err.Error(), "readonly") {
			t.Errorf("vigil_ro ran %q: %v", sql, err)
		}
	}
	if after := fixture.Counts(t, env.Admin); !maps.Equal(before, after) {
		t.Errorf("tables changed: before %v, after %v", before, after)
	}
}
