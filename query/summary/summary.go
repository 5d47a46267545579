package summary

import (
	"regexp"
	"slices"
	"strings"
)

// Summary is a structured incident summary.
type Summary struct {
	IncidentID   string  `json:"incident_id"`
	Title        string  `json:"title"`
	WhatHappened []Claim `json:"what_happened"`
	Impact       []Claim `json:"impact"`
	LikelyCause  []Claim `json:"likely_cause"`
	NextSteps    []Claim `json:"next_steps"`

	// Model wrote it: the LLM's name as the endpoint reported it, or
	// OfflineModel. The lead stores it with the token counts.
	Model            string `json:"model"`
	PromptTokens     int    `json:"prompt_tokens"`
	CompletionTokens int    `json:"completion_tokens"`

	// Ungrounded lists what the summary says that the fact sheet does not
	// contain. Empty for a grounded summary.
	Ungrounded []Flag `json:"ungrounded,omitempty"`
	// Fallback says why the offline summary was used although an LLM is
	// configured (the LLM failed, or its answer had no usable structure).
	Fallback string `json:"fallback,omitempty"`
	// Raw is the model's text as it streamed (empty offline).
	Raw string `json:"raw,omitempty"`
}

// Claim is one statement and the fact refs (A1, P2, C3, T4) it rests on.
type Claim struct {
	Text     string   `json:"text"`
	Evidence []string `json:"evidence,omitempty"`
}

// OfflineModel is Summary.Model for the deterministic summarizer.
const OfflineModel = "vigil-offline"

// The section headings, in order. Render writes them and Parse reads them,
// so an LLM answer and an offline summary have one shape.
const (
	hTitle        = "Title"
	hWhatHappened = "What happened"
	hImpact       = "Impact"
	hLikelyCause  = "Likely cause"
	hNextSteps    = "Next steps"
)

func (s *Summary) sections() []struct {
	name   string
	claims *[]Claim
} {
	return []struct {
		name   string
		claims *[]Claim
	}{
		{hWhatHappened, &s.WhatHappened},
		{hImpact, &s.Impact},
		{hLikelyCause, &s.LikelyCause},
		{hNextSteps, &s.NextSteps},
	}
}

// Markdown renders s in the shape Parse reads: the text the dashboard shows
// and the lead stores in incidents.summary.
func (s Summary) Markdown() string {
	var b strings.Builder
	b.WriteString(hTitle + ": " + s.Title + "\n")
	for _, sec := range s.sections() {
		b.WriteString("\n" + sec.name + ":\n")
		for _, c := range *sec.claims {
			b.WriteString("- " + c.Text)
			if len(c.Evidence) > 0 {
				b.WriteString(" [" + strings.Join(c.Evidence, ", ") + "]")
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

var (
	// citeRE matches a citation group such as [A1, P2].
	citeRE = regexp.MustCompile(`\[\s*[ACPT]\d{1,4}(?:\s*[,;]\s*[ACPT]\d{1,4})*\s*\]`)
	refRE  = regexp.MustCompile(`[ACPT]\d{1,4}`)
	// bulletRE matches list markers: -, *, •, 1. or 1)
	bulletRE = regexp.MustCompile(`^(?:[-*•]|\d{1,2}[.)])\s+`)
)

// maxParse bounds how much model output Parse reads.
const maxParse = 64 << 10

// Parse reads a summary in the Markdown shape, tolerating what models add:
// # or ** around headings, headings in any case, numbered lists, wrapped
// lines. It returns ok=false when there is no title or no section, so the
// caller can fall back.
func Parse(text string) (s Summary, ok bool) {
	if len(text) > maxParse {
		text = text[:maxParse]
	}
	var cur *[]Claim
	sections := 0
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "```") {
			continue
		}
		if name, rest, isHead := heading(line); isHead {
			if name == hTitle {
				if s.Title == "" {
					s.Title = strings.TrimSpace(citeRE.ReplaceAllString(rest, ""))
				}
				cur = nil
				continue
			}
			for _, sec := range s.sections() {
				if sec.name == name {
					cur = sec.claims
					sections++
				}
			}
			if rest != "" && cur != nil {
				*cur = append(*cur, claim(rest))
			}
			continue
		}
		if cur == nil {
			continue
		}
		if m := bulletRE.FindString(line); m != "" || len(*cur) == 0 {
			*cur = append(*cur, claim(strings.TrimPrefix(line, m)))
			continue
		}
		// A wrapped line continues the previous claim.
		last := &(*cur)[len(*cur)-1]
		c := claim(last.Text + " " + line)
		last.Text = c.Text
		last.Evidence = mergeRefs(last.Evidence, c.Evidence)
	}
	return s, s.Title != "" && sections > 0
}

// heading recognises "Title: x", "## What happened", "**Impact:**".
func heading(line string) (name, rest string, ok bool) {
	l := strings.TrimLeft(line, "#* ")
	for _, h := range []string{hTitle, hWhatHappened, hImpact, hLikelyCause, hNextSteps} {
		if len(l) < len(h) || !strings.EqualFold(l[:len(h)], h) {
			continue
		}
		after := strings.TrimLeft(l[len(h):], "*")
		if after == "" || after[0] == ':' {
			return h, strings.TrimSpace(strings.TrimLeft(strings.TrimPrefix(after, ":"), "* ")), true
		}
	}
	return "", "", false
}

func claim(text string) Claim {
	var refs []string
	for _, g := range citeRE.FindAllString(text, -1) {
		refs = mergeRefs(refs, refRE.FindAllString(g, -1))
	}
	text = strings.TrimSpace(citeRE.ReplaceAllString(text, ""))
	return Claim{Text: text, Evidence: refs}
}

func mergeRefs(a, b []string) []string {
	for _, r := range b {
		if !slices.Contains(a, r) {
			a = append(a, r)
		}
	}
	return a
}
