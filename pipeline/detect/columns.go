package detect

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Column accessors look columns up by name and degrade to zero values when a
// column is missing or has an unexpected type: the collector's schemas are
// still moving, and a renamed column must cost a feature, not the detector.

// strCol returns row i of a string or dictionary<string> column.
type strCol func(i int) string

// uintCol returns row i of an unsigned (or non-negative signed) column.
type uintCol func(i int) uint64

// tsCol returns row i of a timestamp column in unix nanoseconds.
type tsCol func(i int) int64

func column(rec arrow.RecordBatch, name string) arrow.Array {
	idx := rec.Schema().FieldIndices(name)
	if len(idx) == 0 {
		return nil
	}
	return rec.Column(idx[0])
}

func strColumn(rec arrow.RecordBatch, name string) strCol {
	switch a := column(rec, name).(type) {
	case *array.String:
		return func(i int) string {
			if a.IsNull(i) {
				return ""
			}
			return a.Value(i)
		}
	case *array.Dictionary:
		dict, ok := a.Dictionary().(*array.String)
		if !ok {
			break
		}
		return func(i int) string {
			if a.IsNull(i) {
				return ""
			}
			return dict.Value(a.GetValueIndex(i))
		}
	}
	return func(int) string { return "" }
}

func uintColumn(rec arrow.RecordBatch, name string) uintCol {
	switch a := column(rec, name).(type) {
	case *array.Uint64:
		return func(i int) uint64 { return a.Value(i) }
	case *array.Uint32:
		return func(i int) uint64 { return uint64(a.Value(i)) }
	case *array.Uint16:
		return func(i int) uint64 { return uint64(a.Value(i)) }
	case *array.Uint8:
		return func(i int) uint64 { return uint64(a.Value(i)) }
	case *array.Int64:
		return func(i int) uint64 { return uint64(max(a.Value(i), 0)) }
	case *array.Int32:
		return func(i int) uint64 { return uint64(max(a.Value(i), 0)) }
	}
	return func(int) uint64 { return 0 }
}

// hasColumn reports whether rec has a column of that name.
func hasColumn(rec arrow.RecordBatch, name string) bool {
	return len(rec.Schema().FieldIndices(name)) > 0
}

func tsColumn(rec arrow.RecordBatch) tsCol {
	a, ok := column(rec, "ts").(*array.Timestamp)
	if !ok {
		return nil
	}
	mul := int64(1)
	if tt, ok := a.DataType().(*arrow.TimestampType); ok {
		switch tt.Unit {
		case arrow.Second:
			mul = 1e9
		case arrow.Millisecond:
			mul = 1e6
		case arrow.Microsecond:
			mul = 1e3
		}
	}
	return func(i int) int64 { return int64(a.Value(i)) * mul }
}
