package models

import (
	"strconv"
	"testing"
)

func TestDescribe(t *testing.T) {
	cases := []struct {
		a    Anomaly
		want string
	}{
		{Anomaly{Detector: "novelty/exec_pair/novel", Entity: "host:web-1", Value: "nginx -> /bin/sh"}, "New parent → child exec on host:web-1: nginx -> /bin/sh"},
		{Anomaly{Detector: "novelty/binary/novel", Entity: "container:abc", Value: "/tmp/x"}, "New binary run on container:abc: /tmp/x"},
		{Anomaly{Detector: "novelty/destination/novel", Entity: "comm:curl", Value: "203.0.113.7:4444"}, "New outbound destination on comm:curl: 203.0.113.7:4444"},
		{Anomaly{Detector: "novelty/priv_change/rare", Entity: "host:a", Value: "setuid 0"}, "Rare privilege change on host:a: setuid 0"},
		{Anomaly{Detector: "novelty/priv_change/escalation", Entity: "comm:x@a", Value: "x setuid(0) euid 1000->1000 failed"}, "Privilege escalation attempt on comm:x@a: x setuid(0) euid 1000->1000 failed"},
		{Anomaly{Detector: "numeric/spike", Entity: "host:a", Series: "exec_rate", Observed: 42, Expected: 3.5}, "Unusually high exec_rate on host:a (42, expected 3.5)"},
		{Anomaly{Detector: "numeric/level", Entity: "host:a", Series: "bytes_in", Observed: 1, Expected: 900}, "Unusually low bytes_in on host:a (1 B, expected 900 B)"},
		{Anomaly{Detector: "novelty/sensitive_file/novel", Entity: "comm:cat@a", Value: "cat /etc/shadow"}, "Unusual sensitive file access on comm:cat@a: cat /etc/shadow"},
		{Anomaly{Detector: "novelty/oom_kill/novel", Entity: "comm:java@a", Value: "java"}, "OOM kill on comm:java@a: java"},
		{Anomaly{Detector: "novelty/abnormal_exit/rare", Entity: "comm:w@a", Value: "w SIGSEGV"}, "Unusual crash or kill on comm:w@a: w SIGSEGV"},
		{Anomaly{Detector: "burst/execs", Entity: "comm:true@a", Series: "execs", Observed: 300, Expected: 1}, "Burst of execs on comm:true@a (300 in one step, usual peak 1)"},
		{Anomaly{Detector: "fanout/failed_destinations", Entity: "comm:nmap@a", Series: "failed_destinations", Observed: 500}, "Connection fan-out (possible scan) on comm:nmap@a (500 distinct failed destinations in one step, usual peak 0)"},
		{Anomaly{Detector: "numeric/spike", Entity: "comm:x@a", Series: "retransmits", Observed: 27, Expected: 3.111507638930571e-61}, "Unusually high retransmits on comm:x@a (27, expected 0)"},
		{Anomaly{Detector: "other", Entity: "e"}, "other on e"},
	}
	for _, c := range cases {
		if got := describe(&c.a); got != c.want {
			t.Errorf("describe(%s) = %q, want %q", c.a.Detector, got, c.want)
		}
	}
}

func TestFormatValue(t *testing.T) {
	cases := []struct {
		v    float64
		want string
	}{
		{0, "0"},
		{3.111507638930571e-61, "0"},
		{-0.0001, "0"},
		{0.0012, "0.0012"},
		{0.737851162325373, "0.7379"},
		{1, "1"},
		{3.5, "3.5"},
		{6.9371407388004425, "6.937"},
		{42, "42"},
		{99.99, "99.99"},
		{999.96, "1000"},
		{5880.458774202168, "5880"},
		{314572800, "314572800"},
		{-12.5, "-12.5"},
		{1e300, strconv.FormatFloat(1e300, 'f', 0, 64)},
	}
	for _, c := range cases {
		if got := FormatValue(c.v); got != c.want {
			t.Errorf("FormatValue(%g) = %q, want %q", c.v, got, c.want)
		}
	}
	for _, c := range []struct {
		series string
		v      float64
		want   string
	}{
		{"bytes_out", 314572800, "300 MiB"},
		{"bytes_out", 6071, "5.929 KiB"},
		{"bytes_in", 512, "512 B"},
		{"bytes_in", 3 << 30, "3 GiB"},
		{"execs", 314572800, "314572800"},
	} {
		if got := FormatQuantity(c.series, c.v); got != c.want {
			t.Errorf("FormatQuantity(%s, %g) = %q, want %q", c.series, c.v, got, c.want)
		}
	}
}
