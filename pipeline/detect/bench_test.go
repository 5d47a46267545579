package detect

import (
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/vigil-dev/vigil/collector"
)

// BenchmarkConsumeExec measures the detector's cost per exec row: column
// lookups, step sums for three entities, two novelty lookups and the pid
// map, with steps closing (and every known series scored) as time moves.
func BenchmarkConsumeExec(b *testing.B) {
	benchConsume(b, collector.KindExec, func(i int, ts time.Time) row {
		c := strconv.Itoa(i % 50)
		return execRow(ts, 1000+i%5000, 1000+(i+1)%5000, "comm"+c, "/usr/bin/tool"+c, "ctr"+strconv.Itoa(i%20))
	})
}

// BenchmarkConsumeTCP is the same for connection events.
func BenchmarkConsumeTCP(b *testing.B) {
	benchConsume(b, collector.KindTCP, func(i int, ts time.Time) row {
		return row{"ts": ts, "host": "web-1", "event": "connect", "pid": i % 5000, "comm": "c" + strconv.Itoa(i%50),
			"daddr": "10.0." + strconv.Itoa(i%7) + ".1", "dport": 443, "container_id": "ctr" + strconv.Itoa(i%20)}
	})
}

func benchConsume(b *testing.B, kind collector.Kind, mk func(i int, ts time.Time) row) {
	const rows = 1024
	mem := memory.NewGoAllocator()
	// 64 batches of 1024 rows spanning 64 steps, replayed with shifted
	// time: a realistic mix of new and known values.
	var batches []collector.Batch
	for j := range 64 {
		var rs []row
		for i := range rows {
			rs = append(rs, mk(j*rows+i, at(time.Duration(j)*time.Second+time.Duration(i)*time.Millisecond/2)))
		}
		batches = append(batches, makeBatch(b, mem, kind, rs...))
	}
	d := New(Options{Step: time.Second, Learning: time.Minute, ProcRoot: "-", Now: func() time.Time { return t0 }})
	b.ReportAllocs()
	b.ResetTimer()
	for n := range b.N {
		if n%len(batches) == 0 {
			// Replay from the start: rewind event time, keep the models
			// (so later rounds see known values, as in steady state).
			d.agg.open, d.agg.next, d.agg.watermark = map[int64]*stepAcc{}, 0, 0
		}
		bt := batches[n%len(batches)]
		bt.Record.Retain()
		d.consume(bt)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "rows/s")
	if d.agg.late > 0 {
		b.Fatalf("%d late rows: the benchmark measured dropping", d.agg.late)
	}
	for _, bt := range batches {
		bt.Record.Release()
	}
}
