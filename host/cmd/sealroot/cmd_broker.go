package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sealroot/sealroot/host/broker"
)

// newBrokerCmd builds `sealroot broker`, the key broker service
// (host/broker), with its backup and restore subcommands.
func newBrokerCmd(log *slog.Logger) *cobra.Command {
	var o broker.Options
	c := &cobra.Command{
		Use:   "broker --listen ADDR --state DIR",
		Short: "Serve LUKS passphrases and secrets to attested confidential workloads",
		Long: `Run the key broker. One port speaks both broker dialects: the krun dialect of reference-kbs
(what buildah registers with and libkrun's historical init speaks) and Confidential Containers'
Trustee KBS protocol 0.4.0. A secret goes only to a session whose hardware-signed evidence
satisfies the policy of the workload owning it: a registered measurement, no debug, VMPL 0,
a minimum TCB and HOST_DATA when registered, and report_data bound to the session's single-use
nonce and the guest's fresh key.

State (database, key-encryption key, token signing key, certificate cache) lives in --state.
With --store postgres://..., several replicas share one database; give them the same
key-encryption key (--kek-file or $SEALROOT_BROKER_KEK) and token key (--token-key).

Logs and audit records are JSON lines on stderr (audit records carry "audit":true). Metrics
are at /metrics, liveness at /healthz, readiness at /readyz. SIGTERM stops gracefully.

--admin-listen moves the admin API and /metrics to an address of their own, which guests never
reach (the launcher relays only --listen). Unauthenticated callers are rate limited by default
(--rate-limit); on bbolt sessions are held in memory, never written, and a restart forgets
them (guests run the handshake again) (--pending-sessions).
--min-tcb sets a TCB floor under every snp workload's own minimum.`,
		Example: `  sealroot broker --listen 127.0.0.1:8000 --state /var/lib/sealroot-broker \
      --admin-token-file /etc/sealroot/admin-token --registration token
  sealroot broker --listen 0.0.0.0:8443 --state /var/lib/sealroot-broker \
      --tls-cert /etc/sealroot/tls.crt --tls-key /etc/sealroot/tls.key \
      --store postgres://broker@db.internal/sealroot --admin-token-file /etc/sealroot/admin-token
  sealroot broker --config /etc/sealroot/broker.yaml
  # tests and demos only: accept the simulated secure processor
  sealroot broker --listen 127.0.0.1:8000 --state ./broker-state --trust-sim-root ~/.sealroot/sim`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Config != "" {
				if err := broker.ApplyConfigFile(cmd.Flags(), o.Config); err != nil {
					return usageError("%v", err)
				}
			}
			if o.State == "" {
				return usageError("--state is required: the directory for the broker's database and keys")
			}
			switch o.Registration {
			case broker.RegistrationOpen, broker.RegistrationToken, broker.RegistrationClosed:
			default:
				return usageError("--registration %q: want open, token or closed", o.Registration)
			}
			if o.Registration == broker.RegistrationToken && o.AdminTokenFile == "" && o.RegistrationTokenFile == "" {
				return usageError("--registration token needs --registration-token-file or --admin-token-file")
			}
			if err := checkBrokerHardeningFlags(&o); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			o.Logger = broker.JSONLogger(cmd.ErrOrStderr())
			if err := broker.Run(ctx, o, nil); err != nil {
				return withStatus(1, err)
			}
			return nil
		},
	}
	o.RegisterFlags(c.Flags())
	c.AddCommand(newBrokerBackupCmd(log), newBrokerRestoreCmd(log))
	return c
}

// brokerStateFlags binds the flags that say where a broker's state is.
func brokerStateFlags(fs *pflag.FlagSet, o *broker.Options) {
	fs.StringVar(&o.State, "state", "", "the broker's state directory (required)")
	fs.StringVar(&o.Store, "store", "bbolt", "store: bbolt (in --state) or a postgres:// URL")
	fs.StringVar(&o.KEKFile, "kek-file", "", "key-encryption key file (default STATE/kek; $"+broker.EnvKEK+" overrides)")
	fs.StringVar(&o.TokenKeyFile, "token-key", "", "token signing key (default STATE/token-key.pem)")
	fs.StringVar(&o.StorePasswordFile, "store-password-file", "", "file holding the PostgreSQL password")
}

// newBrokerBackupCmd builds `sealroot broker backup`: the broker's state
// (database, key-encryption key, token key) in one archive
// (host/broker/backup.go, docs/broker.md "Operations").
func newBrokerBackupCmd(log *slog.Logger) *cobra.Command {
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
			bo.Logger = log
			man, err := broker.Backup(cmd.Context(), bo, out, withoutKEK)
			if err != nil {
				return withStatus(1, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "state %s: %d workloads, %d resources, key-encryption key included: %v -> %s\n",
				man.StateID, man.Workloads, man.Resources, man.HasKEK, out)
			return nil
		},
	}
	brokerStateFlags(backup.Flags(), &bo)
	backup.Flags().StringVar(&out, "out", "", "archive to write (mode 0600)")
	backup.Flags().BoolVar(&withoutKEK, "without-kek", false, "leave the key-encryption key out of the archive")
	return backup
}

// newBrokerRestoreCmd builds `sealroot broker restore`, the inverse of
// backup.
func newBrokerRestoreCmd(log *slog.Logger) *cobra.Command {
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
			ro.Logger = log
			man, err := broker.Restore(cmd.Context(), ro, f, replace)
			if err != nil {
				return withStatus(1, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored state %s: %d workloads, %d resources into %s\n",
				man.StateID, man.Workloads, man.Resources, ro.State)
			return nil
		},
	}
	brokerStateFlags(restore.Flags(), &ro)
	restore.Flags().StringVar(&from, "from", "", "backup archive to restore")
	restore.Flags().BoolVar(&replace, "replace", false, "move existing state aside (bbolt) or wipe it (PostgreSQL) first")
	return restore
}
