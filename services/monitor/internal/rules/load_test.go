package rules

import "testing"

func TestDefaultsLoad(t *testing.T) {
	set, err := LoadFile("")
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Rules) < 10 {
		t.Fatalf("%d rules", len(set.Rules))
	}
}
