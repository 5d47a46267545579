package main

import (
	"strings"
	"testing"
	"time"

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
