package collector

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// kindMetadataKey names the schema metadata entry that carries a recorded
// batch's Kind.
const kindMetadataKey = "vigil.kind"

// Recorder writes batches of any kinds to one file for `vigil collect
// --record`. The file is a sequence of Arrow IPC streams, one per batch
// (schema message, record batch, end-of-stream marker), each schema tagged
// with metadata vigil.kind=<kind>. Any Arrow IPC stream reader reads the
// first stream; ReadRecording reads them all. A Recorder is not safe for
// concurrent use.
type Recorder struct {
	w   *bufio.Writer
	mem memory.Allocator
}

// NewRecorder returns a Recorder writing to w. Close flushes it; it does
// not close w.
func NewRecorder(w io.Writer) *Recorder {
	return &Recorder{w: bufio.NewWriterSize(w, 1<<20), mem: memory.DefaultAllocator}
}

// Write appends one batch. It does not take ownership of b.Record.
func (r *Recorder) Write(b Batch) error {
	md := arrow.NewMetadata([]string{kindMetadataKey}, []string{string(b.Kind)})
	schema := arrow.NewSchema(b.Record.Schema().Fields(), &md)
	w := ipc.NewWriter(r.w, ipc.WithSchema(schema), ipc.WithAllocator(r.mem))
	tagged, err := retag(b.Record, schema)
	if err != nil {
		return err
	}
	defer tagged.Release()
	if err := w.Write(tagged); err != nil {
		return fmt.Errorf("record %s batch: %w", b.Kind, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("record %s batch: %w", b.Kind, err)
	}
	return nil
}

// retag returns rec with the given schema (same fields, added metadata).
func retag(rec arrow.RecordBatch, schema *arrow.Schema) (arrow.RecordBatch, error) {
	if !schema.Equal(rec.Schema()) {
		return nil, errors.New("record batch: schema mismatch")
	}
	return array.NewRecordBatch(schema, rec.Columns(), rec.NumRows()), nil
}

// Close flushes buffered data.
func (r *Recorder) Close() error {
	if err := r.w.Flush(); err != nil {
		return fmt.Errorf("flush recording: %w", err)
	}
	return nil
}

// ReadRecording reads a file written by Recorder and calls fn with every
// batch in order. fn owns the batch's Record and must Release it. Reading
// stops at the first error from fn, which is returned.
func ReadRecording(r io.Reader, fn func(Batch) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	for n := 0; ; n++ {
		if _, err := br.Peek(1); err == io.EOF {
			return nil
		}
		rd, err := ipc.NewReader(br)
		if err != nil {
			return fmt.Errorf("read recording: stream %d: %w", n, err)
		}
		kind := Kind("")
		if i := rd.Schema().Metadata().FindKey(kindMetadataKey); i >= 0 {
			kind = Kind(rd.Schema().Metadata().Values()[i])
		}
		if Schema(kind) == nil {
			rd.Release()
			return fmt.Errorf("read recording: stream %d: unknown kind %q", n, kind)
		}
		// A recording is a file from anywhere: its columns must be exactly
		// the kind's, or an older version's, before they are relabelled
		// with its schema.
		if err := CheckColumns(kind, rd.Schema()); err != nil {
			rd.Release()
			return fmt.Errorf("read recording: stream %d: columns of kind %q differ from this version's schema (%v)", n, kind, err)
		}
		for rd.Next() {
			rec := rd.RecordBatch()
			// Drop the metadata so replayed batches equal Schema(kind).
			out := Upgrade(kind, rec, memory.DefaultAllocator)
			if err := fn(Batch{Kind: kind, Record: out}); err != nil {
				rd.Release()
				return err
			}
		}
		err = rd.Err()
		rd.Release()
		if err != nil {
			return fmt.Errorf("read recording: stream %d: %w", n, err)
		}
	}
}
