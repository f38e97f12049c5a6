package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sealroot/sealroot/host/launch"
	"github.com/sealroot/sealroot/host/measure"
)

// Defaults of `sealroot measure` when neither --cpus/--memory nor --disk
// say otherwise.
const (
	defaultMeasureCPUs      = 1
	defaultMeasureMemoryMiB = 512
)

// newMeasureCmd builds `sealroot measure`; its SNP and TDX half is in
// cmd_measure_tee.go.
func newMeasureCmd() *cobra.Command {
	var teeFlags measureTEEFlags
	var tee, kernel, initrd, appendArgs, disk, machine string
	var cpus, memory int
	var asJSON bool
	c := &cobra.Command{
		Use:   "measure --tee sim|snp|tdx ...",
		Short: "Print the expected launch measurement of a VM",
		Long: `Print, as lowercase hex, the launch measurement the simulated secure processor will put into
the reports of a VM launched by 'sealroot launch --tee sim' with the same kernel, initrd, --append,
vCPUs and memory. Register it with the broker (sealroot register --measurement) or check reports
with 'sealroot verify --measurement'.

Every input counts: the kernel and initrd bytes, the full kernel command line (the launcher's fixed
arguments followed by --append), the vCPU count and the memory size. sealroot launch takes vCPUs
and memory from the disk's config unless told otherwise, so give the same --disk here (or the same
--cpus and --memory as the launch); without either, 1 vCPU and 512 MiB are measured.

--tee snp computes the SEV-SNP launch digest of a guest that boots --firmware (OVMF) under QEMU
(--vmm qemu, the default; ec2 and gce boot the same OVMF with their own vCPU state), with --cpus
vCPUs of --cpu-type (or --cpu-sig) and --guest-features; with --kernel, the kernel, initrd and command
line are measured through the firmware's kernel hashes page. --cmdline gives the exact command line;
otherwise it is the launcher's, as for --tee sim. --vmm libkrun measures a libkrun guest instead, from
--libkrunfw or from --qboot, --kernel-bundle and --initrd. --tee tdx computes MRTD from a TDVF
--firmware and, with --kernel and --initrd, RTMR1 and RTMR2 of the direct boot (for the
--tdvf-generation), printed as "rtmr1 HEX" and "rtmr2 HEX" before MRTD. The value (MRTD for tdx) is
the last line printed; --json prints it with its inputs. docs/measurement.md says what each value
covers.`,
		Example: `  sealroot measure --tee sim --kernel vmlinuz --initrd initrd.cpio.gz --disk out/disk.img
  sealroot measure --tee sim --kernel vmlinuz --initrd initrd.cpio.gz --cpus 2 --memory 1024 --append "loglevel=4"
  sealroot measure --tee snp --firmware OVMF.amdsev.fd --kernel vmlinuz --initrd initrd.cpio.gz --disk out/disk.img
  sealroot measure --tee snp --vmm libkrun --libkrunfw /usr/lib64/libkrunfw-sev.so.4 --cpus 2 --memory 2048
  sealroot measure --tee tdx --firmware OVMF.tdx.fd --json
  sealroot measure --tee tdx --firmware OVMF.tdx.fd --kernel vmlinuz --initrd initrd.cpio.gz --append "loglevel=4"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := launch.CheckMachine(machine); err != nil {
				return usageError("--machine: %v", err)
			}
			if tee != "sim" && machine != launch.MachinePC {
				return usageError("--machine %s: only with --tee sim; SNP and TDX launches use the pc (q35) machine", machine)
			}
			in := measure.SimInputs{Kernel: kernel, Initrd: initrd, Cmdline: launch.MachineCmdline(machine, appendArgs),
				CPUs: defaultMeasureCPUs, MemoryMiB: defaultMeasureMemoryMiB, Machine: machine}
			if disk != "" {
				cfg, _, err := diskConfig(disk)
				if err != nil {
					return withStatus(1, err)
				}
				in.CPUs, in.MemoryMiB = cfg.CPUs, cfg.RAMMiB
			}
			if cmd.Flags().Changed("cpus") {
				in.CPUs = cpus
			}
			if cmd.Flags().Changed("memory") {
				in.MemoryMiB = memory
			}
			if tee != "sim" {
				return runMeasureTEE(cmd, &teeFlags, measureCommon{tee: tee, kernel: kernel, initrd: initrd, appendArgs: appendArgs,
					disk: disk, cpus: in.CPUs, memory: in.MemoryMiB, asJSON: asJSON})
			}
			if kernel == "" || initrd == "" {
				return usageError("--kernel and --initrd are required")
			}
			m, err := measure.Sim(in)
			if err != nil {
				return withStatus(1, err)
			}
			out := cmd.OutOrStdout()
			if !asJSON {
				fmt.Fprintln(out, hex.EncodeToString(m[:]))
				return nil
			}
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(map[string]any{
				"tee": "sim", "measurement": hex.EncodeToString(m[:]), "kernel": kernel, "initrd": initrd,
				"cmdline": in.Cmdline, "cpus": in.CPUs, "memory_mib": in.MemoryMiB, "machine": machine,
			})
		},
	}
	fl := c.Flags()
	fl.StringVar(&tee, "tee", "sim", "TEE whose measurement to compute: sim, snp or tdx")
	fl.StringVar(&kernel, "kernel", "", "guest kernel, as given to sealroot launch")
	fl.StringVar(&initrd, "initrd", "", "initrd, as given to sealroot launch")
	fl.StringVar(&appendArgs, "append", "", "extra kernel command line arguments, as given to sealroot launch --append")
	fl.IntVar(&cpus, "cpus", 0, "vCPUs the VM is launched with (default: --disk's config, else 1)")
	fl.IntVar(&memory, "memory", 0, "memory in MiB the VM is launched with (default: --disk's config, else 512)")
	fl.StringVar(&disk, "disk", "", "take vCPUs and memory from this disk image's config, as sealroot launch does")
	fl.StringVar(&machine, "machine", launch.MachinePC, "QEMU machine the VM is launched on, as given to sealroot launch --machine: pc or microvm")
	fl.BoolVar(&asJSON, "json", false, "print the measurement and its inputs as JSON")
	teeFlags.register(fl)
	return c
}
