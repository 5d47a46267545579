package collector

import "github.com/apache/arrow-go/v18/arrow"

// Kind names an event kind. The ClickHouse table for a kind is Kind+"_events"
// (see Table), except for the aggregated kinds documented in docs/schema.md.
type Kind string

// The event kinds the probes emit. Each has exactly one Arrow schema (Schema).
const (
	KindExec Kind = "exec"
)

// Batch is one Arrow record batch of a single kind, the unit that flows from
// the collector into the pipeline. The receiver owns one reference to Record
// and must Release it when done (Retain before handing it to another owner).
type Batch struct {
	Kind   Kind
	Record arrow.RecordBatch
}
