package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sealroot/sealroot/host/launch"
	"github.com/sealroot/sealroot/host/measure"
)

// measureTEEFlags are the flags of `sealroot measure` for SEV-SNP and TDX.
type measureTEEFlags struct {
	vmm, firmware, cpuType, cpuSig, guestFeatures, cmdline string
	tdxPageOrder                                           string
	libkrunfw, qboot, kernelBundle, kernelLoadAddr, vmsa   string
	tdvfGeneration                                         string
}

// register binds the flags of t to fl.
func (t *measureTEEFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&t.vmm, "vmm", measure.VMMQEMU, "with --tee snp: the VMM, qemu, ec2, gce or libkrun")
	fl.StringVar(&t.firmware, "firmware", "", "with --tee snp|tdx: the OVMF/TDVF image the VM boots")
	fl.StringVar(&t.cpuType, "cpu-type", measure.DefaultCPUType, "with --tee snp --vmm qemu: the QEMU vCPU model (EPYC, EPYC-v1..v4, EPYC-Rome*, EPYC-Milan*, EPYC-Genoa*, EPYC-Turin)")
	fl.StringVar(&t.cpuSig, "cpu-sig", "", "with --tee snp --vmm qemu: the vCPU signature (CPUID 1 EAX) instead of --cpu-type")
	fl.StringVar(&t.guestFeatures, "guest-features", "0x1", "with --tee snp: the VMSA's SEV_FEATURES (0x1; 0x21 with DebugSwap)")
	fl.StringVar(&t.cmdline, "cmdline", "", "with --tee snp|tdx and --kernel: the exact kernel command line (instead of the launcher's + --append)")
	fl.StringVar(&t.tdxPageOrder, "tdx-page-order", measure.TDXSinglePass, "with --tee tdx: single-pass (upstream KVM/QEMU) or two-pass (earlier TDX patch sets)")
	fl.StringVar(&t.libkrunfw, "libkrunfw", "", "with --vmm libkrun: the libkrunfw-sev shared library to read the bundles from")
	fl.StringVar(&t.qboot, "qboot", "", "with --vmm libkrun: the qboot firmware (64 KiB), instead of --libkrunfw")
	fl.StringVar(&t.kernelBundle, "kernel-bundle", "", "with --vmm libkrun: the kernel bundle, instead of --libkrunfw")
	fl.StringVar(&t.kernelLoadAddr, "kernel-load-addr", "0x1000000", "with --vmm libkrun: where the kernel bundle is loaded")
	fl.StringVar(&t.tdvfGeneration, "tdvf-generation", measure.DefaultTDVFGeneration, tdvfGenerationUsage)
	fl.StringVar(&t.vmsa, "vmsa", measure.KrunVMSALibkrunfw, "with --vmm libkrun: the vCPU state, libkrunfw (as krunfw_measurement) or kvm-reset (unverified)")
}

// measureCommon are the flags `measure` shares between TEEs.
type measureCommon struct {
	tee, kernel, initrd, appendArgs, disk string
	cpus, memory                          int
	asJSON                                bool
}

// runMeasureTEE computes an SNP or TDX measurement; cpus and memory are
// already resolved from --cpus/--memory, --disk and the defaults.
func runMeasureTEE(cmd *cobra.Command, f *measureTEEFlags, m measureCommon) error {
	out := cmd.OutOrStdout()
	switch {
	case m.tee == "tdx":
		return runMeasureTDX(cmd, f, m) // cmd_measure_tdx.go
	case m.tee == "snp" && f.vmm == "libkrun":
		return runMeasureLibkrun(cmd, f, m)
	case m.tee == "snp":
	default:
		return usageError("--tee %q: want sim, snp or tdx", m.tee)
	}
	if f.firmware == "" {
		return usageError("--tee snp needs --firmware FILE (the OVMF image the VM boots)")
	}
	features, err := measure.ParseUint(f.guestFeatures, 64)
	if err != nil {
		return usageError("--guest-features %q: want a number such as 0x1", f.guestFeatures)
	}
	in := measure.SNPInputs{Firmware: f.firmware, VMM: f.vmm, CPUs: m.cpus, GuestFeatures: features,
		Kernel: m.kernel, Initrd: m.initrd}
	inputs := map[string]any{"tee": "snp", "vmm": f.vmm, "firmware": f.firmware, "cpus": m.cpus,
		"guest_features": fmt.Sprintf("%#x", features)}
	if f.vmm == measure.VMMQEMU {
		if in.CPUSig, err = cpuSignature(cmd, f); err != nil {
			return err
		}
		inputs["cpu_sig"] = fmt.Sprintf("%#x", in.CPUSig)
	}
	if m.kernel != "" {
		in.Cmdline = launch.Cmdline(m.appendArgs)
		if cmd.Flags().Changed("cmdline") {
			if m.appendArgs != "" {
				return usageError("--cmdline and --append exclude each other")
			}
			in.Cmdline = f.cmdline
		}
		inputs["kernel"], inputs["initrd"], inputs["cmdline"] = m.kernel, m.initrd, in.Cmdline
	} else if m.initrd != "" || m.appendArgs != "" || cmd.Flags().Changed("cmdline") {
		return usageError("--initrd, --append and --cmdline are measured only with --kernel")
	}
	v, err := measure.SNP(in)
	if err != nil {
		return withStatus(1, err)
	}
	return printMeasurement(out, m.asJSON, "measurement", v[:], inputs)
}

// printMeasurement prints v as hex on the last line, or with --json an
// object holding v under key and the inputs.
func printMeasurement(w io.Writer, asJSON bool, key string, v []byte, inputs map[string]any) error {
	if !asJSON {
		_, err := fmt.Fprintln(w, hex.EncodeToString(v))
		return err
	}
	inputs[key] = hex.EncodeToString(v)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(inputs)
}

// runMeasureLibkrun computes the SNP launch digest of a libkrun guest.
func runMeasureLibkrun(cmd *cobra.Command, f *measureTEEFlags, m measureCommon) error {
	raw := f.qboot != "" || f.kernelBundle != "" || m.initrd != ""
	switch {
	case f.libkrunfw != "" && raw:
		return usageError("--libkrunfw and --qboot/--kernel-bundle/--initrd exclude each other")
	case f.libkrunfw == "" && (f.qboot == "" || f.kernelBundle == "" || m.initrd == ""):
		return usageError("--vmm libkrun needs --libkrunfw FILE, or --qboot, --kernel-bundle and --initrd")
	case m.kernel != "" || m.appendArgs != "" || f.firmware != "" || cmd.Flags().Changed("cmdline"):
		return usageError("--vmm libkrun measures libkrunfw's bundles: --kernel, --append, --cmdline and --firmware do not apply (the command line is built into the kernel bundle)")
	}
	load, err := measure.ParseUint(f.kernelLoadAddr, 64)
	if err != nil {
		return usageError("--kernel-load-addr %q: want a number such as 0x1000000", f.kernelLoadAddr)
	}
	in := measure.KrunInputs{KernelLoadAddr: load, CPUs: m.cpus, MemoryMiB: m.memory, VMSA: f.vmsa}
	inputs := map[string]any{"tee": "snp", "vmm": "libkrun", "cpus": m.cpus, "memory_mib": m.memory,
		"kernel_load_addr": fmt.Sprintf("%#x", load), "vmsa": f.vmsa}
	if f.vmsa == measure.KrunVMSAKVMReset {
		if in.CPUSig, err = cpuSignature(cmd, f); err != nil {
			return err
		}
		inputs["cpu_sig"] = fmt.Sprintf("%#x", in.CPUSig)
	}
	if f.libkrunfw != "" {
		b, err := measure.ReadKrunfw(f.libkrunfw)
		if err != nil {
			return withStatus(1, err)
		}
		in.Qboot, in.KernelBundle, in.InitrdBundle = b.Qboot, b.Kernel, b.Initrd
		inputs["libkrunfw"] = f.libkrunfw
	} else {
		for _, r := range []struct {
			what, path string
			dst        *[]byte
		}{{"qboot", f.qboot, &in.Qboot}, {"kernel bundle", f.kernelBundle, &in.KernelBundle}, {"initrd bundle", m.initrd, &in.InitrdBundle}} {
			b, err := readBundle(r.what, r.path)
			if err != nil {
				return withStatus(1, err)
			}
			*r.dst = b
		}
		inputs["qboot"], inputs["kernel_bundle"], inputs["initrd"] = f.qboot, f.kernelBundle, m.initrd
	}
	v, err := measure.Krun(in)
	if err != nil {
		return withStatus(1, err)
	}
	return printMeasurement(cmd.OutOrStdout(), m.asJSON, "measurement", v[:], inputs)
}

// readBundle reads a bundle file of at most 512 MiB.
func readBundle(what, path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !fi.Mode().IsRegular() || fi.Size() > 512<<20 {
		return nil, fmt.Errorf("%s %s: want a regular file of at most 512 MiB", what, path)
	}
	return os.ReadFile(path)
}

// cpuSignature is the vCPU signature (CPUID 1 EAX) the VMSAs carry:
// --cpu-sig when given, else that of --cpu-type.
func cpuSignature(cmd *cobra.Command, f *measureTEEFlags) (uint32, error) {
	if cmd.Flags().Changed("cpu-sig") {
		s, err := measure.ParseUint(f.cpuSig, 32)
		if err != nil {
			return 0, usageError("--cpu-sig %q: want a number such as 0xa00f11", f.cpuSig)
		}
		return uint32(s), nil
	}
	sig, err := measure.CPUSig(f.cpuType)
	if err != nil {
		return 0, usageError("--cpu-type: %v", err)
	}
	return sig, nil
}
