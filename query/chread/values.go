package chread

import (
	"fmt"
	"time"
)

// Converters from the values Query returns (whatever clickhouse-go scanned
// into) to plain Go values. They yield zero values for anything else, so a
// schema change shows up as empty fields rather than a failed page.

// String reads a String or LowCardinality(String) value (or any Stringer, e.g. a UUID).
func String(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case *string:
		if x != nil {
			return *x
		}
	case fmt.Stringer:
		return x.String()
	}
	return ""
}

// Strings reads an Array(String).
func Strings(v any) []string {
	if x, ok := v.([]string); ok {
		return x
	}
	return nil
}

// Time reads a DateTime or DateTime64, in UTC.
func Time(v any) time.Time {
	switch x := v.(type) {
	case time.Time:
		return x.UTC()
	case *time.Time:
		if x != nil {
			return x.UTC()
		}
	}
	return time.Time{}
}

// TimePtr reads a Nullable(DateTime64): nil for NULL.
func TimePtr(v any) *time.Time {
	switch x := v.(type) {
	case *time.Time:
		if x != nil {
			t := x.UTC()
			return &t
		}
	case time.Time:
		t := x.UTC()
		return &t
	}
	return nil
}

// Uint64 reads any integer, clamping negatives to 0.
func Uint64(v any) uint64 {
	switch x := v.(type) {
	case uint64:
		return x
	case uint32:
		return uint64(x)
	case uint16:
		return uint64(x)
	case uint8:
		return uint64(x)
	case int64:
		return uint64(max(x, 0))
	case int32:
		return uint64(max(x, 0))
	case int:
		return uint64(max(x, 0))
	}
	return 0
}

// Uint32 is Uint64 truncated to 32 bits.
func Uint32(v any) uint32 { return uint32(Uint64(v)) }

// Float reads a float or, failing that, an integer.
func Float(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case float32:
		return float64(x)
	}
	return float64(Uint64(v))
}
