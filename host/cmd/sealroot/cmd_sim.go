package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sealroot/sealroot/host/verify/policy"
	"github.com/sealroot/sealroot/host/verify/sim"
)

// newSimCmd builds `sealroot sim`, the simulated secure processor commands.
func newSimCmd() *cobra.Command {
	simCmd := &cobra.Command{
		Use:   "sim",
		Short: "Manage the simulated secure processor (a stand-in for AMD SEV-SNP)",
		Long: `The simulated secure processor lets the whole flow run on machines without SEV-SNP: the
launcher (sealroot launch --tee sim) signs real SNP-format reports with a VCEK whose ARK/ASK chain
'sealroot sim init' generated. Brokers trust that root only when told to (--trust-sim-root).
It proves nothing about hardware: use it for development, tests and CI.`,
	}
	simCmd.AddCommand(newSimInitCmd(), newSimShowCmd(), newSimReportCmd())
	return simCmd
}

// newSimInitCmd builds `sealroot sim init`.
func newSimInitCmd() *cobra.Command {
	var dir, product string
	var force, asJSON bool
	initCmd := &cobra.Command{
		Use:   "init --dir DIR",
		Short: "Create a simulated secure processor: ARK, ASK, VCEK and the VCEK key",
		Long: `Create a fresh simulated secure processor in DIR: an RSA-4096 ARK and ASK and an ECDSA P-384
VCEK, shaped like AMD's, with a random chip id. DIR gets ark.pem, ask.pem, vcek.pem, vcek-key.pem
(mode 0600) and sim.json. The ARK and ASK private keys are discarded, so no other VCEK can ever
be issued under this root. An existing simulated secure processor is never replaced without
--force.`,
		Example: `  sealroot sim init --dir ~/.sealroot/sim
  sealroot sim init --dir /tmp/sim-genoa --product genoa --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" {
				return usageError("--dir is required")
			}
			line, err := productLine(product)
			if err != nil {
				return err
			}
			if err := sim.InitWith(dir, sim.InitOptions{Force: force, ProductLine: line}); err != nil {
				return withStatus(1, err)
			}
			a, err := sim.Load(dir)
			if err != nil {
				return withStatus(1, err)
			}
			return printSimInfo(cmd.OutOrStdout(), dir, a.Info(), asJSON)
		},
	}
	initCmd.Flags().StringVar(&dir, "dir", "", "directory to create the simulated secure processor in")
	initCmd.Flags().StringVar(&product, "product", "milan", "product line to simulate: milan, genoa or turin")
	initCmd.Flags().BoolVar(&force, "force", false, "replace the keys of an existing simulated secure processor")
	initCmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return initCmd
}

// newSimShowCmd builds `sealroot sim show`.
func newSimShowCmd() *cobra.Command {
	var showDir string
	var showJSON bool
	showCmd := &cobra.Command{
		Use:     "show --dir DIR",
		Short:   "Check a simulated secure processor and print its product, chip id and TCB",
		Example: `  sealroot sim show --dir ~/.sealroot/sim --json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if showDir == "" {
				return usageError("--dir is required")
			}
			a, err := sim.Load(showDir)
			if err != nil {
				return withStatus(1, err)
			}
			return printSimInfo(cmd.OutOrStdout(), showDir, a.Info(), showJSON)
		},
	}
	showCmd.Flags().StringVar(&showDir, "dir", "", "simulated secure processor directory")
	showCmd.Flags().BoolVar(&showJSON, "json", false, "print the result as JSON")
	return showCmd
}

// newSimReportCmd builds `sealroot sim report`.
func newSimReportCmd() *cobra.Command {
	var rf struct {
		dir, out, measurement, reportData, hostData string
		policy                                      uint64
		vmpl                                        uint32
		version                                     uint32
	}
	reportCmd := &cobra.Command{
		Use:   "report --dir DIR -o FILE",
		Short: "Sign a simulated SNP report, as the launcher would, and write it as an extended report",
		Long: `Sign a report with the simulated secure processor in DIR and write it to FILE as an extended
report: the 1184-byte report followed by its certificate table (ARK, ASK, VCEK). Useful to try
'sealroot verify --tee sim' or a broker's policy without booting a VM.`,
		Example: `  sealroot sim report --dir ~/.sealroot/sim -o report.bin --measurement "$(sealroot measure --tee sim --kernel vmlinuz --initrd initrd.cpio.gz)"
  sealroot verify --tee sim --sim-dir ~/.sealroot/sim --evidence report.bin`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if rf.dir == "" || rf.out == "" {
				return usageError("--dir and -o are required")
			}
			var p sim.ReportParams
			for _, h := range []struct {
				flag, val string
				dst       []byte
			}{{"--measurement", rf.measurement, p.Measurement[:]}, {"--report-data", rf.reportData, p.ReportData[:]}, {"--host-data", rf.hostData, p.HostData[:]}} {
				if h.val == "" {
					continue
				}
				b, err := decodeHexFlag(h.flag, h.val)
				if err != nil {
					return err
				}
				if len(b) > len(h.dst) {
					return usageError("%s: %d bytes, at most %d", h.flag, len(b), len(h.dst))
				}
				copy(h.dst, b)
			}
			p.Policy, p.VMPL, p.Version = rf.policy, rf.vmpl, rf.version
			a, err := sim.Load(rf.dir)
			if err != nil {
				return withStatus(1, err)
			}
			report, table, err := a.Sign(p)
			if err != nil {
				return withStatus(1, err)
			}
			if err := os.WriteFile(rf.out, append(report, table...), 0o644); err != nil {
				return withStatus(1, err)
			}
			return nil
		},
	}
	rfl := reportCmd.Flags()
	rfl.StringVar(&rf.dir, "dir", "", "simulated secure processor directory")
	rfl.StringVarP(&rf.out, "output", "o", "", "file to write the extended report to")
	rfl.StringVar(&rf.measurement, "measurement", "", "launch measurement as hex (48 bytes; shorter is zero-padded)")
	rfl.StringVar(&rf.reportData, "report-data", "", "report_data as hex (64 bytes; shorter is zero-padded)")
	rfl.StringVar(&rf.hostData, "host-data", "", "host_data as hex (32 bytes; shorter is zero-padded)")
	rfl.Uint64Var(&rf.policy, "policy", 0, "SNP guest policy (default 0x30000: SMT allowed, debug off)")
	rfl.Uint32Var(&rf.vmpl, "vmpl", 0, "VMPL the report is requested at (0-3)")
	rfl.Uint32Var(&rf.version, "report-version", 0, "report format version 2-5 (default 3)")
	return reportCmd
}

// productLine maps --product to a product line name.
func productLine(s string) (string, error) {
	switch strings.ToLower(s) {
	case "milan":
		return "Milan", nil
	case "genoa":
		return "Genoa", nil
	case "turin":
		return "Turin", nil
	}
	return "", usageError("--product %q: want milan, genoa or turin", s)
}

func printSimInfo(w io.Writer, dir string, info sim.Info, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Dir string `json:"dir"`
			sim.Info
		}{dir, info})
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "dir\t%s\n", dir)
	fmt.Fprintf(tw, "product_line\t%s\n", info.ProductLine)
	fmt.Fprintf(tw, "chip_id\t%s\n", info.ChipID)
	fmt.Fprintf(tw, "tcb\t%s\n", policy.FormatTCB(info.TCB))
	fmt.Fprintf(tw, "firmware\t%d.%d.%d\n", info.Firmware.Major, info.Firmware.Minor, info.Firmware.Build)
	fmt.Fprintf(tw, "created\t%s\n", info.Created.Format("2006-01-02T15:04:05Z07:00"))
	return tw.Flush()
}
