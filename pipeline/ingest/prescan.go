package ingest

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// prescan walks the IPC message framing of a whole request body and checks,
// before arrow-go parses anything, that every vector a message's flatbuffer
// header declares fits inside that header. arrow-go sizes slices from those
// declared lengths (make([]arrow.Field, FieldsLength()) and the like) without
// checking them, so a 3 KiB body declaring 2^31 fields kills the process
// with an unrecoverable out-of-memory error. Found by FuzzDecode.
//
// The flatbuffer layout is Arrow's Message.fbs / Schema.fbs: only the slots
// holding vectors of tables are followed, since only they drive allocations.
func prescan(body []byte, maxMetadata int) error {
	for pos := 0; pos < len(body); {
		if len(body)-pos < 8 {
			return errors.New("truncated message prefix")
		}
		n := binary.LittleEndian.Uint32(body[pos:])
		if n == 0xFFFF_FFFF { // continuation marker, then the length
			n = binary.LittleEndian.Uint32(body[pos+4:])
			pos += 8
		} else { // pre-0.15 framing: just the length
			pos += 4
		}
		if n == 0 { // end of one stream; another may follow
			continue
		}
		if int64(n) > int64(maxMetadata) || int64(n) > int64(len(body)-pos) {
			return fmt.Errorf("message header of %d bytes (limit %d, %d left)", n, maxMetadata, len(body)-pos)
		}
		fb := fbuf(body[pos : pos+int(n)])
		bodyLen, err := fb.message()
		if err != nil {
			return fmt.Errorf("message header: %w", err)
		}
		pos += int(n)
		if bodyLen < 0 || bodyLen > int64(len(body)-pos) {
			return fmt.Errorf("message body of %d bytes, %d left", bodyLen, len(body)-pos)
		}
		pos += int(bodyLen)
	}
	return nil
}

// maxFields bounds the fields, nested ones included, of one schema.
const maxFields = 1024

// fbuf is one flatbuffer with bounds-checked accessors.
type fbuf []byte

var errBounds = errors.New("offset out of bounds")

func (b fbuf) u32(p int) (int, error) {
	if p < 0 || p+4 > len(b) {
		return 0, errBounds
	}
	return int(binary.LittleEndian.Uint32(b[p:])), nil
}

// slot returns the position of a table's field i, or 0 if absent.
func (b fbuf) slot(tbl, i int) (int, error) {
	if tbl < 0 || tbl+4 > len(b) {
		return 0, errBounds
	}
	vt := tbl - int(int32(binary.LittleEndian.Uint32(b[tbl:])))
	if vt < 0 || vt+4 > len(b) {
		return 0, errBounds
	}
	vtSize := int(binary.LittleEndian.Uint16(b[vt:]))
	if vt+vtSize > len(b) {
		return 0, errBounds
	}
	if 4+2*i+2 > vtSize {
		return 0, nil
	}
	off := int(binary.LittleEndian.Uint16(b[vt+4+2*i:]))
	if off == 0 {
		return 0, nil
	}
	if tbl+off >= len(b) {
		return 0, errBounds
	}
	return tbl + off, nil
}

// ref follows the offset stored in table tbl's field i (a table, vector or
// string); 0 if the field is absent.
func (b fbuf) ref(tbl, i int) (int, error) {
	p, err := b.slot(tbl, i)
	if err != nil || p == 0 {
		return 0, err
	}
	o, err := b.u32(p)
	if err != nil {
		return 0, err
	}
	if p+o >= len(b) {
		return 0, errBounds
	}
	return p + o, nil
}

// tables returns the positions of the tables in the vector of tables at
// table tbl's field i, checking the declared length fits.
func (b fbuf) tables(tbl, i int) ([]int, error) {
	v, err := b.ref(tbl, i)
	if err != nil || v == 0 {
		return nil, err
	}
	n, err := b.u32(v)
	if err != nil {
		return nil, err
	}
	if n > (len(b)-v-4)/4 {
		return nil, fmt.Errorf("vector of %d elements in a %d-byte header", n, len(b))
	}
	out := make([]int, n)
	for k := range n {
		e := v + 4 + 4*k
		o, _ := b.u32(e)
		if e+o >= len(b) {
			return nil, errBounds
		}
		out[k] = e + o
	}
	return out, nil
}

// message checks a Message table and returns its bodyLength.
func (b fbuf) message() (int64, error) {
	root, err := b.u32(0)
	if err != nil {
		return 0, err
	}
	if _, err := b.tables(root, 4); err != nil { // custom_metadata
		return 0, err
	}
	var bodyLen int64
	if p, err := b.slot(root, 3); err != nil {
		return 0, err
	} else if p != 0 {
		if p+8 > len(b) {
			return 0, errBounds
		}
		bodyLen = int64(binary.LittleEndian.Uint64(b[p:]))
	}
	typ, err := b.slot(root, 1)
	if err != nil || typ == 0 {
		return bodyLen, err
	}
	header, err := b.ref(root, 2)
	if err != nil || header == 0 {
		return bodyLen, err
	}
	if b[typ] == 1 { // Schema { endianness, fields, custom_metadata, features }
		if _, err := b.tables(header, 2); err != nil {
			return 0, err
		}
		if err := b.scalarVector(header, 3, 8); err != nil {
			return 0, err
		}
		fields, err := b.tables(header, 1)
		if err != nil {
			return 0, err
		}
		// A child may point back at its parent: the depth limit turns the
		// cycle (which would overflow arrow-go's stack) into an error, the
		// budget keeps shared children from costing exponential time.
		budget := maxFields
		for _, f := range fields {
			if err := b.field(f, 0, &budget); err != nil {
				return 0, err
			}
		}
	}
	// RecordBatch and DictionaryBatch hold vectors of structs (nodes,
	// buffers) that arrow-go reads by index, and are only read once the
	// schema matched one of ours.
	return bodyLen, nil
}

// field checks a Field { name, nullable, type_type, type, dictionary,
// children, custom_metadata }.
func (b fbuf) field(f, depth int, budget *int) error {
	if depth > 8 {
		return errors.New("fields nested too deep")
	}
	if *budget--; *budget < 0 {
		return fmt.Errorf("more than %d fields", maxFields)
	}
	if _, err := b.tables(f, 6); err != nil {
		return err
	}
	if t, err := b.slot(f, 2); err != nil {
		return err
	} else if t != 0 && b[t] == 14 { // Union { mode, typeIds: [int] }
		tt, err := b.ref(f, 3)
		if err != nil {
			return err
		}
		if tt != 0 {
			if err := b.scalarVector(tt, 1, 4); err != nil {
				return err
			}
		}
	}
	children, err := b.tables(f, 5)
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := b.field(c, depth+1, budget); err != nil {
			return err
		}
	}
	return nil
}

// scalarVector checks that the vector of size-byte scalars at tbl's field i fits.
func (b fbuf) scalarVector(tbl, i, size int) error {
	v, err := b.ref(tbl, i)
	if err != nil || v == 0 {
		return err
	}
	n, err := b.u32(v)
	if err != nil {
		return err
	}
	if n > (len(b)-v-4)/size {
		return fmt.Errorf("vector of %d elements in a %d-byte header", n, len(b))
	}
	return nil
}
