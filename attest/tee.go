package attest

import (
	"fmt"
	"github.com/sealroot/sealroot/internal/textclip"
	"slices"
	"strings"
)

// Guest paths of the TEE interfaces. The guest init probes them to learn
// whether it runs in a confidential VM; the hardware Attesters (attest/tsm)
// open the character devices.
const (
	// DevSEVGuest is the SEV-SNP guest device.
	DevSEVGuest = "/dev/sev-guest"
	// DevTDXGuest is the TDX guest device; DevTDXGuestOld is its name
	// before Linux 6.2's rename.
	DevTDXGuest    = "/dev/tdx_guest"
	DevTDXGuestOld = "/dev/tdx-guest"
	// DevCCARealm is the platform device the kernel registers in an Arm
	// CCA realm (its driver serves configfs-tsm; there is no /dev node).
	DevCCARealm = "/sys/bus/platform/devices/arm-cca-dev"
	// CPUFlagTDX is the /proc/cpuinfo flag of a TDX guest.
	CPUFlagTDX = "tdx_guest"
	// SimPortName is the virtio-serial port of the launcher's simulated
	// secure processor (attest/simport speaks its protocol).
	SimPortName = "org.sealroot.sim-tee"
)

// TEEInfo is what sealroot knows about one TEE: the facts the guest init,
// the guest agent, the broker and the CLI each used to keep a copy of.
// The table (TEEs, Lookup) is the single place they live.
// Verifiers are host code and live in host/verify, keyed by Name.
type TEEInfo struct {
	// Name is the value of the disk config's `tee` key and the TEE a
	// workload is registered for.
	Name string
	// Wire is the evidence TEE the broker sees (Evidence.TEE, the Trustee
	// tee name): the simulated secure processor produces SNP reports, so
	// "sim" travels as "snp". Empty for a TEE that never attests.
	Wire string
	// Attestable says the guest proves itself to a broker with evidence
	// (an Attester exists for it); NeedsBroker says the config must then
	// name an attestation_url. Today the two agree; they are kept apart
	// because the config rule and the attest phase ask different questions.
	Attestable  bool
	NeedsBroker bool
	// Hardware says the evidence comes from the kernel's TEE interfaces
	// (attest/tsm); Simulated says it comes from the simulated secure
	// processor over SimPortName.
	Hardware  bool
	Simulated bool
	// Devices are guest paths whose presence means the VM runs in this TEE;
	// CPUFlag, when set, is a /proc/cpuinfo flag that means the same.
	Devices []string
	CPUFlag string
	// BindingField names the launch-time field a launcher binds the disk
	// config's digest into, and BindingSize is its size in bytes
	// (attest/configbind). Empty for a TEE without one.
	BindingField string
	BindingSize  int
	// MeasurementSizes are the launch measurement lengths the TEE's
	// evidence carries (a workload registers one of them).
	MeasurementSizes []int
}

// tees is the table, in the order messages list the names.
var tees = []TEEInfo{
	{Name: TEESNP, Wire: TEESNP, Attestable: true, NeedsBroker: true, Hardware: true,
		Devices: []string{DevSEVGuest}, BindingField: "HOST_DATA", BindingSize: 32, MeasurementSizes: []int{48}},
	{Name: TEESEV}, // plain SEV: no reports; accepted in configs, never attested
	{Name: TEETDX, Wire: TEETDX, Attestable: true, NeedsBroker: true, Hardware: true,
		Devices: []string{DevTDXGuest, DevTDXGuestOld}, CPUFlag: CPUFlagTDX,
		BindingField: "MRCONFIGID", BindingSize: 48, MeasurementSizes: []int{48}},
	{Name: TEECCA, Wire: TEECCA, Attestable: true, NeedsBroker: true, Hardware: true,
		Devices: []string{DevCCARealm}, BindingField: "realm personalization value", BindingSize: 64,
		MeasurementSizes: []int{32, 48, 64}},
	{Name: TEESim, Wire: TEESNP, Attestable: true, NeedsBroker: true, Simulated: true,
		BindingField: "HOST_DATA", BindingSize: 32, MeasurementSizes: []int{48}},
	{Name: TEENone},
}

// TEEs returns a copy of the table, in the order messages list the names.
func TEEs() []TEEInfo {
	out := make([]TEEInfo, len(tees))
	for i, t := range tees {
		out[i] = t.clone()
	}
	return out
}

// Lookup returns (a copy of) the table entry for a config tee name.
func Lookup(name string) (TEEInfo, bool) {
	for _, t := range tees {
		if t.Name == name {
			return t.clone(), true
		}
	}
	return TEEInfo{}, false
}

// clone copies t with its slices, so no caller can change the table.
func (t TEEInfo) clone() TEEInfo {
	t.Devices = slices.Clone(t.Devices)
	t.MeasurementSizes = slices.Clone(t.MeasurementSizes)
	return t
}

// Known reports whether name is a TEE the disk config may name.
func Known(name string) bool {
	_, ok := Lookup(name)
	return ok
}

// Attestable reports whether a config tee goes through attestation.
func Attestable(name string) bool {
	t, _ := Lookup(name)
	return t.Attestable
}

// NeedsBroker reports whether a config naming tee must name a broker.
func NeedsBroker(name string) bool {
	t, _ := Lookup(name)
	return t.NeedsBroker
}

// WireName returns the evidence TEE a config tee's guest presents to a
// broker, or an error for a TEE that cannot be attested.
func WireName(name string) (string, error) {
	t, _ := Lookup(name)
	if t.Wire == "" {
		return "", fmt.Errorf("tee %q cannot be attested to a broker (want %s)", textclip.Clip(name, 80), listNames(func(t TEEInfo) bool { return t.Attestable }, "or"))
	}
	return t.Wire, nil
}

// Names lists, in table order, the names of the entries keep accepts,
// joined the way a message reads: "snp, tdx or cca".
func Names(keep func(TEEInfo) bool) string { return listNames(keep, "or") }

func listNames(keep func(TEEInfo) bool, conj string) string {
	var n []string
	for _, t := range tees {
		if keep == nil || keep(t) {
			n = append(n, t.Name)
		}
	}
	switch len(n) {
	case 0:
		return ""
	case 1:
		return n[0]
	}
	return strings.Join(n[:len(n)-1], ", ") + " " + conj + " " + n[len(n)-1]
}
