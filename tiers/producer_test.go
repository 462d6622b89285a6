package tiers

import "testing"

// TestParseProducerID: 32 lowercase hex digits, not all zero, and back.
func TestParseProducerID(t *testing.T) {
	for _, s := range []string{"", "0123", "00000000000000000000000000000000", "0123456789ABCDEF0123456789abcdef", "zz23456789abcdef0123456789abcdef"} {
		if _, err := ParseProducerID(s); err == nil {
			t.Errorf("ParseProducerID(%q) accepted", s)
		}
	}
	id, err := ParseProducerID("0123456789abcdef0123456789abcdef")
	if err != nil || id.String() != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("ParseProducerID round trip: %v %v", id, err)
	}
}
