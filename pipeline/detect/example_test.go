package detect_test

import (
	"log/slog"
	"path/filepath"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vigil-dev/vigil/pipeline"
	"github.com/vigil-dev/vigil/pipeline/detect"
	"github.com/vigil-dev/vigil/query/chread"
	"github.com/vigil-dev/vigil/query/incidents"
	"github.com/vigil-dev/vigil/query/llm"
	"github.com/vigil-dev/vigil/query/summary"
	"github.com/vigil-dev/vigil/ui"
)

// Example_wiring shows how `vigil up` connects the stage: the sink writes
// through the read-write connection and publishes to the dashboard's hub;
// the dashboard reads through the read-only one. (Compiled, not run.)
func Example_wiring() {
	var (
		conn, roConn driver.Conn      // default user; vigil_ro
		hub          detect.Publisher // srv.Hub()
		llmOpts      llm.Options      // llmOptions(cfg, log)
		log          = slog.Default()
		dataDir      = "./data"
	)
	sink := detect.NewSink(detect.SinkOptions{
		Conn:       conn,
		Publisher:  hub,
		Summarizer: summary.New(summary.Options{LLM: llmOpts, Logger: log.With("stage", "summary")}),
		Reader:     chread.NewClickHouse(roConn, chread.Limits{}),
		Logger:     log.With("stage", "detect"),
	})
	defer sink.Close() // after the pipeline has returned, before the hub and the conn close
	det := detect.New(detect.Options{
		Step:     10 * time.Second,
		Learning: time.Hour,
		StateDir: filepath.Join(dataDir, "models"),
		Output:   sink,
		Logger:   log.With("stage", "detect"),
	})
	_ = pipeline.New(pipeline.Options{}, pipeline.Stage{Name: "detect", Consumer: det, Queue: 256})

	src := incidents.New(chread.NewClickHouse(roConn, chread.Limits{}), incidents.Options{})
	_ = ui.Options{Anomalies: src, Incidents: src}
}
