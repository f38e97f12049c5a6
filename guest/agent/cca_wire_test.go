package agent

import (
	"bytes"
	"testing"

	"github.com/sealroot/sealroot/wire/kbs"
)

// TestCCAEvidenceWire: the CCA evidence the agent sends (CoCo's form, an
// array of byte values) is what the broker's decoder reads.
func TestCCAEvidenceWire(t *testing.T) {
	tok := []byte{0xd9, 0x01, 0x8f, 0xa2, 0x00, 0xff}
	got, err := kbs.DecodeCCAEvidence(encodeCCAEvidence(tok))
	if err != nil || !bytes.Equal(got, tok) {
		t.Fatalf("broker decoded %x, %v; want %x", got, err, tok)
	}
}
