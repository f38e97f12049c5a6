package main

import (
	"context"
	"net"
	"os"

	"github.com/sealroot/sealroot/attest"
)

// defaultDataDisk is the second virtio-blk disk, which may carry the
// config when the root disk has no KRUN footer.
const defaultDataDisk = "/dev/vdb"

// machine is what the init reads of the machine it boots, beyond the root
// device (options.root, from the command line): the kernel command line,
// the data disk's path, the TEE probe, the attester factory and the
// network bring-up. The phases
// reach them only through the boot's accessors below, so that config
// reading, payload detection and the attest phase run in unit tests on
// temp files and the simulated TEE. A zero field is the real machine's.
type machine struct {
	// cmdline returns the kernel command line (/proc/cmdline).
	cmdline func() string
	// dataDisk is the data disk's path (defaultDataDisk).
	dataDisk string
	// probeTEE names the hardware TEE evidence the VM has, "" for none
	// (teeDevice).
	probeTEE func() string
	// newAttester returns exactly the Attester the config's tee names
	// ((*boot).attesterFor).
	newAttester func(b *boot, ctx context.Context) (attest.Attester, error)
	// netUp brings up the link to the broker (netup.Up with the defaults).
	netUp func(ctx context.Context) error
	// netDial opens the TCP connection to the broker once the link is up
	// (a net.Dialer).
	netDial func(ctx context.Context, addr string) (net.Conn, error)
}

func (b *boot) cmdline() string {
	if b.machine.cmdline != nil {
		return b.machine.cmdline()
	}
	return readCmdline()
}

func (b *boot) dataDisk() string {
	if b.machine.dataDisk != "" {
		return b.machine.dataDisk
	}
	return defaultDataDisk
}

func (b *boot) probeTEE() string {
	if b.machine.probeTEE != nil {
		return b.machine.probeTEE()
	}
	return teeDevice()
}

func (b *boot) newAttester(ctx context.Context) (attest.Attester, error) {
	if b.machine.newAttester != nil {
		return b.machine.newAttester(b, ctx)
	}
	return b.attesterFor(ctx)
}

// fileExists reports whether path names something that can be stat'ed.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
