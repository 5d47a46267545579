package models

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"math"
	"strings"
	"time"
)

// Kind is the kind of categorical event a novelty detector watches.
type Kind uint8

// Kinds of categorical events.
const (
	KindBinary        Kind = iota // an executable run in a container
	KindExecPair                  // parent executable -> child executable
	KindDestination               // outbound destination (addr:port) of a process
	KindPrivChange                // a privilege change (setuid, capability gain)
	KindSensitiveFile             // a process opening a sensitive path (/etc/shadow, ~/.ssh/...)
	KindOOMKill                   // the OOM killer choosing a victim
	KindAbnormalExit              // a process dying of a crash or kill signal
	numKinds
)

func (k Kind) String() string {
	switch k {
	case KindBinary:
		return "binary"
	case KindExecPair:
		return "exec_pair"
	case KindDestination:
		return "destination"
	case KindPrivChange:
		return "priv_change"
	case KindSensitiveFile:
		return "sensitive_file"
	case KindOOMKill:
		return "oom_kill"
	case KindAbnormalExit:
		return "abnormal_exit"
	}
	return "unknown"
}

// Event is one categorical observation.
type Event struct {
	Time   time.Time
	Entity string // the baseline's owner: a container for binaries, a process for destinations
	// Scope is the host or container the event happened in. For the kinds
	// learned per scope (sensitive files, OOM kills, abnormal exits) its age
	// — since its first event of any kind — sets the learning period, not
	// the baseline's: on a host watched for a week, the first process ever
	// to read /etc/shadow is news. Empty means Entity.
	Scope string
	Tree  string // process tree, carried to the anomaly for correlation
	Kind  Kind
	Value string // "/usr/bin/curl", "nginx -> /bin/sh", "10.0.0.7:4444"
	// Key, if set, is what the baseline learns instead of Value: Value
	// with the parts that differ on every run (a build directory's number)
	// masked. The anomaly still shows Value.
	Key     string
	EventID uint64
	// Escalation marks a privilege change by a non-root process that asks
	// for root (a set*id call to 0, a capset) or gets it. When it is new or
	// rare it scores 1 and its detector says "escalation", so that it, not
	// the ordinary privilege drop that often precedes it, names the incident.
	Escalation bool
	// FromShell marks an exec pair whose parent is a shell. Running
	// programs it never ran before is what a shell is for, so the pair
	// scores shellPairScore: the child's own novelty is novelty/binary's,
	// and in a session that also reads /etc/shadow, the read names the
	// incident, not "bash -> cp". A shell's own parent (a web server
	// spawning sh) is the pair that matters and is not marked.
	FromShell bool
}

// NoveltyOptions configures a Novelty detector.
type NoveltyOptions struct {
	// Learning is how long after an entity is first seen its new values
	// are learned silently. Default 1h.
	Learning time.Duration
	// HalfLife is how fast a value's weight decays; a value whose weight
	// falls below Forget is forgotten and would be novel again. Default 7 days.
	HalfLife time.Duration
	// Forget is the weight below which a value is dropped. Default 0.05
	// (about four half-lives after a single sighting).
	Forget float64
	// Rare is the weight below which a known value still counts as rare.
	// Only privilege changes, OOM kills and abnormal exits alert on
	// rarity. Default 2.
	Rare float64
	// FleetCommon is how many entities must have a value in their
	// baseline for it to be "known in the fleet": new to one entity but
	// common elsewhere scores lower. Default 3.
	FleetCommon int
	// MaxValues bounds each (entity, kind) baseline; the lightest value is
	// dropped when it is full. Default 256.
	MaxValues int
	// MaxEntities bounds the number of baselines; the least recently used
	// is dropped. Default 50,000.
	MaxEntities int
}

func (o NoveltyOptions) withDefaults() NoveltyOptions {
	if o.Learning <= 0 {
		o.Learning = time.Hour
	}
	if o.HalfLife <= 0 {
		o.HalfLife = 7 * 24 * time.Hour
	}
	if o.Forget <= 0 {
		o.Forget = 0.05
	}
	if o.Rare <= 0 {
		o.Rare = 2
	}
	if o.FleetCommon <= 0 {
		o.FleetCommon = 3
	}
	if o.MaxValues <= 0 {
		o.MaxValues = 256
	}
	if o.MaxEntities <= 0 {
		o.MaxEntities = 50_000
	}
	return o
}

// minNoveltyScore is the least score worth an anomaly: a value that is
// only slightly rare is not news.
const minNoveltyScore = 0.2

// Scores given to categorical anomalies before fleet discounting: how
// alarming each kind's novelty is on its own.
var noveltyScore = [numKinds]float64{
	KindBinary:        0.7,
	KindExecPair:      0.85,
	KindDestination:   0.6,
	KindPrivChange:    0.9,
	KindSensitiveFile: 0.75,
	KindOOMKill:       0.8,
	KindAbnormalExit:  0.5,
}

// shellPairScore is an exec pair's score when its parent is a shell
// (Event.FromShell): a medium anomaly, no more alarming than a new crash.
const shellPairScore = 0.5

// kindRare marks the kinds that alert on rarity as well as novelty: a
// privilege change, OOM kill or crash seen once last week is still news;
// one that happens every day is not.
var kindRare = [numKinds]bool{KindPrivChange: true, KindOOMKill: true, KindAbnormalExit: true}

// kindByScope marks the kinds whose learning period runs from the first
// event of their scope (host or container) rather than from their own
// baseline's first value: their baselines appear only with the first
// sensitive open, privilege change, OOM kill or crash, which is exactly
// what must not be learned silently. Only destinations learn per process
// from the process's first connect, so a newly deployed service may
// reach its backends quietly.
var kindByScope = [numKinds]bool{
	KindBinary: true, KindExecPair: true, KindPrivChange: true,
	KindSensitiveFile: true, KindOOMKill: true, KindAbnormalExit: true,
}

// kindNoLearning marks the kinds that alert even in the learning period:
// there is no "normal" OOM kill to learn in an hour.
var kindNoLearning = [numKinds]bool{KindOOMKill: true}

// Novelty flags values never seen before (or, for privilege changes,
// rarely seen) in an entity's baseline. Baselines are per entity and kind,
// decay so that what stopped happening is eventually forgotten, and learn
// silently for a while after an entity appears so a new deployment does not
// alert on everything it starts. A value already common across the fleet
// scores lower, so a fleet-wide rollout stays quiet.
//
// Novelty is not safe for concurrent use.
type Novelty struct {
	o     NoveltyOptions
	lru   *lruIndex[baselineKey]
	bases []*baseline
	// fleet counts, per kind and value hash, how many baselines hold the
	// value. It is bounded by the baselines themselves.
	fleet map[fleetKey]int32
	// scopes and scopeFirst: when each host or container (Event.Scope)
	// was first seen, bounded by MaxEntities, least recently seen dropped.
	scopes     *lruIndex[string]
	scopeFirst []int64
}

type baselineKey struct {
	Entity string
	Kind   Kind
}

type fleetKey struct {
	Kind Kind
	Hash uint64
}

// baseline is one (entity, kind)'s learned values.
type baseline struct {
	Key    baselineKey
	First  int64 // unix nanoseconds the entity was first seen
	Values map[uint64]*valueStat
}

// valueStat is a value's decayed weight; only its hash is kept, to bound
// memory whatever the values' length.
type valueStat struct {
	Weight float64
	Last   int64 // unix nanoseconds of the last sighting
}

// NewNovelty returns a detector with no baselines.
func NewNovelty(o NoveltyOptions) *Novelty {
	o = o.withDefaults()
	return &Novelty{o: o, lru: newLRUIndex[baselineKey](), fleet: make(map[fleetKey]int32), scopes: newLRUIndex[string]()}
}

// decay returns w decayed from last to now.
func (n *Novelty) decay(w float64, last, now int64) float64 {
	if now <= last {
		return w
	}
	return w * math.Exp2(-float64(now-last)/float64(n.o.HalfLife))
}

// Observe learns e and returns an anomaly if e's value is novel (or rare,
// for the kinds that alert on rarity) for its entity.
func (n *Novelty) Observe(e Event) (Anomaly, bool) {
	if e.Kind >= numKinds {
		return Anomaly{}, false
	}
	now := e.Time.UnixNano()
	scope := e.Scope
	if scope == "" {
		scope = e.Entity
	}
	since := n.scopeSeen(scope, now)
	b := n.baseline(baselineKey{e.Entity, e.Kind}, now)
	if !kindByScope[e.Kind] {
		since = b.First
	}
	key := e.Key
	if key == "" {
		key = e.Value
	}
	h := hashString(key)
	fk := fleetKey{e.Kind, h}
	learning := now-since < int64(n.o.Learning) && !kindNoLearning[e.Kind]

	v, known := b.Values[h]
	w := 0.0
	if known {
		w = n.decay(v.Weight, v.Last, now)
		if w < n.o.Forget {
			// Forgotten: treat as new, but it is still in the fleet count.
			known = false
		}
	}
	base := noveltyScore[e.Kind]
	if e.Kind == KindExecPair && e.FromShell {
		base = shellPairScore
	}
	if e.Escalation {
		base = 1
	}
	score := 0.0
	reason := ""
	switch {
	case !known:
		score = base
		reason = "novel"
		// Known to the fleet: new here, but not new to us.
		others := int(n.fleet[fk])
		if v != nil {
			others-- // this entity's own forgotten copy
		}
		if others >= n.o.FleetCommon {
			score *= 0.5
			reason = "novel_here"
		}
	case kindRare[e.Kind] && w < n.o.Rare:
		score = base * (1 - w/n.o.Rare) * 0.8
		reason = "rare"
	}
	if e.Escalation && reason != "" {
		reason = "escalation"
	}

	// Learn.
	if v == nil {
		if len(b.Values) >= n.o.MaxValues {
			n.dropLightest(b, now)
		}
		v = &valueStat{}
		b.Values[h] = v
		n.fleet[fk]++
	}
	v.Weight = w + 1
	v.Last = now

	if learning || score < minNoveltyScore {
		return Anomaly{}, false
	}
	a := Anomaly{
		Entity:   e.Entity,
		Tree:     e.Tree,
		Series:   e.Kind.String(),
		Detector: "novelty/" + e.Kind.String() + "/" + reason,
		Score:    score,
		Severity: SeverityForScore(score),
		Expected: w,
		Observed: w + 1,
		Value:    e.Value,
		Start:    e.Time,
		End:      e.Time,
	}
	if e.EventID != 0 {
		a.EventIDs = []uint64{e.EventID}
	}
	return a, true
}

// baseline returns (creating, and evicting the least recently used if
// full) the baseline for k.
func (n *Novelty) baseline(k baselineKey, now int64) *baseline {
	if i, ok := n.lru.get(k); ok {
		return n.bases[i]
	}
	if n.lru.len() >= n.o.MaxEntities {
		i := n.lru.evict()
		n.forget(n.bases[i])
		n.bases[i] = nil
	}
	i := n.lru.add(k)
	b := &baseline{Key: k, First: now, Values: make(map[uint64]*valueStat)}
	if int(i) == len(n.bases) {
		n.bases = append(n.bases, b)
	} else {
		n.bases[i] = b
	}
	return b
}

// scopeSeen records a sighting of scope and returns when it was first seen.
// Learning reports how many of the scopes whose names start with prefix
// (say "host:") are still in their learning period at now, and when the
// last of them leaves it: what an on-call engineer needs to know about a
// quiet dashboard on a new install. It does not touch recency.
func (n *Novelty) Learning(prefix string, now time.Time) (count int, until time.Time) {
	t := now.UnixNano()
	var last int64
	for k, i := range n.scopes.slots {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		if end := n.scopeFirst[i] + int64(n.o.Learning); end > t {
			count++
			last = max(last, end)
		}
	}
	if count == 0 {
		return 0, time.Time{}
	}
	return count, time.Unix(0, last).UTC()
}

func (n *Novelty) scopeSeen(scope string, now int64) int64 {
	if i, ok := n.scopes.get(scope); ok {
		return n.scopeFirst[i]
	}
	if n.scopes.len() >= n.o.MaxEntities {
		n.scopes.evict()
	}
	i := n.scopes.add(scope)
	if int(i) == len(n.scopeFirst) {
		n.scopeFirst = append(n.scopeFirst, now)
	} else {
		n.scopeFirst[i] = now
	}
	return now
}

// forget removes a baseline's values from the fleet counts.
func (n *Novelty) forget(b *baseline) {
	for h := range b.Values {
		fk := fleetKey{b.Key.Kind, h}
		if n.fleet[fk] <= 1 {
			delete(n.fleet, fk)
		} else {
			n.fleet[fk]--
		}
	}
}

func (n *Novelty) dropLightest(b *baseline, now int64) {
	var worst uint64
	best := math.Inf(1)
	for h, v := range b.Values {
		if w := n.decay(v.Weight, v.Last, now); w < best {
			best, worst = w, h
		}
	}
	delete(b.Values, worst)
	fk := fleetKey{b.Key.Kind, worst}
	if n.fleet[fk] <= 1 {
		delete(n.fleet, fk)
	} else {
		n.fleet[fk]--
	}
}

// Baselines returns the number of (entity, kind) baselines held.
func (n *Novelty) Baselines() int { return n.lru.len() }

// hashString is 64-bit FNV-1a: stable across restarts, which checkpoints
// need, and cheap. Values come from the kernel, not from a remote peer, so
// deliberate collisions are not a concern worth a keyed hash.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// noveltySnapshot is the checkpoint form of a Novelty: baselines and scopes
// from least to most recently used. Scopes is absent from checkpoints
// written before it existed; their ages are then taken from the baselines.
type noveltySnapshot struct {
	Bases  []baseline
	Scopes []scopeAge
}

type scopeAge struct {
	Scope string
	First int64
}

// MarshalBinary checkpoints every baseline.
func (n *Novelty) MarshalBinary() ([]byte, error) {
	var snap noveltySnapshot
	for _, i := range n.lru.order() {
		snap.Bases = append(snap.Bases, *n.bases[i])
	}
	for _, i := range n.scopes.order() {
		snap.Scopes = append(snap.Scopes, scopeAge{n.scopes.keys[i], n.scopeFirst[i]})
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(snap); err != nil {
		return nil, fmt.Errorf("encode novelty: %w", err)
	}
	return buf.Bytes(), nil
}

// UnmarshalBinary replaces n's baselines with a checkpoint's, keeping n's
// options.
func (n *Novelty) UnmarshalBinary(data []byte) error {
	var snap noveltySnapshot
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&snap); err != nil {
		return fmt.Errorf("decode novelty: %w: %w", ErrCheckpoint, err)
	}
	fresh := NewNovelty(n.o)
	for _, b := range snap.Bases {
		if b.Key.Kind >= numKinds {
			return fmt.Errorf("decode novelty: %w: kind %d", ErrCheckpoint, b.Key.Kind)
		}
		nb := fresh.baseline(b.Key, b.First)
		for h, v := range b.Values {
			if v == nil || len(nb.Values) >= fresh.o.MaxValues {
				continue
			}
			nb.Values[h] = &valueStat{Weight: v.Weight, Last: v.Last}
			fresh.fleet[fleetKey{b.Key.Kind, h}]++
		}
	}
	if snap.Scopes == nil {
		// An older checkpoint: a scope is as old as its oldest baseline.
		first := map[string]int64{}
		for _, b := range snap.Bases {
			if f, ok := first[b.Key.Entity]; !ok || b.First < f {
				first[b.Key.Entity] = b.First
			}
		}
		for s, f := range first {
			snap.Scopes = append(snap.Scopes, scopeAge{s, f})
		}
	}
	for _, sa := range snap.Scopes {
		if _, ok := fresh.scopes.get(sa.Scope); ok {
			continue
		}
		fresh.scopeSeen(sa.Scope, sa.First)
	}
	*n = *fresh
	return nil
}
