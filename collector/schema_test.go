package collector

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestSchemas(t *testing.T) {
	for _, k := range Kinds() {
		s := Schema(k)
		if s == nil {
			t.Fatalf("no schema for %s", k)
		}
		if s.Field(0).Name != "ts" || s.Field(1).Name != "host" {
			t.Errorf("%s: first columns %s, %s; want ts, host", k, s.Field(0).Name, s.Field(1).Name)
		}
		seen := map[string]bool{}
		for _, f := range s.Fields() {
			if seen[f.Name] {
				t.Errorf("%s: column %s twice", k, f.Name)
			}
			seen[f.Name] = true
			if f.Nullable {
				t.Errorf("%s: column %s nullable", k, f.Name)
			}
		}
		_, ring := ringKinds[k]
		if ring == aggregatedKinds[k] {
			t.Errorf("%s: ring kind %v, aggregated %v", k, ring, aggregatedKinds[k])
		}
	}
	if Table(KindExec) != "exec_events" || Table(KindRunqLatency) != "runq_latency" || Table(KindSyscallCounts) != "syscall_counts" {
		t.Error("table names")
	}
}

// TestAddedColumns: the columns added after the first release are the last
// of their schema, and a schema lacking a suffix of them is accepted and
// upgraded with zeros, while any other difference is refused.
func TestAddedColumns(t *testing.T) {
	for k, names := range added {
		s := Schema(k)
		for i, n := range names {
			if got := s.Field(s.NumFields() - len(names) + i).Name; got != n {
				t.Errorf("%s: added column %s is not in place (found %s)", k, n, got)
			}
		}
	}
	full := Schema(KindExec)
	older := arrow.NewSchema(full.Fields()[:full.NumFields()-1], nil)
	if err := CheckColumns(KindExec, older); err != nil {
		t.Errorf("an older collector's exec columns: %v", err)
	}
	if err := CheckColumns(KindExec, full); err != nil {
		t.Errorf("exec columns: %v", err)
	}
	for name, s := range map[string]*arrow.Schema{
		"added column missing elsewhere": arrow.NewSchema(full.Fields()[:full.NumFields()-2], nil),
		"extra column":                   arrow.NewSchema(append(full.Fields(), col("x", typeU32)), nil),
		"renamed":                        arrow.NewSchema(append(full.Fields()[:full.NumFields()-1:full.NumFields()-1], col("x", typeU32)), nil),
		"a column added to another kind": arrow.NewSchema(Schema(KindExit).Fields()[:Schema(KindExit).NumFields()-1], nil),
	} {
		k := KindExec
		if name == "a column added to another kind" {
			k = KindExit
		}
		if err := CheckColumns(k, s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}

	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	b := newExecBuilder(mem, &env{host: []byte("h"), clock: &clock{}})
	defer b.release()
	if err := b.append(execRecord("sh")); err != nil {
		t.Fatal(err)
	}
	rec := b.flush()
	defer rec.Release()
	old := array.NewRecordBatch(older, rec.Columns()[:older.NumFields()], rec.NumRows())
	up := Upgrade(KindExec, old, mem)
	old.Release()
	defer up.Release()
	if !up.Schema().Equal(full) || up.NumRows() != 1 {
		t.Fatalf("upgraded to %s, %d rows", up.Schema(), up.NumRows())
	}
	if v := up.Column(full.NumFields() - 1).(*array.Uint32).Value(0); v != 0 {
		t.Errorf("exec_ancestor of an upgraded row = %d, want 0", v)
	}
}
