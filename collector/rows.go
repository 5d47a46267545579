package collector

import (
	"bytes"
	"fmt"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// rowBuilder is the part every kind's builder shares: rows are appended
// column by column into plain Go slices, and flush turns each slice into an
// Arrow buffer without copying. Column 0 is always ts and column 1 always
// host. Appending is a slice append (plus a map lookup for a dictionary
// value not seen in the batch), which is what keeps decoding cheap.
type rowBuilder struct {
	schema *arrow.Schema
	env    *env
	cols   []stage
	n      int // rows appended since the last flush
}

// stage holds one column's values until flush; which slice is used
// depends on the column's type.
type stage struct {
	typ  arrow.DataType
	i64  []int64  // timestamp
	u32  []uint32 // uint32
	u64  []uint64 // uint64
	idx  []int32  // dictionary indices
	dict dictStage
	offs []int32 // string offsets (len rows+1)
	data []byte  // string bytes
	// list<string>: list offsets into the child strings (len rows+1), and
	// the child strings' offsets (from 0) and bytes.
	lists     []int32
	itemOffs  []int32
	itemBytes []byte
}

// dictStage is one batch's dictionary: values in first-seen order and
// their index, with the previous value cached because consecutive rows
// often repeat it.
type dictStage struct {
	index   map[string]int32
	offs    []int32
	data    []byte
	last    []byte
	lastIdx int32
}

func (d *dictStage) lookup(v []byte) int32 {
	if d.lastIdx >= 0 && string(v) == string(d.last) {
		return d.lastIdx
	}
	i, ok := d.index[string(v)]
	if !ok {
		i = int32(len(d.offs) - 1)
		d.data = append(d.data, v...)
		d.offs = append(d.offs, int32(len(d.data)))
		d.index[string(v)] = i
	}
	d.last = append(d.last[:0], v...)
	d.lastIdx = i
	return i
}

func (d *dictStage) reset() {
	if d.index == nil || len(d.index) > 4096 {
		d.index = make(map[string]int32)
	} else {
		clear(d.index)
	}
	d.offs = append(d.offs[:0], 0)
	d.data = d.data[:0]
	d.lastIdx = -1
}

func newRowBuilder(_ memory.Allocator, s *arrow.Schema, e *env) rowBuilder {
	b := rowBuilder{schema: s, env: e, cols: make([]stage, s.NumFields())}
	for i, f := range s.Fields() {
		b.cols[i].typ = f.Type
		b.cols[i].offs = []int32{0}
		b.cols[i].lists = []int32{0}
		b.cols[i].itemOffs = []int32{0}
		b.cols[i].dict.reset()
	}
	return b
}

// start appends the ts and host columns of a new row.
func (b *rowBuilder) start(bootNs uint64) {
	b.n++
	b.cols[0].i64 = append(b.cols[0].i64, b.env.clock.wall(bootNs))
	b.dict(1, b.env.host)
}

func (b *rowBuilder) u32(i int, v uint32) { b.cols[i].u32 = append(b.cols[i].u32, v) }
func (b *rowBuilder) u64(i int, v uint64) { b.cols[i].u64 = append(b.cols[i].u64, v) }

// dict appends to a dictionary<string> column; v is copied, nil appends "".
func (b *rowBuilder) dict(i int, v []byte) {
	c := &b.cols[i]
	c.idx = append(c.idx, c.dict.lookup(v))
}

// str appends to a string column; v is copied.
func (b *rowBuilder) str(i int, v []byte) {
	c := &b.cols[i]
	c.data = append(c.data, v...)
	c.offs = append(c.offs, int32(len(c.data)))
}

// strs appends to a list<string> column the NUL-separated strings of a
// cmdline-style buffer. A trailing NUL ends the last string; a buffer cut
// mid-string keeps the partial string.
func (b *rowBuilder) strs(i int, buf []byte) {
	c := &b.cols[i]
	for len(buf) > 0 {
		j := bytes.IndexByte(buf, 0)
		if j < 0 {
			j = len(buf)
		}
		c.itemBytes = append(c.itemBytes, buf[:j]...)
		c.itemOffs = append(c.itemOffs, int32(len(c.itemBytes)))
		buf = buf[min(j+1, len(buf)):]
	}
	c.lists = append(c.lists, int32(len(c.itemOffs)-1))
}

var empty = []byte{}

// container appends the container_id and pod_uid of a cgroup to columns
// i and i+1.
func (b *rowBuilder) container(i int, cgroupID uint64) {
	info := b.env.cgroups.lookup(cgroupID)
	b.dict(i, info.containerID)
	b.dict(i+1, info.podUID)
}

func (b *rowBuilder) len() int { return b.n }

func (b *rowBuilder) release() {}

// bytesOf views a slice's backing array as bytes, for zero-copy buffers.
func bytesOf[T int32 | uint32 | int64 | uint64](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(s[0])))
}

// flush hands every staged column to Arrow (the slices become the
// buffers; new ones are started) and returns the batch.
func (b *rowBuilder) flush() arrow.RecordBatch {
	n := b.n
	cols := make([]arrow.Array, len(b.cols))
	for i := range b.cols {
		c := &b.cols[i]
		var data arrow.ArrayData
		switch c.typ.ID() {
		case arrow.TIMESTAMP:
			data = array.NewData(c.typ, n, []*memory.Buffer{nil, memory.NewBufferBytes(bytesOf(c.i64))}, nil, 0, 0)
			c.i64 = make([]int64, 0, cap(c.i64))
		case arrow.UINT32:
			data = array.NewData(c.typ, n, []*memory.Buffer{nil, memory.NewBufferBytes(bytesOf(c.u32))}, nil, 0, 0)
			c.u32 = make([]uint32, 0, cap(c.u32))
		case arrow.UINT64:
			data = array.NewData(c.typ, n, []*memory.Buffer{nil, memory.NewBufferBytes(bytesOf(c.u64))}, nil, 0, 0)
			c.u64 = make([]uint64, 0, cap(c.u64))
		case arrow.STRING:
			data = array.NewData(c.typ, n, []*memory.Buffer{nil, memory.NewBufferBytes(bytesOf(c.offs)), memory.NewBufferBytes(c.data)}, nil, 0, 0)
			c.offs = append(make([]int32, 0, cap(c.offs)), 0)
			c.data = make([]byte, 0, cap(c.data))
		case arrow.LIST:
			items := len(c.itemOffs) - 1
			child := array.NewData(arrow.BinaryTypes.String, items,
				[]*memory.Buffer{nil, memory.NewBufferBytes(bytesOf(c.itemOffs)), memory.NewBufferBytes(c.itemBytes)}, nil, 0, 0)
			data = array.NewData(c.typ, n, []*memory.Buffer{nil, memory.NewBufferBytes(bytesOf(c.lists))}, []arrow.ArrayData{child}, 0, 0)
			child.Release()
			c.lists = append(make([]int32, 0, cap(c.lists)), 0)
			c.itemOffs = append(make([]int32, 0, cap(c.itemOffs)), 0)
			c.itemBytes = make([]byte, 0, cap(c.itemBytes))
		case arrow.DICTIONARY:
			d := &c.dict
			values := array.NewData(arrow.BinaryTypes.String, len(d.offs)-1,
				[]*memory.Buffer{nil, memory.NewBufferBytes(bytesOf(d.offs)), memory.NewBufferBytes(d.data)}, nil, 0, 0)
			data = array.NewData(c.typ, n, []*memory.Buffer{nil, memory.NewBufferBytes(bytesOf(c.idx))}, nil, 0, 0)
			data.(*array.Data).SetDictionary(values)
			values.Release()
			c.idx = make([]int32, 0, cap(c.idx))
			d.offs, d.data = make([]int32, 0, cap(d.offs)), make([]byte, 0, cap(d.data))
			d.reset()
		default:
			panic(fmt.Sprintf("rowBuilder: column type %s", c.typ)) // schemas use only the types above
		}
		cols[i] = array.MakeFromData(data)
		data.Release()
	}
	b.n = 0
	rec := array.NewRecordBatch(b.schema, cols, int64(n))
	for _, a := range cols {
		a.Release()
	}
	return rec
}
