package incidents

import (
	"fmt"
	"reflect"
)

// The converters accept the Go types clickhouse-go scans into and yield
// zero values otherwise: a schema change shows up as empty fields, not as a
// failed page.

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
