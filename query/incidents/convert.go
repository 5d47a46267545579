package incidents

import (
	"fmt"
	"reflect"
	"time"
)

// The converters accept the Go types clickhouse-go scans into and yield
// zero values otherwise: a schema change shows up as empty fields, not as a
// failed page.

func str(v any) string {
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

func strs(v any) []string {
	if x, ok := v.([]string); ok {
		return x
	}
	return nil
}

// uuids reads an Array(UUID), which the driver scans as []uuid.UUID;
// only the length is needed, so any slice of Stringers will do.
func uuids(v any) []string {
	switch x := v.(type) {
	case []string:
		return x
	case []fmt.Stringer:
		out := make([]string, len(x))
		for i, s := range x {
			out[i] = s.String()
		}
		return out
	}
	return reflectStrings(v)
}

func tm(v any) time.Time {
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

func tmPtr(v any) *time.Time {
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

func u64(v any) uint64 {
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

func u32(v any) uint32 { return uint32(u64(v)) }

func flt(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case float32:
		return float64(x)
	}
	return float64(u64(v))
}

// reflectStrings formats the elements of any slice (e.g. []uuid.UUID).
func reflectStrings(v any) []string {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice {
		return nil
	}
	out := make([]string, rv.Len())
	for i := range out {
		out[i] = fmt.Sprint(rv.Index(i).Interface())
	}
	return out
}
