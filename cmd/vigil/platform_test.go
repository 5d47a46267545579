package main

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vigil-dev/vigil/pipeline/detect"
	"github.com/vigil-dev/vigil/ui"
)

func TestModelsHealth(t *testing.T) {
	until := time.Date(2026, 11, 25, 4, 21, 0, 0, time.UTC)
	for _, c := range []struct {
		name  string
		st    detect.Stats
		state string
		says  []string
	}{
		{"no step yet", detect.Stats{}, ui.StateLearning, []string{"first step"}},
		{"one host learning", detect.Stats{Points: 10, Series: 42, HostsLearning: 1, LearningUntil: until},
			ui.StateLearning, []string{"on 1 host", "until 04:21 UTC", "42 series"}},
		{"hosts learning", detect.Stats{Points: 10, Series: 7, HostsLearning: 3, LearningUntil: until},
			ui.StateLearning, []string{"3 hosts", "04:21"}},
		{"learned", detect.Stats{Points: 10, Series: 42}, ui.StateOK, []string{"42 series scored"}},
		{"a new container learning", detect.Stats{Points: 10, Series: 42, ContainersLearning: 1, ContainersUntil: until},
			ui.StateOK, []string{"42 series scored", "1 new container's values are learned silently until 04:21 UTC"}},
		{"hosts and containers learning", detect.Stats{Points: 10, Series: 42, HostsLearning: 1, LearningUntil: until,
			ContainersLearning: 2, ContainersUntil: until.Add(time.Hour)},
			ui.StateLearning, []string{"on 1 host", "2 new containers' values are learned silently until 05:21 UTC"}},
	} {
		h := modelsHealth(c.st)
		if h.State != c.state {
			t.Errorf("%s: state %q, want %q", c.name, h.State, c.state)
		}
		for _, s := range c.says {
			if !strings.Contains(h.Detail, s) {
				t.Errorf("%s: detail %q does not say %q", c.name, h.Detail, s)
			}
		}
	}
}

// silentConn is a ClickHouse connection whose pings hang until released,
// as clickhouse-go's do against a server that accepts but never answers.
type silentConn struct {
	driver.Conn // only Ping is called
	pings       atomic.Int32
	release     chan struct{}
}

func (c *silentConn) Ping(context.Context) error {
	c.pings.Add(1)
	<-c.release
	return nil
}

// TestPingerDoesNotWait: the dashboard's health says ClickHouse is not
// answering within its own deadline, whatever the driver does, and a
// silent server costs one ping at a time, not one per poll.
func TestPingerDoesNotWait(t *testing.T) {
	c := &silentConn{release: make(chan struct{})}
	p := &pinger{conn: c}
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		start := time.Now()
		err := p.ping(ctx)
		cancel()
		if err == nil || time.Since(start) > 5*time.Second {
			t.Fatalf("ping of a silent server: %v after %v, want an error at the deadline", err, time.Since(start))
		}
	}
	if n := c.pings.Load(); n != 1 {
		t.Errorf("%d pings under way, want 1", n)
	}
	close(c.release)
	if err := p.ping(context.Background()); err != nil {
		t.Errorf("ping once the server answers: %v", err)
	}
}
