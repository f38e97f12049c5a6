package tsm

import (
	"fmt"
	"os"

	labi "github.com/google/go-sev-guest/client/linuxabi"
)

// HeldSEVDevice is an SNP quote provider over /dev/sev-guest opened once,
// where the default provider opens the node for every report. It keeps
// working after the node is removed: the guest init opens it before the
// seal phase takes /dev/sev-guest away from the workload, and serves
// runtime evidence through it (guest/runtimeev). Reports come as from the
// default provider: the report, then the host's certificate table when it
// supplies one.
type HeldSEVDevice struct {
	f   *os.File
	dev *snpDevice
}

// OpenSEVDevice opens the sev-guest device at path (SEVGuestPath) and
// holds it until Close.
func OpenSEVDevice(path string) (*HeldSEVDevice, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("tsm: opening %s: %w", path, err)
	}
	return &HeldSEVDevice{f: f, dev: &snpDevice{path: path,
		ioctl: func(cmd uintptr, msg *labi.SnpUserGuestRequest) error { return snpIoctl(f, cmd, msg) }}}, nil
}

// IsSupported reports whether a device is held.
func (h *HeldSEVDevice) IsSupported() bool { return h != nil && h.f != nil }

// GetRawQuote is GetRawQuoteAtLevel at VMPL 0.
func (h *HeldSEVDevice) GetRawQuote(reportData [64]byte) ([]byte, error) {
	return h.GetRawQuoteAtLevel(reportData, 0)
}

// GetRawQuoteAtLevel returns the raw report at level, followed by the
// certificate table when there is one.
func (h *HeldSEVDevice) GetRawQuoteAtLevel(reportData [64]byte, level uint) ([]byte, error) {
	if !h.IsSupported() {
		return nil, fmt.Errorf("tsm: %s is not held", SEVGuestPath)
	}
	return h.dev.GetRawQuoteAtLevel(reportData, level)
}

// Close releases the device.
func (h *HeldSEVDevice) Close() error {
	if h == nil || h.f == nil {
		return nil
	}
	err := h.f.Close()
	h.f = nil
	return err
}
