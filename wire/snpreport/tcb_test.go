package snpreport

import (
	"testing"

	"github.com/sealroot/sealroot/attest"
)

func TestTCBToUint64(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tcb   attest.TCB
		turin bool
		want  uint64
	}{
		{"milan", attest.TCB{Bootloader: 3, TEE: 0, SNP: 8, Microcode: 115}, false, 0x7308000000000003},
		{"milan drops fmc", attest.TCB{FMC: 9, Bootloader: 3, TEE: 1, SNP: 8, Microcode: 115}, false, 0x7308000000000103},
		{"turin", attest.TCB{FMC: 1, Bootloader: 2, TEE: 3, SNP: 4, Microcode: 5}, true, 0x0500000004030201},
		{"zero", attest.TCB{}, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := TCBToUint64(tc.tcb, tc.turin)
			if got != tc.want {
				t.Fatalf("TCBToUint64 = %#016x, want %#016x", got, tc.want)
			}
			back, err := TCBFromUint64(got, tc.turin)
			if err != nil {
				t.Fatalf("TCBFromUint64(%#x): %v", got, err)
			}
			want := tc.tcb
			if !tc.turin {
				want.FMC = 0
			}
			if *back != want {
				t.Fatalf("round trip = %+v, want %+v", *back, want)
			}
		})
	}
}
