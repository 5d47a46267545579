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
	maxDestinationsPerStep = 4096 // distinct destinations tracked per entity per step
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

func scopeKey(host, container string) string {
	if container == "" {
		return hostKey(host)
	}
	return "container:" + container + "@" + host
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

// treeOf is the correlation key of a series' entity: the container for
// container series, else the host. Anomalies sharing it within the
// correlator's gap become one incident.
func treeOf(key string) string {
	e := parseEntity(key)
	if e.Kind == "container" {
		return key
	}
	return hostKey(e.Host)
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
}

func newStepAcc(start int64) *stepAcc {
	return &stepAcc{start: start, vals: map[models.SeriesKey]float64{}}
}

func (s *stepAcc) add(entity, series string, v float64) {
	s.vals[models.SeriesKey{Entity: entity, Series: series}] += v
}

func (s *stepAcc) addDest(entity, dest string) {
	if s.dests == nil {
		s.dests = map[models.SeriesKey]map[string]struct{}{}
	}
	k := models.SeriesKey{Entity: entity, Series: SeriesDestinations}
	set := s.dests[k]
	if set == nil {
		set = map[string]struct{}{}
		s.dests[k] = set
	}
	if len(set) < maxDestinationsPerStep {
		set[dest] = struct{}{}
	}
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
	pids      *pidComms
}

func newAggregator(step, grace int64, pids *pidComms) *aggregator {
	return &aggregator{step: step, grace: grace, open: map[int64]*stepAcc{}, pids: pids}
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
		return s, hostKey(h), scopeKey(h, container(i)), commKey(h, comm(i))
	}
	// both adds v to the host and (if different) the scope entity.
	both := func(s *stepAcc, h, sc, series string, v float64) {
		s.add(h, series, v)
		if sc != h {
			s.add(sc, series, v)
		}
	}
	switch kind {
	case collector.KindExec:
		ppid := uintColumn(rec, "ppid")
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
			e := base
			e.ev = models.Event{Time: t, Entity: sc, Tree: sc, Kind: models.KindBinary, Value: file}
			cat(e)
			if parent, ok := g.pids.lookup(uint32(ppid(i))); ok {
				e := base
				e.ev = models.Event{Time: t, Entity: sc, Tree: sc, Kind: models.KindExecPair, Value: parent + " -> " + file}
				cat(e)
			}
			g.pids.put(uint32(pid(i)), c)
		}
	case collector.KindExit:
		forks := uintColumn(rec, "forks")
		sig := uintColumn(rec, "signal")
		core := uintColumn(rec, "core_dumped")
		for i := range n {
			s, h, sc, _ := row(i)
			if s == nil {
				continue
			}
			both(s, h, sc, SeriesExits, 1)
			both(s, h, sc, SeriesForks, float64(forks(i)))
			if core(i) != 0 || abnormalSignal[sig(i)] {
				both(s, h, sc, SeriesAbnormalExits, 1)
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
				if event(i) == "connect_failed" {
					both(s, h, sc, SeriesConnectFailures, 1)
					s.add(cm, SeriesConnectFailures, 1)
					continue
				}
				dest := hostPort(daddr(i), dport(i))
				s.addDest(sc, dest)
				s.addDest(cm, dest)
				if sc != h {
					s.addDest(h, dest)
				}
				cat(catEvent{
					ev:   models.Event{Time: eventTime(ts(i)), Entity: cm, Tree: sc, Kind: models.KindDestination, Value: dest},
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
			}
		}
	case collector.KindFile:
		for i := range n {
			if s, h, sc, cm := row(i); s != nil {
				both(s, h, sc, SeriesSensitiveOpens, 1)
				s.add(cm, SeriesSensitiveOpens, 1)
			}
		}
	case collector.KindPriv:
		syscall := strColumn(rec, "syscall")
		euidBefore := uintColumn(rec, "euid_before")
		euidAfter := uintColumn(rec, "euid_after")
		errno := uintColumn(rec, "errno")
		for i := range n {
			s, h, sc, _ := row(i)
			if s == nil {
				continue
			}
			both(s, h, sc, SeriesPrivChanges, 1)
			// The value is what the baseline learns, so it must not carry
			// per-call noise (raw arguments, pids).
			v := comm(i) + " " + syscall(i) + " euid " + strconv.FormatUint(euidBefore(i), 10) + "->" + strconv.FormatUint(euidAfter(i), 10)
			if errno(i) != 0 {
				v += " failed"
			}
			cat(catEvent{
				ev:   models.Event{Time: eventTime(ts(i)), Entity: sc, Tree: sc, Kind: models.KindPrivChange, Value: v},
				host: host(i), container: container(i), comm: comm(i), pid: uint32(pid(i)),
			})
		}
	case collector.KindOOM:
		for i := range n {
			if s, h, sc, _ := row(i); s != nil {
				both(s, h, sc, SeriesOOMKills, 1)
			}
		}
	case collector.KindSignal:
		for i := range n {
			if s, h, sc, _ := row(i); s != nil {
				both(s, h, sc, SeriesFatalSignals, 1)
			}
		}
	case collector.KindSyscallCounts:
		count := uintColumn(rec, "count")
		for i := range n {
			if s, h, _, cm := row(i); s != nil {
				s.add(h, SeriesSyscalls, float64(count(i)))
				s.add(cm, SeriesSyscalls, float64(count(i)))
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

// abnormalSignal marks terminating signals that mean a crash or a kill
// rather than an ordinary shutdown (SIGTERM, SIGINT, SIGHUP, SIGPIPE).
var abnormalSignal = map[uint64]bool{4: true, 6: true, 7: true, 8: true, 9: true, 11: true, 31: true}

func hostPort(addr string, port uint64) string {
	p := strconv.FormatUint(port, 10)
	if strings.Contains(addr, ":") {
		return "[" + addr + "]:" + p
	}
	return addr + ":" + p
}

// pidComms remembers the comm of recently exec'd pids so that an exec can
// name its parent. It is bounded: when full, an arbitrary eighth is
// forgotten (pids are reused anyway, so old entries are the least useful
// but not worth an LRU list).
type pidComms struct {
	max      int
	m        map[uint32]string
	procRoot string // "" disables the /proc fallback
}

func newPIDComms(max int, procRoot string) *pidComms {
	return &pidComms{max: max, m: make(map[uint32]string), procRoot: procRoot}
}

func (p *pidComms) put(pid uint32, comm string) {
	if pid == 0 {
		return
	}
	if _, ok := p.m[pid]; !ok && len(p.m) >= p.max {
		drop := max(p.max/8, 1)
		for k := range p.m {
			delete(p.m, k)
			if drop--; drop == 0 {
				break
			}
		}
	}
	p.m[pid] = comm
}

// lookup returns pid's comm from the map, else from /proc (the parent of a
// process started before Vigil, e.g. sshd or a shell). The /proc answer is
// cached: the parent is likely to exec more children.
func (p *pidComms) lookup(pid uint32) (string, bool) {
	if pid == 0 {
		return "", false
	}
	if c, ok := p.m[pid]; ok {
		return c, true
	}
	if p.procRoot == "" {
		return "", false
	}
	b, err := os.ReadFile(filepath.Join(p.procRoot, strconv.FormatUint(uint64(pid), 10), "comm"))
	if err != nil {
		return "", false
	}
	c := strings.TrimSuffix(string(b), "\n")
	p.put(pid, c)
	return c, true
}
