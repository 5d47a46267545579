package detect

import (
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/vigil-dev/vigil/collector"
)

// row is one synthetic event: column name → value. Missing columns get
// zero values.
type row map[string]any

// makeBatch builds a batch of kind with the collector's own schema, so the
// tests break when a column the detector reads is renamed.
func makeBatch(t testing.TB, mem memory.Allocator, kind collector.Kind, rows ...row) collector.Batch {
	t.Helper()
	sc := collector.Schema(kind)
	if sc == nil {
		t.Fatalf("no schema for %s", kind)
	}
	b := array.NewRecordBuilder(mem, sc)
	defer b.Release()
	for _, r := range rows {
		for i, f := range sc.Fields() {
			v := r[f.Name]
			switch fb := b.Field(i).(type) {
			case *array.TimestampBuilder:
				ts, _ := v.(time.Time)
				fb.Append(arrow.Timestamp(ts.UnixNano()))
			case *array.Uint32Builder:
				n, _ := v.(int)
				fb.Append(uint32(n))
			case *array.Uint64Builder:
				n, _ := v.(int)
				fb.Append(uint64(n))
			case *array.StringBuilder:
				s, _ := v.(string)
				fb.Append(s)
			case *array.BinaryDictionaryBuilder:
				s, _ := v.(string)
				if err := fb.AppendString(s); err != nil {
					t.Fatal(err)
				}
			case *array.ListBuilder:
				fb.Append(true)
				ss, _ := v.([]string)
				vb := fb.ValueBuilder().(*array.StringBuilder)
				for _, s := range ss {
					vb.Append(s)
				}
			default:
				t.Fatalf("column %s: unhandled builder %T", f.Name, fb)
			}
		}
	}
	return collector.Batch{Kind: kind, Record: b.NewRecordBatch()}
}

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func execRow(ts time.Time, pid, ppid int, comm, file, container string) row {
	return row{"ts": ts, "host": "web-1", "pid": pid, "ppid": ppid, "comm": comm, "filename": file,
		"argv": []string{file}, "container_id": container, "cgroup_id": 7}
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }
