package collector

import (
	"bytes"
	"errors"
	"fmt"
	"unsafe"
)

// errShortRecord and errBadRecord classify records that cannot be decoded:
// too short for the kind's struct, or with an internal length out of range.
var (
	errShortRecord = errors.New("short record")
	errBadRecord   = errors.New("malformed record")
)

// view returns raw as a *T without copying (the ring buffer record's bytes
// are the C struct that bpf2go generated T from). Records whose buffer is not
// aligned for T are copied into scratch instead. The result is valid until
// raw or scratch is reused.
func view[T any](raw []byte, scratch *T) (*T, error) {
	size := int(unsafe.Sizeof(*scratch))
	if len(raw) < size {
		return nil, fmt.Errorf("%w: %d bytes, want %d", errShortRecord, len(raw), size)
	}
	p := unsafe.Pointer(unsafe.SliceData(raw))
	if uintptr(p)%unsafe.Alignof(*scratch) != 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(scratch)), size), raw)
		return scratch, nil
	}
	return (*T)(p), nil
}

// cstring returns b up to its first NUL byte.
func cstring(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}
