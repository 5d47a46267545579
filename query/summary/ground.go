package summary

import (
	"math"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Flag is something a summary states that the fact sheet does not contain.
type Flag struct {
	// Kind is "number", "address", "path" or "name" (a `quoted` name).
	Kind    string `json:"kind"`
	Value   string `json:"value"`
	Section string `json:"section"`
}

// corpus is what a grounded summary may mention.
type corpus struct {
	strs []string
	nums []float64
}

// newCorpus collects every string and number of f (walking the struct, so a
// field added to the fact sheet is covered without a second list here), the
// numbers inside those strings and the parts of every time.
func newCorpus(f *FactSheet) *corpus {
	c := &corpus{}
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Struct:
			if t, ok := v.Interface().(time.Time); ok {
				if !t.IsZero() {
					c.addString(fmtTime(t))
					c.addString(t.UTC().Format(time.RFC3339Nano))
				}
				return
			}
			for i := range v.NumField() {
				walk(v.Field(i))
			}
		case reflect.Slice:
			for i := range v.Len() {
				walk(v.Index(i))
			}
		case reflect.String:
			c.addString(v.String())
		case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			c.nums = append(c.nums, float64(v.Uint()))
		case reflect.Int, reflect.Int32, reflect.Int64:
			c.nums = append(c.nums, float64(v.Int()))
		case reflect.Float64:
			c.nums = append(c.nums, v.Float())
		}
	}
	walk(reflect.ValueOf(f).Elem())
	walk(reflect.ValueOf(f.Stats()))
	for _, p := range f.Processes {
		c.addString(strings.Join(p.Argv, " "))
	}
	for _, conn := range f.Connections {
		c.addString(conn.Daddr + ":" + strconv.Itoa(int(conn.Dport)))
	}
	return c
}

func (c *corpus) addString(s string) {
	if s == "" {
		return
	}
	c.strs = append(c.strs, s)
	if safe := inert(s); safe != s {
		c.strs = append(c.strs, safe)
	}
	for _, n := range numbers(s) {
		if v, err := strconv.ParseFloat(n, 64); err == nil {
			c.nums = append(c.nums, v)
		}
	}
}

func (c *corpus) hasString(s string) bool {
	for _, x := range c.strs {
		if strings.Contains(x, s) {
			return true
		}
	}
	return false
}

// hasNumber accepts written if a fact equals it at the precision it is
// written with: "0.93" is grounded by a score of 0.9312.
func (c *corpus) hasNumber(written string) bool {
	v, err := strconv.ParseFloat(written, 64)
	if err != nil {
		return false
	}
	decimals := 0
	if i := strings.IndexByte(written, '.'); i >= 0 {
		decimals = len(written) - i - 1
	}
	scale := math.Pow(10, float64(decimals))
	for _, n := range c.nums {
		if n == v || math.Round(n*scale)/scale == v {
			return true
		}
	}
	return false
}

// Ground returns what s says that f does not contain: numbers, addresses,
// paths and `quoted` names (process names, binaries, domains, which the
// prompt asks the model to quote), and refs that are not facts.
func Ground(s *Summary, f *FactSheet) []Flag {
	c := newCorpus(f)
	refs := map[string]bool{}
	for _, r := range f.Refs() {
		refs[r] = true
	}
	var flags []Flag
	seen := map[Flag]bool{}
	flag := func(kind, value, section string) {
		fl := Flag{kind, value, section}
		if !seen[fl] {
			seen[fl] = true
			flags = append(flags, fl)
		}
	}
	check := func(section, text string) {
		text = checkQuoted(c, text, func(v string) { flag("name", v, section) })
		for _, tok := range strings.Fields(text) {
			tok = strings.Trim(tok, "()[]{},;:\"'.!?*")
			switch {
			case tok == "":
			case strings.HasPrefix(tok, "/") && len(tok) > 1:
				if !c.hasString(tok) {
					flag("path", tok, section)
				}
			case isAddress(tok):
				if !c.hasString(tok) {
					flag("address", tok, section)
				}
			default:
				for _, n := range numbers(tok) {
					if !c.hasNumber(n) {
						flag("number", n, section)
					}
				}
			}
		}
	}
	check(hTitle, s.Title)
	for _, sec := range s.sections() {
		for _, cl := range *sec.claims {
			check(sec.name, cl.Text)
			for _, r := range cl.Evidence {
				if !refs[r] {
					flag("ref", r, sec.name)
				}
			}
		}
	}
	return flags
}

// checkQuoted reports `spans` not found in the corpus and returns text with
// the spans removed.
func checkQuoted(c *corpus, text string, bad func(string)) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(text, '`')
		if i < 0 {
			b.WriteString(text)
			return b.String()
		}
		j := strings.IndexByte(text[i+1:], '`')
		if j < 0 {
			b.WriteString(text)
			return b.String()
		}
		span := text[i+1 : i+1+j]
		if span != "" && !c.hasString(span) && !c.hasNumber(span) {
			bad(span)
		}
		b.WriteString(text[:i] + " ")
		text = text[i+1+j+1:]
	}
}

func isAddress(tok string) bool {
	if _, err := netip.ParseAddrPort(tok); err == nil {
		return true
	}
	if a, err := netip.ParseAddr(tok); err == nil {
		// A bare IPv6-looking token such as "14:03" does not parse, but
		// make sure dotted decimals count only when they are IPv4.
		return a.Is4() || strings.Count(tok, ":") >= 2
	}
	return false
}

// numbers finds the decimal numbers of s that stand on their own: digits not
// glued to a preceding letter, so "IPv4", "x86_64" and "sha256" have none.
func numbers(s string) []string {
	var out []string
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) || (i > 0 && (isWord(s[i-1]) || s[i-1] == '.')) {
			continue
		}
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if j+1 < len(s) && s[j] == '.' && isDigit(s[j+1]) {
			j++
			for j < len(s) && isDigit(s[j]) {
				j++
			}
		}
		out = append(out, s[i:j])
		i = j
	}
	return out
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isWord(c byte) bool {
	return isDigit(c) || c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}
