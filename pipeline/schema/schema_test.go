package schema_test

import (
	"context"
	"strings"
	"testing"

	"github.com/vigil-dev/vigil/pipeline/engine/enginetest"
	"github.com/vigil-dev/vigil/pipeline/schema"
)

func TestMigrateIdempotent(t *testing.T) {
	h := enginetest.Start(t)
	conn := h.Conn(t)
	ctx := context.Background()
	for i := range 2 {
		if err := schema.Migrate(ctx, conn, schema.Options{}); err != nil {
			t.Fatalf("migrate run %d: %v", i+1, err)
		}
	}
	migs, err := schema.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM vigil.schema_migrations FINAL").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if int(n) != len(migs) {
		t.Fatalf("schema_migrations has %d rows, want %d", n, len(migs))
	}
	var engineFull string
	if err := conn.QueryRow(ctx, "SELECT engine_full FROM system.tables WHERE database = 'vigil' AND name = 'exec_events'").Scan(&engineFull); err != nil {
		t.Fatal(err)
	}
	t.Log(engineFull)
	for _, want := range []string{"PARTITION BY toDate(ts)", "ORDER BY (host, comm, ts)", "TTL toDateTime(ts) + toIntervalDay(14)", "non_replicated_deduplication_window = 1000"} {
		if !strings.Contains(engineFull, want) {
			t.Errorf("exec_events engine %q lacks %q", engineFull, want)
		}
	}
}

func TestMigrateTTL(t *testing.T) {
	h := enginetest.Start(t)
	conn := h.Conn(t)
	ctx := context.Background()
	engineOf := func(table string) string {
		t.Helper()
		var s string
		if err := conn.QueryRow(ctx, "SELECT engine_full FROM system.tables WHERE database = 'vigil_ttl' AND name = ?", table).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range []struct {
		name  string
		ttl   map[string]int
		table string
		want  string // substring of engine_full; "" means no TTL at all
	}{
		{"default", nil, "exec_events", "TTL toDateTime(ts) + toIntervalDay(14) "},
		{"changed", map[string]int{"exec_events": 3}, "exec_events", "TTL toDateTime(ts) + toIntervalDay(3) "},
		{"removed", map[string]int{"metrics": 0}, "metrics", ""},
		{"back to default", nil, "metrics", "TTL toDateTime(ts) + toIntervalDay(90) "},
		{"rollup", map[string]int{"exec_events_1m": 400}, "exec_events_1m", "TTL toDateTime(ts) + toIntervalDay(400) "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := schema.Migrate(ctx, conn, schema.Options{Database: "vigil_ttl", TTLDays: tc.ttl}); err != nil {
				t.Fatal(err)
			}
			got := engineOf(tc.table)
			if tc.want == "" && strings.Contains(got, " TTL ") || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("%s engine = %q, want TTL %q", tc.table, got, tc.want)
			}
		})
	}
	if err := schema.Migrate(ctx, conn, schema.Options{Database: "vigil_ttl", TTLDays: map[string]int{"nope": 1}}); err == nil {
		t.Error("ttl for an unknown table: no error")
	}
}

func TestSplitStatements(t *testing.T) {
	migs, err := schema.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migs {
		stmts, err := m.Render(schema.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range stmts {
			if strings.HasSuffix(s, ";") || strings.TrimSpace(s) == "" || strings.Contains(s, "{{") {
				t.Errorf("migration %04d: bad statement %q", m.Version, s)
			}
		}
	}
}

// TestTTLExpires checks that the engine really applies a TTL: old rows go at
// the next merge, recent ones stay.
func TestTTLExpires(t *testing.T) {
	h := enginetest.Start(t)
	conn := h.Conn(t)
	ctx := context.Background()
	if err := schema.Migrate(ctx, conn, schema.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"INSERT INTO vigil.exec_events (ts, host, comm) SELECT now64(9) - INTERVAL 30 DAY, 'h', 'old' FROM numbers(10)",
		"INSERT INTO vigil.exec_events (ts, host, comm) SELECT now64(9), 'h', 'new' FROM numbers(10)",
		"OPTIMIZE TABLE vigil.exec_events FINAL",
	} {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var old, recent uint64
	if err := conn.QueryRow(ctx, "SELECT countIf(comm = 'old'), countIf(comm = 'new') FROM vigil.exec_events").Scan(&old, &recent); err != nil {
		t.Fatal(err)
	}
	if old != 0 || recent != 10 {
		t.Errorf("after OPTIMIZE: %d expired rows left (want 0), %d recent (want 10)", old, recent)
	}
}
