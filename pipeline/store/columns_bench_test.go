package store

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// colAdapter makes a bare column look like a batch column, so the conversion
// can be measured without a server.
type colAdapter struct{ c column.Interface }

func (a colAdapter) Append(v any) error    { _, err := a.c.Append(v); return err }
func (a colAdapter) AppendRow(v any) error { return a.c.AppendRow(v) }

func benchArrays(n int) map[string]arrow.Array {
	mem := memory.DefaultAllocator
	comm := array.NewStringBuilder(mem)
	host := array.NewDictionaryBuilder(mem, &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}).(*array.BinaryDictionaryBuilder)
	argv := array.NewListBuilder(mem, arrow.BinaryTypes.String)
	args := argv.ValueBuilder().(*array.StringBuilder)
	u32 := array.NewUint32Builder(mem)
	ts := array.NewTimestampBuilder(mem, &arrow.TimestampType{Unit: arrow.Nanosecond})
	for i := range n {
		comm.Append(fmt.Sprintf("proc-%02d", i%48))
		_ = host.AppendString(fmt.Sprintf("host-%d", i%4))
		argv.Append(true)
		for j := range i % 4 {
			args.Append(fmt.Sprintf("arg-%d", j))
		}
		u32.Append(uint32(i))
		ts.Append(arrow.Timestamp(int64(i) * 1000))
	}
	strs := comm.NewArray()
	return map[string]arrow.Array{
		"LowCardinality(String)/string": strs,
		"LowCardinality(String)/dict":   host.NewArray(),
		"Array(String)/list":            argv.NewArray(),
		"UInt32/uint32":                 u32.NewArray(),
		"DateTime64(9)/timestamp":       ts.NewArray(),
		"String/string":                 strs,
	}
}

// BenchmarkAppendColumn reports the client cost per row of converting and
// appending each kind of column (sub-benchmark "ClickHouse type/Arrow type"),
// without a server. The row-by-row baseline, and the end-to-end rate, are in
// bench/store.
func BenchmarkAppendColumn(b *testing.B) {
	const n = 100_000
	arrs := benchArrays(n)
	for name, arr := range arrs {
		chType := name[:strings.LastIndex(name, "/")]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c, err := column.Type(chType).Column("c", &column.ServerContext{Timezone: time.UTC})
				if err != nil {
					b.Fatal(err)
				}
				if err := appendColumn(colAdapter{c}, chType, arr); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
		})
	}
}
