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

// Consumer is one stage behind the fan-out. Run reads in until it is closed,
// finishes its work (flushing whatever it buffers) and returns. It owns one
// reference to each batch's Record and must release it. ctx is cancelled
// only when the drain deadline has passed during shutdown.
type Consumer interface {
	Run(ctx context.Context, in <-chan collector.Batch) error
}

// Stage names a consumer and sizes its queue.
type Stage struct {
	Name     string
	Consumer Consumer
	// Queue is how many batches may wait for the consumer; when it is full
	// the batch is dropped for this stage only, and counted.
	Queue int
}

// Options configures a Pipeline.
type Options struct {
	// DrainTimeout bounds how long shutdown waits for queued batches to be
	// consumed and flushed.
	DrainTimeout time.Duration
	// Backpressure makes the fan-out wait for room in a full queue instead
	// of dropping: right for a source that can wait (a replayed recording),
	// wrong for the kernel reader, which must never wait.
	Backpressure bool
	Logger       *slog.Logger
}

// StageStats is a snapshot of one stage's counters.
type StageStats struct {
	Name      string `json:"name"`
	Batches   uint64 `json:"batches"`
	Rows      uint64 `json:"rows"`
	Dropped   uint64 `json:"dropped_batches"`
	DropRows  uint64 `json:"dropped_rows"`
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
	// Counters are written by the fan-out loop and read by Stats from any
	// goroutine.
	batches, rows, dropped, dropRows atomic.Uint64
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
			if p.opts.Backpressure {
				s.queue <- b
				s.batches.Add(1)
				s.rows.Add(rows)
				continue
			}
			select {
			case s.queue <- b:
				s.batches.Add(1)
				s.rows.Add(rows)
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
	err := s.Consumer.Run(ctx, s.queue)
	// A consumer that returned early must not strand the fan-out's
	// references: release whatever is still queued.
	for b := range s.queue {
		b.Record.Release()
		s.dropped.Add(1)
		s.dropRows.Add(uint64(b.Record.NumRows()))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", s.Name, err)
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
			Depth:     len(s.queue),
			QueueSize: cap(s.queue),
		})
	}
	return out
}
