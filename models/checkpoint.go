package models

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/vigil-dev/vigil/models/ckpt"
)

// detectorVersion is the first byte of a detector checkpoint; a change to
// numState must bump it so that old checkpoints are refused, not misread.
const detectorVersion = 4

// ErrCheckpoint is returned (wrapped) for a checkpoint that cannot be read.
var ErrCheckpoint = ckpt.ErrBad

// StateSize is the size in bytes of a detector checkpoint.
var StateSize = 1 + binary.Size(numState{})

// MarshalBinary returns the detector's learned state.
func (d *Detector) MarshalBinary() ([]byte, error) {
	out := make([]byte, 1, StateSize)
	out[0] = detectorVersion
	return binary.Append(out, binary.LittleEndian, &d.s)
}

// UnmarshalBinary replaces the detector's state with a checkpoint. The
// detector keeps its options.
func (d *Detector) UnmarshalBinary(data []byte) error {
	// Version 3 is version 4 without the ladder's holds, which were
	// appended last: read it with no ladder level holding, so that an
	// upgrade does not send every series back to its warm-up.
	const ladderBytes = ladderLevels * 2
	if len(data) == StateSize-ladderBytes && firstByte(data) == 3 {
		data = append(append([]byte{detectorVersion}, data[1:]...), make([]byte, ladderBytes)...)
	}
	if len(data) != StateSize || data[0] != detectorVersion {
		return fmt.Errorf("detector state: %w: %d bytes, version %d", ErrCheckpoint, len(data), firstByte(data))
	}
	var s numState
	if err := binary.Read(bytes.NewReader(data[1:]), binary.LittleEndian, &s); err != nil {
		return fmt.Errorf("detector state: %w: %w", ErrCheckpoint, err)
	}
	if !s.finite() {
		return fmt.Errorf("detector state: %w: non-finite value", ErrCheckpoint)
	}
	if d.p == nil {
		d.p = newParams(DetectorOptions{})
	}
	d.s = s
	return nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// finite reports whether the state is one the detector could have reached:
// finite floats and positive tail scales, so a corrupt checkpoint cannot make
// the detector emit NaN.
func (s *numState) finite() bool {
	ok := func(fs ...float64) bool {
		for _, f := range fs {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return false
			}
		}
		return true
	}
	for i, v := range []*view{&s.Raw, &s.Des} {
		if !ok(v.Fast, v.Mid, v.Slow, v.Err, v.ErrF, v.Dev) {
			return false
		}
		used := s.N > 0 && (i == 0 || s.NS > 0)
		for _, t := range v.Tail {
			if !ok(t.Q, t.Beta) {
				return false
			}
			// A used tail divides by Q and Beta.
			if used && (t.Q <= 0 || t.Beta <= 0) {
				return false
			}
		}
	}
	for _, f := range s.Season {
		if !ok(float64(f)) {
			return false
		}
	}
	if !ok(s.WScale) || s.WScale < 0 {
		return false
	}
	return ok(s.Step, s.Hi, s.Lo, s.DHi, s.DLo, s.Prev)
}
