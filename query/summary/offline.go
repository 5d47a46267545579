package summary

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/vigil-dev/vigil/query/prompt"
)

// Offline writes the summary from the facts alone, deterministically, so
// Vigil is fully usable without an LLM and an LLM failure still leaves the
// on-call engineer a summary. It quotes only values of the fact sheet (its
// output passes Ground) and never follows anything written in them: host
// strings are quoted, escaped and cut.
func Offline(f *FactSheet) Summary {
	s := Summary{IncidentID: f.Incident.ID, Model: OfflineModel}
	st := f.Stats()

	anoms := slices.Clone(f.Anomalies)
	slices.SortStableFunc(anoms, func(a, b Anomaly) int { return cmp.Compare(b.Score, a.Score) })
	byPID := map[string][]*Process{}
	for i := range f.Processes {
		p := &f.Processes[i]
		k := p.Host + "/" + strconv.FormatUint(uint64(p.PID), 10)
		byPID[k] = append(byPID[k], p)
	}
	// parent is the program the launcher pid was running when p started:
	// its latest exec at or before p's. A pid execs again (bash -c runs
	// its last command in place), and the later program did not start p.
	parent := func(p *Process) *Process {
		var pp *Process
		for _, c := range byPID[p.Host+"/"+strconv.FormatUint(uint64(p.launcher()), 10)] {
			if !c.TS.After(p.TS) && (pp == nil || c.TS.After(pp.TS)) {
				pp = c
			}
		}
		return pp
	}
	// startedBy says who ran p: its parent, or the process whose subshell
	// was its parent.
	startedBy := func(p, pp *Process) string {
		if p.PPID != pp.PID {
			return fmt.Sprintf(", started by %s (pid %d) through a subshell (pid %d)", q(pp.Comm), pp.PID, p.PPID)
		}
		return fmt.Sprintf(", started by %s (pid %d)", q(pp.Comm), pp.PID)
	}

	// Title.
	switch {
	case f.Incident.Title != "":
		s.Title = oneLine(f.Incident.Title)
	case len(anoms) > 0:
		a := anoms[0]
		s.Title = fmt.Sprintf("%s %s anomaly on %s %s (%s)", a.Severity, a.Series, a.EntityKind, oneLine(a.Entity), oneLine(a.Host))
	default:
		s.Title = "Incident " + f.Incident.ID
	}

	// What happened.
	const maxAnoms, maxProcs, maxConns = 5, 8, 8
	for _, a := range anoms[:min(len(anoms), maxAnoms)] {
		text := fmt.Sprintf("%s of %s %s on %s: observed %s, expected %s (score %s, detector %s), window %s to %s.",
			q(a.Series), a.EntityKind, q(a.Entity), q(a.Host), Num(a.Observed), Num(a.Expected), Num(a.Score),
			q(a.Detector), fmtTime(a.WindowStart), fmtTime(a.WindowEnd))
		if what := noveltyPhrase(a.Detector); what != "" && a.Value != "" {
			// A categorical anomaly's observed and expected are baseline
			// weights; the value is what an engineer needs to read.
			text = fmt.Sprintf("%s of %s %s on %s: %s %s (score %s, detector %s), at %s.",
				q(a.Series), a.EntityKind, q(a.Entity), q(a.Host), what, q(a.Value), Num(a.Score), q(a.Detector), fmtTime(a.WindowStart))
		}
		s.WhatHappened = append(s.WhatHappened, Claim{Text: text, Evidence: []string{a.Ref}})
	}
	if len(anoms) > maxAnoms {
		s.WhatHappened = append(s.WhatHappened, Claim{Text: fmt.Sprintf("%d anomalies in all; the highest scores are listed.", st.Anomalies)})
	}
	for i := range f.Processes[:min(len(f.Processes), maxProcs)] {
		p := &f.Processes[i]
		text := fmt.Sprintf("%s %s (pid %d, uid %d) ran %s", fmtTime(p.TS), q(p.Comm), p.PID, p.UID, q(p.Filename))
		if len(p.Argv) > 0 {
			text += " as " + q(strings.Join(p.Argv, " "))
		}
		ev := []string{p.Ref}
		if pp := parent(p); pp != nil {
			text += startedBy(p, pp)
			ev = append(ev, pp.Ref)
		} else if l := p.launcher(); l != p.PPID {
			text += fmt.Sprintf(", parent pid %d, a subshell of pid %d", p.PPID, l)
		} else {
			text += fmt.Sprintf(", parent pid %d", p.PPID)
		}
		s.WhatHappened = append(s.WhatHappened, Claim{Text: text + ".", Evidence: ev})
	}
	for _, c := range f.Connections[:min(len(f.Connections), maxConns)] {
		text := fmt.Sprintf("%s (pid %d): %d %s event(s) with %s:%d between %s and %s",
			q(c.Comm), c.PID, c.Count, c.Event, c.Daddr, c.Dport, fmtTime(c.First), fmtTime(c.Last))
		if c.BytesSent > 0 || c.BytesRecv > 0 {
			text += fmt.Sprintf(" (%d bytes sent, %d received)", c.BytesSent, c.BytesRecv)
		}
		s.WhatHappened = append(s.WhatHappened, Claim{Text: text + ".", Evidence: []string{c.Ref}})
	}
	if len(f.Processes) > maxProcs || len(f.Connections) > maxConns {
		s.WhatHappened = append(s.WhatHappened, Claim{Text: fmt.Sprintf(
			"%d processes and %d connections are in the fact sheet; the first are listed.", st.Processes, st.Connections)})
	}

	// Impact.
	var anomRefs []string
	for _, a := range anoms {
		anomRefs = append(anomRefs, a.Ref)
	}
	when := fmt.Sprintf("open since %s", fmtTime(f.Incident.Opened))
	if r := f.Incident.Resolved; r != nil {
		when = fmt.Sprintf("from %s to %s", fmtTime(f.Incident.Opened), fmtTime(*r))
	}
	s.Impact = append(s.Impact, Claim{
		Text:     fmt.Sprintf("Severity %s, state %s, %s, on %d host(s): %s.", f.Incident.Severity, f.Incident.State, when, st.Hosts, qList(f.Incident.Hosts)),
		Evidence: anomRefs[:min(len(anomRefs), maxAnoms)],
	})
	if len(f.Incident.Entities) > 0 {
		s.Impact = append(s.Impact, Claim{Text: "Entities involved: " + qList(f.Incident.Entities) + "."})
	}
	if len(f.Truncated) > 0 {
		s.Impact = append(s.Impact, Claim{Text: "The fact sheet was cut (" + strings.Join(f.Truncated, ", ") + "): there is more activity than listed."})
	}

	// Likely cause: the processes of the top anomaly's entity, and where
	// they connected. A correlation, and worded as one.
	var suspect *Process
	if len(anoms) == 0 {
		s.LikelyCause = append(s.LikelyCause, Claim{Text: "No anomaly is recorded for this incident; the cause cannot be determined from the telemetry."})
	} else {
		a := anoms[0]
		var conn *Connection
		suspect, conn = suspectOf(f.Processes, &a), busiestConn(f.Connections, &a)
		switch {
		case suspect == nil && conn != nil:
			// A process that predates Vigil: its connections still say who.
			c := conn
			text := fmt.Sprintf("Most likely related: %s (pid %d), which had %d %s event(s) with %s:%d", q(c.Comm), c.PID, c.Count, c.Event, c.Daddr, c.Dport)
			if c.BytesSent > 0 || c.BytesRecv > 0 {
				text += fmt.Sprintf(" (%d bytes sent, %d received)", c.BytesSent, c.BytesRecv)
			}
			s.LikelyCause = append(s.LikelyCause, Claim{
				Text:     text + fmt.Sprintf("; its exec is not recorded. It matches the entity of the highest-scoring anomaly (%s on %s).", q(a.Series), q(a.Host)),
				Evidence: []string{a.Ref, c.Ref},
			})
		case suspect == nil && a.PID != 0:
			who := "the process"
			if a.Comm != "" {
				who = q(a.Comm)
			}
			s.LikelyCause = append(s.LikelyCause, Claim{
				Text:     fmt.Sprintf("The anomaly was raised by %s (pid %d) on %s; its exec is not recorded (it started before Vigil was watching, or the event was lost).", who, a.PID, q(a.Host)),
				Evidence: []string{a.Ref},
			})
			s.NextSteps = append(s.NextSteps, Claim{
				Text:     fmt.Sprintf("Inspect pid %d on %s (its command line, parent and owner) while it runs.", a.PID, q(a.Host)),
				Evidence: []string{a.Ref},
			})
		case suspect == nil:
			s.LikelyCause = append(s.LikelyCause, Claim{
				Text:     fmt.Sprintf("No recorded process or connection explains %s of %s; the cause is undetermined from the telemetry.", q(a.Series), q(a.Entity)),
				Evidence: []string{a.Ref},
			})
		default:
			text := fmt.Sprintf("Most likely related: %s (pid %d) running %s", q(suspect.Comm), suspect.PID, q(suspect.Filename))
			ev := []string{a.Ref, suspect.Ref}
			if pp := parent(suspect); pp != nil {
				text += startedBy(suspect, pp)
				ev = append(ev, pp.Ref)
			}
			if c := busiestConn(f.Connections, &Anomaly{Host: suspect.Host, PID: suspect.PID}); c != nil {
				if c.Event == "close" && (c.BytesSent > 0 || c.BytesRecv > 0) {
					text += fmt.Sprintf(", whose connections with %s:%d sent %d bytes and received %d", c.Daddr, c.Dport, c.BytesSent, c.BytesRecv)
				} else {
					text += fmt.Sprintf(", which had %s events with %s:%d", c.Event, c.Daddr, c.Dport)
				}
				ev = append(ev, c.Ref)
			}
			s.LikelyCause = append(s.LikelyCause, Claim{
				Text: text + fmt.Sprintf(": it matches the entity of the highest-scoring anomaly (%s on %s).", q(a.Series), q(a.Host)), Evidence: ev,
			})
			if c, ok := sessionOf(f.Processes, suspect, &a); ok {
				s.LikelyCause = append(s.LikelyCause, c)
				s.NextSteps = append(s.NextSteps, Claim{
					Text:     fmt.Sprintf("Find out who opened the shell with pid %d on %s (its parent, owner and login time) while it runs.", suspect.launcher(), q(suspect.Host)),
					Evidence: []string{a.Ref},
				})
			}
		}
	}

	// Next steps. The suspect itself, not its parent, which the likely
	// cause cites too.
	if p := suspect; p != nil {
		step := fmt.Sprintf("Check whether %s (pid %d, uid %d) is expected on %s and read its full command line.", q(p.Filename), p.PID, p.UID, q(p.Host))
		if p.UID == 0 {
			step += " It ran as root: review how it was started."
		}
		s.NextSteps = append(s.NextSteps, Claim{Text: step, Evidence: []string{p.Ref}})
	}
	peers := 0
	seen := map[string]bool{}
	for _, c := range f.Connections {
		key := c.Daddr + ":" + strconv.Itoa(int(c.Dport))
		if c.Event == "accept" || seen[key] || peers == 3 {
			continue
		}
		seen[key] = true
		peers++
		s.NextSteps = append(s.NextSteps, Claim{Text: fmt.Sprintf("Verify that %s is a legitimate peer for %s.", key, q(c.Comm)), Evidence: []string{c.Ref}})
	}
	switch {
	case len(anoms) > 0 && noveltyPhrase(anoms[0].Detector) != "" && anoms[0].Value != "":
		s.NextSteps = append(s.NextSteps, Claim{
			Text:     fmt.Sprintf("Decide whether %s is expected of %s, then acknowledge or resolve the incident.", q(anoms[0].Value), q(anoms[0].Entity)),
			Evidence: []string{anoms[0].Ref},
		})
	case len(anoms) > 0:
		s.NextSteps = append(s.NextSteps, Claim{
			Text:     fmt.Sprintf("Compare %s of %s with its expected value on the dashboard, then acknowledge or resolve the incident.", q(anoms[0].Series), q(anoms[0].Entity)),
			Evidence: []string{anoms[0].Ref},
		})
	default:
		s.NextSteps = append(s.NextSteps, Claim{Text: "Review the incident on the dashboard, then acknowledge or resolve it."})
	}
	return s
}

// noveltyPhrase says what kind of categorical anomaly a detector reports,
// "" for the numeric ones.
func noveltyPhrase(detector string) string {
	if !strings.HasPrefix(detector, "novelty/") {
		return ""
	}
	switch {
	case strings.HasSuffix(detector, "/escalation"):
		return "privilege escalation attempt"
	case strings.HasSuffix(detector, "/rare"):
		return "rare value"
	case strings.HasSuffix(detector, "/novel_here"):
		return "value new here but common in the fleet"
	}
	return "new value"
}

// sessionOf says, when the anomaly's process tree is rooted at the
// suspect's parent and that parent's exec is not in the fact sheet, that
// the incident is one shell session: pipeline/detect roots the tree of a
// shell that predates Vigil at the shell, so its commands are one
// incident. The claim lists the session's commands in the fact sheet.
func sessionOf(procs []Process, suspect *Process, a *Anomaly) (Claim, bool) {
	root, pid, ok := treeRoot(a.Tree)
	if !ok || pid != suspect.launcher() || pid == suspect.PID {
		return Claim{}, false
	}
	var comms, refs []string
	seen := map[string]bool{}
	for i := range procs {
		p := &procs[i]
		if p.Host != suspect.Host {
			continue
		}
		if p.PID == pid {
			return Claim{}, false // the shell's exec was seen: an ordinary tree
		}
		if p.launcher() != pid || seen[p.Comm] || len(comms) == 8 {
			continue
		}
		seen[p.Comm] = true
		comms = append(comms, q(p.Comm))
		refs = append(refs, p.Ref)
	}
	if len(comms) < 2 {
		return Claim{}, false
	}
	return Claim{
		Text: fmt.Sprintf("These are the commands of one session: %s (pid %d), a shell that was running before Vigil started, ran %s.",
			q(root), pid, strings.Join(comms, ", ")),
		Evidence: append([]string{a.Ref}, refs...),
	}, true
}

// treeRoot reads a process tree key as pipeline/detect's rootTree writes
// it, "tree:<comm>/<pid>@<host>"; the comm is telemetry and may hold any
// byte, so the pid is what follows the last slash.
func treeRoot(tree string) (comm string, pid uint32, ok bool) {
	rest, ok := strings.CutPrefix(tree, "tree:")
	if !ok {
		return "", 0, false
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		rest = rest[:at]
	}
	slash := strings.LastIndexByte(rest, '/')
	if slash < 0 {
		return "", 0, false
	}
	n, err := strconv.ParseUint(rest[slash+1:], 10, 32)
	if err != nil || n == 0 {
		return "", 0, false
	}
	return rest[:slash], uint32(n), true
}

// suspectOf is the process most likely behind a: the one with the pid its
// evidence names, else for a process entity the last process of that name
// started by the end of its window (the first if all started later: a
// service that runs the same program every minute is judged by the run
// that misbehaved), else the first process on the host. pids are reused,
// so of several with a's pid the last one started by then wins too.
func suspectOf(procs []Process, a *Anomaly) *Process {
	end := a.WindowEnd
	if end.IsZero() {
		end = a.TS
	}
	pick := func(match func(p *Process) bool) *Process {
		var first, last *Process
		for i := range procs {
			p := &procs[i]
			if p.Host != a.Host || !match(p) {
				continue
			}
			if first == nil {
				first = p
			}
			if !p.TS.After(end) {
				last = p
			}
		}
		return cmp.Or(last, first)
	}
	if a.PID != 0 {
		// Another run of the same program would be a wrong lead.
		return pick(func(p *Process) bool { return p.PID == a.PID })
	}
	if a.EntityKind == "host" || a.EntityKind == "cgroup" {
		// Host-wide: the first process of the window, which started what
		// followed, explains more than the last.
		for i := range procs {
			if procs[i].Host == a.Host {
				return &procs[i]
			}
		}
		return nil
	}
	return pick(func(p *Process) bool { return p.Comm == a.Entity || a.Comm != "" && p.Comm == a.Comm })
}

// busiestConn is the connection group of a's process (by pid when it has
// one, else by its entity's name) that moved the most bytes, then had the
// most events, then came first; nil if there is none.
func busiestConn(conns []Connection, a *Anomaly) *Connection {
	var best *Connection
	for i := range conns {
		c := &conns[i]
		if c.Host != a.Host || (a.PID != 0 && c.PID != a.PID) || (a.PID == 0 && c.Comm != a.Entity && c.Comm != a.Comm) {
			continue
		}
		if best == nil || c.BytesSent+c.BytesRecv > best.BytesSent+best.BytesRecv ||
			c.BytesSent+c.BytesRecv == best.BytesSent+best.BytesRecv && c.Count > best.Count {
			best = c
		}
	}
	return best
}

// maxQuoted is the longest host string an offline summary quotes.
const maxQuoted = 160

// q quotes a host-written string as an inert code span: control characters
// escaped, backticks replaced (so the span cannot be closed early) and long
// values cut, with the mark outside the span so the quoted part stays a
// verbatim substring of the fact.
func q(s string) string {
	cut := ""
	if len(s) > maxQuoted {
		i := maxQuoted
		for i > 0 && s[i]&0xC0 == 0x80 {
			i--
		}
		s, cut = s[:i], "…"
	}
	return "`" + inert(s) + "`" + cut
}

// inert escapes control characters and replaces backticks. The grounding
// corpus holds every fact in this form too, so a quoted hostile value still
// counts as grounded.
func inert(s string) string { return strings.ReplaceAll(prompt.Clean(s, math.MaxInt), "`", "'") }

func qList(ss []string) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = q(s)
	}
	return strings.Join(out, ", ")
}

// oneLine makes a host-influenced title safe to print on one line.
func oneLine(s string) string { return prompt.Clean(s, maxQuoted) }
