package signal

import "testing"

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
