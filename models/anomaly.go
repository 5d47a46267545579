package models

import "time"

// Severity ranks anomalies and incidents for the on-call engineer.
type Severity uint8

// Severities, lowest first.
const (
	SeverityInfo Severity = iota
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

func (s Severity) String() string {
	switch s {
	case SeverityLow:
		return "low"
	case SeverityMedium:
		return "medium"
	case SeverityHigh:
		return "high"
	case SeverityCritical:
		return "critical"
	}
	return "info"
}

// SeverityForScore maps a calibrated score to a severity. The cut-offs
// follow the numeric detector's calibration: 0.5 is roughly a one in 20,000
// tail probability, 0.8 one in 10^7.
func SeverityForScore(score float64) Severity {
	switch {
	case score >= 0.9:
		return SeverityCritical
	case score >= 0.7:
		return SeverityHigh
	case score >= 0.5:
		return SeverityMedium
	case score >= 0.3:
		return SeverityLow
	}
	return SeverityInfo
}

// Anomaly is one scored observation with the evidence needed to check it:
// what was expected, what was seen, which detector said so, and where to
// look (a time range and, for events, their ids).
type Anomaly struct {
	Entity   string // container, host or process identity the model is kept for
	Tree     string // process tree (e.g. the session leader) for correlation; may be empty
	Series   string // metric name or categorical kind
	Detector string // e.g. "numeric/spike", "novelty/exec_pair"
	Score    float64
	Severity Severity

	// Numeric evidence.
	Expected float64
	Observed float64

	// Categorical evidence: the value that was new or rare
	// ("nginx -> /bin/sh", "10.0.0.7:4444").
	Value string

	// Where to query the raw data: [Start, End] and, when known, the
	// event ids.
	Start    time.Time
	End      time.Time
	EventIDs []uint64
}

// Time is when the anomaly happened: the end of its range.
func (a *Anomaly) Time() time.Time {
	if a.End.IsZero() {
		return a.Start
	}
	return a.End
}
