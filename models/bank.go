package models

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// SeriesKey names one series: the entity it belongs to and the metric.
type SeriesKey struct {
	Entity string
	Series string
}

// BankOptions configures a Bank.
type BankOptions struct {
	Detector DetectorOptions
	// MaxSeries bounds memory: adding a series beyond it evicts the least
	// recently updated one. Default 100,000.
	MaxSeries int
}

// Bank holds one numeric detector per series, bounded in number, evicting
// the least recently used series first. It is not safe for concurrent use:
// the pipeline shards series across banks, one per goroutine.
type Bank struct {
	p     *params // shared by every detector in the bank
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
	last       int64 // unix nanoseconds of the last update, for idle eviction
	prev, next int32
}

// NewBank returns an empty bank.
func NewBank(o BankOptions) *Bank {
	if o.MaxSeries <= 0 {
		o.MaxSeries = 100_000
	}
	return &Bank{p: newParams(o.Detector), max: o.MaxSeries, index: make(map[SeriesKey]int32), head: -1, tail: -1}
}

// Len returns the number of live series.
func (b *Bank) Len() int { return len(b.index) }

// Update scores a point of series k, creating the series if needed.
func (b *Bank) Update(k SeriesKey, ts time.Time, v float64) Score {
	i := b.get(k)
	b.slots[i].last = ts.UnixNano()
	return b.slots[i].det.Update(ts, v)
}

// Observe is Update for the pipeline: it returns an Anomaly, with its
// evidence, when the detector alerts.
func (b *Bank) Observe(k SeriesKey, ts time.Time, v float64) (Anomaly, bool) {
	s := b.Update(k, ts, v)
	if !s.Alert {
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
	b.slots[i] = slot{key: k, det: newDetector(b.p), prev: -1, next: -1}
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

// Checkpoint returns series k's state, or false if it is not live.
func (b *Bank) Checkpoint(k SeriesKey) ([]byte, bool) {
	i, ok := b.index[k]
	if !ok {
		return nil, false
	}
	out, _ := b.slots[i].det.MarshalBinary()
	return out, true
}

// Restore replaces series k's state with a checkpoint.
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

// bankMagic starts a whole-bank checkpoint.
const bankMagic = "VGB1"

// MarshalBinary checkpoints every live series, least recently used first
// so that restoring rebuilds the same LRU order.
func (b *Bank) MarshalBinary() ([]byte, error) {
	out := append([]byte(nil), bankMagic...)
	out = binary.AppendUvarint(out, uint64(len(b.index)))
	for i := b.tail; i >= 0; i = b.slots[i].prev {
		s := &b.slots[i]
		out = appendString(out, s.key.Entity)
		out = appendString(out, s.key.Series)
		st, err := s.det.MarshalBinary()
		if err != nil {
			return nil, err
		}
		out = binary.AppendUvarint(out, uint64(len(st)))
		out = append(out, st...)
	}
	return out, nil
}

// UnmarshalBinary adds the series of a bank checkpoint to b (which is
// normally empty), keeping b's options.
func (b *Bank) UnmarshalBinary(data []byte) error {
	if len(data) < len(bankMagic) || string(data[:len(bankMagic)]) != bankMagic {
		return errors.New("restore bank: not a bank checkpoint")
	}
	r := reader{buf: data[len(bankMagic):]}
	n := r.uvarint()
	for j := uint64(0); j < n && r.err == nil; j++ {
		k := SeriesKey{Entity: r.string(), Series: r.string()}
		st := r.bytes()
		if r.err != nil {
			break
		}
		if err := b.Restore(k, st); err != nil {
			return fmt.Errorf("restore bank: %w", err)
		}
	}
	if r.err != nil {
		return fmt.Errorf("restore bank: %w", r.err)
	}
	return nil
}
