package pipeline_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/vigil-dev/vigil/collector"
	"github.com/vigil-dev/vigil/pipeline/engine/enginetest"
	"github.com/vigil-dev/vigil/pipeline/schema"
	"github.com/vigil-dev/vigil/pipeline/store"
)

// TestEveryKindLandsInItsTable is the contract between the collector's Arrow
// schemas and the ClickHouse migrations: for every event kind, a batch built
// from the collector's schema is written by the real writer into the real
// migrated table, and comes back. A column renamed or retyped on one side
// only fails here.
func TestEveryKindLandsInItsTable(t *testing.T) {
	h := enginetest.Start(t)
	conn := h.Conn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := schema.Migrate(ctx, conn, schema.Options{}); err != nil {
		t.Fatal(err)
	}
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	w := store.NewWriter(conn, store.Options{})
	defer w.Close()

	for _, kind := range collector.Kinds() {
		t.Run(string(kind), func(t *testing.T) {
			sc := collector.Schema(kind)
			if sc == nil {
				t.Fatalf("kind %s has no Arrow schema", kind)
			}
			const rows = 3
			rec := sampleRecord(t, mem, sc, rows)
			if err := w.Write(ctx, collector.Batch{Kind: kind, Record: rec}); err != nil {
				t.Fatalf("write %s: %v", kind, err)
			}
			if err := w.Flush(ctx); err != nil {
				t.Fatalf("flush %s: %v", kind, err)
			}
			var n uint64
			table := collector.Table(kind)
			if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM vigil.%s WHERE host = 'conformance'", table)).Scan(&n); err != nil {
				t.Fatalf("count %s: %v", table, err)
			}
			if n != rows {
				t.Fatalf("vigil.%s has %d conformance rows, want %d", table, n, rows)
			}
		})
	}
}

// sampleRecord fills every column of sc with plausible values; host is
// "conformance" so the test can find its rows.
func sampleRecord(t *testing.T, mem memory.Allocator, sc *arrow.Schema, rows int) arrow.RecordBatch {
	t.Helper()
	b := array.NewRecordBuilder(mem, sc)
	defer b.Release()
	now := time.Now().UnixNano()
	for i, f := range sc.Fields() {
		for r := range rows {
			switch fb := b.Field(i).(type) {
			case *array.TimestampBuilder:
				fb.Append(arrow.Timestamp(now + int64(r)))
			case *array.Uint8Builder:
				fb.Append(uint8(r))
			case *array.Uint16Builder:
				fb.Append(uint16(r))
			case *array.Uint32Builder:
				fb.Append(uint32(r))
			case *array.Uint64Builder:
				fb.Append(uint64(r))
			case *array.Int32Builder:
				fb.Append(int32(r))
			case *array.Int64Builder:
				fb.Append(int64(r))
			case *array.Float64Builder:
				fb.Append(float64(r))
			case *array.BooleanBuilder:
				fb.Append(r%2 == 0)
			case *array.StringBuilder:
				fb.Append(value(f.Name, r))
			case *array.BinaryDictionaryBuilder:
				if err := fb.AppendString(value(f.Name, r)); err != nil {
					t.Fatal(err)
				}
			case *array.ListBuilder:
				fb.Append(true)
				vb, ok := fb.ValueBuilder().(*array.StringBuilder)
				if !ok {
					t.Fatalf("column %s: list of %s is not mapped", f.Name, fb.ValueBuilder().Type())
				}
				vb.Append("a")
				vb.Append(fmt.Sprint(r))
			default:
				t.Fatalf("column %s: Arrow type %s has no ClickHouse mapping in this test", f.Name, f.Type)
			}
		}
	}
	return b.NewRecordBatch()
}

func value(col string, r int) string {
	if col == "host" {
		return "conformance"
	}
	return fmt.Sprintf("%s-%d", col, r)
}
