package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/host/broker"
	"github.com/sealroot/sealroot/host/verify/policy"
)

// `sealroot register` and `sealroot workloads`: the broker's admin API.

// adminFlags are the connection flags of every admin command.
type adminFlags struct {
	broker     string
	tokenFile  string
	caCert     string
	clientCert string
	clientKey  string
	asJSON     bool
}

func (f *adminFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.broker, "broker", "", "broker base URL (http://HOST:PORT or https://HOST:PORT)")
	fs.StringVar(&f.tokenFile, "admin-token-file", "", "file holding the broker's admin token")
	fs.StringVar(&f.caCert, "ca-cert", "", "PEM CA bundle to verify an https broker (default: system roots)")
	fs.StringVar(&f.clientCert, "client-cert", "", "TLS client certificate for mTLS admin access (with --client-key)")
	fs.StringVar(&f.clientKey, "client-key", "", "TLS client key")
	fs.BoolVar(&f.asJSON, "json", false, "print the result as JSON")
}

// client builds the admin client from the flags.
func (f *adminFlags) client() (*broker.AdminClient, error) {
	if f.broker == "" {
		return nil, usageError("--broker is required (the broker's base URL)")
	}
	if f.tokenFile == "" && f.clientCert == "" {
		return nil, usageError("--admin-token-file is required (or --client-cert for mTLS)")
	}
	var token string
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, withStatus(1, fmt.Errorf("reading --admin-token-file: %w", err))
		}
		token = strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
		if token == "" {
			return nil, withStatus(1, fmt.Errorf("--admin-token-file %s is empty", f.tokenFile))
		}
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.caCert != "" {
		pem, err := os.ReadFile(f.caCert)
		if err != nil {
			return nil, withStatus(1, fmt.Errorf("reading --ca-cert: %w", err))
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, withStatus(1, fmt.Errorf("--ca-cert %s: no PEM certificates", f.caCert))
		}
	}
	if (f.clientCert == "") != (f.clientKey == "") {
		return nil, usageError("--client-cert and --client-key go together")
	}
	if f.clientCert != "" {
		cert, err := tls.LoadX509KeyPair(f.clientCert, f.clientKey)
		if err != nil {
			return nil, withStatus(1, fmt.Errorf("loading client certificate: %w", err))
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment}}
	c, err := broker.NewAdminClient(f.broker, token, hc)
	if err != nil {
		return nil, usageError("%v", err)
	}
	return c, nil
}

// adminFailure turns an admin API error into the exit status 1 error.
func adminFailure(err error) error {
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return withStatus(1, err)
}

// policyFlagValues are the policy flags of register and workloads set-policy.
type policyFlagValues struct {
	measurements []string
	hostData     string
	minTCB       string
	allowDebug   bool
	maxVMPL      int
	rtmrs        []string
	allowMA      bool
	// measurementOnly acknowledges a policy without --host-data (register
	// only; see requireHostData).
	measurementOnly bool
}

func (p *policyFlagValues) register(fs *pflag.FlagSet) {
	fs.StringArrayVar(&p.measurements, "measurement", nil, "accepted launch measurement as hex (repeatable; any one matches)")
	fs.StringVar(&p.hostData, "host-data", "", "required SNP HOST_DATA / TDX MRCONFIGID as hex")
	fs.StringVar(&p.minTCB, "min-tcb", "", "lowest accepted TCB: bl=N,tee=N,snp=N,ucode=N[,fmc=N] or a raw 64-bit hex TCB_VERSION")
	fs.BoolVar(&p.allowDebug, "allow-debug", false, "accept guests whose policy allows debugging (never for production secrets)")
	fs.IntVar(&p.maxVMPL, "max-vmpl", 0, "highest accepted SNP VMPL (0 to 3)")
	fs.StringArrayVar(&p.rtmrs, "rtmr", nil, "required TDX runtime measurement register as N=HEX (repeatable; tdx needs 1 and 2, may pin 0 and 3)")
	fs.BoolVar(&p.allowMA, "allow-migration-agent", false, "accept SNP guests whose policy allows a migration agent (bit 18) and migratable TDX TDs (TD_ATTRIBUTES bit 29)")
}

// parseRTMRs reads --rtmr N=HEX values into the policy's map.
func parseRTMRs(specs []string) (map[int]string, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	out := map[int]string{}
	for _, spec := range specs {
		idx, val, ok := strings.Cut(spec, "=")
		n, err := strconv.Atoi(strings.TrimSpace(idx))
		if !ok || err != nil || n < 0 || n >= policy.NumRTMRs {
			return nil, usageError("--rtmr %q: want N=HEX with N from 0 to %d", spec, policy.NumRTMRs-1)
		}
		if _, dup := out[n]; dup {
			return nil, usageError("--rtmr %d given twice", n)
		}
		val = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(val), "0x"))
		if b, err := hex.DecodeString(val); err != nil || len(b) != 48 {
			return nil, usageError("--rtmr %d: want 96 hex characters (48 bytes)", n)
		}
		out[n] = val
	}
	return out, nil
}

func (p *policyFlagValues) policy(tee string) (broker.WorkloadPolicy, error) {
	doc := broker.WorkloadPolicy{HostData: strings.ToLower(p.hostData), AllowDebug: p.allowDebug, MaxVMPL: p.maxVMPL,
		AllowMigrationAgent: p.allowMA}
	if len(p.measurements) == 0 {
		return doc, usageError("--measurement is required (the expected launch measurement as hex)")
	}
	for _, m := range p.measurements {
		m = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(m), "0x"))
		if _, err := hex.DecodeString(m); err != nil {
			return doc, usageError("--measurement %q: not hex", m)
		}
		doc.Measurements = append(doc.Measurements, m)
	}
	if p.minTCB != "" {
		t, err := policy.ParseTCB(p.minTCB)
		if err != nil {
			return doc, usageError("--min-tcb: %v", err)
		}
		doc.MinTCB = policy.FormatTCB(*t)
	}
	rtmrs, err := parseRTMRs(p.rtmrs)
	if err != nil {
		return doc, err
	}
	doc.RTMRs = rtmrs
	if tee == attest.TEETDX && (rtmrs[1] == "" || rtmrs[2] == "") {
		return doc, usageError("--tee tdx needs --rtmr 1=HEX and --rtmr 2=HEX: the measurement (MRTD) covers only the TD firmware; the kernel is measured into RTMR1, the command line and initrd into RTMR2 (sealroot measure --tee tdx computes both)")
	}
	if tee != attest.TEETDX && len(rtmrs) > 0 {
		return doc, usageError("--rtmr applies to --tee tdx only")
	}
	if err := doc.Validate(tee); err != nil {
		return doc, usageError("%v", err)
	}
	return doc, nil
}

// readPassphraseString reads a passphrase file (or "-" for stdin) as the
// admin API's string.
func readPassphraseString(cmd *cobra.Command, path string) (string, error) {
	b, err := readPassphrase(path, cmd.InOrStdin())
	if err != nil {
		return "", withStatus(1, err)
	}
	defer cryptsetup.Wipe(b)
	return string(b), nil
}

// newRegisterCmd builds `sealroot register`.
func newRegisterCmd() *cobra.Command {
	var af adminFlags
	var pf policyFlagValues
	var id, tee, passFile, teeConfig string
	var replace bool
	c := &cobra.Command{
		Use:   "register --broker URL --admin-token-file FILE --workload-id ID --tee T --measurement HEX",
		Short: "Register a workload, its policy and its LUKS passphrase with a broker",
		Long: `Register a confidential workload with a sealroot broker through its admin API: the TEE it runs
in (snp, sim, tdx or cca), the launch measurements it may show, the rest of its policy, and
the LUKS passphrase of its disk. Without --passphrase-file no passphrase is stored (set one
later with 'sealroot workloads set-passphrase'). The passphrase never appears in output.

A tdx workload needs --rtmr 1=HEX and --rtmr 2=HEX besides its --measurement: MRTD covers
only the TD firmware, while the kernel is measured into RTMR1 and the command line and
initrd into RTMR2 (sealroot measure --tee tdx --kernel F --initrd F computes them). Without them any kernel booted by that firmware would get the secret.

Workloads that share a launch measurement (same kernel, initrd, command line, vCPUs and
memory) are told apart by evidence only through --host-data: give each the SHA-256 of its
disk's config JSON (the image's /krun-sev.json), which sealroot's launcher puts in SNP
HOST_DATA. Without it a guest of one such workload can name another and get its secret, so
register refuses to run without --host-data unless --measurement-only acknowledges that; such
workloads are marked MEASUREMENT-ONLY by 'sealroot workloads list' and 'show'.

SNP guests whose policy allows a migration agent (bit 18), and migratable TDX TDs
(TD_ATTRIBUTES bit 29), are refused unless --allow-migration-agent is given. A tdx policy may also pin RTMR0 and RTMR3 (--rtmr 0=HEX,
--rtmr 3=HEX).

By default debug guests and VMPL above 0 are refused; --allow-debug and --max-vmpl loosen
that and should stay off for real secrets. An existing workload id is refused unless
--replace is given (a replacement keeps the stored passphrase when none is given).

A krun-dialect guest fetches the passphrase from /kbs/v0/key/ID; a Trustee-dialect guest
from /kbs/v0/resource/default/ID/passphrase.`,
		Example: `  sealroot register --broker http://127.0.0.1:8000 --admin-token-file admin-token \
      --workload-id myapp --tee snp --measurement "$(cat measurement.hex)" --passphrase-file pass.txt \
      --host-data "$(sha256sum < krun-sev.json | cut -d' ' -f1)"
  sealroot register --broker https://kbs.example:8443 --admin-token-file admin-token \
      --workload-id myapp --tee snp --measurement 6a65…e73e --min-tcb bl=3,tee=0,snp=8,ucode=115 \
      --host-data 00ff… --replace --json
  sealroot register --broker http://127.0.0.1:8000 --admin-token-file admin-token \
      --workload-id mytd --tee tdx --measurement "$(cat mrtd.hex)" \
      --rtmr 1="$(cat rtmr1.hex)" --rtmr 2="$(cat rtmr2.hex)" --passphrase-file pass.txt --measurement-only`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if id == "" || tee == "" {
				return usageError("--workload-id and --tee are required")
			}
			doc, err := pf.policy(tee)
			if err != nil {
				return err
			}
			if err := pf.requireHostData(); err != nil {
				return err
			}
			reg := broker.AdminRegistration{WorkloadID: id, TEE: tee, Policy: doc, TEEConfig: teeConfig, Replace: replace}
			if passFile != "" {
				pass, err := readPassphraseString(cmd, passFile)
				if err != nil {
					return err
				}
				reg.Passphrase = &pass
			}
			cl, err := af.client()
			if err != nil {
				return err
			}
			w, err := cl.Register(cmd.Context(), reg)
			if errors.Is(err, broker.ErrConflict) {
				return withStatus(1, fmt.Errorf("workload %q is already registered; add --replace to overwrite it", id))
			}
			if err != nil {
				return adminFailure(err)
			}
			return printWorkload(cmd.OutOrStdout(), w, af.asJSON)
		},
	}
	fl := c.Flags()
	af.register(fl)
	pf.register(fl)
	fl.StringVar(&id, "workload-id", "", "workload id (the disk config's workload_id)")
	fl.StringVar(&tee, "tee", "", "TEE the workload runs in: snp, sim, tdx or cca")
	fl.StringVar(&passFile, "passphrase-file", "", "file holding the LUKS passphrase (one trailing newline is ignored)")
	fl.StringVar(&teeConfig, "tee-config", "", "buildah's tee_config JSON to keep with the workload (informational)")
	fl.BoolVar(&replace, "replace", false, "overwrite an existing workload of this id")
	fl.BoolVar(&pf.measurementOnly, "measurement-only", false, "register without --host-data, knowing that every guest with the same measurement can then attest as this workload")
	return c
}

// newWorkloadsCmd builds `sealroot workloads` and its subcommands, which
// share the admin connection flags (persistent flags of workloads).
func newWorkloadsCmd() *cobra.Command {
	workloadsCmd := &cobra.Command{
		Use:   "workloads",
		Short: "List, show, change and delete the workloads of a broker",
		Example: `  sealroot workloads list --broker http://127.0.0.1:8000 --admin-token-file admin-token
  sealroot workloads show myapp --broker http://127.0.0.1:8000 --admin-token-file admin-token --json
  sealroot workloads delete myapp --broker http://127.0.0.1:8000 --admin-token-file admin-token`,
	}
	wf := &adminFlags{}
	wf.register(workloadsCmd.PersistentFlags())
	workloadsCmd.AddCommand(
		newWorkloadsListCmd(wf),
		newWorkloadsShowCmd(wf),
		newWorkloadsDeleteCmd(wf),
		newWorkloadsSetPolicyCmd(wf),
		newWorkloadsSetPassphraseCmd(wf),
		newWorkloadsPutResourceCmd(wf),
		newWorkloadsDeleteResourceCmd(wf),
	)
	return workloadsCmd
}

// newWorkloadsListCmd builds `sealroot workloads list`.
func newWorkloadsListCmd(wf *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the registered workloads",
		Example: `  sealroot workloads list --broker http://127.0.0.1:8000 --admin-token-file admin-token`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := wf.client()
			if err != nil {
				return err
			}
			list, err := cl.List(cmd.Context())
			if err != nil {
				return adminFailure(err)
			}
			if wf.asJSON {
				return writeJSONOut(cmd.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "WORKLOAD\tTEE\tPASSPHRASE\tMEASUREMENTS\tIDENTITY\tORIGIN\tUPDATED")
			for _, w := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", w.WorkloadID, w.TEE, yesNo(w.HasPassphrase),
					shortList(w.Policy.Measurements), identityOf(w), w.Origin, w.UpdatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
}

// newWorkloadsShowCmd builds `sealroot workloads show`.
func newWorkloadsShowCmd(wf *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "show ID",
		Short:   "Show one workload: policy, passphrase presence, resources",
		Example: `  sealroot workloads show myapp --broker http://127.0.0.1:8000 --admin-token-file admin-token`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := wf.client()
			if err != nil {
				return err
			}
			w, err := cl.Show(cmd.Context(), args[0])
			if err != nil {
				return adminFailure(err)
			}
			return printWorkload(cmd.OutOrStdout(), w, wf.asJSON)
		},
	}
}

// newWorkloadsDeleteCmd builds `sealroot workloads delete`.
func newWorkloadsDeleteCmd(wf *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "delete ID",
		Short:   "Delete a workload with its passphrase and resources",
		Example: `  sealroot workloads delete myapp --broker http://127.0.0.1:8000 --admin-token-file admin-token`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := wf.client()
			if err != nil {
				return err
			}
			if err := cl.Delete(cmd.Context(), args[0]); err != nil {
				return adminFailure(err)
			}
			if wf.asJSON {
				return writeJSONOut(cmd.OutOrStdout(), map[string]any{"workload_id": args[0], "deleted": true})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted workload %s\n", args[0])
			return nil
		},
	}
}

// newWorkloadsSetPolicyCmd builds `sealroot workloads set-policy`.
func newWorkloadsSetPolicyCmd(wf *adminFlags) *cobra.Command {
	var spf policyFlagValues
	setPolicy := &cobra.Command{
		Use:   "set-policy ID --measurement HEX [policy flags]",
		Short: "Replace a workload's policy",
		Example: `  sealroot workloads set-policy myapp --measurement 6a65…e73e --min-tcb bl=3,tee=0,snp=8,ucode=115 \
      --broker http://127.0.0.1:8000 --admin-token-file admin-token`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := wf.client()
			if err != nil {
				return err
			}
			cur, err := cl.Show(cmd.Context(), args[0])
			if err != nil {
				return adminFailure(err)
			}
			doc, err := spf.policy(cur.TEE)
			if err != nil {
				return err
			}
			w, err := cl.SetPolicy(cmd.Context(), args[0], doc)
			if err != nil {
				return adminFailure(err)
			}
			return printWorkload(cmd.OutOrStdout(), w, wf.asJSON)
		},
	}
	spf.register(setPolicy.Flags())
	return setPolicy
}

// newWorkloadsSetPassphraseCmd builds `sealroot workloads set-passphrase`.
func newWorkloadsSetPassphraseCmd(wf *adminFlags) *cobra.Command {
	var newPass string
	setPass := &cobra.Command{
		Use:   "set-passphrase ID --passphrase-file FILE",
		Short: "Replace a workload's LUKS passphrase (after changing it on the disk)",
		Example: `  sealroot workloads set-passphrase myapp --passphrase-file new-pass.txt \
      --broker http://127.0.0.1:8000 --admin-token-file admin-token`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if newPass == "" {
				return usageError("--passphrase-file is required")
			}
			pass, err := readPassphraseString(cmd, newPass)
			if err != nil {
				return err
			}
			cl, err := wf.client()
			if err != nil {
				return err
			}
			if err := cl.SetPassphrase(cmd.Context(), args[0], pass); err != nil {
				return adminFailure(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "passphrase of workload %s replaced\n", args[0])
			return nil
		},
	}
	setPass.Flags().StringVar(&newPass, "passphrase-file", "", "file holding the new passphrase")
	return setPass
}

// newWorkloadsPutResourceCmd builds `sealroot workloads put-resource`.
func newWorkloadsPutResourceCmd(wf *adminFlags) *cobra.Command {
	var resFile string
	putRes := &cobra.Command{
		Use:   "put-resource ID REPO/TYPE/TAG --file FILE",
		Short: "Store a secret a Trustee-dialect guest of the workload can fetch",
		Example: `  sealroot workloads put-resource myapp default/key/1 --file key.bin \
      --broker http://127.0.0.1:8000 --admin-token-file admin-token`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if resFile == "" {
				return usageError("--file is required")
			}
			b, err := os.ReadFile(resFile)
			if err != nil {
				return withStatus(1, fmt.Errorf("reading --file: %w", err))
			}
			cl, err := wf.client()
			if err != nil {
				return err
			}
			if err := cl.PutResource(cmd.Context(), args[0], args[1], b); err != nil {
				return adminFailure(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "stored resource %s of workload %s (%d bytes)\n", args[1], args[0], len(b))
			return nil
		},
	}
	putRes.Flags().StringVar(&resFile, "file", "", "file holding the resource value (at most 64 KiB)")
	return putRes
}

// newWorkloadsDeleteResourceCmd builds `sealroot workloads delete-resource`.
func newWorkloadsDeleteResourceCmd(wf *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete-resource ID REPO/TYPE/TAG",
		Short: "Delete a resource of a workload",
		Example: `  sealroot workloads delete-resource myapp default/key/1 \
      --broker http://127.0.0.1:8000 --admin-token-file admin-token`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := wf.client()
			if err != nil {
				return err
			}
			if err := cl.DeleteResource(cmd.Context(), args[0], args[1]); err != nil {
				return adminFailure(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted resource %s of workload %s\n", args[1], args[0])
			return nil
		},
	}
}

func printWorkload(out io.Writer, w *broker.AdminWorkload, asJSON bool) error {
	if asJSON {
		return writeJSONOut(out, w)
	}
	fmt.Fprintf(out, "workload:      %s\n", w.WorkloadID)
	fmt.Fprintf(out, "tee:           %s\n", w.TEE)
	fmt.Fprintf(out, "passphrase:    %s (Trustee resource %s)\n", yesNo(w.HasPassphrase), w.PassphraseResource)
	for i, m := range w.Policy.Measurements {
		label := "measurement:  "
		if i > 0 {
			label = "              "
		}
		fmt.Fprintf(out, "%s %s\n", label, m)
	}
	if w.Policy.HostData != "" {
		fmt.Fprintf(out, "host data:     %s\n", w.Policy.HostData)
	} else {
		fmt.Fprintf(out, "identity:      %s\n", measurementOnlyNote)
	}
	if w.Policy.MinTCB != "" {
		fmt.Fprintf(out, "minimum tcb:   %s\n", w.Policy.MinTCB)
	}
	for i := range policy.NumRTMRs {
		if v, ok := w.Policy.RTMRs[i]; ok {
			fmt.Fprintf(out, "rtmr%d:         %s\n", i, v)
		}
	}
	fmt.Fprintf(out, "debug allowed: %s\n", yesNo(w.Policy.AllowDebug))
	fmt.Fprintf(out, "max vmpl:      %d\n", w.Policy.MaxVMPL)
	if w.Policy.AllowMigrationAgent {
		fmt.Fprintf(out, "migration agent allowed: yes\n")
	}
	fmt.Fprintf(out, "origin:        %s\n", w.Origin)
	fmt.Fprintf(out, "created:       %s\n", w.CreatedAt.Format(time.RFC3339))
	fmt.Fprintf(out, "updated:       %s\n", w.UpdatedAt.Format(time.RFC3339))
	for _, r := range w.Resources {
		fmt.Fprintf(out, "resource:      %s (%d bytes, %s)\n", r.Path, r.Size, r.UpdatedAt.Format(time.RFC3339))
	}
	return nil
}

func writeJSONOut(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func shortList(ms []string) string {
	if len(ms) == 0 {
		return "-"
	}
	s := ms[0]
	if len(s) > 16 {
		s = s[:16] + "…"
	}
	if len(ms) > 1 {
		s += fmt.Sprintf(" (+%d)", len(ms)-1)
	}
	return s
}
