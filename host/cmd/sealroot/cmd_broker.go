package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sealroot/sealroot/host/broker"
)

// `sealroot broker`: the key broker service (host/broker).
func init() {
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
(--rate-limit); sessions awaiting /attest are held in memory, never written (--pending-sessions).
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
	rootCmd.AddCommand(c)
}
