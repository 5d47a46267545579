// Package detect is the pipeline stage that turns telemetry batches into
// detections: per-entity series at a fixed step fed to the numeric models,
// categorical events fed to the novelty models, and the resulting anomalies
// folded into incidents by the correlator. Everything it finds goes to an
// Output (Sink writes it to ClickHouse, publishes it live and has incidents
// summarized); the stage itself does no blocking I/O.
package detect

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/vigil-dev/vigil/collector"
	"github.com/vigil-dev/vigil/models"
	"github.com/vigil-dev/vigil/pipeline"
)

// Output receives what the detector finds. Every method must return
// quickly (queue or drop): it is called on the pipeline's consumer
// goroutine.
type Output interface {
	// Points gets the series values of one closed step.
	Points(ts time.Time, pts []Point)
	// Anomaly gets each anomaly, after correlation (IncidentID is set).
	Anomaly(d Detection)
	// Incident gets each incident change the correlator reports.
	Incident(e IncidentEvent)
}

// Point is one series value of a step.
type Point struct {
	Entity Entity
	Series string
	Value  float64
}

// Detection is an anomaly with the identity and context needed to store
// and show it.
type Detection struct {
	models.Anomaly
	ID         string // UUID
	IncidentID string // UUID, "" if the correlator dropped it
	Entity     Entity
	// Container, Comm and PID are known for categorical anomalies (from the
	// event's row). Series anomalies have their entity; a host or container
	// series that rose also names, in Comm, the process that contributed
	// most in the step.
	Container string
	Comm      string
	PID       uint32
}

// IncidentEvent is one change to an incident.
type IncidentEvent struct {
	ID         string // UUID
	Kind       models.UpdateKind
	Incident   models.Incident
	Hosts      []string
	Entities   []string // "kind:name", as vigil.incidents.entities
	AnomalyIDs []string
}

// Options configures a Detector. Zero values mean defaults.
type Options struct {
	// Step is the series resolution. Default 10s.
	Step time.Duration
	// Grace is how long after a step's end (in event time) late rows are
	// still counted in it. Default Step/2.
	Grace time.Duration
	// Learning is how long a new entity's categorical values are learned
	// silently. Default 1h. Overrides Novelty.Learning.
	Learning time.Duration
	// Bank, Novelty and Correlator configure the models.
	Bank       models.BankOptions
	Novelty    models.NoveltyOptions
	Correlator models.CorrelatorOptions
	// MaxSeries bounds the series that are zero-filled and scored each
	// step; beyond it the least recently active are dropped. Default 20,000.
	MaxSeries int
	// IdleSteps is how many steps without events a series is kept (and
	// fed zeros) before it is dropped. Default 360 (an hour at 10s).
	IdleSteps int
	// ScanFloor is the number of distinct destinations (addr:port) one
	// process must fail to connect to in one step for a fan-out (scan)
	// anomaly, whatever its history; with history it must also be several
	// times its own usual peak. Default DefaultScanFloor (20), see there.
	// Ignored when Bank.Burst.Rules is set.
	ScanFloor int
	// NumericMinRatio: a numeric anomaly on a series is reported only when
	// the value is at least this many times the forecast (or at most its
	// inverse) and differs from it by the series' material change (see
	// materialChange): the numeric detector measures surprise against a
	// series' own noise, and on a steady host a quiet counter's 0 → 1 or a
	// busy one's +30% is surprising but not news. Default 2; negative
	// reports every numeric alert.
	NumericMinRatio float64
	// MaxPIDs bounds the pid → comm map used to name exec parents.
	// Default 65,536.
	MaxPIDs int
	// ProcRoot is where parent comms are looked up when the map does not
	// know them. Default "/proc"; "-" disables the fallback (tests).
	ProcRoot string
	// LocalHost is the host name of the machine ProcRoot belongs to; rows
	// of other hosts (remote collectors) never consult it. Empty: every
	// host is this one.
	LocalHost string
	// Own reports whether a process of the local host is part of Vigil
	// itself: its embedded ClickHouse, a child process the probes' own
	// filter does not cover. Its rows stay out of the series (its load
	// follows whoever queries it, and would page someone for a
	// dashboard refresh), while its events are still judged: a new
	// binary, destination or sensitive file read by the database is
	// news. Nil: no process is.
	Own func(pid uint32) bool
	// StateDir, if set, is where model checkpoints are written when Run
	// ends (and every CheckpointEvery while it runs) and read from by New.
	StateDir string
	// CheckpointEvery bounds what a crash loses. Default 10 minutes.
	CheckpointEvery time.Duration
	// Output receives detections. Nil discards them.
	Output Output
	Logger *slog.Logger
	// Now is the wall clock, used to advance event time through quiet
	// periods. Default time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Step <= 0 {
		o.Step = 10 * time.Second
	}
	if o.Grace <= 0 {
		o.Grace = o.Step / 2
	}
	if o.Learning > 0 {
		o.Novelty.Learning = o.Learning
	}
	if o.MaxSeries <= 0 {
		o.MaxSeries = 20_000
	}
	if o.IdleSteps <= 0 {
		o.IdleSteps = 360
	}
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = 10 * time.Minute
	}
	if o.NumericMinRatio == 0 {
		o.NumericMinRatio = 2
	}
	if o.ScanFloor <= 0 {
		o.ScanFloor = DefaultScanFloor
	}
	if o.Bank.Burst.Rules == nil {
		o.Bank.Burst.Rules = defaultBurstRules(o.Step, o.ScanFloor)
	}
	if o.MaxPIDs <= 0 {
		o.MaxPIDs = 65_536
	}
	switch o.ProcRoot {
	case "":
		o.ProcRoot = "/proc"
	case "-":
		o.ProcRoot = ""
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Correlator.FlapWindow <= 0 {
		o.Correlator.FlapWindow = 2 * time.Hour
	}
	return o
}

// Detector is the detection stage, a pipeline.Consumer. All of its state
// is owned by the goroutine running Run; only the counters are shared.
type Detector struct {
	o    Options
	out  Output
	agg  *aggregator
	bank *models.Bank
	nov  *models.Novelty
	corr *models.Correlator

	// known holds the series fed every step (zero when they had no
	// events) and the step index they were last active in.
	known map[models.SeriesKey]int64

	// incs maps the correlator's ids to ours and what we add to them.
	// It and byKey are checkpointed with the correlator (checkpoint.go),
	// so that an incident keeps its UUID across a restart.
	incs map[uint64]*incState
	// byKey finds the incident an anomaly joined when the correlator
	// reports no change (a repeat): the same tree/entity keys it uses.
	byKey map[string]uint64

	// offset is event time minus wall time at the last watermark advance,
	// so quiet periods still close steps.
	offset   time.Duration
	haveTime bool

	stats counters
}

type incState struct {
	id         string
	anomalyIDs []string
	resolved   time.Time // event time it resolved, zero while open
}

// maxAnomalyIDs bounds the anomaly ids listed on one incident row; the
// anomalies themselves carry incident_id, so none is lost from queries.
const maxAnomalyIDs = 256

type counters struct {
	batches, rows, late, points, anomalies, incidents, droppedSeries, immaterial atomic.Uint64
	// As of the last closed step: series fed, hosts and containers still
	// learning and when the last of each stops (Unix ns, 0 when none).
	series, hostsLearning, learningUntil, containersLearning, containersUntil atomic.Int64
}

// Stats is a snapshot of the detector's counters.
type Stats struct {
	Batches       uint64 `json:"batches"`
	Rows          uint64 `json:"rows"`
	LateRows      uint64 `json:"late_rows"`
	Points        uint64 `json:"points"`
	Anomalies     uint64 `json:"anomalies"`
	Incidents     uint64 `json:"incident_updates"`
	DroppedSeries uint64 `json:"dropped_series"`
	// Immaterial counts numeric alerts not reported (see NumericMinRatio).
	Immaterial uint64 `json:"immaterial_numeric"`
	// Series were fed at the last closed step.
	Series int `json:"series"`
	// HostsLearning are hosts whose new binaries, exec pairs and other
	// categorical values are still learned silently (Options.Learning);
	// LearningUntil is when the last of them starts alerting on them.
	HostsLearning int       `json:"hosts_learning"`
	LearningUntil time.Time `json:"learning_until,omitzero"`
	// ContainersLearning are containers first seen less than a learning
	// period ago, learned silently like a new host; ContainersUntil is
	// when the last of them starts alerting.
	ContainersLearning int       `json:"containers_learning"`
	ContainersUntil    time.Time `json:"containers_learning_until,omitzero"`
}

// New returns a Detector, restoring the models from Options.StateDir when a
// checkpoint is there (a missing or unreadable one is logged and the
// models start empty: detection must not be held hostage by a bad file).
func New(o Options) *Detector {
	o = o.withDefaults()
	d := &Detector{
		o:     o,
		out:   o.Output,
		agg:   newAggregator(int64(o.Step), int64(o.Grace), newProcTable(o.MaxPIDs, o.ProcRoot, o.LocalHost), o.Own),
		bank:  models.NewBank(o.Bank),
		nov:   models.NewNovelty(o.Novelty),
		corr:  models.NewCorrelator(o.Correlator),
		known: map[models.SeriesKey]int64{},
		incs:  map[uint64]*incState{},
		byKey: map[string]uint64{},
	}
	if d.out == nil {
		d.out = discard{}
	}
	if o.StateDir != "" {
		if err := d.restore(); err != nil {
			o.Logger.Warn("detector checkpoint not restored; models start empty", "err", err)
		}
	}
	return d
}

// Stats returns the counters.
func (d *Detector) Stats() Stats {
	st := Stats{
		Batches: d.stats.batches.Load(), Rows: d.stats.rows.Load(), LateRows: d.stats.late.Load(),
		Points: d.stats.points.Load(), Anomalies: d.stats.anomalies.Load(), Incidents: d.stats.incidents.Load(),
		DroppedSeries: d.stats.droppedSeries.Load(), Immaterial: d.stats.immaterial.Load(),
		Series: int(d.stats.series.Load()), HostsLearning: int(d.stats.hostsLearning.Load()),
		ContainersLearning: int(d.stats.containersLearning.Load()),
	}
	if ns := d.stats.learningUntil.Load(); ns != 0 {
		st.LearningUntil = time.Unix(0, ns).UTC()
	}
	if ns := d.stats.containersUntil.Load(); ns != 0 {
		st.ContainersUntil = time.Unix(0, ns).UTC()
	}
	return st
}

// storeLearning counts the novelty scopes under prefix still learning at
// now and when the last of them stops (0 when none).
func (d *Detector) storeLearning(prefix string, now time.Time, count, until *atomic.Int64) {
	n, last := d.nov.Learning(prefix, now)
	count.Store(int64(n))
	if n == 0 {
		until.Store(0)
	} else {
		until.Store(last.UnixNano())
	}
}

// Run implements pipeline.Consumer. When in closes it closes the steps
// that are complete, resolves nothing early, and checkpoints the models.
func (d *Detector) Run(ctx context.Context, in <-chan collector.Batch) error {
	tick := time.NewTicker(min(d.o.Step/2, time.Second))
	defer tick.Stop()
	defer d.checkpoint()
	// Periodic checkpoints run on this goroutine: a few milliseconds every
	// few minutes, and the models are never shared.
	ckpt := time.NewTicker(d.o.CheckpointEvery)
	defer ckpt.Stop()
	for {
		select {
		case b, ok := <-in:
			if !ok {
				return nil
			}
			d.consume(b)
		case <-tick.C:
			d.advance(d.eventNow())
		case <-ckpt.C:
			d.checkpoint()
		case <-ctx.Done():
			// The drain deadline passed: stop; the pipeline releases
			// whatever is still queued.
			return nil
		}
	}
}

func (d *Detector) consume(b collector.Batch) {
	defer b.Record.Release()
	d.stats.batches.Add(1)
	d.stats.rows.Add(uint64(b.Record.NumRows()))
	before := d.agg.watermark
	late := d.agg.late
	d.agg.add(b.Kind, b.Record, d.categorical)
	d.stats.late.Add(d.agg.late - late)
	if d.agg.watermark > before {
		d.offset = time.Unix(0, d.agg.watermark).Sub(d.o.Now())
		d.haveTime = true
		d.advance(time.Unix(0, d.agg.watermark))
	}
}

// eventNow estimates the current event time from the wall clock.
func (d *Detector) eventNow() time.Time {
	if !d.haveTime {
		return time.Time{}
	}
	return d.o.Now().Add(d.offset)
}

// maxGapSteps bounds the zero steps replayed after a silence.
const maxGapSteps = 60

// advance closes due steps, scores them and ticks the correlator.
func (d *Detector) advance(now time.Time) {
	if now.IsZero() {
		return
	}
	for _, s := range d.agg.due(now.UnixNano(), maxGapSteps) {
		d.closeStep(s)
	}
	for _, u := range d.corr.Tick(now) {
		d.incident(u, now)
	}
	d.forgetIncidents(now)
}

func (d *Detector) closeStep(s *stepAcc) {
	idx := s.start / int64(d.o.Step)
	end := time.Unix(0, s.start+int64(d.o.Step)).UTC()
	vals := s.finish()
	for k := range vals {
		if _, ok := d.known[k]; !ok && len(d.known) >= d.o.MaxSeries {
			d.evictSeries(idx)
		}
		d.known[k] = idx
	}
	pts := make([]Point, 0, len(d.known))
	var found []Detection
	for k, last := range d.known {
		v, ok := vals[k]
		if !ok {
			if gauges[k.Series] {
				continue
			}
			if idx-last > int64(d.o.IdleSteps) {
				delete(d.known, k)
				continue
			}
		}
		pts = append(pts, Point{Entity: parseEntity(k.Entity), Series: k.Series, Value: v})
		if a, ok := d.bank.Observe(k, end, v); ok {
			// A series correlates by its own entity (a container, a
			// process name or the host).
			a.Tree = k.Entity
			a.Start = time.Unix(0, s.start).UTC()
			found = append(found, Detection{Anomaly: a})
		}
	}
	d.emitSeriesAnomalies(s, found, end)
	d.bank.EvictIdle(end.Add(-time.Duration(d.o.IdleSteps+1) * d.o.Step))
	d.stats.points.Add(uint64(len(pts)))
	d.stats.series.Store(int64(len(pts)))
	d.storeLearning(hostKey(""), end, &d.stats.hostsLearning, &d.stats.learningUntil) // every host's key starts so
	d.storeLearning(containerPrefix, end, &d.stats.containersLearning, &d.stats.containersUntil)
	if len(pts) > 0 {
		d.out.Points(end, pts)
	}
}

// evictSeries makes room in known: the least recently active tenth goes.
func (d *Detector) evictSeries(now int64) {
	type kv struct {
		k    models.SeriesKey
		last int64
	}
	all := make([]kv, 0, len(d.known))
	for k, last := range d.known {
		all = append(all, kv{k, last})
	}
	slices.SortFunc(all, func(a, b kv) int { return int(a.last - b.last) })
	n := max(len(all)/10, 1)
	for _, e := range all[:n] {
		delete(d.known, e.k)
	}
	d.stats.droppedSeries.Add(uint64(n))
}

func (d *Detector) categorical(e catEvent) {
	// Correlate by the acting process's tree, not by the baseline's
	// owner: on a host without containers that owner is the whole host,
	// and every anomaly on it would fold into one incident.
	e.ev.Tree = d.agg.pids.treeOf(e.host, scopeKey(e.host, e.container), e.pid, e.comm, e.ev.Time.UnixNano())
	if k := e.ev.Kind; k != models.KindBinary && k != models.KindExecPair {
		// (an exec was noted with its tree when it was aggregated)
		d.agg.pids.noteActed(e.host, e.comm, e.ev.Tree, e.ev.Time.UnixNano())
	}
	if e.ev.Scope == "" {
		// Every event dates its host or container, whose age sets the
		// learning period of the kinds learned per scope. Binaries, exec
		// pairs and privilege changes are owned by their scope already.
		switch e.ev.Kind {
		case models.KindBinary, models.KindExecPair, models.KindPrivChange:
			e.ev.Scope = e.ev.Entity
		default:
			e.ev.Scope = scopeKey(e.host, e.container)
		}
	}
	a, ok := d.nov.Observe(e.ev)
	if !ok {
		return
	}
	if e.ev.Kind == models.KindBinary {
		d.countNewBinary(e)
	}
	// Outside containers the anomaly names the process that acted rather
	// than the whole host (which stays the entity's host); in a container
	// the container is the entity and the comm is in the evidence.
	if e.container == "" && e.comm != "" {
		a.Entity = commKey(e.host, e.comm)
	}
	d.anomaly(Detection{Anomaly: a, Container: e.container, Comm: e.comm, PID: e.pid}, e.ev.Time)
}

// countNewBinary adds an exec of a binary new to its host or container
// (one novelty/binary reported) to the new_binaries series of the host,
// the container and the comm: a toolkit unpacked and run shows as one
// step's rise on a chart and to the numeric detector, besides its
// anomalies. While a scope learns nothing is new, and the series reads 0.
func (d *Detector) countNewBinary(e catEvent) {
	s := d.agg.acc(e.ev.Time.UnixNano())
	if s == nil {
		return
	}
	h, sc := hostKey(e.host), scopeKey(e.host, e.container)
	s.add(h, SeriesNewBinaries, 1)
	if sc != h {
		s.add(sc, SeriesNewBinaries, 1)
	}
	if e.comm != "" {
		s.add(commKey(e.host, e.comm), SeriesNewBinaries, 1)
	}
}

// anomaly correlates a and hands it and any incident change to the output.
func (d *Detector) anomaly(det Detection, now time.Time) {
	det.ID = newUUID()
	det.Entity = parseEntity(det.Anomaly.Entity)
	if det.Entity.Kind == "container" && det.Container == "" {
		det.Container = det.Entity.Name
	}
	if det.Entity.Kind == "comm" && det.Comm == "" {
		det.Comm = det.Entity.Name
	}
	d.stats.anomalies.Add(1)
	updates := d.corr.Observe(det.Anomaly, now)
	var st *incState
	if len(updates) > 0 {
		st = d.state(updates[0].Incident.ID)
	} else if id, ok := d.lookupIncident(&det.Anomaly); ok {
		st = d.incs[id]
	}
	if st != nil {
		det.IncidentID = st.id
		if len(st.anomalyIDs) < maxAnomalyIDs {
			st.anomalyIDs = append(st.anomalyIDs, det.ID)
		}
	}
	d.out.Anomaly(det)
	for _, u := range updates {
		d.incident(u, now)
	}
}

func (d *Detector) lookupIncident(a *models.Anomaly) (uint64, bool) {
	if id, ok := d.byKey[models.AnomalyKey(a)]; ok {
		if _, live := d.incs[id]; live {
			return id, true
		}
	}
	return 0, false
}

func (d *Detector) state(id uint64) *incState {
	st := d.incs[id]
	if st == nil {
		st = &incState{id: newUUID()}
		d.incs[id] = st
	}
	return st
}

func (d *Detector) incident(u models.IncidentUpdate, now time.Time) {
	inc := &u.Incident
	st := d.state(inc.ID)
	for _, t := range inc.Trees {
		d.byKey["t\x00"+t] = inc.ID
	}
	for _, e := range inc.Entities {
		d.byKey["e\x00"+e] = inc.ID
	}
	if u.Kind == models.IncidentClosed {
		st.resolved = now
	} else {
		st.resolved = time.Time{}
	}
	ev := IncidentEvent{ID: st.id, Kind: u.Kind, Incident: u.Incident, AnomalyIDs: slices.Clone(st.anomalyIDs)}
	for _, key := range inc.Entities {
		e := parseEntity(key)
		if e.Host != "" && !slices.Contains(ev.Hosts, e.Host) {
			ev.Hosts = append(ev.Hosts, e.Host)
		}
		if s := e.Kind + ":" + e.Name; !slices.Contains(ev.Entities, s) {
			ev.Entities = append(ev.Entities, s)
		}
	}
	d.stats.incidents.Add(1)
	d.out.Incident(ev)
}

// forgetIncidents drops ids of incidents resolved longer ago than the
// correlator remembers them (it would open a new one by then).
func (d *Detector) forgetIncidents(now time.Time) {
	for id, st := range d.incs {
		// Also forget incidents the correlator trimmed (MaxIncidents),
		// open ones included, so incs stays bounded by it.
		if !st.resolved.IsZero() && now.Sub(st.resolved) > d.o.Correlator.FlapWindow || !d.corr.Has(id) {
			delete(d.incs, id)
		}
	}
	for k, id := range d.byKey {
		if _, ok := d.incs[id]; !ok {
			delete(d.byKey, k)
		}
	}
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand documents it)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

type discard struct{}

func (discard) Points(time.Time, []Point) {}
func (discard) Anomaly(Detection)         {}
func (discard) Incident(IncidentEvent)    {}

var _ pipeline.Consumer = (*Detector)(nil)
