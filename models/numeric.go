package models

import (
	"math"
	"time"
)

// Cause names the view of the numeric detector that found a point most
// surprising.
type Cause uint8

// Causes, one per feature of the numeric detector.
const (
	CauseNone     Cause = iota
	CauseSpike          // the point is far from the one-step forecast
	CauseShift          // the short-term mean moved away from the long-term level
	CauseVariance       // the series became much noisier or much calmer
	CauseFlatline       // the value has been stuck longer than ever before
)

func (c Cause) String() string {
	switch c {
	case CauseSpike:
		return "spike"
	case CauseShift:
		return "level_shift"
	case CauseVariance:
		return "variance_change"
	case CauseFlatline:
		return "flatline"
	}
	return "none"
}

// DetectorOptions configures the numeric detector. The zero value of a field
// means its default; DefaultDetectorOptions shows them.
type DetectorOptions struct {
	// Warmup is how many points are scored 0 while the baselines and tail
	// estimates settle. It bounds the learning period.
	Warmup int
	// AlertScore is the score at which the detector alerts, which starts a
	// hold. Bank.Observe emits an Anomaly exactly when it alerts.
	AlertScore float64
	// Hold is how many points after an alert have their score multiplied
	// by HoldDamp, so that one event raises one alert rather than a burst.
	Hold int
	// HoldDamp is the factor applied to scores during a hold, in (0,1].
	HoldDamp float64
	// TailQuantile is the quantile above which each feature's tail is
	// modelled as exponential (a generalised Pareto tail with shape 0).
	TailQuantile float64
	// MaxSurprise is the surprise, in nats (-ln of the tail probability),
	// that maps to score 1. Scores are linear in surprise below it.
	MaxSurprise float64
}

// DefaultDetectorOptions returns the configuration used everywhere, NAB
// included: there is no per-series tuning.
func DefaultDetectorOptions() DetectorOptions {
	return DetectorOptions{
		Warmup:       50,
		AlertScore:   0.34,
		Hold:         150,
		HoldDamp:     0.3,
		TailQuantile: 0.98,
		MaxSurprise:  20,
	}
}

func (o DetectorOptions) withDefaults() DetectorOptions {
	d := DefaultDetectorOptions()
	if o.Warmup <= 0 {
		o.Warmup = d.Warmup
	}
	if o.AlertScore <= 0 || o.AlertScore > 1 {
		o.AlertScore = d.AlertScore
	}
	if o.Hold < 0 {
		o.Hold = 0
	} else if o.Hold == 0 {
		o.Hold = d.Hold
	}
	if o.HoldDamp <= 0 || o.HoldDamp > 1 {
		o.HoldDamp = d.HoldDamp
	}
	if o.TailQuantile <= 0.5 || o.TailQuantile >= 1 {
		o.TailQuantile = d.TailQuantile
	}
	if o.MaxSurprise <= 0 {
		o.MaxSurprise = d.MaxSurprise
	}
	return o
}

// params is DetectorOptions turned into the constants the hot loop uses. It
// is shared by every detector built from the same options (a Bank holds one)
// so a detector costs one pointer, not a copy of its configuration.
type params struct {
	opts     DetectorOptions
	tailBase float64 // ln(1/(1-TailQuantile)): surprise at the tail threshold
	tailUp   float64 // quantile tracker step up, in units of the tail scale
	tailDown float64 // quantile tracker step down
	invMax   float64 // 1/MaxSurprise
	youth    float64 // youthSurprise; a field so that tests can switch it off
}

func newParams(o DetectorOptions) *params {
	o = o.withDefaults()
	const eta = 0.05 // quantile tracker learning rate, in tail scales
	return &params{
		opts:     o,
		tailBase: math.Log(1 / (1 - o.TailQuantile)),
		tailUp:   eta * o.TailQuantile,
		tailDown: eta * (1 - o.TailQuantile),
		invMax:   1 / o.MaxSurprise,
		youth:    youthSurprise,
	}
}

// Smoothing constants, per point unless noted. Time constants are in points
// because the series' own cadence is what the statistics are about; only the
// seasonal profile is indexed by wall-clock time. They were chosen on NAB's
// development split (see bench/nab) and are the same for every series.
const (
	alphaFast   = 0.5   // one-step forecast (EWMA)
	alphaMid    = 0.05  // short-term mean, ~20 points
	alphaSlow   = 0.005 // long-term level, ~200 points
	alphaErr    = 0.01  // scale of forecast errors, ~100 points
	alphaErrF   = 0.05  // short-term scale of forecast errors
	alphaDev    = 0.005 // scale of deviations from the long-term level
	alphaSeason = 0.1   // per-visit update of a seasonal bucket
	alphaTail   = 0.1   // tail scale, per exceedance

	// seasonGate: the deseasonalised view scores only when its forecast
	// error is this much smaller than the raw view's.
	seasonGate = 0.9

	// A value beyond the series' decayed record high or low (by a margin)
	// adds extremeBonus nats of evidence: a large deviation that is also a
	// new extreme is much rarer than either, and most real incidents take
	// a series somewhere it has not been for a long time, while noise
	// mostly stays inside the range it has already shown. Records relax
	// towards the long-term level over about extremeHorizon points, so a
	// level the series left long ago becomes new again.
	extremeBonus   = 5
	extremeHorizon = 30000
	extremeMargin  = 0.01 // of the recorded range, so a repeat of the record is not a new one

	// spikeWeight discounts the one-step (spike) surprise against the
	// shift and variance ones: single-point deviations that are not new
	// extremes are mostly noise, and they outnumber every other cause of
	// false alarms.
	spikeWeight = 0.9

	// A run of identical values longer, by flatRatio, than any run the
	// series has completed before is a flatline: a stuck sensor, a
	// process that went quiet. It scores flatSurprise nats once, when the
	// run crosses that length, and needs at least flatMinRun points so
	// that coarse values repeating by chance do not count. The record says
	// little until the series has shown flatHistory times the run's length
	// (an event stream idle between rare bursts has few runs to compare
	// with when its first long gap comes), so before that no run counts.
	flatRatio    = 1.1
	flatMinRun   = 10
	flatHistory  = 5
	flatSurprise = 12

	// A young series' tail models rest on few exceedances, so its
	// surprises are discounted by youthSurprise nats at first, fading
	// linearly to nothing at youthPoints points. This keeps short series
	// from alerting on what a few hundred points could not yet show to be
	// normal; on NAB's split it changes nothing at full rate (files are
	// past it by the end of probation) and lifts the score of the same
	// files sampled 2 to 4 times more coarsely (see bench/nab).
	youthSurprise = 3
	youthPoints   = 600

	// Below AlertScore the score is reported as a ladder of alert levels,
	// ladderLevels of them ladderStep apart, each with its own hold: a
	// point scores the highest level at which a detector alerting there
	// would have alerted on it (its raw score when that is the level just
	// under it), and raw*HoldDamp where every level it reaches is holding.
	// Thresholding the score anywhere on the ladder then keeps one alert
	// per event, as the alert level does, instead of every point of a
	// cluster of near misses; the live alert is unchanged. It matters for
	// short and coarsely sampled series, whose best threshold lies below
	// AlertScore (see bench/nab).
	ladderLevels = 9
	ladderStep   = 0.01

	seasonBuckets = 144 // ten-minute buckets over a day
	weekBuckets   = 168 // hourly buckets over a week
	weekBucket    = 7 * 86400 / weekBuckets
	weekSteps     = 4096 // week correction steps per recorded range
	alphaWeek     = 0.2  // per-visit update of an hour-of-week bucket
)

// tail models the upper tail of one feature: Q tracks the TailQuantile
// quantile by stochastic approximation and Beta the mean excess over it, a
// peaks-over-threshold model with an exponential tail, updated in O(1).
type tail struct {
	Q    float64
	Beta float64
	N    uint32 // updates so far, for a faster start
}

// surprise returns -ln P(Z >= z) under the tail model above the quantile,
// and a monotone ramp below it so that scores stay ordered.
func (t *tail) surprise(z float64, p *params) float64 {
	if z <= t.Q {
		return p.tailBase * z / t.Q
	}
	return p.tailBase + (z-t.Q)/t.Beta
}

func (t *tail) update(z float64, p *params) {
	t.N++
	// Early on, steps are larger so that the quantile finds the series'
	// range within the warm-up.
	boost := 1.0
	if t.N < 200 {
		boost = 200 / (float64(t.N) + 20)
	}
	if z > t.Q {
		ex := min(z-t.Q, 6*t.Beta) // a single outlier must not inflate the tail
		t.Beta += alphaTail * boost * (ex - t.Beta)
		t.Q += p.tailUp * boost * t.Beta
	} else {
		t.Q -= p.tailDown * boost * t.Beta
	}
	t.Q = max(t.Q, 0.05)
	t.Beta = max(t.Beta, 0.02)
}

// view is the streaming statistics of one version of the series: the raw
// values, or the values minus their time-of-day profile. Each view scores
// a point three ways, each with its own tail model.
type view struct {
	Fast float64 // one-step forecast (EWMA)
	Mid  float64 // short-term mean
	Slow float64 // long-term level
	Err  float64 // EW mean |x - forecast|
	ErrF float64 // same, short-term
	Dev  float64 // EW mean |x - Slow|
	Tail [3]tail // spike, shift, variance
}

func (v *view) reset(x float64) {
	v.Fast, v.Mid, v.Slow = x, x, x
	v.Tail[0] = tail{Q: 1.4, Beta: 0.3}
	v.Tail[1] = tail{Q: 1.4, Beta: 0.3}
	v.Tail[2] = tail{Q: 1, Beta: 0.3}
}

// look holds one view's verdict on a point before it learns from it.
type look struct {
	ae, mid, errF float64
	z             [3]float64
}

// look computes the features of x. Spike and shift are ln(1+|robust z|):
// an exponential tail in log space is a Pareto tail in z, which suits
// heavy-tailed series and ratios of scales. Variance is |ln| of the ratio of
// short- to long-term error scales, so calming down counts as much as
// becoming noisier (a stuck sensor, a flat line).
func (v *view) look(x float64) look {
	eps := 1e-9 * (1 + math.Abs(v.Slow))
	var l look
	l.ae = math.Abs(x - v.Fast)
	l.mid = v.Mid + alphaMid*(x-v.Mid)
	l.errF = v.ErrF + alphaErrF*(l.ae-v.ErrF)
	l.z[0] = fastLog(1 + l.ae/(v.Err+eps))
	l.z[1] = fastLog(1 + math.Abs(l.mid-v.Slow)/(v.Dev+eps))
	l.z[2] = math.Abs(fastLog((l.errF + eps) / (v.Err + eps)))
	return l
}

// surprise returns the view's largest surprise and its cause.
func (v *view) surprise(l *look, p *params) (float64, Cause) {
	best, cause := spikeWeight*v.Tail[0].surprise(l.z[0], p), CauseSpike
	if x := v.Tail[1].surprise(l.z[1], p); x > best {
		best, cause = x, CauseShift
	}
	if x := v.Tail[2].surprise(l.z[2], p); x > best {
		best, cause = x, CauseVariance
	}
	return best, cause
}

// learn folds x in; n is the number of points the view has seen.
func (v *view) learn(x float64, l *look, n float64, p *params) {
	if n > 2 {
		for i := range v.Tail {
			v.Tail[i].update(l.z[i], p)
		}
	}
	// Early on the EWMAs are running means, so the first points are not
	// measured against an arbitrary start.
	warm := func(a float64) float64 { return max(a, 1/(n+1)) }
	v.Err += warm(alphaErr) * (l.ae - v.Err)
	v.ErrF = l.errF
	v.Dev += warm(alphaDev) * (math.Abs(x-v.Slow) - v.Dev)
	v.Fast += warm(alphaFast) * (x - v.Fast)
	v.Mid = l.mid
	v.Slow += warm(alphaSlow) * (x - v.Slow)
}

// numState is the whole learned state of a detector. It holds only
// fixed-size fields so encoding/binary can checkpoint it as is.
type numState struct {
	N       uint32 // points seen
	NS      uint32 // points seen by the deseasonalised view
	Hold    int32  // points left in the current hold
	First   int64  // unix seconds of the first point
	Last    int64  // unix nanoseconds of the latest point
	Step    float64
	Hi, Lo  float64                // decayed record high and low
	DHi     float64                // same, of the deseasonalised series,
	DLo     float64                // from when the time-of-day profile is ready
	Prev    float64                // latest value
	Run     uint32                 // points in the current run of values equal to Prev
	RunMax  uint32                 // longest run completed so far
	Raw     view                   // the series as is
	Des     view                   // the series minus its time-of-day profile
	Season  [seasonBuckets]float32 // mean value less Week per time-of-day bucket
	SeasonN [seasonBuckets]uint8   // visits per bucket, saturating
	Week    [weekBuckets]int16     // hour-of-week correction to Season, in WScale units
	WScale  float64                // value of one Week step, fixed when the profile is ready
	Ladder  [ladderLevels]uint16   // hold left at each ladder level, highest first
}

// Detector is a streaming anomaly detector for one numeric series. It looks
// at each point three ways — distance from a one-step forecast, a
// short-term level shift, a change in noise — each normalised by a robust
// scale and turned into a tail probability by its own peaks-over-threshold
// model, so the threshold adapts to each series' own tail. Once a day of a
// time-of-day profile is learned, the same views of the deseasonalised
// series take over whenever they forecast clearly better; an hour-of-week
// correction to that profile learns how weekdays differ, so a weekend is
// expected and a holiday is not. A new record high or low (new both as a
// value and, when the deseasonalised view scores, against the time-of-day
// norm) adds evidence. A run of one value longer than any the series has
// completed before is a flatline, scored once. The score is the largest
// surprise, mapped linearly to [0,1]; after an alert, scores are damped for
// a while so that one event is one alert, and a level shift re-baselines
// instead of alerting until the averages catch up. Scores use only past points (no look-ahead) and
// the detector is quiet for a bounded warm-up.
//
// A Detector is not safe for concurrent use.
type Detector struct {
	p *params
	s numState
}

// Score is the detector's verdict on one point.
type Score struct {
	// Raw is the calibrated score in [0,1]: exp(-Raw*MaxSurprise) is the
	// tail probability of the point under the view that scored it. Being
	// the largest of three views, a score is reached on a stationary
	// series one to three times that often (TestDetectorCalibrated).
	Raw      float64
	Value    float64 // Raw, damped while a hold lasts: the score to threshold
	Expected float64 // what the detector forecast for this point
	Observed float64
	Cause    Cause // which view found the point most surprising
	Seasonal bool  // the deseasonalised view scored the point
	Extreme  bool  // the value beat the series' record high or low
	Alert    bool  // the score reached AlertScore and started a hold
	Warm     bool  // false during warm-up, when Value is always 0
}

// NewDetector returns a detector with no history.
func NewDetector(o DetectorOptions) *Detector {
	d := newDetector(newParams(o))
	return &d
}

func newDetector(p *params) Detector { return Detector{p: p} }

// Points returns how many points the detector has learned from.
func (d *Detector) Points() int { return int(d.s.N) }

// Update scores v observed at ts against what was learned so far, then
// learns from it. Non-finite values are ignored and score 0. Points should
// arrive in time order; an out-of-order point is scored and learned but does
// not move the clock.
func (d *Detector) Update(ts time.Time, v float64) Score {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return Score{Observed: v}
	}
	s := &d.s
	p := d.p
	if p == nil {
		// A zero Detector works, with the default options.
		p = newParams(DetectorOptions{})
		d.p = p
	}
	if s.N == 0 {
		d.start(ts, v)
		return Score{Expected: v, Observed: v}
	}
	if now := ts.UnixNano(); now > s.Last {
		dt := float64(now-s.Last) / 1e9
		s.Step += max(0.05, 1/float64(s.N)) * (dt - s.Step)
		s.Last = now
	}

	sec := ts.Unix()
	b, h := seasonIndex(sec), weekIndex(sec)
	day, week := float64(s.Season[b]), float64(s.Week[h])*s.WScale
	seas := day + week
	ready := s.seasonReady(sec)
	rl := s.Raw.look(v)
	var dl look
	if ready {
		if s.NS == 0 {
			s.Des.reset(v - seas)
		}
		dl = s.Des.look(v - seas)
	}
	run := uint32(1)
	if v == s.Prev {
		run = s.Run + 1
	}
	flatAt := max(uint32(flatRatio*float64(s.RunMax)), flatMinRun-1) + 1
	flat := s.RunMax > 0 && run == flatAt && s.N >= flatHistory*run
	useDes := ready && s.NS >= uint32(p.opts.Warmup) && s.Des.Err < seasonGate*s.Raw.Err

	out := Score{Expected: s.Raw.Fast, Observed: v, Warm: s.N >= uint32(p.opts.Warmup)}
	if useDes {
		out.Expected = seas + s.Des.Fast
		out.Seasonal = true
	}
	if out.Warm {
		var best float64
		if useDes {
			best, out.Cause = s.Des.surprise(&dl, p)
		} else {
			best, out.Cause = s.Raw.surprise(&rl, p)
		}
		out.Extreme = outside(v, s.Hi, s.Lo)
		if useDes {
			out.Extreme = out.Extreme && outside(v-seas, s.DHi, s.DLo)
		}
		if out.Extreme {
			best += extremeBonus
		}
		best -= p.youth * max(0, 1-float64(s.N)/youthPoints)
		if flat && flatSurprise > best {
			best, out.Cause = flatSurprise, CauseFlatline
		}
		raw := min(max(best*p.invMax, 0), 1)
		out.Raw, out.Value = raw, raw
		if s.Hold > 0 {
			s.Hold--
			out.Value = raw * p.opts.HoldDamp
		} else if raw >= p.opts.AlertScore {
			out.Alert = true
			s.Hold = int32(p.opts.Hold)
			if out.Cause == CauseShift {
				// Change point: re-baseline the long-term level at the
				// new one instead of alerting until it catches up.
				s.Raw.Slow = rl.mid
				if ready {
					s.Des.Slow = dl.mid
				}
			}
		}
		if !out.Alert {
			out.Value = s.ladder(raw, out.Value, p)
		} else {
			s.ladder(raw, 0, p)
		}
	}

	s.Raw.learn(v, &rl, float64(s.N), p)
	if ready {
		r := v - seas
		switch {
		case s.NS == 0:
			s.DHi, s.DLo = r, r
		case s.NS < uint32(p.opts.Warmup):
			s.DHi, s.DLo = max(s.DHi, r), min(s.DLo, r)
		default:
			s.DHi = max(r, s.DHi-(s.DHi-s.Des.Slow)*(1.0/extremeHorizon))
			s.DLo = min(r, s.DLo+(s.Des.Slow-s.DLo)*(1.0/extremeHorizon))
		}
		s.Des.learn(r, &dl, float64(s.NS), p)
		s.NS++
	}
	s.learnSeason(b, v-week)
	if ready {
		// The day-of-week correction learns what the daily profile
		// leaves, at a rate per visit of its hour rather than per point.
		// Corrections are kept as 16-bit steps of a scale fixed from the
		// range seen by then, which halves their memory; they saturate at
		// 8 times that range.
		if s.WScale == 0 {
			s.WScale = max(s.Hi-s.Lo, 1e-6*math.Abs(v), math.SmallestNonzeroFloat64) / weekSteps
		}
		aw := alphaWeek * min(1, s.Step/weekBucket)
		w := (week + aw*(v-day-week)) / s.WScale
		s.Week[h] = int16(math.Round(min(max(w, math.MinInt16), math.MaxInt16)))
	}
	if run == 1 {
		s.RunMax = max(s.RunMax, s.Run)
	}
	s.Prev, s.Run = v, run
	if s.N < uint32(p.opts.Warmup) {
		s.Hi, s.Lo = max(s.Hi, v), min(s.Lo, v)
	} else {
		s.Hi = max(v, s.Hi-(s.Hi-s.Raw.Slow)*(1.0/extremeHorizon))
		s.Lo = min(v, s.Lo+(s.Raw.Slow-s.Lo)*(1.0/extremeHorizon))
	}
	s.N++
	return out
}

func (d *Detector) start(ts time.Time, v float64) {
	s := &d.s
	s.N = 1
	s.First = ts.Unix()
	s.Last = ts.UnixNano()
	s.Hi, s.Lo = v, v
	s.Prev, s.Run = v, 1
	s.Raw.reset(v)
	for i := range s.Season {
		s.Season[i] = float32(v)
	}
}

// ladder steps the holds of the alert levels below AlertScore and returns
// the score of a point with raw score raw that did not alert at AlertScore:
// the highest level it alerts at (raw itself if no level lies between them),
// else raw*HoldDamp if it reaches a level, else value (raw, or raw damped by
// the main hold).
func (s *numState) ladder(raw, value float64, p *params) float64 {
	hold := uint16(min(p.opts.Hold, math.MaxUint16))
	top := -1.0
	reach := false
	for j := range s.Ladder {
		a := p.opts.AlertScore - float64(j+1)*ladderStep
		if a <= 0 {
			break
		}
		if s.Ladder[j] > 0 {
			s.Ladder[j]--
			reach = reach || raw >= a
			continue
		}
		if raw >= a {
			s.Ladder[j] = hold
			if top < 0 {
				top = a
				if raw < a+ladderStep {
					top = raw
				}
			}
		}
	}
	switch {
	case top >= 0:
		return top
	case reach && value == raw:
		return raw * p.opts.HoldDamp
	}
	return value
}

// seasonReady reports whether the time-of-day profile has seen a full day
// at a cadence fine enough to resolve it.
func (s *numState) seasonReady(sec int64) bool {
	return sec-s.First >= 86400 && s.Step > 0 && s.Step <= 3600
}

// seasonIndex returns the time-of-day bucket of unix time sec. Buckets are
// piecewise constant rather than interpolated so that step-shaped daily
// patterns (a batch job starting at 09:00) are learned exactly.
func seasonIndex(sec int64) int {
	sec %= 86400
	if sec < 0 {
		sec += 86400
	}
	return int(sec * seasonBuckets / 86400)
}

// outside reports whether x beats the record high hi or low lo by a margin.
func outside(x, hi, lo float64) bool {
	margin := extremeMargin * (hi - lo)
	return x > hi+margin || x < lo-margin
}

// weekIndex returns the hour-of-week bucket of unix time sec.
func weekIndex(sec int64) int {
	h := sec / weekBucket % weekBuckets
	if h < 0 {
		h += weekBuckets
	}
	return int(h)
}

// learnSeason folds v into its bucket: a running mean over the first
// visits, then an EWMA per visit.
func (s *numState) learnSeason(b int, v float64) {
	if s.SeasonN[b] < math.MaxUint8 {
		s.SeasonN[b]++
	}
	a := max(alphaSeason, 1/float64(s.SeasonN[b]))
	s.Season[b] += float32(a * (v - float64(s.Season[b])))
}
