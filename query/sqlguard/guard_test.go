package sqlguard

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/vigil-dev/vigil/query/chread"
)

// fakeRunner answers EXPLAIN AST with ast and anything else with rows, and
// records every statement it was given.
type fakeRunner struct {
	ast  string
	rows [][]any
	db   string // currentDatabase()

	mu   sync.Mutex
	seen []string
}

func (f *fakeRunner) Query(_ context.Context, sql string, _ ...any) (*chread.Result, error) {
	f.mu.Lock()
	f.seen = append(f.seen, sql)
	f.mu.Unlock()
	if strings.HasPrefix(sql, "EXPLAIN AST ") {
		var rows [][]any
		for l := range strings.SplitSeq(f.ast, "\n") {
			rows = append(rows, []any{l})
		}
		return &chread.Result{Columns: []string{"explain"}, Rows: rows}, nil
	}
	if sql == "SELECT currentDatabase()" {
		return &chread.Result{Rows: [][]any{{f.db}}}, nil
	}
	if strings.Contains(sql, "system.tables") {
		return &chread.Result{Columns: []string{"name"}, Rows: [][]any{{"exec_events"}, {"incidents"}}}, nil
	}
	return &chread.Result{Columns: []string{"x"}, Rows: f.rows}, nil
}

const selectAST = `SelectWithUnionQuery (children 1)
 ExpressionList (children 1)
  SelectQuery (children 2)
   ExpressionList (children 1)
    Asterisk
   TablesInSelectQuery (children 1)
    TablesInSelectQueryElement (children 1)
     TableExpression (children 1)
      TableIdentifier vigil.exec_events`

func TestParseExplainAST(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		root    string
		tables  []string
		funcs   []string
		wantErr bool
	}{
		{"select", selectAST, "SelectWithUnionQuery", []string{"vigil.exec_events"}, nil, false},
		{"table function", "SelectWithUnionQuery (children 1)\n ExpressionList\n  SelectQuery\n   TablesInSelectQuery\n    TablesInSelectQueryElement\n     TableExpression (children 1)\n      Function url (children 1)\n       ExpressionList", "SelectWithUnionQuery", nil, []string{"url"}, false},
		{"scalar function is fine", "SelectWithUnionQuery\n ExpressionList\n  Function count", "SelectWithUnionQuery", nil, nil, false},
		{"insert", "InsertQuery (children 1)\n Identifier x", "InsertQuery", nil, nil, false},
		// Recorded from ClickHouse 26.7: SELECT * FROM x WHERE pid IN vigil.tcp_events AND comm IN (a, b)
		{"in table", `SelectWithUnionQuery (children 1)
 ExpressionList (children 1)
  SelectQuery (children 3)
   ExpressionList (children 1)
    Asterisk
   TablesInSelectQuery (children 1)
    TablesInSelectQueryElement (children 1)
     TableExpression (children 1)
      TableIdentifier x
   Function and (children 1)
    ExpressionList (children 2)
     Function in (children 1)
      ExpressionList (children 2)
       Identifier pid
       Identifier vigil.tcp_events
     Function in (children 1)
      ExpressionList (children 2)
       Identifier comm
       Function tuple (children 1)
        ExpressionList (children 2)
         Identifier a
         Identifier b`, "SelectWithUnionQuery", []string{"x", "vigil.tcp_events"}, nil, false},
		{"empty", "\n\n", "", nil, nil, true},
		{"indented root", " SelectWithUnionQuery", "", nil, nil, true},
		{"depth jump", "SelectWithUnionQuery\n   TableIdentifier x", "", nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseExplainAST(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if a.Root != tt.root || strings.Join(a.Tables, ",") != strings.Join(tt.tables, ",") || strings.Join(a.TableFunctions, ",") != strings.Join(tt.funcs, ",") {
				t.Errorf("got %+v", a)
			}
		})
	}
}

func FuzzParseExplainAST(f *testing.F) {
	f.Add(selectAST)
	f.Add("InsertQuery\n Identifier x")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseExplainAST(s)
		if err == nil && a.Root == "" {
			t.Fatal("no error and no root")
		}
	})
}

func TestGuardQuery(t *testing.T) {
	ctx := context.Background()
	t.Run("runs wrapped with limit", func(t *testing.T) {
		f := &fakeRunner{ast: selectAST, rows: [][]any{{1}, {2}, {3}}, db: "vigil"}
		g := New(f, Options{MaxRows: 2})
		run, err := g.Query(ctx, "SELECT * FROM vigil.exec_events;")
		if err != nil {
			t.Fatal(err)
		}
		if want := "SELECT * FROM (\nSELECT * FROM vigil.exec_events\n) LIMIT 3"; run.Executed != want {
			t.Errorf("executed %q, want %q", run.Executed, want)
		}
		if len(run.Result.Rows) != 2 || !run.Result.Truncated {
			t.Errorf("rows %v truncated %v, want 2 rows and truncated", run.Result.Rows, run.Result.Truncated)
		}
		// currentDatabase, system.tables, EXPLAIN AST, the statement.
		if len(f.seen) != 4 {
			t.Errorf("statements sent: %q", f.seen)
		}
	})
	t.Run("wrong default database", func(t *testing.T) {
		f := &fakeRunner{ast: selectAST, db: "default"}
		if _, err := New(f, Options{}).Query(ctx, "SELECT 1 FROM exec_events"); err == nil || !strings.Contains(err.Error(), "default database") {
			t.Fatalf("err = %v", err)
		}
	})
	refusals := []struct {
		name string
		sql  string
		ast  string
		want error
	}{
		{"lexical drop", "DROP TABLE exec_events", selectAST, ErrNotSelect},
		{"lexical unknown table", "SELECT * FROM tcp_events", selectAST, ErrUnknownTable},
		{"ast says insert", "SELECT * FROM exec_events", "InsertQuery (children 1)", ErrNotSelect},
		{"ast unknown table", "SELECT * FROM exec_events", strings.Replace(selectAST, "vigil.exec_events", "secrets", 1), ErrUnknownTable},
		{"ast table function", "SELECT * FROM exec_events", strings.Replace(selectAST, "TableIdentifier vigil.exec_events", "Function url", 1), ErrTableFunction},
		{"ast garbage", "SELECT * FROM exec_events", " x\n", ErrSyntax},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeRunner{ast: tt.ast, db: "vigil"}
			_, err := New(f, Options{}).Query(ctx, tt.sql)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			for _, s := range f.seen {
				if strings.HasPrefix(s, "SELECT * FROM (") {
					t.Errorf("refused statement reached the runner: %q", s)
				}
			}
		})
	}
}
