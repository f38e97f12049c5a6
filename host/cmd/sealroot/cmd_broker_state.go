package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sealroot/sealroot/host/broker"
)

// `sealroot broker backup` and `sealroot broker restore`: the broker's
// state (database, key-encryption key, token key) kept together
// (host/broker/backup.go, docs/broker.md "Operations").
func init() {
	var brokerCmd *cobra.Command
	for _, c := range rootCmd.Commands() {
		if c.Name() == "broker" {
			brokerCmd = c
		}
	}
	if brokerCmd == nil {
		panic("sealroot: the broker command is not registered")
	}
	stateFlags := func(fs *pflag.FlagSet, o *broker.Options) {
		fs.StringVar(&o.State, "state", "", "the broker's state directory (required)")
		fs.StringVar(&o.Store, "store", "bbolt", "store: bbolt (in --state) or a postgres:// URL")
		fs.StringVar(&o.KEKFile, "kek-file", "", "key-encryption key file (default STATE/kek; $"+broker.EnvKEK+" overrides)")
		fs.StringVar(&o.TokenKeyFile, "token-key", "", "token signing key (default STATE/token-key.pem)")
		fs.StringVar(&o.StorePasswordFile, "store-password-file", "", "file holding the PostgreSQL password")
	}
	logger := func(cmd *cobra.Command) *slog.Logger {
		return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
	}

	var bo broker.Options
	var out string
	var withoutKEK bool
	backup := &cobra.Command{
		Use:   "backup --state DIR --out FILE",
		Short: "Write the broker's state (database, keys) to one archive",
		Long: `Write a backup of the broker's state: every workload and resource (sealed as stored), the
state record, the token signing key and the key-encryption key, checked against each other.
The archive is as secret as the key-encryption key (mode 0600); --without-kek leaves the key
out for operators who keep it elsewhere (restore then needs it at --kek-file).
A bbolt store is backed up with the broker stopped; a PostgreSQL store while it runs.`,
		Example: `  sealroot broker backup --state /var/lib/sealroot-broker --out /backup/broker-$(date +%F).tar`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if bo.State == "" || out == "" {
				return usageError("--state and --out are required")
			}
			bo.Logger = logger(cmd)
			man, err := broker.Backup(cmd.Context(), bo, out, withoutKEK)
			if err != nil {
				return withStatus(1, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "state %s: %d workloads, %d resources, key-encryption key included: %v -> %s\n",
				man.StateID, man.Workloads, man.Resources, man.HasKEK, out)
			return nil
		},
	}
	stateFlags(backup.Flags(), &bo)
	backup.Flags().StringVar(&out, "out", "", "archive to write (mode 0600)")
	backup.Flags().BoolVar(&withoutKEK, "without-kek", false, "leave the key-encryption key out of the archive")

	var ro broker.Options
	var from string
	var replace bool
	restore := &cobra.Command{
		Use:   "restore --state DIR --from FILE",
		Short: "Restore the broker's state from a backup archive",
		Long: `Restore a backup into a state directory (and store) that holds no state, or, with --replace,
move the state there aside (STATE/old-TIMESTAMP/) and wipe a PostgreSQL store first. The keys are
checked against the backup's state record before anything is written. Run it with the broker
stopped; start the broker afterwards as usual.`,
		Example: `  sealroot broker restore --state /var/lib/sealroot-broker --from /backup/broker-2026-12-01.tar --replace`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ro.State == "" || from == "" {
				return usageError("--state and --from are required")
			}
			f, err := os.Open(from)
			if err != nil {
				return withStatus(1, err)
			}
			defer f.Close()
			ro.Logger = logger(cmd)
			man, err := broker.Restore(cmd.Context(), ro, f, replace)
			if err != nil {
				return withStatus(1, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored state %s: %d workloads, %d resources into %s\n",
				man.StateID, man.Workloads, man.Resources, ro.State)
			return nil
		},
	}
	stateFlags(restore.Flags(), &ro)
	restore.Flags().StringVar(&from, "from", "", "backup archive to restore")
	restore.Flags().BoolVar(&replace, "replace", false, "move existing state aside (bbolt) or wipe it (PostgreSQL) first")
	brokerCmd.AddCommand(backup, restore)
}
