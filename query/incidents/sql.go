package incidents

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The incident view shows the SQL behind each section so that an engineer
// can paste it into clickhouse-client. Those statements therefore carry
// their values as literals, and the same text is what this package runs:
// what is shown is what was executed. Every literal goes through quote,
// timeLit or a number formatter, and ids are validated as UUIDs first.

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// ValidUUID reports whether s is a UUID in its canonical text form.
func ValidUUID(s string) bool { return uuidRE.MatchString(s) }

// quote returns s as a ClickHouse string literal. Backslash and quote are
// escaped, and so are control bytes so that the statement stays one
// copyable line per value.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' || c == '\'':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			b.WriteString(`\x`)
			b.WriteByte("0123456789abcdef"[c>>4])
			b.WriteByte("0123456789abcdef"[c&15])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

func quoteList(ss []string) string {
	if len(ss) == 0 {
		return "('')" // IN () is a syntax error; '' matches no host or comm we store
	}
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = quote(s)
	}
	return "(" + strings.Join(q, ", ") + ")"
}

func uintList(us []uint32) string {
	if len(us) == 0 {
		return "(0)"
	}
	q := make([]string, len(us))
	for i, u := range us {
		q[i] = strconv.FormatUint(uint64(u), 10)
	}
	return "(" + strings.Join(q, ", ") + ")"
}

// timeLit is a DateTime64(9) literal in UTC.
func timeLit(t time.Time) string {
	return "toDateTime64(" + quote(t.UTC().Format("2006-01-02 15:04:05.000000000")) + ", 9, 'UTC')"
}

// uuidLit is a UUID literal; id must have passed ValidUUID.
func uuidLit(id string) string { return "toUUID(" + quote(id) + ")" }

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ident quotes a database name unless it is a plain identifier.
func ident(s string) string {
	if identRE.MatchString(s) {
		return s
	}
	return "`" + strings.ReplaceAll(strings.ReplaceAll(s, "\\", "\\\\"), "`", "\\`") + "`"
}
