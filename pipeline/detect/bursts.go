package detect

import (
	"math"
	"strings"
	"time"

	"github.com/vigil-dev/vigil/models"
)

// DefaultScanFloor is the default Options.ScanFloor. A process that fails
// to reach 20 distinct destinations (addr:port) within one step is probing,
// not retrying: a client retrying a dead backend fails on one or a few
// destinations, however often. Classic scan heuristics count the same
// thing with thresholds of this order (Zeek's scan policy flags 15
// distinct ports from one source in five minutes); 20 in one step leaves
// room for a client whose whole pool of backends is down.
const DefaultScanFloor = 20

// burstFloor is the least a step must count, whatever the series' history,
// for a burst to alert: max(Min, PerSec × step seconds). Floors are
// absolute so that a quiet series going 0 → 3 is never news, and grow with
// the step because a longer step sums more. NoWarmup is for rare events:
// a series exists only once its first event happened, and a floor of ten
// kills or crashes in one step is news even on the series' first step.
type burstFloor struct {
	Min, PerSec float64
	NoWarmup    bool
}

// at is the floor for one step of the given length.
func (f burstFloor) at(step time.Duration) float64 { return max(f.Min, f.PerSec*step.Seconds()) }

// burstFloors are the series watched for bursts, with their floors.
// Exits and connects are left out: a fork or exec storm shows in forks and
// execs, and a scan in failed_destinations.
var burstFloors = map[string]burstFloor{
	SeriesExecs:         {Min: 50, PerSec: 10},                 // a fork-exec storm
	SeriesForks:         {Min: 50, PerSec: 10},                 // a fork storm without execs
	SeriesBytesOut:      {Min: 8 << 20, PerSec: 2 << 20},       // exfiltration: megabytes, not kilobytes
	SeriesRetransmits:   {Min: 50, PerSec: 10, NoWarmup: true}, // a retransmit storm
	SeriesAbnormalExits: {Min: 10, PerSec: 2, NoWarmup: true},  // a crash loop or mass kill
	SeriesFatalSignals:  {Min: 10, PerSec: 2, NoWarmup: true},  // a kill storm
	SeriesOOMKills:      {Min: 3, PerSec: 0.5, NoWarmup: true}, // several victims at once (each is also a categorical anomaly)
}

// defaultBurstRules returns the burst rules for a step: the floors above,
// and the scan rule, which has no warm-up because a scanner is usually a
// process never seen before.
func defaultBurstRules(step time.Duration, scanFloor int) map[string]models.BurstRule {
	rules := make(map[string]models.BurstRule, len(burstFloors)+1)
	for series, f := range burstFloors {
		r := models.BurstRule{Floor: f.at(step)}
		if f.NoWarmup {
			r.Warmup = -1
		}
		rules[series] = r
	}
	rules[SeriesFailedDests] = models.BurstRule{
		Floor:    float64(scanFloor),
		Warmup:   -1,
		Detector: "fanout/" + SeriesFailedDests,
	}
	return rules
}

// isBurst reports whether an anomaly comes from a burst or fan-out rule
// rather than the numeric detector.
func isBurst(detector string) bool {
	return strings.HasPrefix(detector, "burst/") || strings.HasPrefix(detector, "fanout/")
}

// emitSeriesAnomalies hands a step's series anomalies to the correlator,
// without the immaterial numeric ones (see material).
// One burst is one anomaly: when a process's own series shows a burst, the
// same burst on its host's and container's series of that name is dropped.
// A host or container anomaly that rose names the process that contributed
// most in the step.
func (d *Detector) emitSeriesAnomalies(s *stepAcc, found []Detection, end time.Time) {
	type hostSeries struct{ host, series string }
	var byComm map[hostSeries]bool
	for i := range found {
		f := &found[i]
		e := parseEntity(f.Anomaly.Entity)
		if e.Kind == "comm" && isBurst(f.Detector) {
			if byComm == nil {
				byComm = map[hostSeries]bool{}
			}
			byComm[hostSeries{e.Host, f.Series}] = true
		}
	}
	for _, f := range found {
		if !material(&f.Anomaly, d.o.Step, d.o.NumericMinRatio) {
			d.stats.immaterial.Add(1)
			continue
		}
		e := parseEntity(f.Anomaly.Entity)
		if e.Kind != "comm" {
			if isBurst(f.Detector) && byComm[hostSeries{e.Host, f.Series}] {
				continue
			}
			if f.Observed > f.Expected {
				var share float64
				f.Comm, share = s.topComm(f.Anomaly.Entity, f.Series)
				// On a host without containers, a rise one process
				// made most of is that process's anomaly: name it, and
				// correlate it with the process's other anomalies.
				if e.Kind == "host" && f.Comm != "" && share*2 >= f.Observed {
					f.Anomaly.Entity = commKey(e.Host, f.Comm)
					f.Anomaly.Tree = f.Anomaly.Entity
					e = parseEntity(f.Anomaly.Entity)
				}
			}
		}
		// A process's series anomaly joins the incident of the tree that
		// process just acted in, if that tree has one: a new binary and
		// the burst it makes are one incident, not one keyed by tree and
		// one by name. Otherwise it keeps its name as key, so that one
		// process name's series anomalies keep joining each other.
		if e.Kind == "comm" {
			if t, ok := d.agg.pids.commTree(e.Host, e.Name, end.UnixNano()); ok {
				b := f.Anomaly
				b.Tree = t
				if d.corr.Covers(&b, end) {
					f.Anomaly.Tree = t
				}
			}
		}
		d.anomaly(f, end)
	}
}

// materialChange is, per series, the least absolute change from the
// forecast for a numeric anomaly to be worth attention (per step; see
// material). A counter that moves by less is news to a statistician, not to
// an on-call engineer: one failed connect where none is usual, 30 KB more
// from a web server.
var materialChange = map[string]burstFloor{
	SeriesExecs:           {Min: 10, PerSec: 2},
	SeriesNewBinaries:     {Min: 5, PerSec: 1},
	SeriesForks:           {Min: 10, PerSec: 2},
	SeriesExits:           {Min: 10, PerSec: 2},
	SeriesConnectAttempts: {Min: 20, PerSec: 4},
	SeriesAccepts:         {Min: 20, PerSec: 4},
	SeriesConnectFailures: {Min: 5, PerSec: 1},
	SeriesDestinations:    {Min: 5, PerSec: 1},
	SeriesFailedDests:     {Min: 5, PerSec: 1},
	SeriesBytesOut:        {Min: 1 << 20, PerSec: 256 << 10},
	SeriesBytesIn:         {Min: 1 << 20, PerSec: 256 << 10},
	SeriesRetransmits:     {Min: 10, PerSec: 2},
	SeriesSyscalls:        {Min: 5000, PerSec: 1000},
	SeriesSyscallsFile:    {Min: 5000, PerSec: 1000},
	SeriesSyscallsMem:     {Min: 2000, PerSec: 400},
	SeriesSyscallsNet:     {Min: 1000, PerSec: 200},
	SeriesSyscallsProc:    {Min: 200, PerSec: 40},
	SeriesSensitiveOpens:  {Min: 5, PerSec: 1},
	SeriesPrivChanges:     {Min: 3},
	SeriesRunqP99:         {Min: 1000}, // µs
}

// material reports whether a numeric anomaly is a change worth reporting:
// by at least ratio (up or down) and by at least the series' material
// change. Burst anomalies are material by construction.
func material(a *models.Anomaly, step time.Duration, ratio float64) bool {
	if ratio <= 0 || isBurst(a.Detector) {
		return true
	}
	obs, exp := a.Observed, max(a.Expected, 0)
	if obs < ratio*exp && obs*ratio > exp {
		return false
	}
	if f, ok := materialChange[a.Series]; ok && math.Abs(obs-exp) < f.at(step) {
		return false
	}
	return true
}
