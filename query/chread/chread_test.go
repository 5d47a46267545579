package chread

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestClip(t *testing.T) {
	tests := []struct {
		in   any
		max  int
		want any
	}{
		{"abcdef", 3, "abc…"},
		{"abc", 3, "abc"},
		{"héllo", 2, "h…"}, // never splits a rune
		{[]string{"abcd", "x"}, 2, []string{"ab…", "x"}},
		{uint32(7), 1, uint32(7)},
		{(*string)(nil), 1, nil},
	}
	for _, tt := range tests {
		if got := Clip(tt.in, tt.max); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Clip(%v, %d) = %#v, want %#v", tt.in, tt.max, got, tt.want)
		}
	}
}

func TestWithoutDeadline(t *testing.T) {
	parent, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	ctx, stop := withoutDeadline(parent)
	defer stop()
	if _, ok := ctx.Deadline(); ok {
		t.Fatal("deadline kept: clickhouse-go would send max_execution_time")
	}
	select {
	case <-ctx.Done():
		if !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
			t.Errorf("cause %v", context.Cause(ctx))
		}
	case <-time.After(2 * time.Second):
		t.Fatal("not cancelled with its parent")
	}
}
