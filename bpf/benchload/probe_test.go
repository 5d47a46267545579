package benchload

import (
	"reflect"
	"testing"

	sysbpf "github.com/vigil-dev/vigil/bpf/sys"
)

// TestSpec checks that the committed object parses and carries every
// program and map the generated bindings name.
func TestSpec(t *testing.T) {
	spec, err := LoadProbe()
	if err != nil {
		t.Fatal(err)
	}
	var specs ProbeSpecs
	if err := spec.Assign(&specs); err != nil {
		t.Fatal(err)
	}
}

// TestLayout checks that the records this program writes are the priv
// probe's, field for field, and that the maps it replaces match the priv
// probe's in type and size.
func TestLayout(t *testing.T) {
	bench, priv := reflect.TypeFor[ProbePrivEvent](), reflect.TypeFor[sysbpf.ProbePrivEvent]()
	if bench.Size() != priv.Size() || bench.NumField() != priv.NumField() {
		t.Fatalf("priv_event: %d bytes, %d fields here, %d bytes, %d fields in bpf/sys", bench.Size(), bench.NumField(), priv.Size(), priv.NumField())
	}
	for i := range bench.NumField() {
		b, p := bench.Field(i), priv.Field(i)
		if b.Name != p.Name || b.Offset != p.Offset || b.Type != p.Type {
			t.Errorf("priv_event field %d: %s %v at %d here, %s %v at %d in bpf/sys", i, b.Name, b.Type, b.Offset, p.Name, p.Type, p.Offset)
		}
	}
	spec, err := LoadProbe()
	if err != nil {
		t.Fatal(err)
	}
	sys, err := sysbpf.LoadProbe()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"priv_events", "drops"} {
		b, p := spec.Maps[name], sys.Maps[name]
		if b.Type != p.Type || b.KeySize != p.KeySize || b.ValueSize != p.ValueSize || b.MaxEntries != p.MaxEntries || b.Flags != p.Flags {
			t.Errorf("map %s: %v/%d/%d/%d/%#x here, %v/%d/%d/%d/%#x in bpf/sys", name,
				b.Type, b.KeySize, b.ValueSize, b.MaxEntries, b.Flags, p.Type, p.KeySize, p.ValueSize, p.MaxEntries, p.Flags)
		}
	}
}
