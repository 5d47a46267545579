// Package query answers plain-language questions about the telemetry Vigil
// stores in ClickHouse: `vigil ask`, POST /api/ask and the dashboard's ask box
// all call (*Asker).Ask.
//
// With an LLM configured (any OpenAI-compatible endpoint, see query/llm) the
// model plans with three tools: describe the schema, run read-only SQL and
// fetch an incident. Without one, a fixed set of query templates answers the
// common questions (recent incidents, top talkers, new binaries, an incident
// by id) and anything else gets a message saying an LLM is needed.
//
// Whatever the model asks for, nothing but SQL that query/sqlguard accepted
// reaches ClickHouse, and it runs on a connection the caller opened as the
// read-only user (engine.ReadOnlyUser, readonly=1 enforced by ClickHouse
// itself). The sub-packages:
//
//   - query/sqlguard: the statement validator (lexical layer plus
//     ClickHouse's own parser) and the guarded runner.
//   - query/chread: the small Runner interface over a clickhouse-go
//     connection, with client-side row and cell limits.
//   - query/llm: the OpenAI-compatible client with retries, streaming and
//     tool calls.
//   - query/prompt: how untrusted host data is fenced inside prompts.
//   - query/summary: incident fact sheets, LLM and offline summaries and the
//     grounding check.
package query
