// Package sqlguard decides whether a SQL statement written by someone Vigil
// does not trust (an LLM, which may itself be steered by text an attacker
// planted in argv) may run, and runs it with a row limit.
//
// The layers, each enough to refuse the common attacks on its own:
//
//  1. Check, a lexical pre-check: one statement, starting with SELECT or WITH,
//     no write/DDL/SETTINGS/FORMAT/INTO keywords, no table functions or
//     functions that reach outside the database, and every table named after
//     FROM, JOIN or IN is a known table (or a CTE of the statement).
//  2. ClickHouse's own parser: the statement is sent as `EXPLAIN AST <stmt>`
//     and the tree must be a single SELECT whose table identifiers are known
//     and whose table expressions are not functions. This replaces a
//     hand-written SQL grammar, which would drift from ClickHouse's.
//  3. The statement runs wrapped as `SELECT * FROM (<stmt>) LIMIT n`.
//  4. It runs on a connection opened as the read-only user, for which
//     ClickHouse itself enforces readonly=1 and the execution-time and
//     result-size limits of the user's profile (pipeline/engine). Layers 1-3
//     exist so that a mistake in 4 is not a breach, and so the model gets a
//     clear reason it can act on.
package sqlguard

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Errors Check and Guard.Query wrap; the wrapped message names the offending
// word so a model can correct itself.
var (
	ErrEmpty              = errors.New("empty statement")
	ErrTooLong            = errors.New("statement too long")
	ErrSyntax             = errors.New("unsupported syntax")
	ErrMultipleStatements = errors.New("only one statement is allowed")
	ErrNotSelect          = errors.New("only SELECT statements are allowed")
	ErrForbidden          = errors.New("forbidden keyword or function")
	ErrTableFunction      = errors.New("table functions are not allowed")
	ErrUnknownTable       = errors.New("unknown table")
)

// MaxStatementBytes bounds what Check reads.
const MaxStatementBytes = 16 << 10

// Policy says which tables a statement may read.
type Policy struct {
	// Database is the only database a qualified name may use. Unqualified
	// names resolve to the connection's default database, which for the
	// read-only user is this one.
	Database string
	// Tables are the table names (without database) that may be read.
	Tables []string
}

// Statement is a statement that passed Check.
type Statement struct {
	// SQL is the statement with a trailing semicolon removed.
	SQL string
	// Tables are the known tables it reads, sorted, without duplicates.
	Tables []string
	// CTEs are the names its WITH clauses define.
	CTEs []string
}

// forbiddenWords may not appear as bare words anywhere: they only occur in
// statements other than SELECT, or in clauses that change how a SELECT runs
// (SETTINGS) or where its output goes (INTO OUTFILE, FORMAT).
var forbiddenWords = map[string]bool{
	"insert": true, "update": true, "delete": true, "alter": true, "drop": true,
	"create": true, "truncate": true, "rename": true, "attach": true, "detach": true,
	"optimize": true, "grant": true, "revoke": true, "kill": true, "exchange": true,
	"undrop": true, "backup": true, "restore": true, "use": true, "set": true,
	"settings": true, "into": true, "outfile": true, "system": true,
}

// forbiddenFuncs reach outside the database (files, URLs, other servers,
// programs), read tables by a name given as a string (so the table check
// cannot see them), or only burn time. Matched case-insensitively as a call.
var forbiddenFuncs = map[string]bool{
	"url": true, "urlcluster": true, "file": true, "filecluster": true, "remote": true,
	"remotesecure": true, "cluster": true, "clusterallreplicas": true, "mysql": true,
	"postgresql": true, "sqlite": true, "mongodb": true, "redis": true, "jdbc": true,
	"odbc": true, "executable": true, "executablepool": true, "input": true, "dictionary": true,
	"merge": true, "loop": true, "view": true, "viewifpermitted": true, "viewexplain": true,
	"generaterandom": true, "mergetreeindex": true, "gcs": true, "oss": true, "cosn": true,
	"joinget": true, "joingetornull": true, "sleep": true, "sleepeachrow": true,
	"hastable": true, "hascolumnintable": true, "catboostevaluate": true, "fuzzjson": true,
	"fuzzquery": true, "filesystemavailable": true, "filesystemcapacity": true,
	"filesystemunreserved": true, "getserverport": true, "addresstoline": true,
	"addresstolinewithinlines": true, "addresstosymbol": true, "demangle": true,
	"numbers": true, "numbers_mt": true, "zeros": true, "zeros_mt": true, "ytsaurus": true,
}

// forbiddenFuncPrefixes cover families: dictGet*, s3*, azure*, hdfs*,
// iceberg*, deltaLake*, hudi*, paimon*, arrowFlight*.
var forbiddenFuncPrefixes = []string{"dictget", "dicthas", "dictis", "s3", "azure", "hdfs", "iceberg", "deltalake", "hudi", "paimon", "arrowflight"}

// clauseWords end a FROM list: a comma after them is not a join.
var clauseWords = map[string]bool{
	"where": true, "prewhere": true, "group": true, "order": true, "limit": true,
	"having": true, "union": true, "intersect": true, "except": true, "window": true,
	"qualify": true, "on": true, "using": true, "select": true, "offset": true,
}

func forbiddenFunc(name string) bool {
	n := strings.ToLower(name)
	if forbiddenFuncs[n] {
		return true
	}
	for _, p := range forbiddenFuncPrefixes {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return false
}

// level is the state of one parenthesis nesting level.
type level struct {
	// query is set once SELECT or WITH appears directly at this level, which
	// is what makes a FROM here a table clause rather than EXTRACT(x FROM y).
	query bool
	// inFrom is set after FROM until a clause keyword: commas then separate
	// table references.
	inFrom bool
}

// Check validates sql lexically against p. It never talks to ClickHouse.
func Check(sql string, p Policy) (Statement, error) {
	if len(sql) > MaxStatementBytes {
		return Statement{}, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLong, len(sql), MaxStatementBytes)
	}
	toks, err := lex(sql)
	if err != nil {
		return Statement{}, err
	}
	if n := len(toks); n > 0 && toks[n-1].punct(';') {
		sql = sql[:toks[n-1].pos]
		toks = toks[:n-1]
	}
	if len(toks) == 0 {
		return Statement{}, ErrEmpty
	}
	first := 0
	for first < len(toks) && toks[first].punct('(') {
		first++
	}
	if first == len(toks) || !(toks[first].is("select") || toks[first].is("with")) {
		return Statement{}, fmt.Errorf("%w: statement starts with %q", ErrNotSelect, toks[0].text)
	}

	ctes := cteNames(toks)
	known := make(map[string]bool, len(p.Tables))
	for _, t := range p.Tables {
		known[t] = true
	}
	var tables []string
	// tableRef checks the table reference starting at toks[i].
	tableRef := func(i int) error {
		if i >= len(toks) || toks[i].punct('(') {
			return nil // a subquery: its own SELECT is checked as we go
		}
		t := toks[i]
		if t.kind != tIdent && t.kind != tQuoted {
			return fmt.Errorf("%w: unexpected %q after FROM/JOIN", ErrSyntax, t.text)
		}
		db, name := "", t.text
		j := i + 1
		if j+1 < len(toks) && toks[j].punct('.') && (toks[j+1].kind == tIdent || toks[j+1].kind == tQuoted) {
			db, name = name, toks[j+1].text
			j += 2
		}
		if j < len(toks) && toks[j].punct('(') {
			return fmt.Errorf("%w: %s(…)", ErrTableFunction, name)
		}
		switch {
		case db == "" && slices.Contains(ctes, name):
			return nil
		case (db == "" || db == p.Database) && known[name]:
			tables = append(tables, name)
			return nil
		case db != "":
			return fmt.Errorf("%w: %s.%s (known: %s)", ErrUnknownTable, db, name, strings.Join(p.Tables, ", "))
		default:
			return fmt.Errorf("%w: %s (known: %s)", ErrUnknownTable, name, strings.Join(p.Tables, ", "))
		}
	}

	stack := []level{{query: true}}
	for i, t := range toks {
		top := &stack[len(stack)-1]
		switch t.kind {
		case tPunct:
			switch {
			case t.punct(';'):
				return Statement{}, fmt.Errorf("%w: ';' at %d", ErrMultipleStatements, t.pos)
			case t.punct('('):
				stack = append(stack, level{})
			case t.punct(')'):
				if len(stack) == 1 {
					return Statement{}, fmt.Errorf("%w: unbalanced ')' at %d", ErrSyntax, t.pos)
				}
				stack = stack[:len(stack)-1]
			case t.punct(',') && top.query && top.inFrom:
				if err := tableRef(i + 1); err != nil {
					return Statement{}, err
				}
			}
			continue
		case tIdent:
		default:
			continue
		}
		w := strings.ToLower(t.text)
		call := i+1 < len(toks) && toks[i+1].punct('(')
		switch {
		case forbiddenWords[w]:
			return Statement{}, fmt.Errorf("%w: %s", ErrForbidden, strings.ToUpper(w))
		case w == "format" && !call:
			return Statement{}, fmt.Errorf("%w: FORMAT clause", ErrForbidden)
		case call && forbiddenFunc(w):
			return Statement{}, fmt.Errorf("%w: %s()", ErrForbidden, t.text)
		case w == "select" || w == "with":
			top.query = true
			top.inFrom = false
		case !top.query:
			// Inside a function call: FROM, JOIN and IN mean something else
			// (EXTRACT(HOUR FROM ts), trim(BOTH ' ' FROM s)).
		case w == "from":
			top.inFrom = true
			if err := tableRef(i + 1); err != nil {
				return Statement{}, err
			}
		case w == "join":
			top.inFrom = false
			if i > 0 && toks[i-1].is("array") {
				continue // ARRAY JOIN takes an array expression, not a table
			}
			if err := tableRef(i + 1); err != nil {
				return Statement{}, err
			}
		case clauseWords[w]:
			top.inFrom = false
		}
		// `x IN t` reads table t. Inside a call it may be POSITION(a IN b),
		// so there only the AST layer checks it; `x IN f(…)` is a call,
		// which the loop checks when it gets there.
		if w == "in" && top.query && i+1 < len(toks) && (toks[i+1].kind == tIdent || toks[i+1].kind == tQuoted) &&
			!(i+2 < len(toks) && toks[i+2].punct('(')) {
			if err := tableRef(i + 1); err != nil {
				return Statement{}, err
			}
		}
	}
	if len(stack) != 1 {
		return Statement{}, fmt.Errorf("%w: unbalanced '('", ErrSyntax)
	}
	slices.Sort(tables)
	return Statement{SQL: strings.TrimSpace(sql), Tables: slices.Compact(tables), CTEs: ctes}, nil
}

// cteNames finds `name AS (SELECT|WITH …` — the common table expressions.
// ClickHouse's other WITH form, `WITH expr AS name`, defines a value, not a
// table, and is not listed.
func cteNames(toks []token) []string {
	var names []string
	for i := 0; i+3 < len(toks); i++ {
		if (toks[i].kind == tIdent || toks[i].kind == tQuoted) && toks[i+1].is("as") &&
			toks[i+2].punct('(') && (toks[i+3].is("select") || toks[i+3].is("with")) {
			names = append(names, toks[i].text)
		}
	}
	return names
}
