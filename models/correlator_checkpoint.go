package models

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/vigil-dev/vigil/models/ckpt"
)

// correlatorMagic starts a correlator checkpoint; a change to the layout
// below must bump it so that old checkpoints are refused, not misread.
//
// Layout after the magic (uvarints unless said otherwise; strings are a
// uvarint length then the bytes; times are a zigzag varint of Unix
// nanoseconds, math.MinInt64 for the zero time; floats are 8 bytes
// little-endian IEEE 754):
//
//	nextID
//	n, then n incidents in id order:
//	  id, state, severity, peak, title, opened, last, resolved, count, flaps,
//	  entities (n, strings), trees (n, strings), keys (n, strings),
//	  anomalies (n, then each: entity, tree, series, detector, score (float),
//	    severity, expected (float), observed (float), value, start, end,
//	    event ids (n, uvarints))
//	n, then n byKey entries in key order: key, incident id
//
// Nothing may follow.
const correlatorMagic = "VGC1"

// maxEventIDs is how many event ids add keeps per piece of evidence (a
// pointer into the raw data, not the whole of it).
const maxEventIDs = 16

// MarshalBinary checkpoints the open and recently resolved incidents, the
// keys that find them, and the next id, so that a restored correlator
// folds related anomalies into the same incidents and never reuses an id.
func (c *Correlator) MarshalBinary() ([]byte, error) {
	out := append([]byte(nil), correlatorMagic...)
	out = binary.AppendUvarint(out, c.nextID)
	incs := make([]*incident, 0, len(c.all))
	for _, inc := range c.all {
		incs = append(incs, inc)
	}
	slices.SortFunc(incs, func(a, b *incident) int { return cmp.Compare(a.ID, b.ID) })
	out = binary.AppendUvarint(out, uint64(len(incs)))
	for _, inc := range incs {
		out = appendIncident(out, inc)
	}
	keys := make([]string, 0, len(c.byKey))
	for k := range c.byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out = binary.AppendUvarint(out, uint64(len(keys)))
	for _, k := range keys {
		out = ckpt.AppendString(out, k)
		out = binary.AppendUvarint(out, c.byKey[k].ID)
	}
	return out, nil
}

func appendIncident(out []byte, inc *incident) []byte {
	out = binary.AppendUvarint(out, inc.ID)
	out = binary.AppendUvarint(out, uint64(inc.State))
	out = binary.AppendUvarint(out, uint64(inc.Severity))
	out = binary.AppendUvarint(out, uint64(inc.peak))
	out = ckpt.AppendString(out, inc.Title)
	out = ckpt.AppendTime(out, inc.Opened)
	out = ckpt.AppendTime(out, inc.Last)
	out = ckpt.AppendTime(out, inc.Resolved)
	out = binary.AppendUvarint(out, uint64(inc.Count))
	out = binary.AppendUvarint(out, uint64(inc.Flaps))
	out = ckpt.AppendStrings(out, inc.Entities)
	out = ckpt.AppendStrings(out, inc.Trees)
	out = ckpt.AppendStrings(out, inc.keys)
	out = binary.AppendUvarint(out, uint64(len(inc.Anomalies)))
	for i := range inc.Anomalies {
		a := &inc.Anomalies[i]
		out = ckpt.AppendString(out, a.Entity)
		out = ckpt.AppendString(out, a.Tree)
		out = ckpt.AppendString(out, a.Series)
		out = ckpt.AppendString(out, a.Detector)
		out = ckpt.AppendFloat64(out, a.Score)
		out = binary.AppendUvarint(out, uint64(a.Severity))
		out = ckpt.AppendFloat64(out, a.Expected)
		out = ckpt.AppendFloat64(out, a.Observed)
		out = ckpt.AppendString(out, a.Value)
		out = ckpt.AppendTime(out, a.Start)
		out = ckpt.AppendTime(out, a.End)
		out = binary.AppendUvarint(out, uint64(len(a.EventIDs)))
		for _, id := range a.EventIDs {
			out = binary.AppendUvarint(out, id)
		}
	}
	return out
}

// UnmarshalBinary replaces c's incidents with a checkpoint's, keeping c's
// options. A checkpoint that is malformed, or describes a state the
// correlator could not reach, is refused with a wrapped ErrCheckpoint and
// c is left as it was. Decoding allocates in proportion to the input (no
// count is trusted beyond the bytes left to back it); evidence beyond
// MaxEvidence, event ids beyond 16 per anomaly and incidents beyond
// MaxIncidents are dropped as the correlator itself would drop them.
func (c *Correlator) UnmarshalBinary(data []byte) error {
	fresh, err := c.decode(data)
	if err != nil {
		return fmt.Errorf("restore correlator: %w", err)
	}
	*c = *fresh
	return nil
}

func (c *Correlator) decode(data []byte) (*Correlator, error) {
	if len(data) < len(correlatorMagic) || string(data[:len(correlatorMagic)]) != correlatorMagic {
		return nil, fmt.Errorf("%w: not a %s correlator checkpoint", ErrCheckpoint, correlatorMagic)
	}
	r := ckpt.NewReader(data[len(correlatorMagic):])
	fresh := NewCorrelator(c.o)
	fresh.nextID = r.Uvarint()
	n := r.Count()
	for range n {
		inc, err := readIncident(r, fresh.o.MaxEvidence)
		if err != nil {
			return nil, err
		}
		if inc.ID == 0 || inc.ID > fresh.nextID {
			return nil, fmt.Errorf("%w: incident id %d, next id %d", ErrCheckpoint, inc.ID, fresh.nextID)
		}
		if fresh.all[inc.ID] != nil {
			return nil, fmt.Errorf("%w: incident %d twice", ErrCheckpoint, inc.ID)
		}
		fresh.all[inc.ID] = inc
	}
	n = r.Count()
	for range n {
		k, id := r.Str(), r.Uvarint()
		if r.Err() != nil {
			break
		}
		inc := fresh.all[id]
		if inc == nil || !slices.Contains(inc.keys, k) {
			return nil, fmt.Errorf("%w: key %q names incident %d, which does not hold it", ErrCheckpoint, k, id)
		}
		if fresh.byKey[k] != nil {
			return nil, fmt.Errorf("%w: key %q twice", ErrCheckpoint, k)
		}
		fresh.byKey[k] = inc
	}
	if r.Err() == nil && r.Len() > 0 {
		r.Fail("%d trailing bytes", r.Len())
	}
	if r.Err() != nil {
		return nil, r.Err()
	}
	// MaxIncidents may have been lowered since the checkpoint was written.
	fresh.trim()
	return fresh, nil
}

func readIncident(r *ckpt.Reader, maxEvidence int) (*incident, error) {
	inc := &incident{}
	inc.ID = r.Uvarint()
	state, sev, peak := r.Uvarint(), r.Uvarint(), r.Uvarint()
	inc.Title = r.Str()
	inc.Opened, inc.Last, inc.Resolved = r.Time(), r.Time(), r.Time()
	cnt, flaps := r.Uvarint(), r.Uvarint()
	inc.Entities = r.Strings()
	inc.Trees = r.Strings()
	inc.keys = r.Strings()
	if r.Err() != nil {
		return nil, r.Err()
	}
	switch {
	case state > uint64(IncidentResolved) || sev > uint64(SeverityCritical) || peak > uint64(SeverityCritical):
		return nil, fmt.Errorf("%w: incident %d: state %d, severity %d/%d", ErrCheckpoint, inc.ID, state, sev, peak)
	case (state == uint64(IncidentOpen)) != inc.Resolved.IsZero():
		return nil, fmt.Errorf("%w: incident %d: state %d, resolved %v", ErrCheckpoint, inc.ID, state, inc.Resolved)
	case cnt > math.MaxInt32 || flaps > math.MaxInt32:
		return nil, fmt.Errorf("%w: incident %d: count %d, flaps %d", ErrCheckpoint, inc.ID, cnt, flaps)
	}
	inc.State, inc.Severity, inc.peak = IncidentState(state), Severity(sev), Severity(peak)
	inc.Count, inc.Flaps = int(cnt), int(flaps)
	// add keeps entities, trees and keys distinct and non-empty, and keys
	// only for its own trees and entities; a checkpoint that breaks that
	// is one add could not have written.
	own := make(map[string]bool, len(inc.Trees)+len(inc.Entities))
	for _, t := range inc.Trees {
		own["t\x00"+t] = true
	}
	for _, e := range inc.Entities {
		own["e\x00"+e] = true
	}
	if len(own) != len(inc.Trees)+len(inc.Entities) || own["t\x00"] || own["e\x00"] || hasDup(inc.keys) {
		return nil, fmt.Errorf("%w: incident %d: empty or repeated entity, tree or key", ErrCheckpoint, inc.ID)
	}
	for _, k := range inc.keys {
		if !own[k] {
			return nil, fmt.Errorf("%w: incident %d: key %q is none of its trees or entities", ErrCheckpoint, inc.ID, k)
		}
	}
	n := r.Count()
	for range n {
		a, err := readAnomaly(r)
		if err != nil {
			return nil, fmt.Errorf("incident %d: %w", inc.ID, err)
		}
		if len(inc.Anomalies) < maxEvidence {
			inc.Anomalies = append(inc.Anomalies, a)
		}
	}
	return inc, r.Err()
}

func readAnomaly(r *ckpt.Reader) (Anomaly, error) {
	a := Anomaly{Entity: r.Str(), Tree: r.Str(), Series: r.Str(), Detector: r.Str()}
	a.Score = r.Float64()
	sev := r.Uvarint()
	a.Expected, a.Observed = r.Float64(), r.Float64()
	a.Value = r.Str()
	a.Start, a.End = r.Time(), r.Time()
	n := r.Count()
	for range n {
		if id := r.Uvarint(); len(a.EventIDs) < maxEventIDs {
			a.EventIDs = append(a.EventIDs, id)
		}
	}
	if r.Err() != nil {
		return a, r.Err()
	}
	if sev > uint64(SeverityCritical) {
		return a, fmt.Errorf("%w: anomaly severity %d", ErrCheckpoint, sev)
	}
	a.Severity = Severity(sev)
	for _, f := range []float64{a.Score, a.Expected, a.Observed} {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return a, fmt.Errorf("%w: non-finite anomaly value", ErrCheckpoint)
		}
	}
	return a, nil
}

func hasDup(ss []string) bool {
	seen := make(map[string]struct{}, len(ss))
	for _, s := range ss {
		if _, ok := seen[s]; ok {
			return true
		}
		seen[s] = struct{}{}
	}
	return false
}
