package main

import (
	"encoding/hex"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/host/image"
)

// `sealroot image bind`: add the root-volume binding to the footer config of
// an image made by another tool (image.Bind).
func init() {
	var passFile, configOut string
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
With --passphrase-file, the passphrase must first open the volume to the key being bound.`,
		Example: `  sealroot image bind disk.img --config-out krun-sev.json
  sealroot image bind disk.img --passphrase-file pass.txt`,
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
			return nil
		},
	}
	bind.Flags().StringVar(&passFile, "passphrase-file", "", `check this passphrase opens the volume first ("-" for standard input)`)
	bind.Flags().StringVar(&configOut, "config-out", "", "also write the new config JSON here (krun-sev.json)")
	imageCmd.AddCommand(bind)
}
