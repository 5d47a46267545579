// Package models holds Vigil's statistical models: a streaming numeric
// detector per time series, categorical novelty and rarity detectors, the
// anomalies they emit with their evidence, and a correlator that folds
// anomalies into incidents.
//
// The package does no I/O. Callers feed it points and events in time order
// and store its checkpoints (plain bytes) wherever they like; every model's
// state is bounded so memory stays predictable with many entities.
package models
