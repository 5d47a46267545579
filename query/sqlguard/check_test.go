package sqlguard

import (
	"errors"
	"strings"
	"testing"
)

var testPolicy = Policy{Database: "vigil", Tables: []string{"exec_events", "tcp_events", "anomalies", "incidents"}}

func TestCheckAccepts(t *testing.T) {
	tests := []struct {
		name   string
		sql    string
		tables []string
	}{
		{"simple", "SELECT pid, comm FROM exec_events LIMIT 10", []string{"exec_events"}},
		{"trailing semicolon", "select 1 from exec_events;", []string{"exec_events"}},
		{"qualified", "SELECT * FROM vigil.exec_events", []string{"exec_events"}},
		{"quoted", "SELECT * FROM `vigil`.\"tcp_events\"", []string{"tcp_events"}},
		{"join", "SELECT e.pid FROM exec_events e JOIN tcp_events t ON e.pid = t.pid", []string{"exec_events", "tcp_events"}},
		{"comma join", "SELECT 1 FROM exec_events AS e, tcp_events t WHERE e.pid = t.pid", []string{"exec_events", "tcp_events"}},
		{"subquery", "SELECT * FROM (SELECT pid FROM exec_events) WHERE pid IN (SELECT pid FROM tcp_events)", []string{"exec_events", "tcp_events"}},
		{"cte", "WITH recent AS (SELECT * FROM anomalies) SELECT * FROM recent", []string{"anomalies"}},
		{"with value", "WITH now() - INTERVAL 1 HOUR AS since SELECT count() FROM exec_events WHERE ts > since", []string{"exec_events"}},
		{"extract from", "SELECT EXTRACT(HOUR FROM ts), trim(BOTH ' ' FROM comm) FROM exec_events", []string{"exec_events"}},
		{"array join", "SELECT a FROM exec_events ARRAY JOIN argv AS a", []string{"exec_events"}},
		{"left array join", "SELECT a FROM exec_events LEFT ARRAY JOIN argv AS a", []string{"exec_events"}},
		{"semicolon in string", "SELECT * FROM exec_events WHERE comm = 'a;DROP TABLE x'", []string{"exec_events"}},
		{"keywords in string", "SELECT * FROM exec_events WHERE comm = 'insert into settings'", []string{"exec_events"}},
		{"escaped quote", `SELECT * FROM exec_events WHERE comm = 'it\'s; ok' OR comm = 'it''s'`, []string{"exec_events"}},
		{"comment", "SELECT 1 FROM exec_events -- a comment; DROP TABLE x\n", []string{"exec_events"}},
		{"block comment", "SELECT /* ; */ 1 FROM exec_events", []string{"exec_events"}},
		{"format function", "SELECT format('{} {}', comm, pid) FROM exec_events", []string{"exec_events"}},
		{"union", "SELECT pid FROM exec_events UNION ALL SELECT pid FROM tcp_events", []string{"exec_events", "tcp_events"}},
		{"parenthesised", "(SELECT 1 FROM incidents)", []string{"incidents"}},
		{"exists subquery", "SELECT 1 FROM exec_events WHERE exists(SELECT 1 FROM incidents)", []string{"exec_events", "incidents"}},
		{"no table", "SELECT 1", nil},
		{"numbers", "SELECT 1.5e-3, 0x1F FROM anomalies", []string{"anomalies"}},
		{"in call", "SELECT 1 FROM exec_events WHERE pid IN tuple(1, 2)", []string{"exec_events"}},
		{"position in", "SELECT position(comm IN filename) FROM exec_events", []string{"exec_events"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := Check(tt.sql, testPolicy)
			if err != nil {
				t.Fatalf("Check(%q): %v", tt.sql, err)
			}
			if strings.Join(st.Tables, ",") != strings.Join(tt.tables, ",") {
				t.Errorf("tables = %v, want %v", st.Tables, tt.tables)
			}
			if strings.HasSuffix(st.SQL, ";") {
				t.Errorf("SQL %q keeps its semicolon", st.SQL)
			}
		})
	}
}

func TestCheckRefuses(t *testing.T) {
	tests := []struct {
		name string
		sql  string
		want error
	}{
		{"empty", "  ", ErrEmpty},
		{"only semicolon", ";", ErrEmpty},
		{"drop", "DROP TABLE exec_events", ErrNotSelect},
		{"insert", "INSERT INTO exec_events VALUES (1)", ErrNotSelect},
		{"alter", "ALTER TABLE exec_events DELETE WHERE 1", ErrNotSelect},
		{"truncate", "TRUNCATE TABLE incidents", ErrNotSelect},
		{"two statements", "SELECT 1 FROM exec_events; DROP TABLE exec_events", ErrMultipleStatements},
		{"two selects", "SELECT 1; SELECT 2", ErrMultipleStatements},
		{"double semicolon", "SELECT 1;;", ErrMultipleStatements},
		{"insert select", "SELECT 1 FROM exec_events INSERT INTO x SELECT 1", ErrForbidden},
		{"settings", "SELECT 1 FROM exec_events SETTINGS readonly=0", ErrForbidden},
		{"settings lower", "select 1 from exec_events settings max_execution_time=0", ErrForbidden},
		{"format", "SELECT 1 FROM exec_events FORMAT JSON", ErrForbidden},
		{"into outfile", "SELECT * FROM exec_events INTO OUTFILE '/tmp/x'", ErrForbidden},
		{"system table", "SELECT * FROM system.users", ErrUnknownTable},
		{"other db", "SELECT * FROM default.secrets", ErrUnknownTable},
		{"unknown table", "SELECT * FROM secrets", ErrUnknownTable},
		{"unknown join", "SELECT * FROM exec_events JOIN secrets USING pid", ErrUnknownTable},
		{"unknown comma", "SELECT * FROM exec_events, secrets", ErrUnknownTable},
		{"unknown in subquery", "SELECT * FROM (SELECT * FROM secrets)", ErrUnknownTable},
		{"unknown in exists", "SELECT 1 FROM exec_events WHERE exists(SELECT 1 FROM secrets)", ErrUnknownTable},
		{"in table", "SELECT 1 FROM exec_events WHERE pid IN secrets", ErrUnknownTable},
		{"url", "SELECT * FROM url('http://x', CSV, 'a String')", ErrTableFunction},
		{"file", "SELECT * FROM file('/etc/passwd')", ErrTableFunction},
		{"file in expression", "SELECT (SELECT 1 FROM exec_events WHERE file('/etc/passwd') != '')", ErrForbidden},
		{"system word", "SELECT 1 FROM exec_events WHERE system.x = 1", ErrForbidden},
		{"remote", "SELECT * FROM remote('h', vigil.exec_events)", ErrTableFunction},
		{"unknown table function", "SELECT * FROM someNewTableFunction('x')", ErrTableFunction},
		{"dictGet", "SELECT dictGetString('d', 'a', 1) FROM exec_events", ErrForbidden},
		{"s3 in subquery", "SELECT (SELECT count() FROM s3Cluster('c', 'u')) FROM exec_events", ErrTableFunction},
		{"joinGet", "SELECT joinGet('vigil.secrets', 'v', 1)", ErrForbidden},
		{"sleep", "SELECT sleepEachRow(3) FROM exec_events", ErrForbidden},
		{"heredoc", "SELECT $$; DROP TABLE x$$ FROM exec_events", ErrSyntax},
		{"hash comment", "SELECT 1 FROM exec_events # ; DROP", ErrSyntax},
		{"nested comment", "SELECT /* /* */ 1 */ FROM exec_events", ErrSyntax},
		{"unterminated comment", "SELECT 1 FROM exec_events /* ", ErrSyntax},
		{"unterminated string", "SELECT 'abc FROM exec_events", ErrSyntax},
		{"unicode outside string", "SELECT 1 FROM exec_events\u00a0", ErrSyntax},
		{"nul", "SELECT 1\x00 FROM exec_events", ErrSyntax},
		{"unbalanced", "SELECT (1 FROM exec_events", ErrSyntax},
		{"unbalanced close", "SELECT 1) FROM exec_events", ErrSyntax},
		{"grant", "SELECT 1 FROM exec_events GRANT ALL", ErrForbidden},
		{"explain", "EXPLAIN SELECT 1", ErrNotSelect},
		{"show", "SHOW TABLES", ErrNotSelect},
		{"cte body unknown", "WITH x AS (SELECT * FROM system.users) SELECT * FROM x", ErrUnknownTable},
		{"too long", "SELECT '" + strings.Repeat("a", MaxStatementBytes) + "'", ErrTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Check(tt.sql, testPolicy)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Check(%q) = %v, want %v", tt.sql, err, tt.want)
			}
		})
	}
}

// FuzzCheck feeds arbitrary text to the validator: it must not panic, and
// whatever it accepts must still be one SELECT after the wrap, with no
// statement separator outside a literal.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		"SELECT 1 FROM exec_events", "SELECT 1; DROP TABLE x", "WITH a AS (SELECT 1) SELECT * FROM a",
		"SELECT 'x''y\\'' FROM exec_events -- c\n", "SELECT /* c */ 1", "SELECT * FROM url('x')",
		"SELECT `a``b` FROM vigil.\"exec_events\"", "SELECT EXTRACT(DAY FROM ts) FROM anomalies",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		st, err := Check(sql, testPolicy)
		if err != nil {
			return
		}
		toks, err := lex(Wrap(st.SQL, 10))
		if err != nil {
			t.Fatalf("accepted %q but its wrap does not lex: %v", sql, err)
		}
		for _, tk := range toks {
			if tk.punct(';') {
				t.Fatalf("accepted %q with a statement separator", sql)
			}
			if tk.kind == tIdent && forbiddenWords[strings.ToLower(tk.text)] {
				t.Fatalf("accepted %q with forbidden word %s", sql, tk.text)
			}
		}
		if _, err := Check(st.SQL, testPolicy); err != nil {
			t.Fatalf("accepted %q but not its normalised form: %v", sql, err)
		}
	})
}
