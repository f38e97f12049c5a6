package main

import (
	"fmt"

	"github.com/sealroot/sealroot/host/launch"
	"github.com/sealroot/sealroot/host/measure"
	"github.com/sealroot/sealroot/host/verify/sim"
	"github.com/sealroot/sealroot/wire/diskconfig"
)

// newSimServer loads the simulated secure processor and measures exactly
// what this launch boots: kernel, initrd, command line, vCPUs and memory.
// HOST_DATA binds the disk's config (config.HostData), as a host should set
// it on SNP hardware, so that workloads sharing a measurement stay apart.
func newSimServer(f *launchFlags, o *launch.Options, rawConfig []byte) (launch.SimServer, error) {
	if f.simDir == "" {
		return nil, fmt.Errorf("--tee sim needs --sim-dir DIR (create one with `sealroot sim init --dir DIR`)")
	}
	auth, err := sim.Load(f.simDir)
	if err != nil {
		return nil, err
	}
	m, err := measure.Sim(measure.SimInputs{Kernel: o.Kernel, Initrd: o.Initrd, Cmdline: launch.MachineCmdline(o.Machine, o.Append), CPUs: o.CPUs, MemoryMiB: o.MemoryMiB, Machine: o.Machine})
	if err != nil {
		return nil, fmt.Errorf("measuring the launch: %w", err)
	}
	return &sim.Server{Authority: auth, Measurement: m, HostData: diskconfig.HostData(rawConfig)}, nil
}
