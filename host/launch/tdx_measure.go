package launch

import (
	"errors"

	"github.com/sealroot/sealroot/host/measure"
)

// RTMRInputs are the RTMR1/RTMR2 inputs of a TDX launch of o: the same
// kernel, initrd and command line the QEMU command line carries, for a
// TDVF of generation gen (measure.TDVFGenerations; "" is the default).
func (o *Options) RTMRInputs(gen string) (measure.RTMRInputs, error) {
	if o.TEE == nil || o.TEE.Kind != TEETDX {
		return measure.RTMRInputs{}, errors.New("not a TDX launch")
	}
	return measure.RTMRInputs{Kernel: o.Kernel, Initrd: o.Initrd, Cmdline: MachineCmdline(o.Machine, o.Append),
		Generation: gen}, nil
}
