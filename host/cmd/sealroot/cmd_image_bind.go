package main

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/sealroot/sealroot/attest/configbind"
	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/host/image"
	"github.com/sealroot/sealroot/wire/diskconfig"
)

// imageBindFlags are the flags of `sealroot image bind`.
type imageBindFlags struct {
	passFile, configOut string
	register            bool
	// admin is where --register finds the broker (--broker,
	// --admin-token-file, --ca-cert).
	admin adminFlags
}

// runImageBind binds the volume of the image at path into its footer
// config, prints the new host_data and, with --register, sets it at the
// broker.
func runImageBind(cmd *cobra.Command, log *slog.Logger, path string, f *imageBindFlags) error {
	var o image.BindOptions
	if f.passFile != "" {
		pass, err := readPassphrase(f.passFile, cmd.InOrStdin())
		if err != nil {
			return withStatus(1, err)
		}
		defer cryptsetup.Wipe(pass)
		o.Passphrase = pass
	}
	res, err := image.Bind(path, o)
	if err != nil {
		return withStatus(1, err)
	}
	if f.configOut != "" {
		if err := os.WriteFile(f.configOut, res.Config, 0o644); err != nil {
			return withStatus(1, err)
		}
	}
	log.Info("root volume bound into the footer config", "image", path, "luks", res.Volume.LUKS,
		"volume", res.Volume.UUID, "already_bound", res.AlreadyBound)
	fmt.Fprintf(cmd.OutOrStdout(), "host_data: %s\n", hex.EncodeToString(res.HostData[:]))
	if f.register {
		return registerBinding(cmd, log, &f.admin, res)
	}
	return nil
}

// registerBinding replaces the host_data of the image's workload at the
// broker, keeping the rest of its policy.
func registerBinding(cmd *cobra.Command, log *slog.Logger, af *adminFlags, res *image.BindResult) error {
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
	log.Info("registration updated", "workload", c.WorkloadID, "tee", cur.TEE, "field", configbind.FieldName(cur.TEE),
		"host_data", pol.HostData, "broker", af.broker)
	return nil
}
