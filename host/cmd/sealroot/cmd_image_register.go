package main

import (
	"encoding/hex"
	"fmt"
	"log/slog"

	"github.com/sealroot/sealroot/host/broker"
	"github.com/sealroot/sealroot/host/image"
	"github.com/sealroot/sealroot/host/launch"
	"github.com/sealroot/sealroot/host/measure"
	"github.com/sealroot/sealroot/wire/diskconfig"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// imageRegisterFlags are the flags `image build --register` needs besides
// --admin-token-file: where the broker's admin API is, and the launch
// measurements the workload may show.
type imageRegisterFlags struct {
	broker       string
	measurements []string
	kernel       string
	initrd       string
	appendArgs   string
	// firmware, cpuType and guestFeatures: with --tee snp, the launch's
	// OVMF image, vCPU model and SEV features (cmd_image_register_snp.go).
	firmware, cpuType, guestFeatures string
	machine                          string
	// tdvfGeneration and tdxPageOrder: with --tee tdx, how the launch's
	// TDVF measures (cmd_image_register_tdx.go).
	tdvfGeneration, tdxPageOrder string
}

// registerFlags binds the --register flags of `image build` to r.
func (r *imageRegisterFlags) registerFlags(fl *pflag.FlagSet) {
	fl.StringVar(&r.broker, "broker", "", "with --register: the broker's admin URL on this host (e.g. http://127.0.0.1:8000)")
	fl.StringArrayVar(&r.measurements, "measurement", nil, "with --register: an acceptable launch measurement, hex (repeat)")
	fl.StringVar(&r.kernel, "kernel", "", "with --register and --tee sim: the kernel to compute the simulated launch measurement for")
	fl.StringVar(&r.initrd, "initrd", "", "with --register and --tee sim: the initrd to compute the measurement for (as sealroot measure)")
	fl.StringVar(&r.machine, "machine", launch.MachinePC, "with --register and --tee sim: the QEMU machine the VM will be launched on (pc or microvm)")
	fl.StringVar(&r.appendArgs, "append", "", "with --register and --tee sim: the extra kernel arguments the VM will be launched with")
}

// checkRegisterFlags rejects --register flag combinations before anything
// is built, and normalizes the given measurements as `sealroot register`
// does.
func checkRegisterFlags(r *imageRegisterFlags, tee string) error {
	if r.broker == "" {
		return usageError("--register needs --broker URL (the broker's admin API as this host reaches it)")
	}
	if (r.kernel != "" || r.initrd != "") && tee != "sim" && tee != "snp" && tee != "tdx" {
		return usageError("--kernel/--initrd compute the launch measurement: only with --tee sim, snp or tdx (give --measurement for other TEEs)")
	}
	if err := checkSNPRegisterFlags(r, tee); err != nil {
		return err
	}
	if err := checkTDXRegisterFlags(r, tee); err != nil { // cmd_image_register_tdx.go
		return err
	}
	if err := launch.CheckMachine(r.machine); err != nil {
		return usageError("--machine: %v", err)
	}
	if tee == "snp" && r.machine == launch.MachineMicrovm {
		return usageError("--machine %s: SNP launches use the %s machine", r.machine, launch.MachinePC)
	}
	if (r.kernel == "") != (r.initrd == "") {
		return usageError("--kernel and --initrd go together")
	}
	if len(r.measurements) == 0 && r.kernel == "" {
		return usageError("--register needs the launch measurement: --measurement HEX, or --kernel and --initrd with --tee sim (or --tee snp and --firmware)")
	}
	if len(r.measurements) > 0 {
		pf := policyFlagValues{measurements: r.measurements}
		if _, err := pf.policy(tee); err != nil {
			return err
		}
	}
	return nil
}

// registerBuiltImage registers the image's workload, policy and passphrase
// through the broker's admin API, so the generated passphrase never
// touches the disk. checkRegisterFlags has vetted the flags.
func registerBuiltImage(cmd *cobra.Command, log *slog.Logger, f *imageBuildFlags, res *image.Result, pass []byte) error {
	r := &f.reg
	pf := policyFlagValues{measurements: r.measurements}
	// A computed measurement is part of what the command produces (the
	// value registered, to compare with `sealroot measure`): a plain line
	// on stderr, since stdout holds the build result, not a log line.
	if res.Config.TEE == "tdx" {
		if err := tdxBuildPolicy(cmd.ErrOrStderr(), r, &pf); err != nil {
			return err
		}
	} else if r.kernel != "" && res.Config.TEE == "snp" {
		m, err := snpBuildMeasurement(r, res.Config.CPUs)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "expected SNP launch measurement: %s\n", hex.EncodeToString(m[:]))
		pf.measurements = append(pf.measurements, hex.EncodeToString(m[:]))
	} else if r.kernel != "" {
		m, err := measure.Sim(measure.SimInputs{Kernel: r.kernel, Initrd: r.initrd, Cmdline: launch.MachineCmdline(r.machine, r.appendArgs),
			CPUs: res.Config.CPUs, MemoryMiB: res.Config.RAMMiB, Machine: r.machine})
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "expected sim launch measurement: %s\n", hex.EncodeToString(m[:]))
		pf.measurements = append(pf.measurements, hex.EncodeToString(m[:]))
	}
	// HOST_DATA = SHA-256 of the footer config: the launcher binds it into
	// the reports, so this workload is told apart from any other that
	// shares its launch measurement.
	hd := diskconfig.HostData(res.ConfigJSON)
	pf.hostData = hex.EncodeToString(hd[:])
	if res.Config.TEE == "tdx" { // MRCONFIGID, as the launcher sets it
		m := launch.MRConfigID(hd)
		pf.hostData = hex.EncodeToString(m[:])
	}
	pol, err := pf.policy(res.Config.TEE)
	if err != nil {
		return err
	}
	af := adminFlags{broker: r.broker, tokenFile: f.adminTokenFile}
	c, err := af.client()
	if err != nil {
		return err
	}
	p := string(pass)
	w, err := c.Register(cmd.Context(), broker.AdminRegistration{
		WorkloadID: res.Config.WorkloadID,
		TEE:        res.Config.TEE,
		Policy:     pol,
		Passphrase: &p,
	})
	if err != nil {
		return adminFailure(err)
	}
	log.Info("workload registered", "workload", w.WorkloadID, "tee", w.TEE, "broker", r.broker)
	return nil
}
