package schema_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-dev/vigil/pipeline/engine"
	"github.com/vigil-dev/vigil/pipeline/engine/enginetest"
	"github.com/vigil-dev/vigil/pipeline/schema"
)

const docPath = "../../docs/schema.md"

var (
	sqlBlockRE = regexp.MustCompile("(?s)```sql\n(.*?)```")
	sectionRE  = regexp.MustCompile("(?m)^### (\\w+)$")
	columnRE   = regexp.MustCompile("(?m)^\\| `(\\w+)` \\| `([^`]+)` \\|")
)

func readDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("read %s: %v", docPath, err)
	}
	return string(b)
}

// docColumns maps each "### table" section of the doc to its column table,
// as "name type" lines.
func docColumns(doc string) map[string][]string {
	out := map[string][]string{}
	locs := sectionRE.FindAllStringSubmatchIndex(doc, -1)
	for i, l := range locs {
		end := len(doc)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		name := doc[l[2]:l[3]]
		for _, m := range columnRE.FindAllStringSubmatch(doc[l[1]:end], -1) {
			out[name] = append(out[name], m[1]+" "+m[2])
		}
	}
	return out
}

// TestDocs runs every sql block of docs/schema.md as the read-only user
// against a migrated engine with a little data, and checks that the doc's
// column tables match the live schema.
func TestDocs(t *testing.T) {
	doc := readDoc(t)
	h := enginetest.Start(t)
	conn := h.Conn(t)
	ctx := context.Background()
	if err := schema.Migrate(ctx, conn, schema.Options{}); err != nil {
		t.Fatal(err)
	}

	t.Run("columns", func(t *testing.T) {
		rows, err := conn.Query(ctx, `SELECT c.table, c.name, c.type FROM system.columns AS c
			INNER JOIN system.tables AS t ON c.database = t.database AND c.table = t.name
			WHERE c.database = 'vigil' AND t.engine != 'MaterializedView' ORDER BY c.table, c.position`)
		if err != nil {
			t.Fatal(err)
		}
		live := map[string][]string{}
		for rows.Next() {
			var table, name, typ string
			if err := rows.Scan(&table, &name, &typ); err != nil {
				t.Fatal(err)
			}
			live[table] = append(live[table], name+" "+typ)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		documented := docColumns(doc)
		for table, cols := range live {
			if !slices.Equal(documented[table], cols) {
				t.Errorf("docs/schema.md, table %s:\n doc:  %q\n live: %q", table, documented[table], cols)
			}
		}
		for table := range documented {
			if _, ok := live[table]; !ok {
				t.Errorf("docs/schema.md documents %s, which the schema does not have", table)
			}
		}
	})

	// A little data in every event table, so the joins and aggregations
	// have something to chew on.
	for _, table := range []string{"exec_events", "exit_events", "tcp_events", "retransmit_events", "file_events",
		"priv_events", "signal_events", "oom_events", "syscall_counts", "runq_latency", "metrics", "anomalies"} {
		q := fmt.Sprintf("INSERT INTO vigil.%s (ts, host) SELECT now64(9) - toIntervalSecond(number), if(number %% 2 = 0, 'web-1', 'db-1') FROM numbers(200)", table)
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("seed %s: %v", table, err)
		}
	}
	if err := conn.Exec(ctx, "INSERT INTO vigil.incidents (id, opened, updated, state, title) VALUES (generateUUIDv4(), now64(9), now64(9), 'open', 'test')"); err != nil {
		t.Fatalf("seed incidents: %v", err)
	}

	t.Run("queries", func(t *testing.T) {
		blocks := sqlBlockRE.FindAllStringSubmatch(doc, -1)
		if len(blocks) < 10 {
			t.Fatalf("docs/schema.md has %d sql examples, want at least 10", len(blocks))
		}
		ro := h.ConnAs(t, engine.ReadOnlyUser)
		for i, b := range blocks {
			q := strings.TrimSpace(b[1])
			t.Run(fmt.Sprint(i+1), func(t *testing.T) {
				rows, err := ro.Query(ctx, q)
				if err != nil {
					t.Fatalf("%v\n%s", err, q)
				}
				defer rows.Close()
				for rows.Next() {
				}
				if err := rows.Err(); err != nil {
					t.Fatalf("%v\n%s", err, q)
				}
			})
		}
	})
}
