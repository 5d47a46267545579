package summary

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/vigil-dev/vigil/query/llm"
	"github.com/vigil-dev/vigil/query/prompt"
)

// Options configures a Summarizer. The zero value summarizes offline.
type Options struct {
	// LLM is the endpoint; when !LLM.Enabled() the offline summarizer is
	// used.
	LLM llm.Options
	// Logger records LLM failures and fallbacks. Default: discard.
	Logger *slog.Logger
}

// Summarizer writes summaries with an LLM when one is configured, offline
// otherwise. It is safe for concurrent use.
type Summarizer struct {
	client *llm.Client // nil: offline
	log    *slog.Logger
}

// New returns a Summarizer.
func New(o Options) *Summarizer {
	s := &Summarizer{log: o.Logger}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.LLM.Enabled() {
		o.LLM.Logger = s.log
		s.client, _ = llm.New(o.LLM) // only fails when not enabled
	}
	return s
}

// UsesLLM reports whether an LLM is configured.
func (s *Summarizer) UsesLLM() bool { return s.client != nil }

// systemPrompt fixes the output shape Parse reads and the grounding rules.
const systemPrompt = `You are Vigil's incident summarizer. You write for an on-call engineer who must act quickly.
Write the summary in exactly this plain-text shape and nothing else:

Title: <one line>

What happened:
- <claim> [<refs>]

Impact:
- <claim> [<refs>]

Likely cause:
- <claim> [<refs>]

Next steps:
- <claim> [<refs>]

Rules:
- End every claim with the refs of the facts it rests on, in square brackets, e.g. [A1, P2]. Refs are the "ref" fields of the data (A = anomaly, P = process, C = connection, T = timeline event).
- Use only pids, binaries, paths, addresses, host names and numbers that appear in the data; copy them exactly. Put process names, binaries, paths and domain names in backticks.
- Do not compute new numbers (no sums, percentages or durations) unless they are in the data.
- If the data does not support a cause, say the cause is undetermined. Do not guess.
- Keep it short: at most 5 claims per section.
` + prompt.Notice

// Summarize writes the summary of f, calling onToken (if not nil) with the
// text as it is produced. With an LLM it streams the model's answer; if the
// model fails or answers without the required shape, the offline summary is
// used and Summary.Fallback says why (the error is then nil: the on-call
// engineer gets a summary either way). Summary.Ungrounded is always set by
// the grounding check. onToken runs on the caller's goroutine between
// reads of the stream: a slow consumer (a dashboard client) should be
// buffered or dropped by the caller, not allowed to stall the model.
func (s *Summarizer) Summarize(ctx context.Context, f *FactSheet, onToken func(string)) (Summary, error) {
	emit := func(t string) {
		if onToken != nil {
			onToken(t)
		}
	}
	if s.client == nil {
		out := Offline(f)
		emitLines(out.Markdown(), emit)
		out.Ungrounded = Ground(&out, f)
		return out, nil
	}

	data, err := prompt.Data(struct {
		Facts *FactSheet `json:"facts"`
		Stats Stats      `json:"stats"`
	}{f.ForPrompt(), f.Stats()})
	if err != nil {
		return Summary{}, err
	}
	msgs := []llm.Message{
		{Role: llm.RoleSystem, Content: systemPrompt},
		{Role: llm.RoleUser, Content: "Summarize incident " + prompt.Clean(f.Incident.ID, 64) + " from this fact sheet.\n" + data},
	}
	reply, err := s.client.Stream(ctx, msgs, emit)
	var out Summary
	parsed, ok := Parse(reply.Message.Content)
	switch {
	case err != nil && ctx.Err() != nil:
		return Summary{}, fmt.Errorf("summarize incident %s: %w", f.Incident.ID, err)
	case err != nil:
		s.log.Warn("llm summary failed, using the offline summary", "incident", f.Incident.ID, "err", err)
		out = s.fallback(f, "llm failed: "+err.Error(), emit)
	case !ok:
		s.log.Warn("llm summary has no usable structure, using the offline summary", "incident", f.Incident.ID)
		out = s.fallback(f, "llm answer had no title or sections", emit)
	default:
		out = parsed
		out.IncidentID = f.Incident.ID
		out.Model = reply.Model
		if out.Model == "" {
			out.Model = s.client.Model()
		}
	}
	out.Raw = reply.Message.Content
	out.PromptTokens, out.CompletionTokens = reply.Usage.PromptTokens, reply.Usage.CompletionTokens
	out.Ungrounded = Ground(&out, f)
	return out, nil
}

func (s *Summarizer) fallback(f *FactSheet, why string, emit func(string)) Summary {
	out := Offline(f)
	out.Fallback = why
	emit("\n\n[" + why + "; offline summary follows]\n\n")
	emitLines(out.Markdown(), emit)
	return out
}

// emitLines streams a finished text line by line, so the dashboard has one
// code path for LLM and offline summaries.
func emitLines(text string, emit func(string)) {
	for line := range strings.SplitAfterSeq(text, "\n") {
		emit(line)
	}
}

// Bounds on host strings inside a prompt.
const (
	maxPromptString   = 256
	maxPromptArgv     = 32
	maxPromptEvidence = 1024
)

// ForPrompt returns a copy of f with every host-written string sanitised
// and cut (prompt.Clean): the copy is what a model sees; the original is
// what grounding checks against.
func (f *FactSheet) ForPrompt() *FactSheet {
	c := *f
	cl := func(s string) string { return prompt.Clean(s, maxPromptString) }
	c.Incident.Title = cl(f.Incident.Title)
	c.Incident.Hosts = cleanAll(f.Incident.Hosts, cl)
	c.Incident.Entities = cleanAll(f.Incident.Entities, cl)
	c.Anomalies = make([]Anomaly, len(f.Anomalies))
	for i, a := range f.Anomalies {
		a.Host, a.Entity, a.Series, a.Detector = cl(a.Host), cl(a.Entity), cl(a.Series), cl(a.Detector)
		a.Evidence = prompt.Clean(a.Evidence, maxPromptEvidence)
		a.Value, a.Comm = cl(a.Value), cl(a.Comm)
		c.Anomalies[i] = a
	}
	c.Processes = make([]Process, len(f.Processes))
	for i, p := range f.Processes {
		p.Host, p.Comm, p.Filename = cl(p.Host), cl(p.Comm), cl(p.Filename)
		argv := p.Argv
		if len(argv) > maxPromptArgv {
			argv = append(argv[:maxPromptArgv:maxPromptArgv], "…")
		}
		p.Argv = cleanAll(argv, cl)
		c.Processes[i] = p
	}
	c.Connections = make([]Connection, len(f.Connections))
	for i, x := range f.Connections {
		x.Host, x.Comm, x.Event, x.Daddr = cl(x.Host), cl(x.Comm), cl(x.Event), cl(x.Daddr)
		c.Connections[i] = x
	}
	c.Timeline = make([]Event, len(f.Timeline))
	for i, e := range f.Timeline {
		e.Text = cl(e.Text)
		c.Timeline[i] = e
	}
	return &c
}

func cleanAll(ss []string, cl func(string) string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = cl(s)
	}
	return out
}
