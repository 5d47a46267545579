package collector

import (
	"bytes"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestRecordReplay(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	e := &env{host: []byte("h"), clock: &clock{}}

	eb := newExecBuilder(mem, e)
	defer eb.release()
	xb := &exitBuilder{rowBuilder: newRowBuilder(mem, exitSchema, e)}
	defer xb.release()

	var buf bytes.Buffer
	rec := NewRecorder(&buf)
	var want bytes.Buffer
	for i := range 3 {
		for range i + 1 {
			if err := eb.append(execRecord("sh", "-c", "true")); err != nil {
				t.Fatal(err)
			}
		}
		for _, b := range []Batch{{KindExec, eb.flush()}, {KindExit, func() Batch {
			_ = xb.append(make([]byte, 128))
			return Batch{KindExit, xb.flush()}
		}().Record}} {
			if err := rec.Write(b); err != nil {
				t.Fatal(err)
			}
			if err := WriteJSONL(&want, b); err != nil {
				t.Fatal(err)
			}
			b.Record.Release()
		}
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}

	var got bytes.Buffer
	n := 0
	err := ReadRecording(&buf, func(b Batch) error {
		defer b.Record.Release()
		n++
		if !b.Record.Schema().Equal(Schema(b.Kind)) {
			t.Errorf("replayed %s schema differs", b.Kind)
		}
		return WriteJSONL(&got, b)
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 6 {
		t.Errorf("replayed %d batches, want 6", n)
	}
	if got.String() != want.String() {
		t.Errorf("replay differs:\n got %s\nwant %s", got.String(), want.String())
	}
}
