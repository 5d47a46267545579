package ckpt

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	when := time.Date(2026, 11, 24, 12, 0, 0, 5, time.UTC)
	var b []byte
	b = binary.AppendUvarint(b, 300)
	b = binary.AppendVarint(b, -7)
	b = AppendString(b, "comm:sh@web-1")
	b = AppendFloat64(b, 2.5)
	b = AppendTime(b, when)
	b = AppendTime(b, time.Time{})
	b = AppendStrings(b, []string{"a", "", "c"})
	r := NewReader(b)
	if v := r.Uvarint(); v != 300 {
		t.Errorf("uvarint %d", v)
	}
	if v := r.Varint(); v != -7 {
		t.Errorf("varint %d", v)
	}
	if s := r.Str(); s != "comm:sh@web-1" {
		t.Errorf("string %q", s)
	}
	if f := r.Float64(); f != 2.5 {
		t.Errorf("float %v", f)
	}
	if tm := r.Time(); !tm.Equal(when) {
		t.Errorf("time %v", tm)
	}
	if tm := r.Time(); !tm.IsZero() {
		t.Errorf("zero time read as %v", tm)
	}
	if ss := r.Strings(); !slices.Equal(ss, []string{"a", "", "c"}) {
		t.Errorf("strings %q", ss)
	}
	if r.Err() != nil || r.Len() != 0 {
		t.Errorf("err %v, %d bytes left", r.Err(), r.Len())
	}
}

// TestRefused: lengths and counts beyond the input, and reads past its
// end, fail with ErrBad and read nothing further.
func TestRefused(t *testing.T) {
	for name, tc := range map[string]struct {
		in   []byte
		read func(r *Reader)
	}{
		"empty uvarint":       {nil, func(r *Reader) { r.Uvarint() }},
		"string past the end": {binary.AppendUvarint(nil, 5), func(r *Reader) { r.Str() }},
		"huge count":          {binary.AppendUvarint(nil, 1<<62), func(r *Reader) { r.Strings() }},
		"short float":         {[]byte{1, 2, 3}, func(r *Reader) { r.Float64() }},
		"short time":          {[]byte{0x80}, func(r *Reader) { r.Time() }},
	} {
		t.Run(name, func(t *testing.T) {
			r := NewReader(tc.in)
			tc.read(r)
			if !errors.Is(r.Err(), ErrBad) {
				t.Fatalf("err = %v, want ErrBad", r.Err())
			}
			if r.Uvarint() != 0 || r.Str() != "" {
				t.Error("read after an error returned data")
			}
		})
	}
}

// FuzzReader: any input decodes without panicking, and a failed read
// leaves an error.
func FuzzReader(f *testing.F) {
	f.Add(AppendStrings(AppendTime(nil, time.Unix(1, 0)), []string{"x"}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(b)
		for r.Err() == nil && r.Len() > 0 {
			r.Strings()
			r.Time()
			r.Float64()
		}
	})
}
