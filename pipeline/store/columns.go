package store

import (
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// errConvert marks an error in turning Arrow data into a ClickHouse column:
// retrying the insert cannot fix it.
type convertError struct{ err error }

func (e *convertError) Error() string { return e.err.Error() }
func (e *convertError) Unwrap() error { return e.err }

// appendColumn appends one Arrow array to one batch column in a single
// Append call, with a typed slice. Fixed-width numbers go through without a
// copy (the Arrow values buffer is the slice); strings alias Arrow's buffers
// until clickhouse-go copies them into its own.
//
// Nulls: a Nullable(...) column gets NULL; any other column gets the zero
// value, which is what the probes' Arrow builders put under a null anyway.
func appendColumn(col driver.BatchColumn, chType string, arr arrow.Array) error {
	nullable := strings.HasPrefix(chType, "Nullable(")
	if nullable && arr.NullN() > 0 {
		return appendNullable(col, chType, arr)
	}
	if chType == "LowCardinality(String)" {
		if v, ok := boxedStrings(arr); ok {
			return col.Append(v)
		}
	}
	v, err := typedSlice(arr, chType)
	if err != nil {
		return err
	}
	if rows, ok := v.([][]string); ok {
		for _, r := range rows {
			if err := col.AppendRow(r); err != nil {
				return err
			}
		}
		return nil
	}
	return col.Append(v)
}

// boxedStrings gives a LowCardinality(String) column its values as []any in
// which equal strings share one interface value. clickhouse-go builds the
// dictionary with a map[any]int, so a []string would box (allocate) every
// row; boxing once per distinct value removes most of that cost.
func boxedStrings(arr arrow.Array) ([]any, bool) {
	switch a := arr.(type) {
	case *array.Dictionary:
		dict, ok := a.Dictionary().(*array.String)
		if !ok {
			return nil, false
		}
		words := make([]any, dict.Len())
		for i := range words {
			words[i] = dict.Value(i)
		}
		out := make([]any, a.Len())
		for i := range out {
			if a.IsValid(i) {
				out[i] = words[a.GetValueIndex(i)]
			} else {
				out[i] = ""
			}
		}
		return out, true
	case *array.String:
		seen := make(map[string]any)
		out := make([]any, a.Len())
		for i := range out {
			v := a.Value(i)
			b, ok := seen[v]
			if !ok {
				b = v
				seen[v] = b
			}
			out[i] = b
		}
		return out, true
	default:
		return nil, false
	}
}

// typedSlice is the slice clickhouse-go's Append accepts for arr.
func typedSlice(arr arrow.Array, chType string) (any, error) {
	switch a := arr.(type) {
	case *array.Uint8:
		if strings.Contains(chType, "Bool") {
			out := make([]bool, a.Len())
			for i, v := range a.Uint8Values() {
				out[i] = v != 0
			}
			return out, nil
		}
		return a.Uint8Values(), nil
	case *array.Uint16:
		return a.Uint16Values(), nil
	case *array.Uint32:
		return a.Uint32Values(), nil
	case *array.Uint64:
		return a.Uint64Values(), nil
	case *array.Int8:
		return a.Int8Values(), nil
	case *array.Int16:
		return a.Int16Values(), nil
	case *array.Int32:
		return a.Int32Values(), nil
	case *array.Int64:
		return a.Int64Values(), nil
	case *array.Float32:
		return a.Float32Values(), nil
	case *array.Float64:
		return a.Float64Values(), nil
	case *array.Boolean:
		out := make([]bool, a.Len())
		for i := range out {
			out[i] = a.Value(i)
		}
		return out, nil
	case *array.Timestamp:
		return timestamps(a), nil
	case *array.String:
		return stringValues(a), nil
	case *array.LargeString:
		out := make([]string, a.Len())
		for i := range out {
			out[i] = a.Value(i)
		}
		return out, nil
	case *array.Dictionary:
		return dictionaryStrings(a)
	case *array.List:
		return listValues(a, chType)
	default:
		return nil, &convertError{fmt.Errorf("arrow type %s is not supported", arr.DataType())}
	}
}

// timestamps converts to time.Time because clickhouse-go reads an []int64
// for DateTime64 as milliseconds whatever the column's precision
// (lib/column/datetime64.go, v2.50.0); time.Time keeps the nanoseconds.
func timestamps(a *array.Timestamp) []time.Time {
	unit := a.DataType().(*arrow.TimestampType).Unit
	mult := int64(unit.Multiplier()) // ns per unit
	out := make([]time.Time, a.Len())
	for i, v := range a.TimestampValues() {
		out[i] = time.Unix(0, int64(v)*mult).UTC()
	}
	return out
}

func stringValues(a *array.String) []string {
	out := make([]string, a.Len())
	for i := range out {
		out[i] = a.Value(i)
	}
	return out
}

// dictionaryStrings expands dictionary<int, string> (how the collector sends
// host and other repeated strings) to []string: clickhouse-go builds its own
// LowCardinality dictionary from the values.
func dictionaryStrings(a *array.Dictionary) ([]string, error) {
	dict, ok := a.Dictionary().(*array.String)
	if !ok {
		return nil, &convertError{fmt.Errorf("dictionary of %s is not supported, only of string", a.Dictionary().DataType())}
	}
	words := stringValues(dict)
	out := make([]string, a.Len())
	for i := range out {
		if a.IsValid(i) {
			out[i] = words[a.GetValueIndex(i)]
		}
	}
	return out, nil
}

// listValues turns list<T> into [][]T whose rows share one backing slice,
// so there is one allocation per column, not one per row.
func listValues(a *array.List, chType string) (any, error) {
	elemType := strings.TrimSuffix(strings.TrimPrefix(chType, "Array("), ")")
	vals, err := typedSlice(a.ListValues(), elemType)
	if err != nil {
		return nil, err
	}
	switch v := vals.(type) {
	case []string:
		return splitRows(v, a), nil
	case []uint32:
		return splitRows(v, a), nil
	case []uint64:
		return splitRows(v, a), nil
	case []int64:
		return splitRows(v, a), nil
	case []float64:
		return splitRows(v, a), nil
	default:
		return nil, &convertError{fmt.Errorf("list of %s is not supported", a.ListValues().DataType())}
	}
}

// ValueOffsets, not Offsets: the latter ignores the offset of a sliced array.
func splitRows[T any](vals []T, a *array.List) [][]T {
	out := make([][]T, a.Len())
	for i := range out {
		if a.IsValid(i) {
			beg, end := a.ValueOffsets(i)
			out[i] = vals[beg:end:end]
		}
	}
	return out
}

// appendNullable builds pointer slices, the form clickhouse-go takes for
// Nullable columns with NULLs in them.
func appendNullable(col driver.BatchColumn, chType string, arr arrow.Array) error {
	inner := strings.TrimSuffix(strings.TrimPrefix(chType, "Nullable("), ")")
	v, err := typedSlice(arr, inner)
	if err != nil {
		return err
	}
	switch s := v.(type) {
	case []string:
		return col.Append(pointers(s, arr))
	case []time.Time:
		return col.Append(pointers(s, arr))
	case []uint32:
		return col.Append(pointers(s, arr))
	case []uint64:
		return col.Append(pointers(s, arr))
	case []int32:
		return col.Append(pointers(s, arr))
	case []int64:
		return col.Append(pointers(s, arr))
	case []float64:
		return col.Append(pointers(s, arr))
	default:
		return &convertError{fmt.Errorf("nullable %s is not supported", arr.DataType())}
	}
}

func pointers[T any](s []T, arr arrow.Array) []*T {
	out := make([]*T, len(s))
	for i := range s {
		if arr.IsValid(i) {
			out[i] = &s[i]
		}
	}
	return out
}
