package incidents

import "testing"

func TestAnomalyText(t *testing.T) {
	for _, tc := range []struct {
		row  AnomalyRow
		want string
	}{
		{AnomalyRow{EntityKind: "comm", Entity: "vbench-reader", Series: "sensitive_file", Detector: "novelty/sensitive_file/novel",
			Evidence: Evidence{Value: "vbench-reader /etc/shadow"}},
			"new sensitive file access on comm vbench-reader: vbench-reader /etc/shadow"},
		{AnomalyRow{EntityKind: "comm", Entity: "java", Series: "oom_kill", Detector: "novelty/oom_kill/rare", Evidence: Evidence{Value: "java"}},
			"rare oom_kill on comm java: java"},
		{AnomalyRow{EntityKind: "comm", Entity: "x", Series: "priv_change", Detector: "novelty/priv_change/escalation", Evidence: Evidence{Value: "x setuid(0) euid 1000->1000 failed"}},
			"privilege escalation attempt on comm x: x setuid(0) euid 1000->1000 failed"},
		{AnomalyRow{EntityKind: "host", Host: "web-1", Series: "execs", Detector: "burst/execs", Observed: 3000, Expected: 40},
			"burst of execs on host web-1: 3000 in one step, usual peak 40"},
		{AnomalyRow{EntityKind: "comm", Entity: "scan", Series: "failed_destinations", Detector: "fanout/failed_destinations", Observed: 480},
			"connection fan-out (possible scan) on comm scan: 480 distinct failed destinations in one step, usual peak 0"},
		{AnomalyRow{EntityKind: "host", Host: "web-1", Series: "bytes_out", Detector: "numeric/level_shift", Observed: 9e6, Expected: 1e3},
			"bytes_out level shift on host web-1: observed 8.583 MiB, expected 1000 B"},
		{AnomalyRow{EntityKind: "comm", Entity: "xfer", Series: "retransmits", Detector: "numeric/spike", Observed: 27, Expected: 3.1e-61},
			"retransmits spike on comm xfer: observed 27, expected 0"},
	} {
		if got := tc.row.Text(); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.row.Detector, got, tc.want)
		}
	}
}
