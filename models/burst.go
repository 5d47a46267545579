package models

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// BurstRule configures burst detection for one series name (every entity's
// series of that name).
type BurstRule struct {
	// Floor is the least value a step must reach to alert, whatever the
	// history: 0 → 3 forks is never news, however quiet the series was.
	Floor float64
	// Mult is how many times its learned peak a step must exceed. Default 4.
	Mult float64
	// Warmup is how many points are learned silently. Zero means
	// BurstOptions.Warmup; negative means none: the series alerts from its
	// first point on the floor alone (a port scanner is usually a process
	// never seen before).
	Warmup int
	// Detector names the anomalies; default "burst/<series>".
	Detector string
}

// BurstOptions configures the burst detectors of a Bank.
type BurstOptions struct {
	// Rules by series name. A series without a rule has no burst detector.
	Rules map[string]BurstRule
	// Warmup is the default number of points learned silently. Default
	// DefaultBurstWarmup.
	Warmup int
	// HalfLife is how fast the learned peak decays. Default 24h, so that a
	// daily job's peak is still remembered when it runs again.
	HalfLife time.Duration
	// Hold is how many points after an alert do not alert again, so that
	// one burst is one anomaly. Default 30.
	Hold int
}

// DefaultBurstWarmup is how many points a burst detector learns silently
// by default: it only needs to know the series' usual peak, not its
// distribution, so it is armed long before the numeric detector.
const DefaultBurstWarmup = 20

// burstParams is BurstOptions resolved for the hot path, shared by a
// Bank's series.
type burstParams struct {
	rules    []BurstRule
	index    map[string]int8 // series name → rule
	warmup   []uint32        // per rule, resolved
	halfLife float64         // nanoseconds
	hold     uint32
}

// maxBurstRules bounds the rules so a slot can name its rule in an int8.
const maxBurstRules = 127

func newBurstParams(o BurstOptions) *burstParams {
	if o.Warmup <= 0 {
		o.Warmup = DefaultBurstWarmup
	}
	if o.HalfLife <= 0 {
		o.HalfLife = 24 * time.Hour
	}
	if o.Hold <= 0 {
		o.Hold = 30
	}
	p := &burstParams{index: map[string]int8{}, halfLife: float64(o.HalfLife), hold: uint32(o.Hold)}
	for series, r := range o.Rules {
		if len(p.rules) >= maxBurstRules {
			break
		}
		if r.Mult <= 1 {
			r.Mult = 4
		}
		if r.Floor < 0 || math.IsNaN(r.Floor) {
			r.Floor = 0
		}
		if r.Detector == "" {
			r.Detector = "burst/" + series
		}
		w := uint32(0)
		switch {
		case r.Warmup == 0:
			w = uint32(o.Warmup)
		case r.Warmup > 0:
			w = uint32(r.Warmup)
		}
		p.index[series] = int8(len(p.rules))
		p.rules = append(p.rules, r)
		p.warmup = append(p.warmup, w)
	}
	return p
}

// rule returns the rule index for a series name, -1 if none.
func (p *burstParams) rule(series string) int8 {
	if i, ok := p.index[series]; ok {
		return i
	}
	return -1
}

// burstState is a series' burst detector: its decayed peak and cooldown.
// Fixed-size fields only, so encoding/binary checkpoints it as is.
type burstState struct {
	Peak float64 // decayed peak of the values learned: the burst threshold's base
	Seen float64 // decayed highest value seen, learned at once: "this high before"
	Last int64   // unix nanoseconds of the latest point, for the decay
	N    uint32  // points learned, saturating
	Hold uint32  // points left before the detector may alert again
}

// burstVerdict is a burst detector's answer for one point.
type burstVerdict struct {
	Alert     bool
	Peak      float64 // the learned peak the point was compared with
	Seen      float64 // the decayed highest value seen before the point
	Threshold float64 // max(Floor, Mult*Peak)
	Score     float64
}

// update scores v against the learned peak, then learns it. With no rule
// (ri < 0) it only learns: the bank uses every series' peak to tell a
// numeric spike from a height the series reached recently.
//
// A point alerts when it reaches both the rule's floor and Mult times the
// peak, after the warm-up and outside a hold. What it teaches the peak is
// capped at the threshold: a one-off burst raises the bar at most Mult-fold
// (and that decays), while a lasting change is learned within a few points
// instead of alerting again after every hold.
func (s *burstState) update(p *burstParams, ri int8, ts int64, v float64) burstVerdict {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return burstVerdict{}
	}
	if s.N > 0 && ts > s.Last {
		f := math.Exp2(-float64(ts-s.Last) / p.halfLife)
		s.Peak *= f
		s.Seen *= f
	}
	seen := s.Seen
	s.Seen = max(s.Seen, v)
	if ts > s.Last {
		s.Last = ts
	}
	if ri < 0 {
		out := burstVerdict{Peak: s.Peak, Seen: seen}
		s.Peak = max(s.Peak, v)
		if s.N < math.MaxUint32 {
			s.N++
		}
		return out
	}
	r := &p.rules[ri]
	out := burstVerdict{Peak: s.Peak, Seen: seen, Threshold: max(r.Floor, r.Mult*s.Peak)}
	armed := s.N >= p.warmup[ri]
	over := armed && v >= out.Threshold && v > r.Mult*s.Peak
	if s.Hold > 0 {
		s.Hold--
	} else if over {
		out.Alert = true
		out.Score = burstScore(v, out.Threshold)
		s.Hold = p.hold
	}
	learn := v
	if over {
		learn = out.Threshold
	}
	if armed && learn > s.Peak {
		// Past warm-up a rise is learned gradually: a storm that ramps
		// up over a few steps is still a burst against the peak before
		// it, while a lasting rise is learned within about a hold.
		s.Peak += peakRise * (learn - s.Peak)
	} else {
		s.Peak = max(s.Peak, learn)
	}
	if s.N < math.MaxUint32 {
		s.N++
	}
	return out
}

// peakRise is the fraction of the way to a higher value the learned peak
// moves per step once warm.
const peakRise = 0.25

// burstScore is 0.6 (medium) at the threshold, rising by 0.1 per doubling
// beyond it, up to 1 at 16 times the threshold.
func burstScore(v, threshold float64) float64 {
	if threshold <= 0 {
		return 1
	}
	return min(max(0.6+0.1*math.Log2(v/threshold), 0.6), 1)
}

// burstVersion is the first byte of a burst state checkpoint; a change to
// burstState must bump it.
const burstVersion = 2

// BurstStateSize is the size in bytes of a burst detector checkpoint.
var BurstStateSize = 1 + binary.Size(burstState{})

func (s *burstState) marshal() []byte {
	out := make([]byte, 1, BurstStateSize)
	out[0] = burstVersion
	out, _ = binary.Append(out, binary.LittleEndian, s) // fixed-size fields: cannot fail
	return out
}

func (s *burstState) unmarshal(data []byte) error {
	if len(data) != BurstStateSize || data[0] != burstVersion {
		return fmt.Errorf("burst state: %w: %d bytes, version %d", ErrCheckpoint, len(data), firstByte(data))
	}
	var st burstState
	if _, err := binary.Decode(data[1:], binary.LittleEndian, &st); err != nil {
		return fmt.Errorf("burst state: %w: %w", ErrCheckpoint, err)
	}
	if bad := func(f float64) bool { return math.IsNaN(f) || math.IsInf(f, 0) || f < 0 }; bad(st.Peak) || bad(st.Seen) {
		return fmt.Errorf("burst state: %w: bad peak", ErrCheckpoint)
	}
	*s = st
	return nil
}
