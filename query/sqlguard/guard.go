package sqlguard

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigil-dev/vigil/query/chread"
)

// Options configures a Guard. The zero value means defaults.
type Options struct {
	// Database holds Vigil's tables. Default "vigil".
	Database string
	// Tables lists the tables a statement may read. Empty means read them
	// from system.tables (cached for TablesTTL), so the list has one source,
	// the schema the store created.
	Tables []string
	// TablesTTL is how long a table list read from system.tables is used.
	// Default 5 minutes.
	TablesTTL time.Duration
	// MaxRows is the LIMIT every statement is wrapped in. Default 1000.
	MaxRows int
	// Timeout bounds one statement on the client side, on top of the
	// server's max_execution_time for the read-only user. Default 30s.
	Timeout time.Duration
	// Logger records refused statements. Default: discard.
	Logger *slog.Logger
}

// Defaults for Options.
const (
	DefaultDatabase  = "vigil"
	DefaultMaxRows   = 1000
	DefaultTimeout   = 30 * time.Second
	DefaultTablesTTL = 5 * time.Minute
)

func (o Options) withDefaults() Options {
	if o.Database == "" {
		o.Database = DefaultDatabase
	}
	if o.MaxRows <= 0 {
		o.MaxRows = DefaultMaxRows
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.TablesTTL <= 0 {
		o.TablesTTL = DefaultTablesTTL
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

// Guard runs untrusted SELECT statements through every layer described in
// the package comment. It is safe for concurrent use.
type Guard struct {
	r    chread.Runner
	opts Options

	mu sync.Mutex
	// tables and loaded cache the table list read from system.tables; mu
	// guards both.
	tables []string
	loaded time.Time
}

// New returns a Guard that runs statements with r, which should be a
// connection opened as the read-only user.
func New(r chread.Runner, o Options) *Guard {
	return &Guard{r: r, opts: o.withDefaults()}
}

// Run is a statement the Guard ran.
type Run struct {
	// SQL is the statement as checked; Executed is what reached ClickHouse.
	SQL      string
	Executed string
	Result   *chread.Result
}

// Policy returns the current policy, reading the table list if needed.
func (g *Guard) Policy(ctx context.Context) (Policy, error) {
	if len(g.opts.Tables) > 0 {
		return Policy{Database: g.opts.Database, Tables: g.opts.Tables}, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.tables == nil || time.Since(g.loaded) > g.opts.TablesTTL {
		// Unqualified names resolve to the connection's default database,
		// so it must be ours; say so plainly rather than fail every query.
		res, err := g.r.Query(ctx, "SELECT currentDatabase()")
		if err != nil {
			return Policy{}, fmt.Errorf("read current database: %w", err)
		}
		if len(res.Rows) != 1 || res.Rows[0][0] != g.opts.Database {
			return Policy{}, fmt.Errorf("the read-only connection's default database is %v, want %q: open it with that database", res.Rows, g.opts.Database)
		}
		res, err = g.r.Query(ctx, "SELECT name FROM system.tables WHERE database = ? ORDER BY name", g.opts.Database)
		if err != nil {
			return Policy{}, fmt.Errorf("list tables: %w", err)
		}
		tables := make([]string, 0, len(res.Rows))
		for _, row := range res.Rows {
			if s, ok := row[0].(string); ok {
				tables = append(tables, s)
			}
		}
		g.tables, g.loaded = tables, time.Now()
	}
	return Policy{Database: g.opts.Database, Tables: g.tables}, nil
}

// Query validates sql and, if every layer accepts it, runs it with the
// row limit. A refusal wraps one of the package's errors.
func (g *Guard) Query(ctx context.Context, sql string) (Run, error) {
	p, err := g.Policy(ctx)
	if err != nil {
		return Run{}, err
	}
	st, err := Check(sql, p)
	if err != nil {
		g.opts.Logger.Warn("sql refused", "layer", "lexical", "err", err)
		return Run{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, g.opts.Timeout)
	defer cancel()

	res, err := g.r.Query(ctx, "EXPLAIN AST "+st.SQL)
	if err != nil {
		return Run{SQL: st.SQL}, fmt.Errorf("%w: clickhouse could not parse the statement: %w", ErrSyntax, err)
	}
	var b strings.Builder
	for _, row := range res.Rows {
		if len(row) > 0 {
			fmt.Fprintln(&b, row[0])
		}
	}
	ast, err := ParseExplainAST(b.String())
	if err != nil {
		return Run{SQL: st.SQL}, fmt.Errorf("%w: %w", ErrSyntax, err)
	}
	if err := ast.check(p, st.CTEs); err != nil {
		g.opts.Logger.Warn("sql refused", "layer", "ast", "err", err)
		return Run{SQL: st.SQL}, err
	}

	run := Run{SQL: st.SQL, Executed: Wrap(st.SQL, g.opts.MaxRows+1)}
	res, err = g.r.Query(ctx, run.Executed)
	if err != nil {
		return run, fmt.Errorf("run statement: %w", err)
	}
	// One row more than the limit was asked for, so a full result can be
	// told apart from a cut one.
	if len(res.Rows) > g.opts.MaxRows {
		res.Rows = res.Rows[:g.opts.MaxRows]
		res.Truncated = true
	}
	run.Result = res
	return run, nil
}

// Wrap bounds stmt with an outer LIMIT. The newline before the closing
// parenthesis keeps a trailing -- comment from swallowing it.
func Wrap(stmt string, limit int) string {
	return "SELECT * FROM (\n" + stmt + "\n) LIMIT " + strconv.Itoa(limit)
}
