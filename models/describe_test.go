package models

import "testing"

func TestDescribe(t *testing.T) {
	cases := []struct {
		a    Anomaly
		want string
	}{
		{Anomaly{Detector: "novelty/exec_pair/novel", Entity: "host:web-1", Value: "nginx -> /bin/sh"}, "New parent → child exec on host:web-1: nginx -> /bin/sh"},
		{Anomaly{Detector: "novelty/binary/novel", Entity: "container:abc", Value: "/tmp/x"}, "New binary run on container:abc: /tmp/x"},
		{Anomaly{Detector: "novelty/destination/novel", Entity: "comm:curl", Value: "203.0.113.7:4444"}, "New outbound destination on comm:curl: 203.0.113.7:4444"},
		{Anomaly{Detector: "novelty/priv_change/rare", Entity: "host:a", Value: "setuid 0"}, "Rare privilege change on host:a: setuid 0"},
		{Anomaly{Detector: "numeric/spike", Entity: "host:a", Series: "exec_rate", Observed: 42, Expected: 3.5}, "Unusually high exec_rate on host:a (42, expected 3.5)"},
		{Anomaly{Detector: "numeric/level", Entity: "host:a", Series: "bytes_in", Observed: 1, Expected: 900}, "Unusually low bytes_in on host:a (1, expected 900)"},
		{Anomaly{Detector: "other", Entity: "e"}, "other on e"},
	}
	for _, c := range cases {
		if got := describe(&c.a); got != c.want {
			t.Errorf("describe(%s) = %q, want %q", c.a.Detector, got, c.want)
		}
	}
}
