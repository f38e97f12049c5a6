package main

import "github.com/sealroot/sealroot/host/broker"

// measurementOnlyNote is how `workloads show` describes a workload without
// host_data.
const measurementOnlyNote = "MEASUREMENT ONLY (no host_data): any guest booted with the same kernel, initrd, " +
	"command line and size can attest as this workload"

// identityOf is the IDENTITY column of `workloads list`.
func identityOf(w broker.AdminWorkload) string {
	if w.MeasurementOnly || w.Policy.HostData == "" {
		return "MEASUREMENT-ONLY"
	}
	return "host-data"
}

// requireHostData refuses a registration without --host-data unless
// --measurement-only acknowledges what that means: the launch measurement
// covers the kernel, initrd, command line and guest size, which every
// workload booted from the same files shares. Only HOST_DATA (SNP),
// MRCONFIGID (TDX) or the realm personalization value (CCA), the digest of
// the disk config, tells such workloads apart.
func (p *policyFlagValues) requireHostData() error {
	if p.hostData != "" || p.measurementOnly {
		return nil
	}
	return usageError("--host-data is missing: without it the workload is identified by its launch measurement alone, " +
		"which every image booted with the same kernel and initrd shares, so any of them can get this passphrase. " +
		"Give --host-data (sha256sum of the image's krun-sev.json), or --measurement-only to register anyway")
}
