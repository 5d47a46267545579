package store_test

import (
	"testing"

	"github.com/vigil-dev/vigil/collector"
	"github.com/vigil-dev/vigil/pipeline/store"
)

func TestTableFor(t *testing.T) {
	for _, tc := range []struct {
		kind collector.Kind
		want string
	}{
		{collector.KindExec, "exec_events"},
		{"tcp", "tcp_events"},
		{"retransmit", "retransmit_events"},
		{"syscall_counts", "syscall_counts"},
		{"runq_latency", "runq_latency"},
		{"metrics", "metrics"},
	} {
		if got := store.TableFor(tc.kind); got != tc.want {
			t.Errorf("TableFor(%q) = %q, want %q", tc.kind, got, tc.want)
		}
	}
}
