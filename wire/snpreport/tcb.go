package snpreport

import (
	"encoding/binary"
	"fmt"

	"github.com/sealroot/sealroot/attest"
)

// TCBFromUint64 splits a raw SNP TCB_VERSION (the 8 little-endian report
// bytes). turin selects the Turin byte layout [fmc,bl,tee,snp,0,0,0,ucode];
// otherwise Milan/Genoa [bl,tee,0,0,0,0,snp,ucode] (docs/interop.md §5).
// Non-zero reserved bytes are an error. TCBToUint64 is its inverse; the two
// are sealroot's one statement of the TCB byte layout.
func TCBFromUint64(v uint64, turin bool) (*attest.TCB, error) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	if turin {
		if b[4] != 0 || b[5] != 0 || b[6] != 0 {
			return nil, fmt.Errorf("reserved bytes 4-6 of a turin tcb are not zero")
		}
		return &attest.TCB{FMC: b[0], Bootloader: b[1], TEE: b[2], SNP: b[3], Microcode: b[7]}, nil
	}
	if b[2] != 0 || b[3] != 0 || b[4] != 0 || b[5] != 0 {
		return nil, fmt.Errorf("reserved bytes 2-5 of a milan/genoa tcb are not zero")
	}
	return &attest.TCB{Bootloader: b[0], TEE: b[1], SNP: b[6], Microcode: b[7]}, nil
}

// TCBToUint64 is the raw SNP TCB_VERSION of t in the Turin byte layout when
// turin is set, else in the Milan/Genoa one (see TCBFromUint64). Reserved
// bytes are zero; t.FMC is dropped outside Turin, whose layout alone has an
// FMC byte.
func TCBToUint64(t attest.TCB, turin bool) uint64 {
	var b [8]byte
	if turin {
		b[0], b[1], b[2], b[3], b[7] = t.FMC, t.Bootloader, t.TEE, t.SNP, t.Microcode
	} else {
		b[0], b[1], b[6], b[7] = t.Bootloader, t.TEE, t.SNP, t.Microcode
	}
	return binary.LittleEndian.Uint64(b[:])
}
