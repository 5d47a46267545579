package detect

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/vigil-dev/vigil/collector"
	"github.com/vigil-dev/vigil/models"
)

// Series names. Counters are sums over a step and are zero-filled for steps
// without events, so that a rate can be seen dropping; gauges are reported
// only for steps that have data.
const (
	SeriesExecs            = "execs"
	SeriesNewBinaries      = "new_binaries" // execs of a binary new to its host or container (see Detector.categorical)
	SeriesForks            = "forks"
	SeriesExits            = "exits"
	SeriesAbnormalExits    = "abnormal_exits"
	SeriesConnectAttempts  = "connect_attempts"
	SeriesConnectFailures  = "connect_failures"
	SeriesAccepts          = "accepts"
	SeriesDestinations     = "distinct_destinations"
	SeriesBytesOut         = "bytes_out"
	SeriesBytesIn          = "bytes_in"
	SeriesRetransmits      = "retransmits"
	SeriesSyscalls         = "syscalls"
	SeriesRunqP99          = "runq_p99_us"
	SeriesSensitiveOpens   = "sensitive_file_opens"
	SeriesPrivChanges      = "priv_changes"
	SeriesOOMKills         = "oom_kills"
	SeriesFatalSignals     = "fatal_signals"
	SeriesFailedDests      = "failed_destinations" // distinct addr:port a process failed to connect to: a scan's fan-out
	maxDestinationsPerStep = 4096                  // distinct destinations tracked per entity per step
	maxSetsPerStep         = 8192                  // entities with a distinct-destination set per step
	maxCreditsPerStep      = 8192                  // (entity, series, comm) contributions tracked per step
	runqSlots              = 64
)

// gauges are not zero-filled: "no waits measured" is not "zero latency".
var gauges = map[string]bool{SeriesRunqP99: true}

// Entity keys name what a series or baseline belongs to. They are the
// models' Entity strings and are parsed back (parseEntity) for storage:
//
//	host:<host>
//	container:<container id>@<host>
//	comm:<comm>@<host>
//
// The host is last so that a hostile comm containing '@' still parses.
func hostKey(host string) string { return "host:" + host }

// containerPrefix starts every container's key.
const containerPrefix = "container:"

func scopeKey(host, container string) string {
	if container == "" {
		return hostKey(host)
	}
	return containerPrefix + container + "@" + host
}

func commKey(host, comm string) string { return "comm:" + comm + "@" + host }

// Entity is a parsed entity key.
type Entity struct {
	Kind string // host, container or comm
	Name string
	Host string
}

func parseEntity(key string) Entity {
	kind, rest, ok := strings.Cut(key, ":")
	if !ok {
		return Entity{Kind: "unknown", Name: key}
	}
	if kind == "host" {
		return Entity{Kind: kind, Name: rest, Host: rest}
	}
	i := strings.LastIndexByte(rest, '@')
	if i < 0 {
		return Entity{Kind: kind, Name: rest}
	}
	return Entity{Kind: kind, Name: rest[:i], Host: rest[i+1:]}
}

// catEvent is a categorical observation with the context the models'
// Event does not carry but storage and the dashboard want.
type catEvent struct {
	ev        models.Event
	host      string
	container string
	comm      string
	pid       uint32
}

// stepAcc accumulates one step.
type stepAcc struct {
	start int64 // unix ns
	vals  map[models.SeriesKey]float64
	dests map[models.SeriesKey]map[string]struct{}
	runq  map[string]*[runqSlots]uint64 // entity → run-queue histogram
	// credit counts what each comm added to host and container series that
	// have no per-comm series (forks, retransmits, ...), so that a burst
	// on the host can name the process behind it.
	credit map[creditKey]float64
}

type creditKey struct {
	entity, series, comm string
}

func newStepAcc(start int64) *stepAcc {
	return &stepAcc{start: start, vals: map[models.SeriesKey]float64{}}
}

func (s *stepAcc) add(entity, series string, v float64) {
	s.vals[models.SeriesKey{Entity: entity, Series: series}] += v
}

func (s *stepAcc) addDest(entity, dest string) { s.addDistinct(entity, SeriesDestinations, dest) }

// addFailedDest records a destination entity failed to connect to.
func (s *stepAcc) addFailedDest(entity, dest string) { s.addDistinct(entity, SeriesFailedDests, dest) }

// addDistinct adds dest to the set counted as series of entity. Both the
// sets and their sizes are bounded: past the bounds a step undercounts.
func (s *stepAcc) addDistinct(entity, series, dest string) {
	if s.dests == nil {
		s.dests = map[models.SeriesKey]map[string]struct{}{}
	}
	k := models.SeriesKey{Entity: entity, Series: series}
	set := s.dests[k]
	if set == nil {
		if len(s.dests) >= maxSetsPerStep {
			return
		}
		set = map[string]struct{}{}
		s.dests[k] = set
	}
	if len(set) < maxDestinationsPerStep {
		set[dest] = struct{}{}
	}
}

// addCredit records that comm contributed v to series of entity.
func (s *stepAcc) addCredit(entity, series, comm string, v float64) {
	if comm == "" || v == 0 {
		return
	}
	if s.credit == nil {
		s.credit = map[creditKey]float64{}
	}
	k := creditKey{entity, series, comm}
	if _, ok := s.credit[k]; !ok && len(s.credit) >= maxCreditsPerStep {
		return
	}
	s.credit[k] += v
}

// topComm returns the comm that contributed most to series of entity (a
// host or container) in this step, and how much: from the credits, else
// from the per-comm series of the entity's host. "" if none is known.
func (s *stepAcc) topComm(entity, series string) (string, float64) {
	best, bestV := "", 0.0
	pick := func(c string, v float64) {
		if v > bestV || (v == bestV && v > 0 && c < best) {
			best, bestV = c, v
		}
	}
	for k, v := range s.credit {
		if k.entity == entity && k.series == series {
			pick(k.comm, v)
		}
	}
	if best != "" {
		return best, bestV
	}
	host := parseEntity(entity).Host
	for k, v := range s.vals {
		if k.Series != series || !strings.HasPrefix(k.Entity, "comm:") {
			continue
		}
		if e := parseEntity(k.Entity); e.Host == host {
			pick(e.Name, v)
		}
	}
	return best, bestV
}

func (s *stepAcc) addRunq(entity string, slot uint64, n uint64) {
	if s.runq == nil {
		s.runq = map[string]*[runqSlots]uint64{}
	}
	h := s.runq[entity]
	if h == nil {
		h = new([runqSlots]uint64)
		s.runq[entity] = h
	}
	h[min(slot, runqSlots-1)] += n
}

// finish folds the distinct sets and histograms into vals.
func (s *stepAcc) finish() map[models.SeriesKey]float64 {
	for k, set := range s.dests {
		s.vals[k] = float64(len(set))
	}
	for e, h := range s.runq {
		if p, ok := p99(h); ok {
			s.vals[models.SeriesKey{Entity: e, Series: SeriesRunqP99}] = p
		}
	}
	return s.vals
}

// p99 returns the upper bound in µs (2^(slot+1)) of the bucket holding the
// 99th percentile: the histogram's resolution, no interpolation.
func p99(h *[runqSlots]uint64) (float64, bool) {
	var total uint64
	for _, n := range h {
		total += n
	}
	if total == 0 {
		return 0, false
	}
	need := (total*99 + 99) / 100
	var cum uint64
	for slot, n := range h {
		cum += n
		if cum >= need {
			return float64(uint64(1) << (slot + 1)), true
		}
	}
	return 0, false
}

// aggregator turns batches into per-step sums and categorical events. It
// keeps a few steps open so that kinds flushed at slightly different times
// by the collector still land in the right step; a step closes once the
// watermark (the newest event time seen) is Grace past its end.
type aggregator struct {
	step, grace int64
	open        map[int64]*stepAcc
	// next is the start of the oldest step that may still be open; rows
	// older than it are late and dropped (and counted).
	next      int64
	watermark int64
	late      uint64
	pids      *procTable
	// own and discard keep Vigil's own processes out of the series (see
	// Options.Own): their rows add to discard, which is never closed and
	// is emptied as steps close.
	own     func(pid uint32) bool
	discard *stepAcc
}

func newAggregator(step, grace int64, pids *procTable, own func(pid uint32) bool) *aggregator {
	pids.window = 2 * step
	return &aggregator{step: step, grace: grace, open: map[int64]*stepAcc{}, pids: pids, own: own, discard: newStepAcc(0)}
}

// acc returns the open step for ts, or nil if ts is late.
func (g *aggregator) acc(ts int64) *stepAcc {
	start := ts - ts%g.step
	if g.next != 0 && start < g.next {
		g.late++
		return nil
	}
	if g.next == 0 {
		g.next = start
	}
	s := g.open[start]
	if s == nil {
		s = newStepAcc(start)
		g.open[start] = s
	}
	if ts > g.watermark {
		g.watermark = ts
	}
	return s
}

// due returns the steps that can close at watermark wm, oldest first,
// including empty ones in between so that counters read zero. After more
// than maxGap empty steps in a row the rest of the silence is skipped: the
// series resume rather than replaying hours of zeros.
func (g *aggregator) due(wm int64, maxGap int) []*stepAcc {
	if g.next == 0 {
		return nil
	}
	if d := g.discard; d != nil && len(d.vals)+len(d.dests)+len(d.credit)+len(d.runq) > 0 {
		g.discard = newStepAcc(0)
	}
	var out []*stepAcc
	empties := 0
	for g.next+g.step+g.grace <= wm {
		if s := g.open[g.next]; s != nil {
			delete(g.open, g.next)
			out = append(out, s)
			empties = 0
		} else {
			if empties < maxGap {
				out = append(out, newStepAcc(g.next))
			}
			empties++
			if empties >= maxGap {
				target := wm - g.grace - g.step
				target -= target % g.step
				for k := range g.open {
					target = min(target, k)
				}
				if target > g.next {
					g.next = target
					continue
				}
			}
		}
		g.next += g.step
	}
	return out
}

func eventTime(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// add aggregates one batch and calls cat for each categorical event.
func (g *aggregator) add(kind collector.Kind, rec arrow.RecordBatch, cat func(catEvent)) {
	ts := tsColumn(rec)
	if ts == nil {
		return
	}
	host := strColumn(rec, "host")
	container := strColumn(rec, "container_id")
	comm := strColumn(rec, "comm")
	pid := uintColumn(rec, "pid")
	n := int(rec.NumRows())
	// each row: the step, its host, scope and comm entities.
	row := func(i int) (s *stepAcc, h, sc, cm string) {
		s = g.acc(ts(i))
		if s == nil {
			return nil, "", "", ""
		}
		h = host(i)
		if g.own != nil && g.pids.isLocal(h) && g.own(uint32(pid(i))) {
			s = g.discard
		}
		return s, hostKey(h), scopeKey(h, container(i)), commKey(h, comm(i))
	}
	// both adds v to the host and (if different) the scope entity.
	both := func(s *stepAcc, h, sc, series string, v float64) {
		s.add(h, series, v)
		if sc != h {
			s.add(sc, series, v)
		}
	}
	// credit records comm's part of what both added.
	credit := func(s *stepAcc, h, sc, series, comm string, v float64) {
		s.addCredit(h, series, comm, v)
		if sc != h {
			s.addCredit(sc, series, comm, v)
		}
	}
	switch kind {
	case collector.KindExec:
		ppid := uintColumn(rec, "ppid")
		ancestor := uintColumn(rec, "exec_ancestor")
		filename := strColumn(rec, "filename")
		for i := range n {
			s, h, sc, cm := row(i)
			if s == nil {
				continue
			}
			both(s, h, sc, SeriesExecs, 1)
			s.add(cm, SeriesExecs, 1)
			t := eventTime(ts(i))
			file := filename(i)
			c := comm(i)
			base := catEvent{host: host(i), container: container(i), comm: c, pid: uint32(pid(i))}
			// A fork-only parent (a subshell) may be gone already; its
			// exec'd ancestor stands for it (same comm, unless renamed).
			pp, anc := uint32(ppid(i)), uint32(ancestor(i))
			if anc == 0 { // not found in the kernel, or an older collector
				anc = pp
			}
			at := ts(i)
			parent, hasParent := g.pids.lookup(base.host, pp, at)
			if !hasParent && anc != pp {
				parent, hasParent = g.pids.lookup(base.host, anc, at)
			}
			tree := g.pids.execTree(base.host, sc, base.pid, anc, c, at)
			g.pids.noteActed(base.host, c, tree, ts(i))
			e := base
			key := binaryKey(file)
			e.ev = models.Event{Time: t, Entity: sc, Tree: tree, Kind: models.KindBinary, Value: file, Key: key}
			cat(e)
			if hasParent {
				e := base
				e.ev = models.Event{Time: t, Entity: sc, Tree: tree, Kind: models.KindExecPair, Value: parent + " -> " + file,
					Key: parent + " -> " + key, FromShell: shells[parent]}
				cat(e)
			}
		}
	case collector.KindExit:
		forks := uintColumn(rec, "forks")
		sig := uintColumn(rec, "signal")
		core := uintColumn(rec, "core_dumped")
		for i := range n {
			// Whether or not its step is still open, the exit ends what
			// the process table knows of this pid.
			g.pids.exit(host(i), uint32(pid(i)), ts(i))
			s, h, sc, cm := row(i)
			if s == nil {
				continue
			}
			c := comm(i)
			both(s, h, sc, SeriesExits, 1)
			credit(s, h, sc, SeriesExits, c, 1)
			both(s, h, sc, SeriesForks, float64(forks(i)))
			credit(s, h, sc, SeriesForks, c, float64(forks(i)))
			if core(i) != 0 || abnormalSignal[sig(i)] {
				both(s, h, sc, SeriesAbnormalExits, 1)
				credit(s, h, sc, SeriesAbnormalExits, c, 1)
				// The value is the victim and how it died: what a crash
				// looks like for this process is what the baseline learns.
				v := c + " " + signalName(sig(i))
				if core(i) != 0 {
					v += " core dumped"
				}
				cat(catEvent{
					ev:   models.Event{Time: eventTime(ts(i)), Entity: actor(sc, cm), Scope: sc, Tree: sc, Kind: models.KindAbnormalExit, Value: v},
					host: host(i), container: container(i), comm: c, pid: uint32(pid(i)),
				})
			}
		}
	case collector.KindTCP:
		event := strColumn(rec, "event")
		daddr := strColumn(rec, "daddr")
		dport := uintColumn(rec, "dport")
		sent := uintColumn(rec, "bytes_sent")
		recv := uintColumn(rec, "bytes_received")
		if !hasColumn(rec, "bytes_received") {
			recv = uintColumn(rec, "bytes_recv")
		}
		for i := range n {
			s, h, sc, cm := row(i)
			if s == nil {
				continue
			}
			switch event(i) {
			case "connect", "connect_failed":
				both(s, h, sc, SeriesConnectAttempts, 1)
				s.add(cm, SeriesConnectAttempts, 1)
				dest := hostPort(daddr(i), dport(i))
				if event(i) == "connect_failed" {
					both(s, h, sc, SeriesConnectFailures, 1)
					s.add(cm, SeriesConnectFailures, 1)
					s.addFailedDest(cm, dest)
					continue
				}
				s.addDest(sc, dest)
				s.addDest(cm, dest)
				if sc != h {
					s.addDest(h, dest)
				}
				cat(catEvent{
					ev:   models.Event{Time: eventTime(ts(i)), Entity: cm, Scope: sc, Tree: sc, Kind: models.KindDestination, Value: dest},
					host: host(i), container: container(i), comm: comm(i), pid: uint32(pid(i)),
				})
			case "accept":
				both(s, h, sc, SeriesAccepts, 1)
			case "close":
				both(s, h, sc, SeriesBytesOut, float64(sent(i)))
				both(s, h, sc, SeriesBytesIn, float64(recv(i)))
				s.add(cm, SeriesBytesOut, float64(sent(i)))
				s.add(cm, SeriesBytesIn, float64(recv(i)))
			}
		}
	case collector.KindRetransmit:
		for i := range n {
			if s, h, sc, _ := row(i); s != nil {
				both(s, h, sc, SeriesRetransmits, 1)
				credit(s, h, sc, SeriesRetransmits, comm(i), 1)
			}
		}
	case collector.KindFile:
		path := strColumn(rec, "path")
		flags := uintColumn(rec, "flags")
		errno := uintColumn(rec, "errno")
		for i := range n {
			s, h, sc, cm := row(i)
			if s == nil {
				continue
			}
			both(s, h, sc, SeriesSensitiveOpens, 1)
			s.add(cm, SeriesSensitiveOpens, 1)
			// Every row is a sensitive path (the collector filters). The
			// value is who opened what, how: per-call noise (pids in
			// /proc paths) is removed so that it can become known.
			c := comm(i)
			v := c + " " + normalizePath(path(i))
			if flags(i)&3 != 0 { // O_WRONLY or O_RDWR
				v += " (write)"
			}
			if errno(i) != 0 {
				v += " (failed)"
			}
			cat(catEvent{
				ev:   models.Event{Time: eventTime(ts(i)), Entity: actor(sc, cm), Scope: sc, Tree: sc, Kind: models.KindSensitiveFile, Value: v},
				host: host(i), container: container(i), comm: c, pid: uint32(pid(i)),
			})
		}
	case collector.KindPriv:
		syscall := strColumn(rec, "syscall")
		euidBefore := uintColumn(rec, "euid_before")
		euidAfter := uintColumn(rec, "euid_after")
		errno := uintColumn(rec, "errno")
		arg0, arg1, arg2 := uintColumn(rec, "arg0"), uintColumn(rec, "arg1"), uintColumn(rec, "arg2")
		capEff := uintColumn(rec, "cap_effective")
		for i := range n {
			s, h, sc, _ := row(i)
			if s == nil {
				continue
			}
			both(s, h, sc, SeriesPrivChanges, 1)
			if cannotGain(syscall(i), euidBefore(i), euidAfter(i), capEff(i), errno(i)) {
				continue
			}
			esc, asks := escalation(syscall(i), [3]uint64{arg0(i), arg1(i), arg2(i)}, euidBefore(i), euidAfter(i), capEff(i), errno(i))
			// The value is what the baseline learns, so it must not carry
			// per-call noise (raw arguments, pids): only an escalation's
			// request for id 0 is part of it.
			v := comm(i) + " " + syscall(i)
			switch {
			case asks:
				v += "(0)"
			case syscall(i) == "ptrace":
				v += ptraceRequest(arg0(i))
			}
			v += " euid " + strconv.FormatUint(euidBefore(i), 10) + "->" + strconv.FormatUint(euidAfter(i), 10)
			if errno(i) != 0 {
				v += " failed"
			}
			cat(catEvent{
				ev:   models.Event{Time: eventTime(ts(i)), Entity: sc, Tree: sc, Kind: models.KindPrivChange, Value: v, Escalation: esc},
				host: host(i), container: container(i), comm: comm(i), pid: uint32(pid(i)),
			})
		}
	case collector.KindOOM:
		for i := range n {
			s, h, sc, cm := row(i)
			if s == nil {
				continue
			}
			c := comm(i)
			both(s, h, sc, SeriesOOMKills, 1)
			credit(s, h, sc, SeriesOOMKills, c, 1)
			cat(catEvent{
				ev:   models.Event{Time: eventTime(ts(i)), Entity: actor(sc, cm), Scope: sc, Tree: sc, Kind: models.KindOOMKill, Value: c},
				host: host(i), container: container(i), comm: c, pid: uint32(pid(i)),
			})
		}
	case collector.KindSignal:
		for i := range n {
			if s, h, sc, _ := row(i); s != nil {
				both(s, h, sc, SeriesFatalSignals, 1)
				credit(s, h, sc, SeriesFatalSignals, comm(i), 1)
			}
		}
	case collector.KindSyscallCounts:
		count := uintColumn(rec, "count")
		syscall := strColumn(rec, "syscall")
		for i := range n {
			if s, h, _, cm := row(i); s != nil {
				c := float64(count(i))
				s.add(h, SeriesSyscalls, c)
				s.add(cm, SeriesSyscalls, c)
				if class, ok := syscallClass[syscall(i)]; ok {
					s.add(h, class, c)
					s.add(cm, class, c)
				}
			}
		}
	case collector.KindRunqLatency:
		slot := uintColumn(rec, "slot")
		count := uintColumn(rec, "count")
		for i := range n {
			s, h, sc, _ := row(i)
			if s == nil {
				continue
			}
			s.addRunq(h, slot(i), count(i))
			if sc != h {
				s.addRunq(sc, slot(i), count(i))
			}
		}
	}
}

// cannotGain reports a privilege call that cannot have gained anything, so
// it is counted but not judged for novelty: a set*id call by a root process
// that left it root (process launchers make them all the time), and a
// capset that succeeded with an empty effective set, which is a sandbox
// dropping its capabilities (every Chromium renderer does, and each new
// sandboxed program was a critical "privilege change"). ptrace is always
// judged: it is how root reaches into other processes; so is a capset
// that keeps or asks for a capability.
func cannotGain(syscall string, euidBefore, euidAfter, capEffective, errno uint64) bool {
	if errno != 0 {
		return false
	}
	if syscall == "capset" {
		return capEffective == 0
	}
	return strings.HasPrefix(syscall, "set") && euidBefore == 0 && euidAfter == 0
}

// escalation reports whether a privilege call by a process is a try for
// root: a non-root caller asking a set*id call for id 0 (asksZero), a
// non-root capset refused the capabilities it asked for (one that keeps
// capabilities it was granted succeeds, and is no escalation), or any
// call that left a non-root caller with euid 0. The set*id ids are 32-bit
// and 4294967295 (-1) means "unchanged"; ptrace is judged as a privilege
// change but is not an escalation of the caller's own.
func escalation(syscall string, args [3]uint64, euidBefore, euidAfter, capEffective, errno uint64) (esc, asksZero bool) {
	if euidBefore == 0 {
		return false, false
	}
	var ids []uint64
	switch syscall {
	case "setuid", "setgid", "setfsuid", "setfsgid":
		ids = args[:1]
	case "setreuid", "setregid":
		ids = args[:2]
	case "setresuid", "setresgid":
		ids = args[:3]
	case "capset":
		return capEffective != 0 && errno != 0 || euidAfter == 0, false
	}
	for _, id := range ids {
		if uint32(id) == 0 {
			asksZero = true
		}
	}
	return asksZero || euidAfter == 0, asksZero
}

// ptraceRequest names the ptrace requests that start tracing or write into
// the tracee, "(attach)" or "(poketext)"; the rest of a debugger's
// chatter (peeks, continues, register reads) is "" so that it learns as
// one value.
func ptraceRequest(req uint64) string {
	switch req {
	case 0:
		return "(traceme)"
	case 4:
		return "(poketext)"
	case 5:
		return "(pokedata)"
	case 6:
		return "(pokeuser)"
	case 13:
		return "(setregs)"
	case 16:
		return "(attach)"
	case 0x4206:
		return "(seize)"
	}
	return ""
}

// abnormalSignal marks terminating signals that mean a crash or a kill
// rather than an ordinary shutdown (SIGTERM, SIGINT, SIGHUP, SIGPIPE).
var abnormalSignal = map[uint64]bool{4: true, 6: true, 7: true, 8: true, 9: true, 11: true, 31: true}

// actor is the baseline owner of what a process did: the process (its comm
// on the host) outside containers, the container inside one, where the
// comm is part of the value and the evidence.
func actor(scope, comm string) string {
	if strings.HasPrefix(scope, containerPrefix) {
		return scope
	}
	return comm
}

// signalName names the terminating signals of abnormalSignal (and SIGQUIT,
// which dumps core); others by number.
func signalName(sig uint64) string {
	switch sig {
	case 3:
		return "SIGQUIT"
	case 4:
		return "SIGILL"
	case 6:
		return "SIGABRT"
	case 7:
		return "SIGBUS"
	case 8:
		return "SIGFPE"
	case 9:
		return "SIGKILL"
	case 11:
		return "SIGSEGV"
	case 31:
		return "SIGSYS"
	case 0:
		return "no signal"
	}
	return "signal " + strconv.FormatUint(sig, 10)
}

// normalizePath replaces the pid in /proc/<pid>/... with "<pid>", so that
// the same access by a new process is the same value.
func normalizePath(p string) string {
	rest, ok := strings.CutPrefix(p, "/proc/")
	if !ok {
		return p
	}
	seg, tail, _ := strings.Cut(rest, "/")
	if seg == "" || strings.Trim(seg, "0123456789") != "" {
		return p
	}
	if tail == "" && !strings.HasSuffix(rest, "/") {
		return "/proc/<pid>"
	}
	return "/proc/<pid>/" + tail
}

// binaryKey is what the novelty baselines learn of an executable's path:
// in its directories, runs of three or more digits, and tokens of 16 or
// more letters and digits with a digit among them (mktemp and build
// directories, store and layer hashes), become "#". A CI runner's
// /tmp/go-build123/b001/x.test is then the binary it ran yesterday. The
// file name is kept whole: a new name, or a known name in a new kind of
// place, is still new.
func binaryKey(p string) string {
	slash := strings.LastIndexByte(p, '/')
	if slash < 0 || strings.IndexAny(p[:slash], "0123456789") < 0 {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < slash; {
		j := i
		for j < slash && isAlnum(p[j]) {
			j++
		}
		if j == i { // a separator
			b.WriteByte(p[i])
			i++
			continue
		}
		writeMasked(&b, p[i:j])
		i = j
	}
	b.WriteString(p[slash:])
	return b.String()
}

// writeMasked writes one alphanumeric token of a path, masked as binaryKey
// says.
func writeMasked(b *strings.Builder, tok string) {
	if len(tok) >= 16 && strings.IndexAny(tok, "0123456789") >= 0 {
		b.WriteByte('#')
		return
	}
	for i := 0; i < len(tok); {
		j := i
		for j < len(tok) && tok[j] >= '0' && tok[j] <= '9' {
			j++
		}
		switch {
		case j-i >= 3:
			b.WriteByte('#')
			i = j
		case j > i:
			b.WriteString(tok[i:j])
			i = j
		default:
			b.WriteByte(tok[i])
			i++
		}
	}
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func hostPort(addr string, port uint64) string {
	p := strconv.FormatUint(port, 10)
	if strings.Contains(addr, ":") {
		return "[" + addr + "]:" + p
	}
	return addr + ":" + p
}

// procTable remembers recently exec'd processes per host: their comm, so
// that an exec can name its parent, and their process tree, so that
// anomalies from one lineage become one incident rather than one per host.
// It is bounded: when full, an arbitrary eighth is forgotten (pids are
// reused anyway, so old entries are the least useful but not worth an LRU
// list).
type procTable struct {
	max      int
	m        map[procKey]procEntry
	procRoot string // "" disables the /proc fallback
	// local is the host procRoot describes; other hosts (remote collectors
	// sending to this pipeline) are known only from their exec events.
	// "" means every host is this one.
	local string
	// acted is, per host and comm, the tree the comm last acted in (an
	// exec, a connect, an open): how a series anomaly on comm:X joins
	// the incident of the process that made it (see commTree).
	acted map[hostComm]*commActed
	// window is how recent and unambiguous a comm's tree must be (see
	// commTree): two model steps, set by the aggregator.
	window int64
}

// hostComm is a process name on a host.
type hostComm struct{ host, comm string }

// commActed is the tree a comm last acted in, when, and whether another
// tree used the same comm within the window before that.
type commActed struct {
	tree  string
	at    int64 // unix ns
	mixed bool
}

// procKey is a process on a host: pids of different hosts are unrelated.
type procKey struct {
	host string
	pid  uint32
}

type procEntry struct {
	comm string
	// exited is when the process exited (unix ns), 0 while it runs or if
	// its exit was not seen. Only 32,768 pids exist by default, so a pid is
	// soon reused: an entry is stale for anything that happens after its
	// process exited (see live).
	exited int64
	// tree is the process tree key given when Vigil saw the process
	// exec; "" for a process it only found in /proc (one that predates
	// Vigil, or forked without exec'ing).
	tree string
}

// maxTreeHops bounds the walk up /proc through fork-only ancestors (a
// shell's subshell) to an ancestor whose exec Vigil saw.
const maxTreeHops = 4

func newProcTable(max int, procRoot, local string) *procTable {
	return &procTable{max: max, m: make(map[procKey]procEntry), procRoot: procRoot, local: local,
		acted: make(map[hostComm]*commActed), window: int64(20 * time.Second)}
}

// noteActed records that comm acted in tree at ts (unix ns). Bounded like
// the pid map: when full, an arbitrary eighth is forgotten, so that a
// flood of made-up comm names costs no more than any other exec.
func (p *procTable) noteActed(host, comm, tree string, ts int64) {
	if comm == "" || tree == "" {
		return
	}
	k := hostComm{host, comm}
	if a := p.acted[k]; a != nil {
		// In place: this runs for every exec and connect.
		a.mixed = a.at >= ts-p.window && (a.mixed || a.tree != tree)
		a.tree, a.at = tree, max(ts, a.at)
		return
	}
	if len(p.acted) >= p.max {
		drop := max(p.max/8, 1)
		for k := range p.acted {
			delete(p.acted, k)
			if drop--; drop == 0 {
				break
			}
		}
	}
	p.acted[k] = &commActed{tree: tree, at: ts}
}

// commTree returns the tree comm acted in on host, if it acted within
// the window before end (unix ns) and in that tree only: a fork storm's
// burst on comm:true joins the incident of the shell tree that ran true;
// two unrelated shells acting in the same steps (comm:sh) leave the
// anomaly keyed by its entity. The window is short because the processes
// of a burst act in the burst's step, and a longer memory would hand a
// comm's anomaly to an older, unrelated process of the same name.
func (p *procTable) commTree(host, comm string, end int64) (string, bool) {
	a := p.acted[hostComm{host, comm}]
	if a == nil || a.at < end-p.window || a.mixed {
		return "", false
	}
	return a.tree, true
}

func (p *procTable) put(host string, pid uint32, e procEntry) {
	if pid == 0 {
		return
	}
	k := procKey{host, pid}
	if _, ok := p.m[k]; !ok && len(p.m) >= p.max {
		drop := max(p.max/8, 1)
		for k := range p.m {
			delete(p.m, k)
			if drop--; drop == 0 {
				break
			}
		}
	}
	p.m[k] = e
}

// exit records that pid exited at ts (unix ns): its entry no longer
// speaks for what that pid does after ts.
func (p *procTable) exit(host string, pid uint32, ts int64) {
	k := procKey{host, pid}
	if e, ok := p.m[k]; ok && e.exited == 0 {
		e.exited = ts
		p.m[k] = e
	}
}

// live returns pid's entry for something pid did at ts (unix ns): none if
// the process the entry describes had exited before then, so that a reused
// pid does not inherit another program's name and tree. A child's exec
// before its parent's exit still finds the parent, whatever order the
// batches arrive in.
func (p *procTable) live(host string, pid uint32, ts int64) (procEntry, bool) {
	e, ok := p.m[procKey{host, pid}]
	if !ok || e.exited != 0 && ts > e.exited {
		return procEntry{}, false
	}
	return e, true
}

// lookup returns the comm of pid at ts from the map, else, on the local
// host, from /proc (the parent of a process started before Vigil, e.g.
// sshd or a shell). The /proc answer is cached: the parent is likely to
// exec more children.
func (p *procTable) lookup(host string, pid uint32, ts int64) (string, bool) {
	e, ok := p.entry(host, pid, ts)
	return e.comm, ok
}

func (p *procTable) entry(host string, pid uint32, ts int64) (procEntry, bool) {
	if pid == 0 {
		return procEntry{}, false
	}
	if e, ok := p.live(host, pid, ts); ok {
		return e, true
	}
	if p.procRoot == "" || !p.isLocal(host) {
		return procEntry{}, false
	}
	comm, ok := p.procComm(pid)
	if !ok {
		return procEntry{}, false
	}
	e := procEntry{comm: comm}
	// A fork-only process (a subshell) belongs to the tree of the nearest
	// ancestor whose exec was seen.
	anc := pid
	for range maxTreeHops {
		if anc = p.parentOf(anc); anc <= 1 {
			break
		}
		if a, ok := p.live(host, anc, ts); ok {
			e.tree = a.tree
			break
		}
	}
	p.put(host, pid, e)
	return e, true
}

// isLocal reports whether host is the machine procRoot describes.
func (p *procTable) isLocal(host string) bool { return p.local == "" || host == p.local }

// procComm reads pid's comm from /proc/<pid>/comm.
func (p *procTable) procComm(pid uint32) (string, bool) {
	b, err := os.ReadFile(filepath.Join(p.procRoot, strconv.FormatUint(uint64(pid), 10), "comm"))
	if err != nil {
		return "", false
	}
	return strings.TrimSuffix(string(b), "\n"), true
}

// parentOf reads pid's parent from /proc/<pid>/stat; 0 if unknown.
func (p *procTable) parentOf(pid uint32) uint32 {
	b, err := os.ReadFile(filepath.Join(p.procRoot, strconv.FormatUint(uint64(pid), 10), "stat"))
	if err != nil {
		return 0
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses,
	// so parse after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	pp, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		return 0
	}
	return uint32(pp)
}

// execTree returns the process tree of pid, which just exec'd comm as a
// descendant of ppid, and remembers both. ppid is the nearest ancestor that
// had exec'd (exec_ancestor): the parent, or what a fork-only parent was
// forked from, so that a subshell that is already gone does not cut the
// command off its lineage. A process keeps its tree across
// execs; a child joins its parent's tree when Vigil saw the parent exec (a
// shell spawned by a web server joins the web server's); the commands of a
// shell that predates Vigil (a login, or an intruder's session) share one
// tree rooted at that shell; a child of any other process that predates
// Vigil (init, cron, sshd) roots a tree of its own. Container processes
// share their container's tree.
func (p *procTable) execTree(host, scope string, pid, ppid uint32, comm string, ts int64) string {
	tree := scope
	if scope == hostKey(host) {
		if e, ok := p.live(host, pid, ts); ok && e.tree != "" {
			tree = e.tree
		} else if e, ok := p.entry(host, ppid, ts); ok && e.tree != "" {
			tree = e.tree
		} else if ok && ppid > 1 && shells[e.comm] {
			tree = rootTree(host, ppid, e.comm)
			p.put(host, ppid, procEntry{comm: e.comm, tree: tree})
		} else {
			tree = rootTree(host, pid, comm)
		}
	}
	p.put(host, pid, procEntry{comm: comm, tree: tree})
	return tree
}

// treeOf returns the tree of a process acting now (connecting, opening a
// file): the one it was given at exec, else a tree rooted at itself.
func (p *procTable) treeOf(host, scope string, pid uint32, comm string, ts int64) string {
	if scope != hostKey(host) {
		return scope
	}
	if e, ok := p.live(host, pid, ts); ok && e.tree != "" {
		return e.tree
	}
	return rootTree(host, pid, comm)
}

// shells are the comms of interactive shells: what one runs is one
// person's (or one intruder's) session, so a shell found in /proc roots
// the tree of its commands instead of each command rooting its own.
var shells = map[string]bool{
	"bash": true, "sh": true, "dash": true, "zsh": true, "ksh": true, "mksh": true,
	"ash": true, "fish": true, "tcsh": true, "csh": true,
}

// rootTree names a tree by its root process. The host is last, as in
// entity keys.
func rootTree(host string, pid uint32, comm string) string {
	return "tree:" + comm + "/" + strconv.FormatUint(uint64(pid), 10) + "@" + host
}
