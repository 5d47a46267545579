package chread

import (
	"testing"
	"time"
)

func TestConverters(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 5, time.FixedZone("x", 3600))
	s := "s"
	cases := []struct {
		name string
		got  any
		want any
	}{
		{"string", String("a"), "a"},
		{"string ptr", String(&s), "s"},
		{"string nil ptr", String((*string)(nil)), ""},
		{"string wrong type", String(42), ""},
		{"strings", len(Strings([]string{"a", "b"})), 2},
		{"strings wrong type", Strings("a") == nil, true},
		{"time utc", Time(now), now.UTC()},
		{"time ptr", Time(&now), now.UTC()},
		{"time nil ptr", Time((*time.Time)(nil)).IsZero(), true},
		{"timeptr nil", TimePtr((*time.Time)(nil)) == nil, true},
		{"timeptr value", *TimePtr(now), now.UTC()},
		{"u64 from u32", Uint64(uint32(7)), uint64(7)},
		{"u64 negative clamps", Uint64(int64(-3)), uint64(0)},
		{"u32 truncates", Uint32(uint64(1<<32 + 5)), uint32(5)},
		{"float", Float(float32(1.5)), 1.5},
		{"float from int", Float(uint16(3)), 3.0},
		{"float wrong type", Float("x"), 0.0},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}
