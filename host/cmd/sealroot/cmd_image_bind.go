package main

import (
	"encoding/hex"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/sealroot/sealroot/attest/configbind"
	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/host/image"
	"github.com/sealroot/sealroot/wire/diskconfig"
)

// `sealroot image bind`: add the root-volume binding to the footer config of
// an image made by another tool (image.Bind).
func init() {
	var passFile, configOut string
	var register bool
	var af adminFlags
	bind := &cobra.Command{
		Use:   "bind IMAGE",
		Short: "Bind a LUKS disk image's volume into its footer config (for buildah images)",
		Long: `Add root_volume to the KRUN footer config of a LUKS disk image, as ` + "`image build`" + ` does for its
own images: the guest init then refuses any other volume under this config, so a host that puts
its own disk behind the config gets no workload started (docs/threat-model.md). Only the config
and the footer are rewritten; the LUKS header and the ciphertext are not touched.

The config changes, so its SHA-256 (the HOST_DATA a launcher binds) changes too: the command
prints the new host_data; register it with ` + "`sealroot workloads set-policy ID --host-data HEX ...`" + `
(or ` + "`sealroot register`" + `) and use the new krun-sev.json (--config-out) wherever the old one was.
With --passphrase-file, the passphrase must first open the volume to the key being bound.
With --register, the workload's registration at the broker gets the new host_data in the form its
TEE carries it (SNP HOST_DATA, TDX MRCONFIGID, CCA RPV); the rest of its policy is kept.`,
		Example: `  sealroot image bind disk.img --config-out krun-sev.json
  sealroot image bind disk.img --passphrase-file pass.txt
  sealroot image bind disk.img --register --broker http://127.0.0.1:8000 --admin-token-file admin-token`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var o image.BindOptions
			if passFile != "" {
				pass, err := readPassphrase(passFile, cmd.InOrStdin())
				if err != nil {
					return withStatus(1, err)
				}
				defer cryptsetup.Wipe(pass)
				o.Passphrase = pass
			}
			res, err := image.Bind(args[0], o)
			if err != nil {
				return withStatus(1, err)
			}
			if configOut != "" {
				if err := os.WriteFile(configOut, res.Config, 0o644); err != nil {
					return withStatus(1, err)
				}
			}
			state := "bound"
			if res.AlreadyBound {
				state = "already bound"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: LUKS%d volume %s %s into the footer config\n", args[0], res.Volume.LUKS, res.Volume.UUID, state)
			fmt.Fprintf(cmd.OutOrStdout(), "host_data: %s\n", hex.EncodeToString(res.HostData[:]))
			if register {
				return registerBinding(cmd, &af, res)
			}
			return nil
		},
	}
	bind.Flags().StringVar(&passFile, "passphrase-file", "", `check this passphrase opens the volume first ("-" for standard input)`)
	bind.Flags().StringVar(&configOut, "config-out", "", "also write the new config JSON here (krun-sev.json)")
	bind.Flags().BoolVar(&register, "register", false, "set the new host_data in the workload's registration at --broker")
	bind.Flags().StringVar(&af.broker, "broker", "", "with --register: the broker's admin URL")
	bind.Flags().StringVar(&af.tokenFile, "admin-token-file", "", "with --register: file holding the broker's admin token")
	bind.Flags().StringVar(&af.caCert, "ca-cert", "", "with --register: PEM CA bundle for an https broker")
	imageCmd.AddCommand(bind)
}

// registerBinding replaces the host_data of the image's workload at the
// broker, keeping the rest of its policy.
func registerBinding(cmd *cobra.Command, af *adminFlags, res *image.BindResult) error {
	c, err := diskconfig.Parse(res.Config)
	if err != nil {
		return withStatus(1, err)
	}
	cl, err := af.client()
	if err != nil {
		return err
	}
	cur, err := cl.Show(cmd.Context(), c.WorkloadID)
	if err != nil {
		return adminFailure(err)
	}
	field, err := configbind.Expected(cur.TEE, res.HostData)
	if err != nil {
		return withStatus(1, fmt.Errorf("workload %s: %w", c.WorkloadID, err))
	}
	pol := cur.Policy
	pol.HostData = hex.EncodeToString(field)
	if _, err := cl.SetPolicy(cmd.Context(), c.WorkloadID, pol); err != nil {
		return adminFailure(err)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "workload %s (tee %s) now requires %s %s at %s\n", c.WorkloadID, cur.TEE, configbind.FieldName(cur.TEE), pol.HostData, af.broker)
	return nil
}
