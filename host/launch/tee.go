package launch

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sealroot/sealroot/host/measure"
)

// Hardware TEEs the launcher can start a guest in.
const (
	TEESNP = "snp"
	TEETDX = "tdx"
)

// DefaultSNPPolicy is the guest policy sealroot asks for: bit 17 (must be
// one) and bit 16 (SMT allowed); no debugging, no migration agent.
const DefaultSNPPolicy = 0x30000

// DefaultQuoteSocket is where Intel's Quote Generation Service listens on
// a TDX host.
const DefaultQuoteSocket = "unix:/var/run/tdx-qgs/qgs.socket"

// Minimum versions, and what a host needs (docs/measurement.md).
var (
	minQEMU = map[string][2]int{TEESNP: {9, 1}, TEETDX: {10, 1}}
	teeName = map[string]string{TEESNP: "SEV-SNP", TEETDX: "TDX"}
)

// TEE describes a confidential launch on SNP or TDX hardware: OVMF (or
// TDVF) boots the kernel given to QEMU, and the secure processor measures
// what docs/measurement.md describes.
type TEE struct {
	Kind     string // snp or tdx
	Firmware string // OVMF image with SEV metadata (snp) or TDVF metadata (tdx)

	// SNP: the guest policy (0 means DefaultSNPPolicy), the C-bit
	// position and the physical address bits the C-bit reduces (0: probed
	// from this CPU), the 32 bytes of HOST_DATA (the disk config digest),
	// and the vCPU model (default measure.DefaultCPUType), which enters
	// the measurement.
	Policy          uint64
	CBitPos         int
	ReducedPhysBits int
	HostData        [32]byte
	CPUType         string

	// TDX: MRCONFIGID (the disk config digest and 16 zero bytes) and the
	// Quote Generation Service's socket, "unix:PATH" or "vsock:CID:PORT"
	// (default DefaultQuoteSocket).
	MRConfigID  [48]byte
	QuoteSocket string
}

// MRConfigID is the TDX MRCONFIGID that binds a disk config digest.
func MRConfigID(configDigest [32]byte) [48]byte {
	var m [48]byte
	copy(m[:], configDigest[:])
	return m
}

// check validates t and fills its defaults, probing the C-bit from this
// CPU when it is not given.
func (t *TEE) check() error {
	name, ok := teeName[t.Kind]
	if !ok {
		return fmt.Errorf("TEE %q: want snp or tdx", t.Kind)
	}
	if t.Firmware == "" {
		return fmt.Errorf("--tee %s needs --firmware FILE (an OVMF build with %s support)", t.Kind, name)
	}
	if strings.ContainsAny(t.Firmware, ",\n") {
		return fmt.Errorf("firmware path %q contains a comma or newline, which QEMU options cannot carry", t.Firmware)
	}
	if t.Kind == TEETDX {
		if t.QuoteSocket == "" {
			t.QuoteSocket = DefaultQuoteSocket
		}
		if _, err := quoteSocket(t.QuoteSocket); err != nil {
			return err
		}
	}
	fw, err := measure.ReadFirmware(t.Firmware)
	if err != nil {
		return err
	}
	if t.Kind == TEETDX {
		if fw.TDVF == nil {
			return fmt.Errorf("firmware %s has no TDX metadata: it is not a TDVF build", t.Firmware)
		}
		if _, err := measure.MRTD(fw, ""); err != nil { // its sections must be in the image
			return fmt.Errorf("firmware %s: %w", t.Firmware, err)
		}
		return nil
	}
	if fw.SEV == nil {
		return fmt.Errorf("firmware %s has no SEV metadata: it cannot boot an SNP guest", t.Firmware)
	}
	if !fw.KernelHashes() {
		return fmt.Errorf("firmware %s: %w", t.Firmware, measure.ErrNoKernelHashes)
	}
	if t.Policy == 0 {
		t.Policy = DefaultSNPPolicy
	}
	if t.Policy&(1<<17) == 0 {
		return fmt.Errorf("SNP policy %#x: bit 17 must be set", t.Policy)
	}
	if t.CPUType == "" {
		t.CPUType = measure.DefaultCPUType
	}
	if _, err := measure.CPUSig(t.CPUType); err != nil {
		return err
	}
	if t.CBitPos == 0 {
		c, r, err := ProbeSEV()
		if err != nil {
			return fmt.Errorf("%w; give --cbitpos and --reduced-phys-bits", err)
		}
		t.CBitPos, t.ReducedPhysBits = c, r
	}
	if t.CBitPos < 32 || t.CBitPos > 63 || t.ReducedPhysBits < 0 || t.ReducedPhysBits > 63 {
		return fmt.Errorf("cbitpos %d / reduced-phys-bits %d: want 32-63 and 0-63", t.CBitPos, t.ReducedPhysBits)
	}
	return nil
}

// ProbeSEV reads the C-bit position and the reduced physical address bits
// from CPUID leaf 0x8000001F, after checking that the CPU reports SEV-SNP.
func ProbeSEV() (cbitpos, reduced int, err error) {
	if !haveCPUID {
		return 0, 0, errors.New("this is not an x86-64 host: no SEV-SNP")
	}
	if maxExt, _, _, _ := cpuid(0x80000000, 0); maxExt < 0x8000001f {
		return 0, 0, errors.New("this CPU has no AMD memory encryption leaf (CPUID 0x8000001F): no SEV-SNP")
	}
	eax, ebx, _, _ := cpuid(0x8000001f, 0)
	if eax&(1<<4) == 0 {
		return 0, 0, errors.New("this CPU does not report SEV-SNP (CPUID 0x8000001F EAX bit 4)")
	}
	return int(ebx & 0x3f), int(ebx >> 6 & 0x3f), nil
}

// quoteSocket converts "unix:PATH" or "vsock:CID:PORT" to QEMU's
// SocketAddress.
func quoteSocket(s string) (map[string]string, error) {
	kind, rest, _ := strings.Cut(s, ":")
	switch kind {
	case "unix":
		if rest == "" {
			break
		}
		return map[string]string{"type": "unix", "path": rest}, nil
	case "vsock":
		cid, port, ok := strings.Cut(rest, ":")
		if _, err := strconv.ParseUint(cid, 10, 32); err != nil || !ok {
			break
		}
		if _, err := strconv.ParseUint(port, 10, 32); err != nil {
			break
		}
		return map[string]string{"type": "vsock", "cid": cid, "port": port}, nil
	}
	return nil, fmt.Errorf("quote generation socket %q: want unix:PATH or vsock:CID:PORT", s)
}

// teeArgs turns the argument list of a plain launch into a confidential
// one: KVM, the TEE's vCPU model, a q35 machine bound to the TEE object,
// and the firmware. a is qemuArgs' list, which starts with -accel and
// -cpu.
func (t *TEE) teeArgs(a []string, memMiB int) []string {
	a[1] = "kvm"
	// A confidential guest's kernel accepts only virtio devices that use
	// the DMA API (VIRTIO_F_ACCESS_PLATFORM), which QEMU offers only on
	// modern (non-transitional) devices.
	a = append(a,
		"-global", "virtio-blk-pci.disable-legacy=on",
		"-global", "virtio-serial-pci.disable-legacy=on",
		"-global", "virtio-net-pci.disable-legacy=on",
		"-global", "virtio-device.iommu_platform=on",
	)
	if t.Kind == TEESNP {
		a[3] = t.CPUType
		return append(a,
			"-machine", "q35,confidential-guest-support=sev0,memory-backend=ram1",
			"-object", fmt.Sprintf("memory-backend-memfd,id=ram1,size=%dM,share=true,prealloc=false", memMiB),
			"-object", fmt.Sprintf("sev-snp-guest,id=sev0,policy=%#x,cbitpos=%d,reduced-phys-bits=%d,host-data=%s,kernel-hashes=on",
				t.Policy, t.CBitPos, t.ReducedPhysBits, base64.StdEncoding.EncodeToString(t.HostData[:])),
			"-bios", t.Firmware,
		)
	}
	a[3] = "host"
	qs, _ := quoteSocket(t.QuoteSocket) // checked by check
	obj, _ := json.Marshal(struct {
		Type   string            `json:"qom-type"`
		ID     string            `json:"id"`
		Config string            `json:"mrconfigid"`
		QGS    map[string]string `json:"quote-generation-socket"`
	}{"tdx-guest", "tdx0", base64.StdEncoding.EncodeToString(t.MRConfigID[:]), qs})
	return append(a,
		"-machine", "q35,kernel-irqchip=split,confidential-guest-support=tdx0",
		"-object", string(obj),
		"-bios", t.Firmware,
	)
}

// SNPInputs are the measurement inputs of an SNP launch of o: the same
// firmware, kernel, initrd, command line, vCPU count and vCPU model the
// command line carries. features is the VMSA's SEV_FEATURES, which the
// host kernel and QEMU decide (0x1 unless DebugSwap is on).
func (o *Options) SNPInputs(features uint64) (measure.SNPInputs, error) {
	if o.TEE == nil || o.TEE.Kind != TEESNP {
		return measure.SNPInputs{}, errors.New("not an SNP launch")
	}
	t := *o.TEE
	if t.CPUType == "" {
		t.CPUType = measure.DefaultCPUType
	}
	sig, err := measure.CPUSig(t.CPUType)
	if err != nil {
		return measure.SNPInputs{}, err
	}
	cpus := o.CPUs
	if cpus == 0 {
		cpus = 1
	}
	return measure.SNPInputs{Firmware: t.Firmware, VMM: measure.VMMQEMU, CPUs: cpus, CPUSig: sig, GuestFeatures: features,
		Kernel: o.Kernel, Initrd: o.Initrd, Cmdline: Cmdline(o.Append)}, nil
}

// DryRun returns the command line Run would start, QEMU first, without
// starting anything or checking the host (for a plain launch, --accel auto
// is resolved without the probe boot). The per-launch socket directory,
// created by Run, shows as RunDirPlaceholder.
func DryRun(o Options) ([]string, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	accel := o.Accel
	if o.TEE != nil {
		if err := o.TEE.check(); err != nil {
			return nil, err
		}
		accel = "kvm"
	} else if accel == "auto" {
		// Without the probe boot, which would start QEMU: a real launch
		// still falls back to tcg when a KVM guest hangs on this host.
		accel = "tcg"
		if kvmUsable() {
			accel = "kvm"
		}
	}
	dir := RunDirPlaceholder
	sim := ""
	if o.Sim != nil {
		sim = filepath.Join(dir, "sim.sock")
	}
	args, err := qemuArgs(&o, accel, MachineCmdline(o.Machine, o.Append), filepath.Join(dir, "host.sock"), sim, filepath.Join(dir, "relay-slots"))
	if err != nil {
		return nil, err
	}
	return append([]string{o.QEMU}, args...), nil
}

// RunDirPlaceholder stands for Run's temporary directory in DryRun.
const RunDirPlaceholder = "$SEALROOT_RUNDIR"

// ShellLine quotes argv for a POSIX shell as one line, leaving plain
// words bare.
func ShellLine(argv []string) string {
	q := make([]string, len(argv))
	for i, s := range argv {
		if s != "" && plainWord.MatchString(s) {
			q[i] = s
		} else {
			q[i] = "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

var plainWord = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// Host is what Preflight looks at; the zero value reads this host.
type Host struct {
	ReadFile    func(string) ([]byte, error)
	QEMUVersion func(ctx context.Context, qemu string) (string, error)
}

// Preflight checks that QEMU and this host can start a guest in the TEE.
// Its error is one line naming what was found and what is needed.
func (h Host) Preflight(ctx context.Context, qemu, kind string) error {
	if h.ReadFile == nil {
		h.ReadFile = os.ReadFile
	}
	if h.QEMUVersion == nil {
		h.QEMUVersion = qemuVersion
	}
	name, ok := teeName[kind]
	if !ok {
		return fmt.Errorf("TEE %q: want snp or tdx", kind)
	}
	var problems []string
	want := minQEMU[kind]
	v, err := h.QEMUVersion(ctx, qemu)
	switch {
	case err != nil:
		problems = append(problems, fmt.Sprintf("QEMU (%s) did not report a version (%v), %s needs QEMU %d.%d or later", qemu, err, name, want[0], want[1]))
	case !versionAtLeast(v, want):
		problems = append(problems, fmt.Sprintf("QEMU %s found, %s needs QEMU %d.%d or later", v, name, want[0], want[1]))
	}
	param, module, need := "/sys/module/kvm_amd/parameters/sev_snp", "kvm_amd", "an AMD EPYC (Milan or later) with SNP enabled in firmware and Linux 6.11 or later with kvm_amd sev_snp=1"
	if kind == TEETDX {
		param, module, need = "/sys/module/kvm_intel/parameters/tdx", "kvm_intel", "a Xeon with TDX enabled in firmware and Linux 6.16 or later with kvm_intel tdx=1"
	}
	b, err := h.ReadFile(param)
	switch {
	case errors.Is(err, os.ErrNotExist):
		problems = append(problems, fmt.Sprintf("this host has no %s (%s not loaded or without %s support: %s missing), it needs %s", name, module, name, param, need))
	case err != nil:
		problems = append(problems, fmt.Sprintf("reading %s: %v", param, err))
	case !strings.HasPrefix(strings.TrimSpace(string(b)), "Y") && strings.TrimSpace(string(b)) != "1":
		problems = append(problems, fmt.Sprintf("%s is %q: %s is off on this host, it needs %s", param, strings.TrimSpace(string(b)), name, need))
	}
	if len(problems) > 0 {
		return fmt.Errorf("--tee %s: %s", kind, strings.Join(problems, "; "))
	}
	return nil
}

var qemuVersionRE = regexp.MustCompile(`version (\d+)\.(\d+)(\.\d+)?`)

func qemuVersion(ctx context.Context, qemu string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, qemu, "--version").Output()
	if err != nil {
		return "", err
	}
	m := qemuVersionRE.FindStringSubmatch(string(out))
	if m == nil {
		return "", fmt.Errorf("unrecognized --version output %q", strings.TrimSpace(string(out)))
	}
	return strings.TrimPrefix(m[0], "version "), nil
}

// versionAtLeast compares "X.Y[.Z]" with {major, minor}.
func versionAtLeast(v string, want [2]int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, err1 := strconv.Atoi(parts[0])
	mnr, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return maj > want[0] || maj == want[0] && mnr >= want[1]
}
