package ingest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/vigil-dev/vigil/collector"
)

// KindMetadataKey is the schema metadata entry naming a stream's kind; it is
// the key collector.Recorder writes.
const KindMetadataKey = "vigil.kind"

// Limits bound what one request may make the decoder hold.
type Limits struct {
	// MaxBytes bounds the body and the Arrow memory decoded from it.
	MaxBytes int64
	// MaxBatchRows bounds one record batch.
	MaxBatchRows int64
	// MaxColumns bounds a stream's schema.
	MaxColumns int
	// MaxBatches bounds the batches in one request.
	MaxBatches int
}

// maxMetadata bounds one IPC message's flatbuffer header; ours are a few KiB.
// With prescan it also bounds what arrow-go allocates from a header.
const maxMetadata = 64 << 10

// Rejection reasons, the label of the rejected counters.
const (
	ReasonUnauthorized = "unauthorized"
	ReasonMethod       = "method"
	ReasonMalformed    = "malformed"
	ReasonTooLarge     = "too_large"
	ReasonUnknownKind  = "unknown_kind"
	ReasonSchema       = "schema_mismatch"
	ReasonQueueFull    = "queue_full"
)

// RejectError is why a request was refused: an HTTP status, a reason (the
// metric label) and a message for the client.
type RejectError struct {
	Status int
	Reason string
	Err    error
}

func (e *RejectError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *RejectError) Unwrap() error { return e.Err }

func reject(status int, reason string, format string, args ...any) *RejectError {
	return &RejectError{Status: status, Reason: reason, Err: fmt.Errorf(format, args...)}
}

// errMemLimit is the panic value of limitedAllocator.
var errMemLimit = errors.New("decoded data exceeds the size limit")

// limitedAllocator refuses, by panicking with errMemLimit (recovered by
// Decode), to hold more than limit bytes: an IPC message declares its body
// length and the reader allocates it before reading, and compressed bodies
// expand, so the body size limit alone does not bound memory.
type limitedAllocator struct {
	mem   memory.Allocator
	limit int64
	used  atomic.Int64
}

func (a *limitedAllocator) Allocate(size int) []byte {
	if a.used.Add(int64(size)) > a.limit {
		a.used.Add(-int64(size))
		panic(errMemLimit)
	}
	return a.mem.Allocate(size)
}

func (a *limitedAllocator) Reallocate(size int, b []byte) []byte {
	if a.used.Add(int64(size-len(b))) > a.limit {
		a.used.Add(-int64(size - len(b)))
		panic(errMemLimit)
	}
	return a.mem.Reallocate(size, b)
}

func (a *limitedAllocator) Free(b []byte) {
	a.used.Add(-int64(len(b)))
	a.mem.Free(b)
}

// Decode reads a request body: one or more Arrow IPC streams, each a schema
// and its record batches, as collector.Recorder writes them. A stream's kind
// is its schema's vigil.kind metadata, else defaultKind. Every stream's
// columns must equal collector.Schema(kind) exactly. Decode returns every
// batch (relabelled with collector.Schema(kind)) or, on any error, none: a
// request is accepted whole or not at all. Errors are *RejectError.
func Decode(r io.Reader, defaultKind collector.Kind, lim Limits) (out []collector.Batch, err error) {
	alloc := &limitedAllocator{mem: memory.DefaultAllocator, limit: max(lim.MaxBytes, 1) * 2}
	defer func() {
		if p := recover(); p != nil {
			releaseAll(out)
			out = nil
			if p == errMemLimit {
				err = reject(http.StatusRequestEntityTooLarge, ReasonTooLarge, "%v (limit %d bytes)", errMemLimit, lim.MaxBytes)
				return
			}
			// The IPC reader trusts offsets in hostile flatbuffers in places;
			// a panic there is a malformed stream, not a crash of vigil.
			err = reject(http.StatusBadRequest, ReasonMalformed, "malformed Arrow IPC stream: %v", p)
		}
	}()
	// The whole body is read first (it is bounded) so that prescan can
	// check the message headers before arrow-go trusts them.
	raw, rerr := io.ReadAll(io.LimitReader(r, lim.MaxBytes+1))
	if rerr != nil {
		return nil, readErr(rerr, 0)
	}
	if int64(len(raw)) > lim.MaxBytes {
		return nil, reject(http.StatusRequestEntityTooLarge, ReasonTooLarge, "body larger than %d bytes", lim.MaxBytes)
	}
	if perr := prescan(raw, maxMetadata); perr != nil {
		return nil, reject(http.StatusBadRequest, ReasonMalformed, "malformed Arrow IPC stream: %v", perr)
	}
	br := bufio.NewReader(bytes.NewReader(raw))
	for n := 0; ; n++ {
		if _, perr := br.Peek(1); perr == io.EOF {
			if n == 0 {
				return nil, reject(http.StatusBadRequest, ReasonMalformed, "empty body: want an Arrow IPC stream")
			}
			return out, nil
		} else if perr != nil {
			releaseAll(out)
			return nil, readErr(perr, n)
		}
		out, err = decodeStream(br, n, defaultKind, lim, alloc, out)
		if err != nil {
			releaseAll(out)
			return nil, err
		}
	}
}

func readErr(err error, n int) *RejectError {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return reject(http.StatusRequestEntityTooLarge, ReasonTooLarge, "body larger than %d bytes", mbe.Limit)
	}
	return reject(http.StatusBadRequest, ReasonMalformed, "stream %d: %v", n, err)
}

func decodeStream(br *bufio.Reader, n int, defaultKind collector.Kind, lim Limits, alloc memory.Allocator, out []collector.Batch) ([]collector.Batch, error) {
	// ipc.NewReader ignores the size limits (arrow-go v18.8): a message
	// length prefix of 2 GiB would be allocated before reading. The message
	// reader applies them.
	mr := ipc.NewMessageReader(br, ipc.WithAllocator(alloc), ipc.WithBodySizeLimit(lim.MaxBytes), ipc.WithMetadataSizeLimit(maxMetadata))
	rd, err := ipc.NewReaderFromMessageReader(mr, ipc.WithAllocator(alloc))
	if err != nil {
		return out, readErr(err, n)
	}
	defer rd.Release()
	s := rd.Schema()
	if s.NumFields() > lim.MaxColumns {
		return out, reject(http.StatusRequestEntityTooLarge, ReasonTooLarge, "stream %d: %d columns, limit %d", n, s.NumFields(), lim.MaxColumns)
	}
	kind := defaultKind
	if i := s.Metadata().FindKey(KindMetadataKey); i >= 0 {
		kind = collector.Kind(s.Metadata().Values()[i])
	}
	want := collector.Schema(kind)
	if want == nil {
		return out, reject(http.StatusUnprocessableEntity, ReasonUnknownKind,
			"stream %d: unknown kind %q: this pipeline knows %v (is the collector newer than the pipeline?)", n, kind, collector.Kinds())
	}
	if err := collector.CheckColumns(kind, s); err != nil {
		return out, reject(http.StatusUnprocessableEntity, ReasonSchema,
			"stream %d: columns of kind %q differ from this pipeline's schema (%v); upgrade the pipeline before its collectors", n, kind, err)
	}
	for rd.Next() {
		rec := rd.RecordBatch()
		if len(out) >= lim.MaxBatches {
			return out, reject(http.StatusRequestEntityTooLarge, ReasonTooLarge, "more than %d batches in one request", lim.MaxBatches)
		}
		if rec.NumRows() > lim.MaxBatchRows {
			return out, reject(http.StatusRequestEntityTooLarge, ReasonTooLarge, "stream %d: batch of %d rows, limit %d", n, rec.NumRows(), lim.MaxBatchRows)
		}
		for i, c := range rec.Columns() {
			if err := validate(c); err != nil {
				return out, reject(http.StatusBadRequest, ReasonMalformed, "stream %d: column %s: %v", n, want.Field(i).Name, err)
			}
		}
		if rec.NumRows() == 0 {
			continue
		}
		out = append(out, collector.Batch{Kind: kind, Record: collector.Upgrade(kind, rec, alloc)})
	}
	if err := rd.Err(); err != nil {
		return out, readErr(err, n)
	}
	return out, nil
}

// validate checks that an array's buffers hold what its length and offsets
// claim, so that nothing downstream (the store's column appends, the models)
// reads out of bounds on a hostile batch. It covers the types the schemas
// use: fixed-width, string, list<string> and dictionary<int32, string>.
func validate(a arrow.Array) error {
	d := a.Data()
	if a.NullN() > 0 {
		if bm := d.Buffers()[0]; bm == nil || bm.Len()*8 < d.Offset()+d.Len() {
			return errors.New("validity bitmap too short")
		}
	}
	switch v := a.(type) {
	case *array.String:
		return v.ValidateFull()
	case *array.List:
		if err := v.ValidateFull(); err != nil {
			return err
		}
		return validate(v.ListValues())
	case *array.Dictionary:
		if err := validate(v.Dictionary()); err != nil {
			return fmt.Errorf("dictionary: %w", err)
		}
		idx, ok := v.Indices().(*array.Int32)
		if !ok {
			return fmt.Errorf("dictionary indices %s", v.Indices().DataType())
		}
		if err := validate(idx); err != nil {
			return err
		}
		size := int32(v.Dictionary().Len())
		for i, x := range idx.Int32Values() {
			if idx.IsValid(i) && (x < 0 || x >= size) {
				return fmt.Errorf("dictionary index %d out of range [0,%d)", x, size)
			}
		}
		return nil
	}
	if fw, ok := a.DataType().(arrow.FixedWidthDataType); ok {
		bits := fw.BitWidth()
		need := (int64(d.Offset()+d.Len())*int64(bits) + 7) / 8
		if len(d.Buffers()) < 2 || d.Buffers()[1] == nil {
			if d.Len() == 0 {
				return nil
			}
			return errors.New("missing data buffer")
		}
		if int64(d.Buffers()[1].Len()) < need {
			return fmt.Errorf("data buffer of %d bytes, need %d", d.Buffers()[1].Len(), need)
		}
		return nil
	}
	return fmt.Errorf("unexpected type %s", a.DataType())
}

func releaseAll(bs []collector.Batch) {
	for _, b := range bs {
		b.Record.Release()
	}
}
