// Package pipeline moves collector batches to their consumers: the ClickHouse
// writer, the models' feature extraction and the live hub. Each consumer has
// its own bounded queue and goroutine, so a slow one never holds up the
// others or the collector behind them.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-dev/vigil/collector"
)

// Sink is one consumer of batches.
type Sink interface {
	// Consume handles one batch. It owns one reference to b.Record and must
	// release it. ctx is cancelled only when the drain deadline has passed.
	Consume(ctx context.Context, b collector.Batch) error
}

// Flusher is implemented by sinks that buffer: Flush is called once, after
// the last Consume, when the pipeline shuts down.
type Flusher interface {
	Flush(ctx context.Context) error
}

// Stage names a sink and sizes its queue.
type Stage struct {
	Name string
	Sink Sink
	// Queue is how many batches may wait for the sink; when it is full the
	// batch is dropped for this sink only, and counted.
	Queue int
}

// Options configures a Pipeline.
type Options struct {
	// DrainTimeout bounds how long shutdown waits for queued batches to be
	// consumed and flushed.
	DrainTimeout time.Duration
	Logger       *slog.Logger
}

// StageStats is a snapshot of one stage's counters.
type StageStats struct {
	Name      string `json:"name"`
	Batches   uint64 `json:"batches"`
	Rows      uint64 `json:"rows"`
	Dropped   uint64 `json:"dropped_batches"`
	DropRows  uint64 `json:"dropped_rows"`
	Errors    uint64 `json:"errors"`
	Depth     int    `json:"queue_depth"`
	QueueSize int    `json:"queue_size"`
}

// Pipeline fans batches out to its stages.
type Pipeline struct {
	opts   Options
	stages []*stage
}

type stage struct {
	Stage
	queue chan collector.Batch
	// Counters are written by the fan-out loop (drops) and the stage's own
	// goroutine (the rest) and read by Stats from any goroutine.
	batches, rows, dropped, dropRows, errors atomic.Uint64
}

// New builds a pipeline over the given stages.
func New(opts Options, stages ...Stage) *Pipeline {
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{opts: opts}
	for _, s := range stages {
		if s.Queue <= 0 {
			s.Queue = 64
		}
		p.stages = append(p.stages, &stage{Stage: s, queue: make(chan collector.Batch, s.Queue)})
	}
	return p
}

// Run delivers every batch from in to every stage until in is closed, then
// drains the stages' queues and flushes them, waiting at most DrainTimeout
// after in closes. Closing in, not cancelling a context, is how a pipeline is
// stopped: whatever the collector handed over before it stopped is still
// written.
func (p *Pipeline) Run(in <-chan collector.Batch) error {
	sinkCtx, cancelSinks := context.WithCancel(context.Background())
	defer cancelSinks()

	var wg sync.WaitGroup
	errs := make([]error, len(p.stages))
	for i, s := range p.stages {
		wg.Go(func() { errs[i] = p.runStage(sinkCtx, s) })
	}

	for b := range in {
		rows := uint64(b.Record.NumRows())
		for _, s := range p.stages {
			b.Record.Retain()
			select {
			case s.queue <- b:
			default:
				b.Record.Release()
				s.dropped.Add(1)
				s.dropRows.Add(rows)
			}
		}
		b.Record.Release()
	}
	for _, s := range p.stages {
		close(s.queue)
	}

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(p.opts.DrainTimeout):
		p.opts.Logger.Warn("pipeline drain deadline passed; cancelling sinks", "timeout", p.opts.DrainTimeout)
		cancelSinks()
		<-done
	}
	return errors.Join(errs...)
}

func (p *Pipeline) runStage(ctx context.Context, s *stage) error {
	for b := range s.queue {
		rows := uint64(b.Record.NumRows())
		if err := s.Sink.Consume(ctx, b); err != nil {
			s.errors.Add(1)
			p.opts.Logger.Error("pipeline stage failed on a batch", "stage", s.Name, "kind", b.Kind, "rows", rows, "err", err)
			continue
		}
		s.batches.Add(1)
		s.rows.Add(rows)
	}
	if f, ok := s.Sink.(Flusher); ok {
		if err := f.Flush(ctx); err != nil {
			return fmt.Errorf("flush %s: %w", s.Name, err)
		}
	}
	return nil
}

// Stats returns a snapshot of every stage's counters.
func (p *Pipeline) Stats() []StageStats {
	out := make([]StageStats, 0, len(p.stages))
	for _, s := range p.stages {
		out = append(out, StageStats{
			Name:      s.Name,
			Batches:   s.batches.Load(),
			Rows:      s.rows.Load(),
			Dropped:   s.dropped.Load(),
			DropRows:  s.dropRows.Load(),
			Errors:    s.errors.Load(),
			Depth:     len(s.queue),
			QueueSize: cap(s.queue),
		})
	}
	return out
}
