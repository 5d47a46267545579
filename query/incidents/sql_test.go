package incidents

import (
	"testing"
	"time"
)

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"curl", `'curl'`},
		{"a'b", `'a\'b'`},
		{`a\'; DROP TABLE x; --`, `'a\\\'; DROP TABLE x; --'`},
		{"line\nbreak\x00", `'line\x0abreak\x00'`},
	}
	for _, tc := range tests {
		if got := quote(tc.in); got != tc.want {
			t.Errorf("quote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestValidUUID(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"6f1c2a3e-0b7d-4c55-9a51-2f0e8d7c1a01", true},
		{"6F1C2A3E-0B7D-4C55-9A51-2F0E8D7C1A01", true},
		{"6f1c2a3e-0b7d-4c55-9a51-2f0e8d7c1a01') OR 1=1 --", false},
		{"", false},
		{"not-a-uuid", false},
	}
	for _, tc := range tests {
		if got := ValidUUID(tc.in); got != tc.want {
			t.Errorf("ValidUUID(%q) = %v", tc.in, got)
		}
	}
}

func TestEvidenceSQL(t *testing.T) {
	ts := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		row  AnomalyRow
		want string
	}{
		{"numeric", AnomalyRow{Host: "web-1", EntityKind: "host", Entity: "web-1", Series: "execs", Detector: "numeric/spike", TS: ts},
			"SELECT ts, value FROM vigil.metrics\nWHERE host = 'web-1' AND entity_kind = 'host' AND entity = 'web-1' AND series = 'execs'\n  AND ts BETWEEN toDateTime64('2026-11-24 11:00:00.000000000', 9, 'UTC') AND toDateTime64('2026-11-24 12:01:00.000000000', 9, 'UTC')\nORDER BY ts"},
		{"destination with a hostile value", AnomalyRow{Host: "h'", Series: "destination", Detector: "novelty/destination/novel", TS: ts,
			Evidence: Evidence{Value: "1.2.3.4' OR 1=1:80"}},
			"SELECT ts, pid, comm, event, saddr, sport, daddr, dport FROM vigil.tcp_events\nWHERE host = 'h\\'' AND ts BETWEEN toDateTime64('2026-11-24 11:59:00.000000000', 9, 'UTC') AND toDateTime64('2026-11-24 12:01:00.000000000', 9, 'UTC')\n  AND daddr = '1.2.3.4\\' OR 1=1' AND dport = 80\nORDER BY ts LIMIT 100"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.row.EvidenceSQL("vigil"); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}
