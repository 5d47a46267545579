package collector

import "testing"

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
