package main

import (
	"encoding/hex"
	"fmt"

	"github.com/sealroot/sealroot/host/broker"
	"github.com/sealroot/sealroot/host/image"
	"github.com/sealroot/sealroot/host/launch"
	"github.com/sealroot/sealroot/host/measure"
	"github.com/sealroot/sealroot/wire/diskconfig"
	"github.com/spf13/cobra"
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
}

var imageRegister imageRegisterFlags

func init() {
	c, _, _ := rootCmd.Find([]string{"image", "build"})
	fl := c.Flags()
	fl.StringVar(&imageRegister.broker, "broker", "", "with --register: the broker's admin URL on this host (e.g. http://127.0.0.1:8000)")
	fl.StringArrayVar(&imageRegister.measurements, "measurement", nil, "with --register: an acceptable launch measurement, hex (repeat)")
	fl.StringVar(&imageRegister.kernel, "kernel", "", "with --register and --tee sim: the kernel to compute the simulated launch measurement for")
	fl.StringVar(&imageRegister.initrd, "initrd", "", "with --register and --tee sim: the initrd to compute the measurement for (as sealroot measure)")
	fl.StringVar(&imageRegister.machine, "machine", launch.MachinePC, "with --register and --tee sim: the QEMU machine the VM will be launched on (pc or microvm)")
	fl.StringVar(&imageRegister.appendArgs, "append", "", "with --register and --tee sim: the extra kernel arguments the VM will be launched with")
}

// checkRegisterFlags rejects --register flag combinations before anything
// is built, and normalizes the given measurements as `sealroot register`
// does.
func checkRegisterFlags(tee string) error {
	r := imageRegister
	if r.broker == "" {
		return usageError("--register needs --broker URL (the broker's admin API as this host reaches it)")
	}
	if tee == "tdx" {
		return usageError("--register cannot register a tdx workload: TDX policies need RTMR1 and RTMR2 (kernel, initrd, command line), which this command does not compute; use `sealroot register --tee tdx --measurement MRTD --rtmr 1=HEX --rtmr 2=HEX --host-data HEX`")
	}
	if (r.kernel != "" || r.initrd != "") && tee != "sim" && tee != "snp" {
		return usageError("--kernel/--initrd compute the launch measurement: only with --tee sim or snp (give --measurement for other TEEs)")
	}
	if err := checkSNPRegisterFlags(tee); err != nil {
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
func registerBuiltImage(cmd *cobra.Command, f *imageBuildFlags, res *image.Result, pass []byte) error {
	r := imageRegister
	pf := policyFlagValues{measurements: r.measurements}
	if r.kernel != "" && res.Config.TEE == "snp" {
		m, err := snpBuildMeasurement(res.Config.CPUs)
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
	fmt.Fprintf(cmd.ErrOrStderr(), "registered workload %s (tee %s) with %s\n", w.WorkloadID, w.TEE, r.broker)
	return nil
}
