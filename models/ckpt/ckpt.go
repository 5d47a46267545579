// Package ckpt reads and writes the length-prefixed fields that model and
// incident checkpoints are made of. A Reader never trusts a length or a
// count beyond the bytes left to back it, so a corrupt or hostile
// checkpoint cannot make a decoder allocate more than the checkpoint's own
// size, and it remembers the first error so decoders check once at the end.
package ckpt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrBad is wrapped by every error a Reader returns (and is what
// models.ErrCheckpoint is).
var ErrBad = errors.New("bad checkpoint")

// Reader decodes fields from a checkpoint.
type Reader struct {
	buf []byte
	err error
}

// NewReader reads b.
func NewReader(b []byte) *Reader { return &Reader{buf: b} }

// Err is the first error met, wrapping ErrBad; nil if none.
func (r *Reader) Err() error { return r.err }

// Len is how many bytes are left.
func (r *Reader) Len() int { return len(r.buf) }

// Fail records a decoder's own finding (an out-of-range value) as the
// error, unless one was met already.
func (r *Reader) Fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrBad, fmt.Sprintf(format, args...))
	}
}

func (r *Reader) truncated() { r.Fail("truncated") }

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 { return readVarint(r, binary.Uvarint) }

// Varint reads a signed varint.
func (r *Reader) Varint() int64 { return readVarint(r, binary.Varint) }

// readVarint reads one varint with dec (binary.Uvarint or binary.Varint).
func readVarint[T uint64 | int64](r *Reader, dec func([]byte) (T, int)) T {
	if r.err != nil {
		return 0
	}
	v, n := dec(r.buf)
	if n <= 0 {
		r.truncated()
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

// Count reads a number of elements that each take at least one byte, so
// it is refused when larger than the bytes left.
func (r *Reader) Count() uint64 {
	n := r.Uvarint()
	if n > uint64(len(r.buf)) {
		r.truncated()
		return 0
	}
	return n
}

// Bytes reads a length-prefixed byte string; it aliases the input.
func (r *Reader) Bytes() []byte {
	n := r.Count()
	if r.err != nil {
		return nil
	}
	b := r.buf[:n]
	r.buf = r.buf[n:]
	return b
}

// Str reads a length-prefixed string.
func (r *Reader) Str() string { return string(r.Bytes()) }

// AppendString appends s with its length.
func AppendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Float64 reads a float as 8 little-endian bytes.
func (r *Reader) Float64() float64 {
	if r.err != nil {
		return 0
	}
	if len(r.buf) < 8 {
		r.truncated()
		return 0
	}
	f := math.Float64frombits(binary.LittleEndian.Uint64(r.buf))
	r.buf = r.buf[8:]
	return f
}

// AppendFloat64 appends f as 8 little-endian bytes.
func AppendFloat64(b []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
}

// zeroTime encodes time.Time{}, whose UnixNano is undefined.
const zeroTime = math.MinInt64

// Time reads a time written by AppendTime, in UTC.
func (r *Reader) Time() time.Time {
	v := r.Varint()
	if r.err != nil || v == zeroTime {
		return time.Time{}
	}
	return time.Unix(0, v).UTC()
}

// AppendTime appends t as a varint of Unix nanoseconds (math.MinInt64 for
// the zero time).
func AppendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendVarint(b, zeroTime)
	}
	return binary.AppendVarint(b, t.UnixNano())
}

// Strings reads a list written by AppendStrings.
func (r *Reader) Strings() []string {
	n := r.Count()
	var ss []string
	for range n {
		if r.err != nil {
			return nil
		}
		ss = append(ss, r.Str())
	}
	return ss
}

// AppendStrings appends ss with its length.
func AppendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = AppendString(b, s)
	}
	return b
}
