package sqlguard

import (
	"fmt"
	"strings"
)

type tokKind uint8

const (
	tIdent  tokKind = iota // bare identifier or keyword
	tQuoted                // "quoted" or `quoted` identifier, text unquoted
	tString                // 'string literal', text as written
	tNumber
	tPunct // one byte of punctuation
)

type token struct {
	kind tokKind
	text string
	pos  int
}

// is reports whether t is the bare keyword kw (case-insensitive).
func (t token) is(kw string) bool { return t.kind == tIdent && strings.EqualFold(t.text, kw) }

func (t token) punct(c byte) bool { return t.kind == tPunct && len(t.text) == 1 && t.text[0] == c }

// lex splits ClickHouse SQL into tokens. It is deliberately stricter than
// ClickHouse's own lexer: anything it does not understand (heredocs, non-ASCII
// outside literals, NUL bytes, nested or unterminated comments) is an error,
// so the two lexers can never disagree about where a string or a comment
// ends, which is what splitting a second statement past a validator needs.
func lex(s string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("%w: unterminated comment at %d", ErrSyntax, i)
			}
			body := s[i+2 : i+2+end]
			if strings.Contains(body, "/*") {
				return nil, fmt.Errorf("%w: nested comment at %d", ErrSyntax, i)
			}
			i += 2 + end + 2
		case c == '\'' || c == '"' || c == '`':
			j, err := scanQuoted(s, i)
			if err != nil {
				return nil, err
			}
			if c == '\'' {
				toks = append(toks, token{tString, s[i:j], i})
			} else {
				toks = append(toks, token{tQuoted, unquote(s[i+1 : j-1]), i})
			}
			i = j
		case isIdentStart(c):
			j := i + 1
			for j < len(s) && isIdentPart(s[j]) {
				j++
			}
			toks = append(toks, token{tIdent, s[i:j], i})
			i = j
		case c >= '0' && c <= '9':
			j := i + 1
			for j < len(s) && (isIdentPart(s[j]) || s[j] == '.' ||
				((s[j] == '+' || s[j] == '-') && (s[j-1] == 'e' || s[j-1] == 'E'))) {
				j++
			}
			toks = append(toks, token{tNumber, s[i:j], i})
			i = j
		case c == '$' || c == '#':
			// Heredocs ($x$…$x$) and # comments are rejected rather than
			// understood: fewer constructs, fewer ways to disagree.
			return nil, fmt.Errorf("%w: %q is not accepted outside a string at %d", ErrSyntax, c, i)
		case c < 0x20 || c >= 0x7f:
			return nil, fmt.Errorf("%w: byte 0x%02x outside a string at %d", ErrSyntax, c, i)
		default:
			toks = append(toks, token{tPunct, s[i : i+1], i})
			i++
		}
	}
	return toks, nil
}

// scanQuoted returns the index just past the quoted literal starting at i.
// Both backslash escapes and doubled quotes are understood, as in ClickHouse.
func scanQuoted(s string, i int) (int, error) {
	q := s[i]
	j := i + 1
	for j < len(s) {
		switch s[j] {
		case '\\':
			j += 2
			continue
		case q:
			if j+1 < len(s) && s[j+1] == q {
				j += 2
				continue
			}
			return j + 1, nil
		case 0:
			return 0, fmt.Errorf("%w: NUL byte in literal at %d", ErrSyntax, j)
		}
		j++
	}
	return 0, fmt.Errorf("%w: unterminated %c literal at %d", ErrSyntax, q, i)
}

// unquote undoes the escaping of a quoted identifier's body well enough to
// compare it with table names (which never contain quotes or backslashes).
func unquote(s string) string {
	if !strings.ContainsAny(s, "\\\"`") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if (s[i] == '\\' || s[i] == '"' || s[i] == '`') && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentPart(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }
