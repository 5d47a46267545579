package collector

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// WriteJSONL writes one JSON object per row of b: {"kind":"exec","ts":...}
// followed by every column in schema order. Timestamps are RFC 3339 UTC
// with nanoseconds, dictionaries are written as their values and lists as
// JSON arrays. It works for every kind, as it follows the batch's schema.
func WriteJSONL(w io.Writer, b Batch) error {
	rec := b.Record
	cols := rec.Columns()
	names := make([][]byte, len(cols))
	for i, f := range rec.Schema().Fields() {
		names[i] = appendJSONString(nil, f.Name)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	var line []byte
	for row := 0; row < int(rec.NumRows()); row++ {
		line = append(line[:0], `{"kind":`...)
		line = appendJSONString(line, string(b.Kind))
		for i, c := range cols {
			line = append(line, ',')
			line = append(line, names[i]...)
			line = append(line, ':')
			var err error
			if line, err = appendJSONValue(line, c, row); err != nil {
				return fmt.Errorf("write jsonl: column %s: %w", rec.ColumnName(i), err)
			}
		}
		line = append(line, '}', '\n')
		if _, err := bw.Write(line); err != nil {
			return fmt.Errorf("write jsonl: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write jsonl: %w", err)
	}
	return nil
}

func appendJSONValue(dst []byte, c arrow.Array, row int) ([]byte, error) {
	if c.IsNull(row) {
		return append(dst, "null"...), nil
	}
	switch a := c.(type) {
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		t := a.Value(row).ToTime(unit).UTC()
		dst = append(dst, '"')
		dst = t.AppendFormat(dst, time.RFC3339Nano)
		return append(dst, '"'), nil
	case *array.Uint32:
		return strconv.AppendUint(dst, uint64(a.Value(row)), 10), nil
	case *array.Uint64:
		return strconv.AppendUint(dst, a.Value(row), 10), nil
	case *array.Int64:
		return strconv.AppendInt(dst, a.Value(row), 10), nil
	case *array.String:
		return appendJSONString(dst, a.Value(row)), nil
	case *array.Dictionary:
		return appendJSONValue(dst, a.Dictionary(), a.GetValueIndex(row))
	case *array.List:
		start, end := a.ValueOffsets(row)
		dst = append(dst, '[')
		for j := start; j < end; j++ {
			if j > start {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendJSONValue(dst, a.ListValues(), int(j)); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	}
	return dst, fmt.Errorf("unsupported type %s", c.DataType())
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string; invalid UTF-8 (kernel strings
// are bytes) becomes U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c < 0x20 || c == 0x7f:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
