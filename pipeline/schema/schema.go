// Package schema creates and upgrades Vigil's ClickHouse tables.
//
// Migrations are the embedded files migrations/NNNN_name.sql, applied in
// order of NNNN and recorded in the table schema_migrations of the target
// database. Every statement is idempotent (IF NOT EXISTS), so a migration
// that failed half-way is simply run again. A migration, once released, is
// never edited: a change is a new file.
//
// The files are text/template: {{db}} is the database, {{ttl "table"}} the
// table's TTL clause and {{settings}} the common MergeTree settings. TTLs come
// from Options and are reconciled with ALTER TABLE … MODIFY TTL on every run,
// so changing a retention needs no migration.
package schema

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// DefaultDatabase holds all of Vigil's tables.
const DefaultDatabase = "vigil"

// DedupWindow is non_replicated_deduplication_window on every table: how
// many recent inserted blocks ClickHouse remembers (by insert_deduplication_token
// or content hash), so that a retried insert is stored once. The writer makes
// far fewer than this many inserts per retry horizon.
const DedupWindow = 1000

// DefaultTTLDays is the retention of each table with a TTL. Tables missing
// here (incidents) are kept forever.
var DefaultTTLDays = map[string]int{
	"exec_events":          14,
	"exit_events":          14,
	"tcp_events":           14,
	"retransmit_events":    14,
	"file_events":          14,
	"priv_events":          30,
	"signal_events":        14,
	"oom_events":           30,
	"syscall_counts":       14,
	"runq_latency":         14,
	"metrics":              90,
	"anomalies":            365,
	"exec_events_1m":       90,
	"tcp_events_1m":        90,
	"retransmit_events_1m": 90,
	"file_events_1m":       90,
}

// Options configures Migrate.
type Options struct {
	// Database to create the tables in. Default "vigil".
	Database string
	// TTLDays overrides DefaultTTLDays per table; 0 keeps rows forever.
	TTLDays map[string]int
	// Logger reports applied migrations. Default: discard.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Database == "" {
		o.Database = DefaultDatabase
	}
	ttl := maps.Clone(DefaultTTLDays)
	maps.Copy(ttl, o.TTLDays)
	o.TTLDays = ttl
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

// Migration is one embedded migration file.
type Migration struct {
	Version int
	Name    string
	// SQL is the raw file, before templating.
	SQL string
	// Checksum is the SHA-256 of SQL, recorded when applied.
	Checksum string
}

var fileRE = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	return loadMigrations(migrationFS, "migrations")
}

func loadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		m := fileRE.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %q: name is not NNNN_name.sql", e.Name())
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		v, _ := strconv.Atoi(m[1])
		if len(out) > 0 && out[len(out)-1].Version == v {
			return nil, fmt.Errorf("migration version %d used twice", v)
		}
		sum := sha256.Sum256(b)
		out = append(out, Migration{Version: v, Name: m[2], SQL: string(b), Checksum: hex.EncodeToString(sum[:])})
	}
	// ReadDir sorts by name, and the name starts with the zero-padded version.
	return out, nil
}

// Render returns the statements of m for opts, in order.
func (m Migration) Render(opts Options) ([]string, error) {
	opts = opts.withDefaults()
	t, err := template.New(m.Name).Funcs(template.FuncMap{
		"db":  func() string { return quoteIdent(opts.Database) },
		"ttl": func(table string) string { return ttlClause(opts.TTLDays[table]) },
		"settings": func() string {
			return "non_replicated_deduplication_window = " + strconv.Itoa(DedupWindow) + ", ttl_only_drop_parts = 1"
		},
	}).Parse(m.SQL)
	if err != nil {
		return nil, fmt.Errorf("parse migration %04d: %w", m.Version, err)
	}
	var b strings.Builder
	if err := t.Execute(&b, nil); err != nil {
		return nil, fmt.Errorf("render migration %04d: %w", m.Version, err)
	}
	return splitStatements(b.String()), nil
}

// splitStatements splits on a ';' that ends a line. Migration files keep ';'
// out of string literals at line ends, which is all this needs.
func splitStatements(sql string) []string {
	var out []string
	var cur strings.Builder
	for line := range strings.Lines(sql) {
		cur.WriteString(line)
		if strings.HasSuffix(strings.TrimSpace(line), ";") {
			if s := trimStatement(cur.String()); s != "" {
				out = append(out, s)
			}
			cur.Reset()
		}
	}
	if s := trimStatement(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// trimStatement drops the final ';' and a statement that is only comments.
func trimStatement(s string) string {
	s = strings.TrimSuffix(strings.TrimSpace(s), ";")
	for line := range strings.Lines(s) {
		l := strings.TrimSpace(line)
		if l != "" && !strings.HasPrefix(l, "--") {
			return strings.TrimSpace(s)
		}
	}
	return ""
}

// ttlExpr is the TTL expression in the form ClickHouse prints it back in
// system.tables, so that reconciling can compare text.
func ttlExpr(days int) string { return "toDateTime(ts) + toIntervalDay(" + strconv.Itoa(days) + ")" }

func ttlClause(days int) string {
	if days <= 0 {
		return ""
	}
	return "TTL " + ttlExpr(days)
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func quoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// Migrate creates the database, applies the migrations not yet recorded and
// reconciles table TTLs with opts. It is safe to run on every start. Two
// processes must not migrate the same database at once.
func Migrate(ctx context.Context, conn driver.Conn, opts Options) error {
	opts = opts.withDefaults()
	migs, err := Migrations()
	if err != nil {
		return err
	}
	db := quoteIdent(opts.Database)
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS " + db,
		"CREATE TABLE IF NOT EXISTS " + db + `.schema_migrations
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3) DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version`,
	} {
		if err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("prepare migrations: %w", err)
		}
	}
	applied, err := appliedVersions(ctx, conn, db)
	if err != nil {
		return err
	}
	for _, m := range migs {
		if sum, ok := applied[m.Version]; ok {
			if sum != m.Checksum {
				opts.Logger.Warn("applied migration differs from the embedded file; not re-applied",
					"version", m.Version, "name", m.Name)
			}
			continue
		}
		stmts, err := m.Render(opts)
		if err != nil {
			return err
		}
		for i, s := range stmts {
			if err := conn.Exec(ctx, s); err != nil {
				return fmt.Errorf("migration %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
			}
		}
		if err := conn.Exec(ctx, "INSERT INTO "+db+".schema_migrations (version, name, checksum) VALUES (?, ?, ?)",
			uint32(m.Version), m.Name, m.Checksum); err != nil {
			return fmt.Errorf("record migration %04d: %w", m.Version, err)
		}
		opts.Logger.Info("applied migration", "version", m.Version, "name", m.Name, "database", opts.Database)
	}
	return reconcileTTL(ctx, conn, opts)
}

func appliedVersions(ctx context.Context, conn driver.Conn, db string) (map[int]string, error) {
	rows, err := conn.Query(ctx, "SELECT version, argMax(checksum, applied_at) FROM "+db+".schema_migrations GROUP BY version")
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	defer rows.Close()
	out := map[int]string{}
	for rows.Next() {
		var v uint32
		var sum string
		if err := rows.Scan(&v, &sum); err != nil {
			return nil, fmt.Errorf("read applied migrations: %w", err)
		}
		out[int(v)] = sum
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	return out, nil
}

// reconcileTTL makes each table's TTL match opts. Changing a TTL does not
// rewrite existing parts (materialize_ttl_after_modify = 0): old rows go when
// their whole daily partition expires, which ttl_only_drop_parts makes cheap.
func reconcileTTL(ctx context.Context, conn driver.Conn, opts Options) error {
	tables := slices.Sorted(maps.Keys(opts.TTLDays))
	for _, table := range tables {
		days := opts.TTLDays[table]
		var engineFull string
		err := conn.QueryRow(ctx, "SELECT engine_full FROM system.tables WHERE database = ? AND name = ?",
			opts.Database, table).Scan(&engineFull)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("ttl for unknown table %q", table)
		}
		if err != nil {
			return fmt.Errorf("read ttl of %s: %w", table, err)
		}
		has := strings.Contains(engineFull, " TTL ")
		want := ttlExpr(days)
		var q string
		switch {
		case days <= 0 && has:
			q = "ALTER TABLE " + quoteIdent(opts.Database) + "." + quoteIdent(table) + " REMOVE TTL"
		case days > 0 && !strings.Contains(engineFull, "TTL "+want+" "):
			q = "ALTER TABLE " + quoteIdent(opts.Database) + "." + quoteIdent(table) + " MODIFY TTL " + want +
				" SETTINGS materialize_ttl_after_modify = 0"
		default:
			continue
		}
		if err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("set ttl of %s to %d days: %w", table, days, err)
		}
		opts.Logger.Info("changed table ttl", "table", table, "days", days)
	}
	return nil
}
