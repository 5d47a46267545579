package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/vigil-dev/vigil/query/chread"
	"github.com/vigil-dev/vigil/query/llm"
	"github.com/vigil-dev/vigil/query/prompt"
	"github.com/vigil-dev/vigil/query/sqlguard"
	"github.com/vigil-dev/vigil/query/summary"
)

// Options configures an Asker. Runner is required; the rest have defaults.
type Options struct {
	// LLM is the endpoint; when !LLM.Enabled() only the built-in templates
	// answer.
	LLM llm.Options
	// Runner runs SQL. It must be a connection opened as the read-only user
	// (engine.ReadOnlyUser) with default database "vigil", e.g.
	// chread.NewClickHouse(conn, chread.Limits{}).
	Runner chread.Runner
	// Guard configures the SQL validator (database, row limit, timeout).
	Guard sqlguard.Options
	// Build bounds the fact sheets the get_incident tool returns.
	Build summary.BuildOptions
	// MaxSteps bounds the model's tool-call rounds per question. Default 6.
	MaxSteps int
	// MaxToolRows is how many rows of a result the model sees. Default 50;
	// the Answer keeps up to the guard's row limit.
	MaxToolRows int
	// Logger records tool calls and refusals. Default: discard.
	Logger *slog.Logger
}

// Defaults for Options.
const (
	DefaultMaxSteps    = 6
	DefaultMaxToolRows = 50
)

// Asker answers questions. It is safe for concurrent use.
type Asker struct {
	opts   Options
	guard  *sqlguard.Guard
	client *llm.Client // nil: templates only
	log    *slog.Logger
}

// NewAsker returns an Asker.
func NewAsker(o Options) *Asker {
	if o.MaxSteps <= 0 {
		o.MaxSteps = DefaultMaxSteps
	}
	if o.MaxToolRows <= 0 {
		o.MaxToolRows = DefaultMaxToolRows
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Guard.Logger == nil {
		o.Guard.Logger = o.Logger
	}
	if o.Guard.Database == "" {
		o.Guard.Database = sqlguard.DefaultDatabase
	}
	if o.Build.Database == "" {
		o.Build.Database = o.Guard.Database
	}
	a := &Asker{opts: o, guard: sqlguard.New(o.Runner, o.Guard), log: o.Logger}
	if o.LLM.Enabled() {
		o.LLM.Logger = o.Logger
		a.client, _ = llm.New(o.LLM) // only fails when not enabled
	}
	return a
}

// Answer is the reply to a question.
type Answer struct {
	Question string `json:"question"`
	Text     string `json:"text"`
	// Queries are the statements that ran (or were refused), in order, with
	// the rows each returned: the answer shows its work.
	Queries []Query `json:"queries"`
	// UsedLLM is false when a built-in template answered; Template names it.
	UsedLLM  bool   `json:"used_llm"`
	Template string `json:"template,omitempty"`
	Model    string `json:"model,omitempty"`
	// PromptTokens and CompletionTokens sum over every LLM round.
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// Query is one statement an answer used.
type Query struct {
	// SQL is the statement as validated; Executed is what reached ClickHouse
	// (with the enforced LIMIT). Both empty for get_incident, which runs
	// Vigil's own fact-sheet queries; Tool says which tool ran.
	Tool      string   `json:"tool"`
	SQL       string   `json:"sql,omitempty"`
	Executed  string   `json:"executed,omitempty"`
	Columns   []string `json:"columns,omitempty"`
	Rows      [][]any  `json:"rows,omitempty"`
	Truncated bool     `json:"truncated,omitempty"`
	// Error is why the statement was refused or failed.
	Error string `json:"error,omitempty"`
}

// ErrNeedsLLM is returned for a question no template answers when no LLM is
// configured. Its message says what works offline.
var ErrNeedsLLM = errors.New("this question needs an LLM (set llm.base_url or OPENAI_API_KEY); " +
	"without one, ask for: recent incidents, incident <id>, recent anomalies, top talkers, " +
	"new destinations, or new binaries (optionally \"in the last N minutes/hours/days\")")

// ErrEmptyQuestion is returned for a blank question.
var ErrEmptyQuestion = errors.New("empty question")

// maxQuestion bounds the question's length.
const maxQuestion = 2000

// Ask answers q: with the LLM and its tools when one is configured, else
// with a template. If the LLM fails and a template fits, the template
// answers.
func (a *Asker) Ask(ctx context.Context, q string) (Answer, error) {
	q = strings.TrimSpace(q)
	if q == "" {
		return Answer{}, ErrEmptyQuestion
	}
	if len(q) > maxQuestion {
		return Answer{}, fmt.Errorf("question too long: %d bytes, at most %d", len(q), maxQuestion)
	}
	if a.client != nil {
		ans, err := a.askLLM(ctx, q)
		if err == nil || ctx.Err() != nil {
			return ans, err
		}
		t, ok := matchTemplate(q)
		if !ok {
			return ans, err
		}
		a.log.Warn("llm failed, answering with a template", "template", t.name, "err", err)
		return a.askTemplate(ctx, q, t)
	}
	t, ok := matchTemplate(q)
	if !ok {
		return Answer{Question: q}, ErrNeedsLLM
	}
	return a.askTemplate(ctx, q, t)
}

const askSystemPrompt = `You are Vigil's analyst assistant. You answer questions about telemetry from monitored Linux hosts (process execs, TCP connections, file, privilege and signal events, metrics, anomalies and incidents) stored in the ClickHouse database "vigil".
Use the tools: describe_schema to learn tables and columns, run_sql to run one read-only ClickHouse SELECT (no semicolons, no SETTINGS, no FORMAT; a row limit is added for you), get_incident to read an incident's fact sheet.
Times are stored in UTC as DateTime64(9); use now() and INTERVAL for relative times.
Answer concisely from the tool results only; quote the numbers, names and addresses exactly as returned. If the results do not answer the question, say so. Never claim to have changed anything: you can only read.
` + prompt.Notice

var askTools = []llm.Tool{
	{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{
		Name:        "describe_schema",
		Description: "List the tables of the vigil database with their columns, types and comments.",
		Parameters:  json.RawMessage(`{"type":"object","properties":{}}`),
	}},
	{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{
		Name:        "run_sql",
		Description: "Run one read-only ClickHouse SELECT on the vigil database and return its rows as JSON.",
		Parameters:  json.RawMessage(`{"type":"object","properties":{"sql":{"type":"string","description":"a single SELECT statement"}},"required":["sql"]}`),
	}},
	{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{
		Name:        "get_incident",
		Description: "Return the fact sheet of one incident: anomalies, process tree, connections, timeline.",
		Parameters:  json.RawMessage(`{"type":"object","properties":{"id":{"type":"string","description":"incident UUID"}},"required":["id"]}`),
	}},
}

func (a *Asker) askLLM(ctx context.Context, q string) (Answer, error) {
	ans := Answer{Question: q, UsedLLM: true, Model: a.client.Model()}
	msgs := []llm.Message{
		{Role: llm.RoleSystem, Content: askSystemPrompt},
		{Role: llm.RoleUser, Content: q},
	}
	for step := 0; ; step++ {
		tools := askTools
		if step == a.opts.MaxSteps {
			// Out of rounds: ask for an answer from what is known.
			tools = nil
			msgs = append(msgs, llm.Message{Role: llm.RoleUser, Content: "You have used all tool calls. Answer now from the results you have."})
		}
		reply, err := a.client.Chat(ctx, msgs, tools)
		ans.PromptTokens += reply.Usage.PromptTokens
		ans.CompletionTokens += reply.Usage.CompletionTokens
		if err != nil {
			return ans, fmt.Errorf("ask: %w", err)
		}
		if reply.Model != "" {
			ans.Model = reply.Model
		}
		calls := reply.Message.ToolCalls
		if len(calls) == 0 || tools == nil {
			ans.Text = strings.TrimSpace(reply.Message.Content)
			if ans.Text == "" {
				ans.Text = "The model gave no answer; the statements it ran are listed below."
			}
			return ans, nil
		}
		msgs = append(msgs, reply.Message)
		for _, call := range calls {
			content := a.runTool(ctx, call, &ans)
			msgs = append(msgs, llm.Message{Role: llm.RoleTool, ToolCallID: call.ID, Content: content})
		}
	}
}

// runTool executes one tool call and returns what the model sees. Errors
// go back to the model as text, so it can correct its SQL.
func (a *Asker) runTool(ctx context.Context, call llm.ToolCall, ans *Answer) string {
	name := call.Function.Name
	a.log.Debug("tool call", "tool", name)
	switch name {
	case "describe_schema":
		s, err := a.describe(ctx)
		if err != nil {
			return "error: " + err.Error()
		}
		return s
	case "run_sql":
		var args struct {
			SQL string `json:"sql"`
		}
		if err := json.Unmarshal([]byte(call.Function.Arguments), &args); err != nil || args.SQL == "" {
			return `error: arguments must be JSON like {"sql": "SELECT ..."}`
		}
		args.SQL = stripFence(args.SQL)
		run, err := a.guard.Query(ctx, args.SQL)
		qr := Query{Tool: name, SQL: args.SQL, Executed: run.Executed}
		if err != nil {
			qr.Error = err.Error()
			ans.Queries = append(ans.Queries, qr)
			return "error: " + err.Error()
		}
		qr.SQL, qr.Columns, qr.Rows, qr.Truncated = run.SQL, run.Result.Columns, run.Result.Rows, run.Result.Truncated
		ans.Queries = append(ans.Queries, qr)
		return a.rowsForModel(qr)
	case "get_incident":
		var args struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal([]byte(call.Function.Arguments), &args); err != nil || args.ID == "" {
			return `error: arguments must be JSON like {"id": "<incident uuid>"}`
		}
		f, err := summary.Build(ctx, a.opts.Runner, args.ID, a.opts.Build)
		ans.Queries = append(ans.Queries, Query{Tool: name, Error: errString(err)})
		if err != nil {
			return "error: " + err.Error()
		}
		s, err := prompt.Data(f.ForPrompt())
		if err != nil {
			return "error: " + err.Error()
		}
		return s
	default:
		return fmt.Sprintf("error: unknown tool %q; use describe_schema, run_sql or get_incident", prompt.Clean(name, 64))
	}
}

// stripFence removes a Markdown code fence (```sql … ```) that smaller
// models wrap around SQL even in tool arguments.
func stripFence(sql string) string {
	s := strings.TrimSpace(sql)
	if !strings.HasPrefix(s, "```") || !strings.HasSuffix(s, "```") || len(s) < 6 {
		return sql
	}
	s = strings.TrimSuffix(s[3:], "```")
	if i := strings.IndexByte(s, '\n'); i >= 0 && !strings.ContainsAny(s[:i], " \t(") {
		s = s[i+1:] // the language tag
	}
	return strings.TrimSpace(s)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// rowsForModel fences a result as data, host strings cleaned and cut.
func (a *Asker) rowsForModel(q Query) string {
	rows := q.Rows
	cut := q.Truncated
	if len(rows) > a.opts.MaxToolRows {
		rows, cut = rows[:a.opts.MaxToolRows], true
	}
	clean := make([][]any, len(rows))
	for i, r := range rows {
		clean[i] = make([]any, len(r))
		for j, v := range r {
			clean[i][j] = cleanCell(v)
		}
	}
	s, err := prompt.Data(map[string]any{"columns": q.Columns, "rows": clean, "truncated": cut})
	if err != nil {
		return "error: " + err.Error()
	}
	return s
}

func cleanCell(v any) any {
	switch x := v.(type) {
	case string:
		return prompt.Clean(x, prompt.DefaultMax)
	case *string:
		if x == nil {
			return nil
		}
		return prompt.Clean(*x, prompt.DefaultMax)
	case []string:
		out := make([]string, len(x))
		for i, s := range x {
			out[i] = prompt.Clean(s, prompt.DefaultMax)
		}
		return out
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case fmt.Stringer:
		return prompt.Clean(x.String(), prompt.DefaultMax)
	}
	return v
}

// describe lists the known tables' columns from system.columns, so the
// model sees the schema the store actually created.
func (a *Asker) describe(ctx context.Context) (string, error) {
	p, err := a.guard.Policy(ctx)
	if err != nil {
		return "", err
	}
	res, err := a.opts.Runner.Query(ctx, `SELECT table, name, type, comment FROM system.columns
WHERE database = ? AND has(?, table) ORDER BY table, position`, p.Database, p.Tables)
	if err != nil {
		return "", fmt.Errorf("describe schema: %w", err)
	}
	tables := map[string][]string{}
	var order []string
	for _, r := range res.Rows {
		if len(r) < 4 {
			continue
		}
		t := fmt.Sprint(r[0])
		if _, ok := tables[t]; !ok {
			order = append(order, t)
		}
		col := fmt.Sprintf("%v %v", r[1], r[2])
		if c := fmt.Sprint(r[3]); c != "" {
			col += " -- " + c
		}
		tables[t] = append(tables[t], col)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "database %s\n", p.Database)
	for _, t := range order {
		fmt.Fprintf(&b, "\n%s(\n  %s\n)\n", t, strings.Join(tables[t], ",\n  "))
	}
	return b.String(), nil
}

// String renders the answer for a terminal (`vigil ask`): the text, then
// each statement with its rows, tab-separated. Values are made inert with
// prompt.Clean, so an escape sequence planted in argv cannot drive the
// terminal.
func (a Answer) String() string {
	var b strings.Builder
	b.WriteString(strings.TrimRight(a.Text, "\n") + "\n")
	for _, q := range a.Queries {
		b.WriteString("\n-- " + q.Tool + "\n")
		if q.SQL != "" {
			b.WriteString(q.SQL + "\n")
		}
		if q.Error != "" {
			b.WriteString("-- refused or failed: " + q.Error + "\n")
			continue
		}
		if len(q.Columns) > 0 {
			b.WriteString(strings.Join(q.Columns, "\t") + "\n")
		}
		for _, r := range q.Rows {
			cells := make([]string, len(r))
			for i, v := range r {
				cells[i] = prompt.Clean(fmt.Sprint(cleanCell(v)), 1024)
			}
			b.WriteString(strings.Join(cells, "\t") + "\n")
		}
		if q.Truncated {
			b.WriteString("-- more rows not shown\n")
		}
	}
	return b.String()
}
