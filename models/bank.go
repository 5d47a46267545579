package models

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/vigil-dev/vigil/models/ckpt"
)

// SeriesKey names one series: the entity it belongs to and the metric.
type SeriesKey struct {
	Entity string
	Series string
}

// BankOptions configures a Bank.
type BankOptions struct {
	Detector DetectorOptions
	// Burst configures the burst detectors run beside the numeric one on
	// the series named in its rules.
	Burst BurstOptions
	// MaxSeries bounds memory: adding a series beyond it evicts the least
	// recently updated one. Default 100,000.
	MaxSeries int
}

// Bank holds one numeric detector per series (and a burst detector for
// series with a burst rule), bounded in number, evicting the least recently
// used series first. It is not safe for concurrent use:
// the pipeline shards series across banks, one per goroutine.
type Bank struct {
	p     *params      // shared by every detector in the bank
	burst *burstParams // shared by every burst detector in the bank
	max   int
	index map[SeriesKey]int32 // slot of each live series
	slots []slot
	head  int32 // most recently used slot, -1 if none
	tail  int32 // least recently used slot, -1 if none
}

// slot is one series in the bank, on an intrusive LRU list of slot
// indices: no per-series pointers for the garbage collector to chase.
type slot struct {
	key        SeriesKey
	det        Detector
	burst      burstState
	rule       int8  // burst rule index, -1 for none
	last       int64 // unix nanoseconds of the last update, for idle eviction
	prev, next int32
}

// NewBank returns an empty bank.
func NewBank(o BankOptions) *Bank {
	if o.MaxSeries <= 0 {
		o.MaxSeries = 100_000
	}
	return &Bank{p: newParams(o.Detector), burst: newBurstParams(o.Burst), max: o.MaxSeries, index: make(map[SeriesKey]int32), head: -1, tail: -1}
}

// Len returns the number of live series.
func (b *Bank) Len() int { return len(b.index) }

// Update scores a point of series k, creating the series if needed, and
// returns the numeric detector's score (the burst detector learns too).
func (b *Bank) Update(k SeriesKey, ts time.Time, v float64) Score {
	s, _, _ := b.update(k, ts, v)
	return s
}

func (b *Bank) update(k SeriesKey, ts time.Time, v float64) (Score, burstVerdict, *slot) {
	i := b.get(k)
	sl := &b.slots[i]
	sl.last = ts.UnixNano()
	s := sl.det.Update(ts, v)
	bv := sl.burst.update(b.burst, sl.rule, sl.last, v)
	return s, bv, sl
}

// Observe is Update for the pipeline: it returns an Anomaly, with its
// evidence, when a detector alerts. A burst wins over a numeric alert on
// the same point, and while a burst's hold lasts the numeric detector's
// alerts on that series are dropped: one burst, one anomaly. A numeric
// alert for a rise to no more than peakSlack times the series' decayed
// peak is dropped too: the series was about that high recently (a job every ten minutes is
// surprising to a detector with a memory of a few minutes, but not new).
func (b *Bank) Observe(k SeriesKey, ts time.Time, v float64) (Anomaly, bool) {
	s, bv, sl := b.update(k, ts, v)
	if bv.Alert {
		return Anomaly{
			Entity:   k.Entity,
			Series:   k.Series,
			Detector: b.burst.rules[sl.rule].Detector,
			Score:    bv.Score,
			Severity: SeverityForScore(bv.Score),
			Expected: bv.Peak,
			Observed: v,
			Start:    ts,
			End:      ts,
		}, true
	}
	switch {
	case !s.Alert:
		return Anomaly{}, false
	case sl.rule >= 0 && sl.burst.Hold > 0:
		return Anomaly{}, false
	case v > s.Expected && v <= peakSlack*bv.Seen:
		return Anomaly{}, false
	}
	return Anomaly{
		Entity:   k.Entity,
		Series:   k.Series,
		Detector: "numeric/" + s.Cause.String(),
		Score:    s.Raw,
		Severity: SeverityForScore(s.Raw),
		Expected: s.Expected,
		Observed: s.Observed,
		Start:    ts,
		End:      ts,
	}, true
}

// peakSlack: a rise to within half again a series' decayed peak counts as
// a height it has reached before (the peak decays, so an exact repeat of
// yesterday's job is slightly above it).
const peakSlack = 1.5

// get returns k's slot, creating it (and evicting the least recently used
// series if the bank is full), and marks it most recently used.
func (b *Bank) get(k SeriesKey) int32 {
	if i, ok := b.index[k]; ok {
		b.touch(i)
		return i
	}
	var i int32
	if len(b.index) >= b.max {
		i = b.tail
		b.unlink(i)
		delete(b.index, b.slots[i].key)
	} else {
		i = int32(len(b.slots))
		b.slots = append(b.slots, slot{})
	}
	b.slots[i] = slot{key: k, det: newDetector(b.p), rule: b.burst.rule(k.Series), prev: -1, next: -1}
	b.index[k] = i
	b.pushFront(i)
	return i
}

func (b *Bank) touch(i int32) {
	if b.head == i {
		return
	}
	b.unlink(i)
	b.pushFront(i)
}

func (b *Bank) unlink(i int32) {
	s := &b.slots[i]
	if s.prev >= 0 {
		b.slots[s.prev].next = s.next
	} else {
		b.head = s.next
	}
	if s.next >= 0 {
		b.slots[s.next].prev = s.prev
	} else {
		b.tail = s.prev
	}
	s.prev, s.next = -1, -1
}

func (b *Bank) pushFront(i int32) {
	s := &b.slots[i]
	s.prev, s.next = -1, b.head
	if b.head >= 0 {
		b.slots[b.head].prev = i
	}
	b.head = i
	if b.tail < 0 {
		b.tail = i
	}
}

// EvictIdle drops series not updated since before, oldest first, and
// returns how many went. Their slots are reused by new series.
func (b *Bank) EvictIdle(before time.Time) int {
	cut := before.UnixNano()
	n := 0
	for b.tail >= 0 && b.slots[b.tail].last < cut {
		i := b.tail
		b.unlink(i)
		delete(b.index, b.slots[i].key)
		// Move the last slot into the hole so slots stay dense.
		last := int32(len(b.slots) - 1)
		if i != last {
			b.move(last, i)
		}
		b.slots = b.slots[:last]
		n++
	}
	return n
}

// move relocates slot from to slot to, fixing the list and the index.
func (b *Bank) move(from, to int32) {
	b.slots[to] = b.slots[from]
	s := &b.slots[to]
	if s.prev >= 0 {
		b.slots[s.prev].next = to
	} else {
		b.head = to
	}
	if s.next >= 0 {
		b.slots[s.next].prev = to
	} else {
		b.tail = to
	}
	b.index[s.key] = to
}

// Checkpoint returns series k's numeric detector state, or false if it is
// not live.
func (b *Bank) Checkpoint(k SeriesKey) ([]byte, bool) {
	i, ok := b.index[k]
	if !ok {
		return nil, false
	}
	out, _ := b.slots[i].det.MarshalBinary()
	return out, true
}

// Restore replaces series k's numeric detector state with a checkpoint
// (from Checkpoint); its burst detector is left as it was.
func (b *Bank) Restore(k SeriesKey, data []byte) error {
	var d Detector
	d.p = b.p
	if err := d.UnmarshalBinary(data); err != nil {
		return fmt.Errorf("restore %s/%s: %w", k.Entity, k.Series, err)
	}
	i := b.get(k)
	b.slots[i].det = d
	b.slots[i].last = d.s.Last
	return nil
}

// bankMagic starts a whole-bank checkpoint. VGB2 added each series' burst
// state; a VGB1 checkpoint is refused (and the models relearn) rather than
// read with the burst detectors silently reset.
const bankMagic = "VGB2"

// MarshalBinary checkpoints every live series, least recently used first
// so that restoring rebuilds the same LRU order.
func (b *Bank) MarshalBinary() ([]byte, error) {
	out := append([]byte(nil), bankMagic...)
	out = binary.AppendUvarint(out, uint64(len(b.index)))
	for i := b.tail; i >= 0; i = b.slots[i].prev {
		s := &b.slots[i]
		out = ckpt.AppendString(out, s.key.Entity)
		out = ckpt.AppendString(out, s.key.Series)
		st, err := s.det.MarshalBinary()
		if err != nil {
			return nil, err
		}
		out = binary.AppendUvarint(out, uint64(len(st)))
		out = append(out, st...)
		bs := s.burst.marshal()
		out = binary.AppendUvarint(out, uint64(len(bs)))
		out = append(out, bs...)
	}
	return out, nil
}

// UnmarshalBinary adds the series of a bank checkpoint to b (which is
// normally empty), keeping b's options.
func (b *Bank) UnmarshalBinary(data []byte) error {
	if len(data) < len(bankMagic) || string(data[:len(bankMagic)]) != bankMagic {
		return fmt.Errorf("restore bank: %w: not a %s bank checkpoint", ErrCheckpoint, bankMagic)
	}
	r := ckpt.NewReader(data[len(bankMagic):])
	n := r.Uvarint()
	for j := uint64(0); j < n && r.Err() == nil; j++ {
		k := SeriesKey{Entity: r.Str(), Series: r.Str()}
		st := r.Bytes()
		bs := r.Bytes()
		if r.Err() != nil {
			break
		}
		var burst burstState
		if err := burst.unmarshal(bs); err != nil {
			return fmt.Errorf("restore bank: %s/%s: %w", k.Entity, k.Series, err)
		}
		if err := b.Restore(k, st); err != nil {
			return fmt.Errorf("restore bank: %w", err)
		}
		b.slots[b.index[k]].burst = burst
	}
	if r.Err() != nil {
		return fmt.Errorf("restore bank: %w", r.Err())
	}
	return nil
}
