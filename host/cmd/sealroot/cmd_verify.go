package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/verify"
	"github.com/sealroot/sealroot/host/verify/certcache"
	"github.com/sealroot/sealroot/host/verify/policy"
	"github.com/sealroot/sealroot/host/verify/sim"
	"github.com/sealroot/sealroot/host/verify/snp"
	"github.com/sealroot/sealroot/host/verify/tdx"
)

// verifyFlags are the `sealroot verify` flags that say where the evidence
// and its collateral come from. Verifier factories and evidence loaders
// receive them whole.
type verifyFlags struct {
	tee          string // --tee
	evidencePath string // --evidence
	format       string // --format (cmd_verify_format.go)
	certsPath    string // --certs ("" when not given)
	cacheDir     string // --cache-dir ("" when not given)
	offline      bool   // --offline
	chainOnly    bool   // --allow-chain-only
	simDir       string // --sim-dir
	at           time.Time
}

// now is the time at which certificates must be valid: --at, else now.
func (f verifyFlags) now() time.Time {
	if f.at.IsZero() {
		return time.Now()
	}
	return f.at
}

// readEvidence returns the bytes of the --evidence file.
func (f verifyFlags) readEvidence() ([]byte, error) {
	return readBounded(f.evidencePath, "evidence", 16<<20)
}

// readCerts returns the bytes of the --certs file, or nil without --certs.
func (f verifyFlags) readCerts() ([]byte, error) {
	if f.certsPath == "" {
		return nil, nil
	}
	return readBounded(f.certsPath, "certificates", 16<<20)
}

// openCache opens --cache-dir, or returns nil without it.
func (f verifyFlags) openCache() (*certcache.Cache, error) {
	if f.cacheDir == "" {
		return nil, nil
	}
	return certcache.Open(f.cacheDir)
}

func readBounded(path, what string, limit int64) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s %s: %w", what, path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s %s is larger than %d bytes", what, path, limit)
	}
	return b, nil
}

// verifyBackend is what `sealroot verify` needs for one --tee value.
type verifyBackend struct {
	// verifier builds the Verifier.
	verifier func(verifyFlags) (attest.Verifier, error)
	// load turns the --evidence (and --certs) files into Evidence; nil
	// means loadRawEvidence.
	load func(verifyFlags) (*attest.Evidence, error)
}

// verifyBackends is the command's TEE→verifier mapping, built on each call:
// snp and sim are here, tdx and cca in cmd_verify_tdxcca.go.
func verifyBackends() map[string]verifyBackend {
	return map[string]verifyBackend{
		attest.TEESNP: {verifier: newSNPVerifier, load: loadSNPEvidence},
		attest.TEESim: {verifier: newSimVerifier, load: loadSNPEvidence},
		attest.TEETDX: {verifier: newTDXVerifier, load: loadTDXEvidence},
		attest.TEECCA: {verifier: newCCAVerifier, load: loadCCAEvidence},
	}
}

// loadRawEvidence is the default loader: the whole --evidence file is
// Evidence.Report and the --certs file, if any, Evidence.Certs.
func loadRawEvidence(f verifyFlags) (*attest.Evidence, error) {
	b, err := f.readEvidence()
	if err != nil {
		return nil, err
	}
	certs, err := f.readCerts()
	if err != nil {
		return nil, err
	}
	return &attest.Evidence{TEE: f.tee, Report: b, Certs: certs}, nil
}

// loadSNPEvidence reads a raw or extended SNP report or Trustee's SNP
// evidence JSON (cmd_verify_format.go) and merges in --certs (a certificate
// table, PEM or DER certificates), whose entries win over the evidence's.
func loadSNPEvidence(f verifyFlags) (*attest.Evidence, error) {
	b, err := f.readEvidence()
	if err != nil {
		return nil, err
	}
	report, table, err := snpEvidenceFromFile(b, f.format)
	if err != nil {
		return nil, fmt.Errorf("evidence %s: %w", f.evidencePath, err)
	}
	extra, err := f.readCerts()
	if err != nil {
		return nil, err
	}
	if extra != nil {
		given, err := snp.LoadCerts(extra)
		if err != nil {
			return nil, fmt.Errorf("certificates %s: %w", f.certsPath, err)
		}
		if table, err = snp.MergeCertTables(table, given); err != nil {
			return nil, fmt.Errorf("certificates %s: %w", f.certsPath, err)
		}
	}
	return &attest.Evidence{TEE: attest.TEESNP, Report: report, Certs: table}, nil
}

// newSNPVerifier is the Verifier of --tee snp.
func newSNPVerifier(f verifyFlags) (attest.Verifier, error) {
	cache, err := f.openCache()
	if err != nil {
		return nil, err
	}
	return verify.New(attest.TEESNP, verify.Options{Cache: cache, Offline: f.offline, Now: f.now})
}

// newSimVerifier is the Verifier of --tee sim: SNP reports chained to the
// simulated root in --sim-dir.
func newSimVerifier(f verifyFlags) (attest.Verifier, error) {
	if f.simDir == "" {
		return nil, usageError("--tee sim needs --sim-dir (the directory made by 'sealroot sim init')")
	}
	a, err := sim.Load(f.simDir)
	if err != nil {
		return nil, err
	}
	cache, err := f.openCache()
	if err != nil {
		return nil, err
	}
	return verify.New(attest.TEESim, verify.Options{Cache: cache, Offline: f.offline, Now: f.now, SimRoot: a})
}

// policyFlags are the claim checks of `sealroot verify`.
type policyFlags struct {
	measurements []string
	reportData   string
	hostData     string
	allowDebug   bool
	maxVMPL      int
	minTCB       string
	allowMA      bool
}

func (p policyFlags) policy(tee string) (*policy.Policy, error) {
	pol := &policy.Policy{
		AllowedTEEs:    []string{tee},
		AllowDebug:     p.allowDebug,
		MaxVMPL:        p.maxVMPL,
		AllowSimulated: tee == attest.TEESim,

		AllowMigrationAgent: p.allowMA,
	}
	for _, m := range p.measurements {
		b, err := decodeHexFlag("--measurement", m)
		if err != nil {
			return nil, err
		}
		pol.Measurements = append(pol.Measurements, b)
	}
	var err error
	if p.reportData != "" {
		if pol.ReportData, err = decodeHexFlag("--report-data", p.reportData); err != nil {
			return nil, err
		}
	}
	if p.hostData != "" {
		if pol.HostData, err = decodeHexFlag("--host-data", p.hostData); err != nil {
			return nil, err
		}
	}
	if p.minTCB != "" {
		if pol.MinTCB, err = policy.ParseTCB(p.minTCB); err != nil {
			return nil, usageError("--min-tcb: %v", err)
		}
	}
	if p.maxVMPL < 0 || p.maxVMPL > 3 {
		return nil, usageError("--max-vmpl %d: want 0 to 3", p.maxVMPL)
	}
	return pol, nil
}

func decodeHexFlag(name, s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.TrimPrefix(strings.TrimSpace(s), "0x"))
	if err != nil || len(b) == 0 {
		return nil, usageError("%s %q: want hex bytes", name, s)
	}
	return b, nil
}

// newVerifyCmd builds `sealroot verify`.
func newVerifyCmd() *cobra.Command {
	var f verifyFlags
	var p policyFlags
	var asJSON bool
	var at string
	c := &cobra.Command{
		Use:   "verify --tee snp|tdx|cca|sim --evidence FILE",
		Short: "Verify attestation evidence and check its claims against a policy",
		Long: `Verify attestation evidence: its signature and certificate chain up to the TEE vendor's
root (or, for --tee sim, the simulated root in --sim-dir), then the policy given by the flags.
The verified claims are printed in either case; the exit status is 1 when verification or the
policy fails, with the reason on stderr.

For snp and sim, --evidence is the raw 1184-byte report, an extended report (report followed
by its certificate table) or Trustee's SNP evidence JSON (primary_evidence, alone or inside
tee-evidence), told apart by content unless --format says which; --certs is a certificate table, or PEM or DER certificates (the VCEK
or VLEK; an ARK or ASK given there is never trusted). A VCEK missing from both is taken from
--cache-dir, else fetched from AMD KDS (never with --offline) and then kept in --cache-dir.
For tdx, Intel's collateral comes from --cache-dir or Intel PCS; with --offline and a piece not
cached the quote is refused, as a broker refuses it, unless --allow-chain-only accepts a check of
its signature and PCK chain alone (the verdict then says the TCB status was not checked).

The policy refuses debug guests, SNP guests whose policy allows a migration agent (bit 18) and
migratable TDX TDs (TD_ATTRIBUTES bit 29) (--allow-migration-agent accepts both), VMPL above --max-vmpl, a TCB below --min-tcb, and, when given,
a measurement other than every --measurement, other report_data or host_data. Hex values
shorter than the field (a 48-byte SHA-384 report_data) are compared zero-padded.`,
		Example: `  sealroot verify --tee snp --evidence report.bin --certs vcek.der --offline
  sealroot verify --tee snp --evidence trustee-evidence.json --offline --allow-debug
  sealroot verify --tee snp --evidence ext-report.bin --cache-dir /var/cache/sealroot \
      --measurement 6a6519d7...e73e --min-tcb bl=3,tee=0,snp=8,ucode=115 --json
  sealroot verify --tee sim --sim-dir ~/.sealroot/sim --evidence report.bin \
      --measurement "$(sealroot measure --tee sim --kernel vmlinuz --initrd initrd.cpio.gz)"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return usageError("--at %q: want an RFC 3339 time such as 2024-01-02T15:04:05Z", at)
				}
				f.at = t
			}
			if f.chainOnly && (f.tee != attest.TEETDX || !f.offline) {
				return usageError("--allow-chain-only is for --tee tdx with --offline")
			}
			return runVerify(cmd.Context(), cmd.OutOrStdout(), f, p, asJSON)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.tee, "tee", "", "kind of evidence: snp, tdx, cca or sim")
	fl.StringVar(&f.evidencePath, "evidence", "", "evidence file (for snp and sim: raw or extended report)")
	fl.StringVar(&f.format, "format", formatAuto, "evidence format: auto (from the content), raw, extended (snp) or trustee (Trustee KBS JSON; snp, tdx)")
	fl.StringVar(&f.certsPath, "certs", "", "certificates: an SNP certificate table, or PEM or DER certificates")
	fl.StringVar(&f.cacheDir, "cache-dir", "", "certificate cache directory, read and filled")
	fl.BoolVar(&f.offline, "offline", false, "never use the network: certificates come from --certs, the evidence or --cache-dir")
	fl.BoolVar(&f.chainOnly, "allow-chain-only", false, "tdx with --offline: when collateral is not cached, check the quote's signature and PCK chain only (no TCB status, QE identity or revocation) instead of refusing it")
	fl.StringVar(&f.simDir, "sim-dir", "", "simulated secure processor directory (sealroot sim init); needed by --tee sim")
	fl.StringVar(&at, "at", "", "check certificate validity at this RFC 3339 time instead of now (evidence captured in the past)")
	fl.StringArrayVar(&p.measurements, "measurement", nil, "accepted launch measurement as hex (repeatable; any one matches)")
	fl.StringVar(&p.reportData, "report-data", "", "expected report_data as hex (zero-padded)")
	fl.StringVar(&p.hostData, "host-data", "", "expected host_data as hex (zero-padded)")
	fl.BoolVar(&p.allowDebug, "allow-debug", false, "accept a guest whose policy allows debugging")
	fl.IntVar(&p.maxVMPL, "max-vmpl", 0, "highest accepted SNP VMPL")
	fl.BoolVar(&p.allowMA, "allow-migration-agent", false, "accept an SNP guest whose policy allows a migration agent (bit 18) or a migratable TDX TD (TD_ATTRIBUTES bit 29)")
	fl.StringVar(&p.minTCB, "min-tcb", "", "lowest accepted TCB: bl=N,tee=N,snp=N,ucode=N[,fmc=N] or a raw 64-bit hex TCB_VERSION")
	fl.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}

// verifyResult is the --json output.
type verifyResult struct {
	// Verified is true when the evidence is genuine.
	Verified bool `json:"verified"`
	// PolicyOK is true when the claims also satisfy the policy flags.
	PolicyOK bool   `json:"policy_ok"`
	Error    string `json:"error,omitempty"`
	// Warning says what "verified" did not cover (a chain-only TDX check).
	Warning string      `json:"warning,omitempty"`
	Claims  *claimsJSON `json:"claims,omitempty"`
}

// claimsJSON is attest.Claims with byte fields as lowercase hex, the way
// every other sealroot command prints measurements.
type claimsJSON struct {
	TEE           string            `json:"tee"`
	Simulated     bool              `json:"simulated"`
	Measurement   string            `json:"measurement"`
	ReportData    string            `json:"report_data"`
	HostData      string            `json:"host_data,omitempty"`
	ChipID        string            `json:"chip_id,omitempty"`
	Debug         bool              `json:"debug"`
	VMPL          int               `json:"vmpl"`
	Policy        uint64            `json:"policy"`
	ReportedTCB   attest.TCB        `json:"reported_tcb"`
	ProductLine   string            `json:"product_line,omitempty"`
	ReportVersion uint32            `json:"report_version,omitempty"`
	Extra         map[string]string `json:"extra,omitempty"`
}

func toClaimsJSON(c *attest.Claims) *claimsJSON {
	if c == nil {
		return nil
	}
	return &claimsJSON{
		TEE: c.TEE, Simulated: c.Simulated,
		Measurement: hex.EncodeToString(c.Measurement), ReportData: hex.EncodeToString(c.ReportData),
		HostData: hex.EncodeToString(c.HostData), ChipID: hex.EncodeToString(c.ChipID),
		Debug: c.Debug, VMPL: c.VMPL, Policy: c.Policy, ReportedTCB: c.ReportedTCB,
		ProductLine: c.ProductLine, ReportVersion: c.ReportVersion, Extra: c.Extra,
	}
}

func runVerify(ctx context.Context, out io.Writer, f verifyFlags, p policyFlags, asJSON bool) error {
	if f.tee == "" || f.evidencePath == "" {
		return usageError("--tee and --evidence are required")
	}
	backends := verifyBackends()
	backend, ok := backends[f.tee]
	if !ok {
		known := make([]string, 0, len(backends))
		for k := range backends {
			known = append(known, k)
		}
		slices.Sort(known)
		return usageError("--tee %q: want one of %s", f.tee, strings.Join(known, ", "))
	}
	if f.simDir != "" && f.tee != attest.TEESim {
		return usageError("--sim-dir is only for --tee sim")
	}
	if err := checkFormat(f.tee, f.format); err != nil {
		return err
	}
	pol, err := p.policy(f.tee)
	if err != nil {
		return err
	}
	load := backend.load
	if load == nil {
		load = loadRawEvidence
	}
	ev, err := load(f)
	if err != nil {
		return failed(err)
	}
	v, err := backend.verifier(f)
	if err != nil {
		return failed(err)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	claims, verr := v.Verify(ctx, ev)
	res := verifyResult{Verified: verr == nil, Claims: toClaimsJSON(claims)}
	if verr == nil && tdx.ChainOnly(claims) {
		res.Warning = tdxChainOnlyWarning
	}
	var perr error
	if verr == nil {
		perr = pol.Validate(claims)
		if perr != nil {
			perr = fmt.Errorf("policy: %w", perr)
		}
		res.PolicyOK = perr == nil
	}
	failure := verr
	if failure == nil {
		failure = perr
	}
	if failure != nil {
		res.Error = failure.Error()
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return withStatus(1, err)
		}
	} else if claims != nil {
		verdict := "genuine; policy satisfied"
		if perr != nil {
			verdict = "genuine; refused by policy"
		}
		if res.Warning != "" {
			verdict = strings.Replace(verdict, "genuine", "genuine ("+res.Warning+")", 1)
		}
		printClaims(out, claims, verdict)
	}
	if failure != nil {
		return withStatus(1, failure)
	}
	return nil
}

// failed gives err exit status 1 unless it already carries a status (a
// loader or factory may report a usage error).
func failed(err error) error {
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return withStatus(1, err)
}

// printClaims writes claims as an aligned two-column table.
func printClaims(w io.Writer, c *attest.Claims, verdict string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("tee", c.TEE)
	if c.Simulated {
		row("simulated", "true (chains to a simulated root, not to the TEE vendor)")
	}
	if c.ProductLine != "" {
		row("product_line", c.ProductLine)
	}
	if c.ReportVersion != 0 {
		row("report_version", fmt.Sprint(c.ReportVersion))
	}
	row("measurement", hex.EncodeToString(c.Measurement))
	row("report_data", hex.EncodeToString(c.ReportData))
	if c.HostData != nil {
		row("host_data", hex.EncodeToString(c.HostData))
	}
	if c.ChipID != nil {
		row("chip_id", hex.EncodeToString(c.ChipID))
	}
	row("debug", fmt.Sprint(c.Debug))
	row("vmpl", fmt.Sprint(c.VMPL))
	row("policy", fmt.Sprintf("%#x", c.Policy))
	if c.ReportedTCB != (attest.TCB{}) {
		row("reported_tcb", policy.FormatTCB(c.ReportedTCB))
	}
	keys := make([]string, 0, len(c.Extra))
	for k := range c.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		row(k, c.Extra[k])
	}
	row("verdict", verdict)
	tw.Flush()
}
