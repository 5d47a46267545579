package models

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// CorrelatorOptions configures a Correlator.
type CorrelatorOptions struct {
	// Gap is how long after an incident's last anomaly a related anomaly
	// still joins it. Default 10 minutes.
	Gap time.Duration
	// ResolveAfter is how long an incident must stay quiet to resolve.
	// Default 30 minutes.
	ResolveAfter time.Duration
	// FlapWindow: an anomaly for a key whose incident resolved less than
	// this long ago reopens that incident instead of opening a new one,
	// and each reopening doubles the quiet time needed to resolve again.
	// Default 2 hours.
	FlapWindow time.Duration
	// MaxEvidence bounds the distinct anomalies kept per incident; later
	// ones are counted but not stored. Default 32.
	MaxEvidence int
	// MaxIncidents bounds open plus recently resolved incidents; the
	// oldest resolved ones are forgotten first. Default 10,000.
	MaxIncidents int
}

func (o CorrelatorOptions) withDefaults() CorrelatorOptions {
	if o.Gap <= 0 {
		o.Gap = 10 * time.Minute
	}
	if o.ResolveAfter <= 0 {
		o.ResolveAfter = 30 * time.Minute
	}
	if o.FlapWindow <= 0 {
		o.FlapWindow = 2 * time.Hour
	}
	if o.MaxEvidence <= 0 {
		o.MaxEvidence = 32
	}
	if o.MaxIncidents <= 0 {
		o.MaxIncidents = 10_000
	}
	return o
}

// IncidentState is where an incident is in its life.
type IncidentState uint8

// Incident states.
const (
	IncidentOpen IncidentState = iota
	IncidentResolved
)

func (s IncidentState) String() string {
	if s == IncidentResolved {
		return "resolved"
	}
	return "open"
}

// Incident is a group of related anomalies: same entity or same process
// tree, close in time. Anomalies holds distinct evidence (one per entity,
// series, detector and value), each with its first and last time.
type Incident struct {
	ID        uint64
	State     IncidentState
	Severity  Severity
	Title     string
	Entities  []string
	Trees     []string
	Opened    time.Time
	Last      time.Time // last anomaly
	Resolved  time.Time // zero while open
	Count     int       // anomalies folded in, duplicates included
	Flaps     int       // times it reopened after resolving
	Anomalies []Anomaly
}

// UpdateKind says what happened to an incident.
type UpdateKind uint8

// Kinds of incident update.
const (
	IncidentOpened UpdateKind = iota
	IncidentUpdated
	IncidentReopened
	IncidentClosed
)

func (k UpdateKind) String() string {
	switch k {
	case IncidentOpened:
		return "opened"
	case IncidentUpdated:
		return "updated"
	case IncidentReopened:
		return "reopened"
	}
	return "resolved"
}

// IncidentUpdate is one change to publish. Incident is a copy, safe to keep.
type IncidentUpdate struct {
	Kind     UpdateKind
	Incident Incident
}

// Correlator folds anomalies into incidents. It only emits an update when
// something an on-call engineer cares about changes — an incident opens,
// gains new evidence or a higher severity, reopens, or resolves — so a burst
// of repeats becomes one incident and one notification.
//
// A Correlator is not safe for concurrent use; it is driven by one
// goroutine calling Observe and Tick with that goroutine's clock.
type Correlator struct {
	o      CorrelatorOptions
	nextID uint64
	// byKey finds the incident (open, or recently resolved for flap
	// suppression) that owns an entity or process-tree key.
	byKey map[string]*incident
	all   map[uint64]*incident
}

type incident struct {
	Incident
	keys []string // byKey entries pointing here
	peak Severity // worst anomaly severity, before escalation
}

// NewCorrelator returns an empty correlator.
func NewCorrelator(o CorrelatorOptions) *Correlator {
	return &Correlator{o: o.withDefaults(), byKey: make(map[string]*incident), all: make(map[uint64]*incident)}
}

// anomalyKeys are what an anomaly joins an incident by: its process tree
// when it has one, else its entity. Not both: an entity such as "sh" or a
// whole host is shared by unrelated trees, and joining on it would fold
// everything a host does into one incident.
func anomalyKeys(a *Anomaly) []string {
	if k := AnomalyKey(a); k != "" {
		return []string{k}
	}
	return nil
}

// AnomalyKey is the correlation key of a (see anomalyKeys); "" if it has
// neither a tree nor an entity.
func AnomalyKey(a *Anomaly) string {
	switch {
	case a.Tree != "":
		return "t\x00" + a.Tree
	case a.Entity != "":
		return "e\x00" + a.Entity
	}
	return ""
}

// Covers reports whether a, observed now, would join an incident already
// held (open, or resolved within the flap window) rather than open one.
func (c *Correlator) Covers(a *Anomaly, now time.Time) bool {
	at := a.Time()
	if at.IsZero() {
		at = now
	}
	for _, k := range anomalyKeys(a) {
		if inc := c.byKey[k]; inc != nil && c.joins(inc, at) {
			return true
		}
	}
	return false
}

// Observe folds a into an incident and returns the updates to publish
// (none for a duplicate that changes nothing).
func (c *Correlator) Observe(a Anomaly, now time.Time) []IncidentUpdate {
	keys := anomalyKeys(&a)
	at := a.Time()
	if at.IsZero() {
		at = now
	}
	var inc *incident
	for _, k := range keys {
		if cand := c.byKey[k]; cand != nil && c.joins(cand, at) {
			inc = cand
			break
		}
	}
	if inc == nil {
		c.nextID++
		inc = &incident{Incident: Incident{ID: c.nextID, State: IncidentOpen, Opened: at, Last: at}}
		c.all[inc.ID] = inc
		c.add(inc, &a, at, keys)
		c.trim()
		return []IncidentUpdate{c.update(IncidentOpened, inc)}
	}
	kind := IncidentUpdated
	if inc.State == IncidentResolved {
		kind = IncidentReopened
		inc.State = IncidentOpen
		inc.Resolved = time.Time{}
		inc.Flaps++
	}
	changed := c.add(inc, &a, at, keys)
	if kind == IncidentReopened || changed {
		return []IncidentUpdate{c.update(kind, inc)}
	}
	return nil
}

// joins reports whether an anomaly at t belongs to inc: close to an open
// incident's last anomaly, or soon after a resolved one (a flap).
func (c *Correlator) joins(inc *incident, t time.Time) bool {
	if inc.State == IncidentOpen {
		return t.Sub(inc.Last) <= c.o.Gap
	}
	return t.Sub(inc.Resolved) <= c.o.FlapWindow
}

// add folds a into inc and reports whether the incident changed in a way
// worth publishing: new distinct evidence, a new entity, or higher severity.
func (c *Correlator) add(inc *incident, a *Anomaly, at time.Time, keys []string) bool {
	inc.Count++
	if at.After(inc.Last) {
		inc.Last = at
	}
	changed := false
	for _, k := range keys {
		if !slices.Contains(inc.keys, k) {
			inc.keys = append(inc.keys, k)
			c.byKey[k] = inc
		} else if c.byKey[k] != inc {
			c.byKey[k] = inc
		}
	}
	if a.Entity != "" && !slices.Contains(inc.Entities, a.Entity) {
		inc.Entities = append(inc.Entities, a.Entity)
		changed = true
	}
	if a.Tree != "" && !slices.Contains(inc.Trees, a.Tree) {
		inc.Trees = append(inc.Trees, a.Tree)
	}
	i := slices.IndexFunc(inc.Anomalies, func(b Anomaly) bool {
		return b.Entity == a.Entity && b.Series == a.Series && b.Detector == a.Detector && b.Value == a.Value
	})
	switch {
	case i >= 0:
		// Duplicate: widen its time range and keep the strongest score.
		d := &inc.Anomalies[i]
		if a.Start.Before(d.Start) {
			d.Start = a.Start
		}
		if a.End.After(d.End) {
			d.End = a.End
		}
		if a.Score > d.Score {
			d.Score, d.Severity, d.Expected, d.Observed = a.Score, a.Severity, a.Expected, a.Observed
		}
		if len(d.EventIDs) < maxEventIDs {
			d.EventIDs = append(d.EventIDs, a.EventIDs[:min(len(a.EventIDs), maxEventIDs-len(d.EventIDs))]...)
		}
	case len(inc.Anomalies) < c.o.MaxEvidence:
		b := *a
		b.EventIDs = slices.Clone(a.EventIDs[:min(len(a.EventIDs), maxEventIDs)])
		inc.Anomalies = append(inc.Anomalies, b)
		changed = true
	}
	inc.peak = max(inc.peak, a.Severity)
	if sev := c.severity(inc); sev > inc.Severity {
		inc.Severity = sev
		changed = true
	}
	if changed || inc.Title == "" {
		inc.Title = title(inc)
	}
	return changed
}

// severity is the worst anomaly's, one level higher when the incident
// spreads over several entities or many distinct signals.
func (c *Correlator) severity(inc *incident) Severity {
	s := inc.peak
	if (len(inc.Entities) >= 3 || len(inc.Anomalies) >= 10) && s < SeverityCritical {
		s++
	}
	return s
}

func title(inc *incident) string {
	if len(inc.Anomalies) == 0 {
		return ""
	}
	best := inc.Anomalies[0]
	for _, a := range inc.Anomalies[1:] {
		if a.Score > best.Score {
			best = a
		}
	}
	t := describe(&best)
	if n := len(inc.Anomalies) - 1; n > 0 {
		t += " (+" + itoa(n) + " related)"
	}
	return t
}

// describe says in words what an anomaly is, for an incident title an
// on-call engineer reads first: what happened, where, and the value.
func describe(a *Anomaly) string {
	family, kind, _ := strings.Cut(a.Detector, "/")
	kind, _, _ = strings.Cut(kind, "/")
	var what string
	switch {
	case family == "novelty" && kind == "exec_pair":
		what = "New parent → child exec"
	case family == "novelty" && kind == "binary":
		what = "New binary run"
	case family == "novelty" && kind == "destination":
		what = "New outbound destination"
	case family == "novelty" && kind == "priv_change" && strings.HasSuffix(a.Detector, "/escalation"):
		what = "Privilege escalation attempt"
	case family == "novelty" && kind == "priv_change":
		what = "Rare privilege change"
	case family == "novelty" && kind == "sensitive_file":
		what = "Unusual sensitive file access"
	case family == "novelty" && kind == "oom_kill":
		what = "OOM kill"
	case family == "novelty" && kind == "abnormal_exit":
		what = "Unusual crash or kill"
	case family == "burst":
		what = "Burst of " + a.Series
	case family == "fanout":
		what = "Connection fan-out (possible scan)"
	case family == "numeric" && a.Observed >= a.Expected:
		what = "Unusually high " + a.Series
	case family == "numeric":
		what = "Unusually low " + a.Series
	default:
		what = a.Detector
	}
	t := what + " on " + a.Entity
	if a.Value != "" {
		t += ": " + a.Value
	} else {
		switch family {
		case "numeric":
			t += " (" + FormatQuantity(a.Series, a.Observed) + ", expected " + FormatQuantity(a.Series, a.Expected) + ")"
		case "burst":
			t += " (" + FormatQuantity(a.Series, a.Observed) + " in one step, usual peak " + FormatQuantity(a.Series, a.Expected) + ")"
		case "fanout":
			t += " (" + FormatValue(a.Observed) + " distinct failed destinations in one step, usual peak " + FormatValue(a.Expected) + ")"
		}
	}
	return t
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// Tick resolves incidents that have been quiet long enough and forgets
// resolved ones past the flap window.
func (c *Correlator) Tick(now time.Time) []IncidentUpdate {
	var out []IncidentUpdate
	for _, inc := range c.all {
		switch inc.State {
		case IncidentOpen:
			quiet := c.o.ResolveAfter << min(inc.Flaps, 4)
			if now.Sub(inc.Last) >= quiet {
				inc.State = IncidentResolved
				inc.Resolved = now
				out = append(out, c.update(IncidentClosed, inc))
			}
		case IncidentResolved:
			if now.Sub(inc.Resolved) > c.o.FlapWindow {
				c.drop(inc)
			}
		}
	}
	slices.SortFunc(out, func(a, b IncidentUpdate) int { return cmp.Compare(a.Incident.ID, b.Incident.ID) })
	return out
}

// Open returns copies of the open incidents, oldest first.
func (c *Correlator) Open() []Incident {
	var out []Incident
	for _, inc := range c.all {
		if inc.State == IncidentOpen {
			out = append(out, snapshot(inc))
		}
	}
	slices.SortFunc(out, func(a, b Incident) int { return a.Opened.Compare(b.Opened) })
	return out
}

// Has reports whether the correlator still holds incident id, open or
// recently resolved (one it would reopen).
func (c *Correlator) Has(id uint64) bool { return c.all[id] != nil }

func (c *Correlator) drop(inc *incident) {
	for _, k := range inc.keys {
		if c.byKey[k] == inc {
			delete(c.byKey, k)
		}
	}
	delete(c.all, inc.ID)
}

// trim forgets the oldest resolved incidents beyond MaxIncidents, then the
// oldest open ones if it must.
func (c *Correlator) trim() {
	if len(c.all) <= c.o.MaxIncidents {
		return
	}
	list := make([]*incident, 0, len(c.all))
	for _, inc := range c.all {
		list = append(list, inc)
	}
	slices.SortFunc(list, func(a, b *incident) int {
		if a.State != b.State {
			return int(b.State) - int(a.State) // resolved first
		}
		return a.Last.Compare(b.Last)
	})
	for _, inc := range list[:len(list)-c.o.MaxIncidents] {
		c.drop(inc)
	}
}

func (c *Correlator) update(k UpdateKind, inc *incident) IncidentUpdate {
	return IncidentUpdate{Kind: k, Incident: snapshot(inc)}
}

func snapshot(inc *incident) Incident {
	s := inc.Incident
	s.Entities = slices.Clone(s.Entities)
	s.Trees = slices.Clone(s.Trees)
	s.Anomalies = slices.Clone(s.Anomalies)
	for i := range s.Anomalies {
		s.Anomalies[i].EventIDs = slices.Clone(s.Anomalies[i].EventIDs)
	}
	return s
}
