// Package chread is the read side of ClickHouse as the query layer sees it:
// one small interface that runs a statement and returns bounded, materialised
// rows, and an adapter over a clickhouse-go connection.
//
// Results are materialised rather than streamed because every consumer (the
// LLM tools, the fact-sheet builder, the API) needs the whole, already
// bounded, result anyway, and a slice is trivial to fake in unit tests.
package chread

import (
	"context"
	"fmt"
	"reflect"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Runner runs one SQL statement with positional ? arguments and returns its
// rows. Implementations must be safe for concurrent use.
type Runner interface {
	Query(ctx context.Context, sql string, args ...any) (*Result, error)
}

// Result is a materialised query result. Values keep the driver's Go types
// (string, uint32, time.Time, []string, …).
type Result struct {
	Columns []string
	Rows    [][]any
	// Truncated is set when rows past Limits.MaxRows were dropped.
	Truncated bool
}

// Limits bound what the adapter reads from the server. They apply on the
// client, whatever the server's user profile says, so a misconfigured user
// cannot make Vigil hold an unbounded result in memory.
type Limits struct {
	// MaxRows is the most rows kept; the rest are dropped and Truncated set.
	// Default 10,000.
	MaxRows int
	// MaxCellBytes cuts longer strings (argv of a hostile process can be
	// long). Default 4096.
	MaxCellBytes int
}

// Defaults for Limits.
const (
	DefaultMaxRows      = 10_000
	DefaultMaxCellBytes = 4096
)

func (l Limits) withDefaults() Limits {
	if l.MaxRows <= 0 {
		l.MaxRows = DefaultMaxRows
	}
	if l.MaxCellBytes <= 0 {
		l.MaxCellBytes = DefaultMaxCellBytes
	}
	return l
}

// ClickHouse adapts a clickhouse-go connection. The connection should be
// opened as the read-only user; the adapter does not send per-query settings
// because readonly=1 forbids changing any setting, so execution time and
// result size limits belong in that user's profile (the embedded engine sets
// them, see pipeline/engine).
type ClickHouse struct {
	conn   driver.Conn
	limits Limits
}

// NewClickHouse returns a Runner over conn.
func NewClickHouse(conn driver.Conn, l Limits) *ClickHouse {
	return &ClickHouse{conn: conn, limits: l.withDefaults()}
}

// Query implements Runner.
func (c *ClickHouse) Query(ctx context.Context, sql string, args ...any) (*Result, error) {
	res, err := c.query(ctx, sql, args...)
	if err != nil && ctx.Err() != nil {
		// Report the caller's reason (deadline or cancel), not the inner
		// context's.
		return nil, fmt.Errorf("clickhouse query: %w", ctx.Err())
	}
	return res, err
}

func (c *ClickHouse) query(ctx context.Context, sql string, args ...any) (*Result, error) {
	ctx, cancel := withoutDeadline(ctx)
	defer cancel()
	rows, err := c.conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse query: %w", err)
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	res := &Result{Columns: rows.Columns()}
	for rows.Next() {
		if len(res.Rows) >= c.limits.MaxRows {
			res.Truncated = true
			break
		}
		dest := make([]any, len(types))
		for i, t := range types {
			dest[i] = reflect.New(t.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("clickhouse scan: %w", err)
		}
		row := make([]any, len(dest))
		for i, d := range dest {
			row[i] = Clip(reflect.ValueOf(d).Elem().Interface(), c.limits.MaxCellBytes)
		}
		res.Rows = append(res.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse rows: %w", err)
	}
	return res, nil
}

// withoutDeadline returns a context that is cancelled when ctx is done but
// has no deadline. clickhouse-go turns a deadline into a max_execution_time
// setting, and readonly=1 rejects any setting, so with the read-only user
// every query with a deadline would fail. The server's profile bounds the
// execution time instead; the caller's deadline still cancels the query.
func withoutDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); !ok {
		return ctx, func() {}
	}
	dctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })
	return dctx, func() { stop(); cancel(context.Canceled) }
}

// Clip cuts strings (also inside string slices and pointers to them) to max
// bytes, keeping UTF-8 valid, and marks the cut with "…".
func Clip(v any, max int) any {
	switch x := v.(type) {
	case string:
		return clipString(x, max)
	case *string:
		if x == nil {
			return nil
		}
		return clipString(*x, max)
	case []string:
		out := make([]string, len(x))
		for i, s := range x {
			out[i] = clipString(s, max)
		}
		return out
	}
	return v
}

func clipString(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
