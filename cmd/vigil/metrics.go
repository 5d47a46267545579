package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// newRegistry returns the registry behind /metrics: Go runtime and process
// metrics plus the platform's own counters, read from each stage's Stats at
// scrape time so the hot paths carry no metric code.
func newRegistry(p *platform) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&platformMetrics{p: p},
	)
	return reg
}

// platformMetrics is a prometheus.Collector over the stages' snapshots.
type platformMetrics struct{ p *platform }

var (
	mProbeEvents   = prometheus.NewDesc("vigil_probe_events_total", "Events decoded from a probe.", []string{"probe", "kind"}, nil)
	mProbeKDrops   = prometheus.NewDesc("vigil_probe_kernel_drops_total", "Records a probe could not reserve ring buffer space for.", []string{"probe", "kind"}, nil)
	mProbeUDrops   = prometheus.NewDesc("vigil_probe_user_drops_total", "Rows decoded but dropped because the pipeline was behind.", []string{"probe", "kind"}, nil)
	mProbeDecErr   = prometheus.NewDesc("vigil_probe_decode_errors_total", "Records that failed to decode.", []string{"probe", "kind"}, nil)
	mRingUsed      = prometheus.NewDesc("vigil_probe_ring_used_bytes", "Bytes waiting in a probe's ring buffer.", []string{"probe", "kind"}, nil)
	mRingSize      = prometheus.NewDesc("vigil_probe_ring_size_bytes", "Size of a probe's ring buffer.", []string{"probe", "kind"}, nil)
	mProbeFailed   = prometheus.NewDesc("vigil_probe_failed", "1 for each requested probe that failed to load.", []string{"probe"}, nil)
	mStageRows     = prometheus.NewDesc("vigil_pipeline_rows_total", "Rows queued for a pipeline stage.", []string{"stage"}, nil)
	mStageDrops    = prometheus.NewDesc("vigil_pipeline_dropped_rows_total", "Rows a stage lost because its queue was full.", []string{"stage"}, nil)
	mStageDepth    = prometheus.NewDesc("vigil_pipeline_queue_depth", "Batches waiting in a stage's queue.", []string{"stage"}, nil)
	mStageCap      = prometheus.NewDesc("vigil_pipeline_queue_capacity", "Capacity of a stage's queue, in batches.", []string{"stage"}, nil)
	mLiveCoalesced = prometheus.NewDesc("vigil_live_coalesced_rows_total", "Rows not sent to the dashboard's live feed (sampled out).", nil, nil)
	mPoints        = prometheus.NewDesc("vigil_models_points_total", "Series points scored by the numeric detector.", nil, nil)
	mAnomalies     = prometheus.NewDesc("vigil_anomalies_total", "Anomalies detected.", nil, nil)
	mIncidents     = prometheus.NewDesc("vigil_incident_updates_total", "Incident updates (opened, updated, reopened, resolved).", nil, nil)
	mLateRows      = prometheus.NewDesc("vigil_models_late_rows_total", "Rows that arrived after their step had closed.", nil, nil)
	mSinkDropped   = prometheus.NewDesc("vigil_detect_sink_dropped_total", "Detections not written because the sink's queue was full.", nil, nil)
	mSinkErrors    = prometheus.NewDesc("vigil_detect_sink_insert_errors_total", "Failed inserts of metrics, anomalies or incidents.", nil, nil)
	mSinkHeld      = prometheus.NewDesc("vigil_detect_sink_held_rows", "Metrics, anomaly and incident rows held for a ClickHouse that refuses inserts.", nil, nil)
	mSinkLost      = prometheus.NewDesc("vigil_detect_sink_dropped_rows_total", "Metrics, anomaly and incident rows given up on (held too long, or refused for good).", nil, nil)
	mSummaries     = prometheus.NewDesc("vigil_summaries_total", "Incident summaries written.", nil, nil)
)

func (m *platformMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mProbeEvents, mProbeKDrops, mProbeUDrops, mProbeDecErr, mRingUsed, mRingSize, mProbeFailed, mStageRows, mStageDrops, mStageDepth, mStageCap, mLiveCoalesced, mPoints, mAnomalies, mIncidents, mLateRows, mSinkDropped, mSinkErrors, mSinkHeld, mSinkLost, mSummaries} {
		ch <- d
	}
}

func (m *platformMetrics) Collect(ch chan<- prometheus.Metric) {
	p := m.p
	if p.collector != nil {
		st := p.collector.Stats()
		for _, ps := range st.Probes {
			k := string(ps.Kind)
			ch <- prometheus.MustNewConstMetric(mProbeEvents, prometheus.CounterValue, float64(ps.Events), ps.Probe, k)
			ch <- prometheus.MustNewConstMetric(mProbeKDrops, prometheus.CounterValue, float64(ps.KernelDrops), ps.Probe, k)
			ch <- prometheus.MustNewConstMetric(mProbeUDrops, prometheus.CounterValue, float64(ps.UserDrops), ps.Probe, k)
			ch <- prometheus.MustNewConstMetric(mProbeDecErr, prometheus.CounterValue, float64(ps.DecodeErrors), ps.Probe, k)
			if ps.RingSizeBytes > 0 {
				ch <- prometheus.MustNewConstMetric(mRingUsed, prometheus.GaugeValue, float64(ps.RingUsedBytes), ps.Probe, k)
				ch <- prometheus.MustNewConstMetric(mRingSize, prometheus.GaugeValue, float64(ps.RingSizeBytes), ps.Probe, k)
			}
		}
		for _, f := range st.Failed {
			ch <- prometheus.MustNewConstMetric(mProbeFailed, prometheus.GaugeValue, 1, f)
		}
	}
	if p.pipeline != nil {
		for _, s := range p.pipeline.Stats() {
			ch <- prometheus.MustNewConstMetric(mStageRows, prometheus.CounterValue, float64(s.Rows), s.Name)
			ch <- prometheus.MustNewConstMetric(mStageDrops, prometheus.CounterValue, float64(s.DropRows), s.Name)
			ch <- prometheus.MustNewConstMetric(mStageDepth, prometheus.GaugeValue, float64(s.Depth), s.Name)
			ch <- prometheus.MustNewConstMetric(mStageCap, prometheus.GaugeValue, float64(s.QueueSize), s.Name)
		}
	}
	if p.detect != nil {
		ds := p.detect.Stats()
		ch <- prometheus.MustNewConstMetric(mPoints, prometheus.CounterValue, float64(ds.Points))
		ch <- prometheus.MustNewConstMetric(mAnomalies, prometheus.CounterValue, float64(ds.Anomalies))
		ch <- prometheus.MustNewConstMetric(mIncidents, prometheus.CounterValue, float64(ds.Incidents))
		ch <- prometheus.MustNewConstMetric(mLateRows, prometheus.CounterValue, float64(ds.LateRows))
	}
	if p.sink != nil {
		ss := p.sink.Stats()
		ch <- prometheus.MustNewConstMetric(mSinkDropped, prometheus.CounterValue, float64(ss.Dropped))
		ch <- prometheus.MustNewConstMetric(mSinkErrors, prometheus.CounterValue, float64(ss.InsertErrors))
		ch <- prometheus.MustNewConstMetric(mSinkHeld, prometheus.GaugeValue, float64(ss.HeldRows))
		ch <- prometheus.MustNewConstMetric(mSinkLost, prometheus.CounterValue, float64(ss.DroppedRows))
		ch <- prometheus.MustNewConstMetric(mSummaries, prometheus.CounterValue, float64(ss.Summaries))
	}
	if p.live != nil {
		ch <- prometheus.MustNewConstMetric(mLiveCoalesced, prometheus.CounterValue, float64(p.live.Coalesced()))
	}
}
