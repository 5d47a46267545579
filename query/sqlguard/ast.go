package sqlguard

import (
	"fmt"
	"strings"
)

// AST is what Vigil reads from ClickHouse's `EXPLAIN AST` output.
type AST struct {
	// Root is the first node's type, SelectWithUnionQuery for a SELECT.
	Root string
	// Tables are the TableIdentifier names, as printed (maybe db.table).
	Tables []string
	// TableFunctions are functions used as a table expression.
	TableFunctions []string
}

// ParseExplainAST reads the text of `EXPLAIN AST`: one node per line,
// indented one space per depth, "Type [name] [(children n)]". ClickHouse
// prints it, but the statement it describes came from an untrusted author,
// so the parser makes no assumption beyond the line shape.
func ParseExplainAST(out string) (AST, error) {
	var a AST
	// parents[d] is the node type at depth d on the current path;
	// children[d] counts the nodes seen at depth d under the current parent.
	var parents []string
	var children []int
	for line := range strings.SplitSeq(out, "\n") {
		trimmed := strings.TrimLeft(line, " ")
		if strings.TrimSpace(trimmed) == "" {
			continue
		}
		depth := len(line) - len(trimmed)
		fields := strings.Fields(trimmed)
		typ := fields[0]
		if a.Root == "" {
			if depth != 0 {
				return AST{}, fmt.Errorf("explain ast: first node is indented")
			}
			a.Root = typ
		}
		if depth > len(parents) {
			return AST{}, fmt.Errorf("explain ast: depth jumps to %d", depth)
		}
		name := ""
		if len(fields) > 1 && !strings.HasPrefix(fields[1], "(") {
			name = strings.Trim(fields[1], "`")
		}
		parents = append(parents[:depth], typ+" "+name)
		for len(children) < depth+2 {
			children = append(children, 0)
		}
		children = children[:depth+2]
		children[depth]++
		children[depth+1] = 0
		switch {
		case typ == "TableIdentifier":
			a.Tables = append(a.Tables, name)
		case typ == "Function" && depth > 0 && parents[depth-1] == "TableExpression ":
			a.TableFunctions = append(a.TableFunctions, name)
		case typ == "Identifier" && depth > 1 && children[depth] > 1 &&
			strings.HasPrefix(parents[depth-1], "ExpressionList") && inFunctions[parents[depth-2]]:
			// `x IN t`: the right-hand identifier names a table.
			a.Tables = append(a.Tables, name)
		}
	}
	if a.Root == "" {
		return AST{}, fmt.Errorf("explain ast: empty output")
	}
	return a, nil
}

// inFunctions take a table as their second argument.
var inFunctions = map[string]bool{
	"Function in": true, "Function notIn": true, "Function globalIn": true, "Function globalNotIn": true,
	"Function nullIn": true, "Function notNullIn": true, "Function globalNullIn": true, "Function globalNotNullIn": true,
}

// check applies p to the tree: a single SELECT, no table functions, every
// table known or one of the statement's CTEs.
func (a AST) check(p Policy, ctes []string) error {
	if a.Root != "SelectWithUnionQuery" {
		return fmt.Errorf("%w: parsed as %s", ErrNotSelect, a.Root)
	}
	if len(a.TableFunctions) > 0 {
		return fmt.Errorf("%w: %s", ErrTableFunction, strings.Join(a.TableFunctions, ", "))
	}
	known := map[string]bool{}
	for _, t := range p.Tables {
		known[t] = true
		known[p.Database+"."+t] = true
	}
	for _, c := range ctes {
		known[c] = true
	}
	for _, t := range a.Tables {
		if !known[t] {
			return fmt.Errorf("%w: %s", ErrUnknownTable, t)
		}
	}
	return nil
}
