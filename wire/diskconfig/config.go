// Package diskconfig is the workload's disk config and the KRUN footer that
// carries it: the JSON that buildah writes both to /krun-sev.json and into
// the footer at the end of disk.img (docs/interop.md §1). libkrun's six
// keys are required; sealroot's own optional keys are documented on the
// fields below, and unknown keys are ignored so that images written by
// newer tools still boot.
//
// It is part of wire/, the leaf layer (docs/design.md, "Package map"): the
// single home of the config's types, limits and validation, the root
// volume binding's wire form (VolumeID, volume.go), the verity tree's
// (Verity, integrity.go) and the footer layout (footer.go). It links only
// the standard library, other wire/ packages and sealroot's
// dependency-free attest (the TEE table); the LUKS logic that reads and
// checks a VolumeID is cryptsetup's, and the tree parameters built from a
// Verity are verity's (verity.FromConfig).
package diskconfig

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/wire/kbs"
)

// Config is the disk config.
type Config struct {
	TEE            string `json:"tee"`
	TEEData        string `json:"tee_data"`
	WorkloadID     string `json:"workload_id"`
	CPUs           int    `json:"cpus"`
	RAMMiB         int    `json:"ram_mib"`
	AttestationURL string `json:"attestation_url"`

	// KBSProtocol selects the broker dialect: "krun" (default, reference-kbs
	// and libkrun's historical client) or "trustee" (KBS protocol 0.4.0).
	KBSProtocol string `json:"kbs_protocol,omitempty"`
	// CABundle is a PEM bundle (the text itself) trusted for an https
	// attestation_url instead of the system roots.
	CABundle string `json:"ca_bundle,omitempty"`
	// AttestTimeout bounds the whole broker exchange including retries, as
	// a Go duration ("60s", the default).
	AttestTimeout string `json:"attest_timeout,omitempty"`
	// KBSResource is the Trustee resource path ("repository/type/tag")
	// holding the passphrase; default "default/<workload_id>/passphrase",
	// where sealroot's broker serves it.
	KBSResource string `json:"kbs_resource,omitempty"`
	// KBSKey is the Trustee guest key type: "ec" (P-256, default) or "rsa".
	KBSKey string `json:"kbs_key,omitempty"`
	// Encrypted says whether the payload is LUKS; absent means "detect".
	Encrypted *bool `json:"encrypted,omitempty"`
	// RootVolume binds the LUKS root volume to this config (and, through
	// HOST_DATA / MRCONFIGID / RPV, to the attested identity): the init
	// refuses a root whose header or unlocked volume key does not match
	// (docs/threat-model.md). Absent in buildah's configs: any LUKS
	// volume is then accepted.
	RootVolume *VolumeID `json:"root_volume,omitempty"`
	// ActivationFlags are the dm-crypt activation flags the root is
	// mapped with (allow-discards, same-cpu-crypt, ...). The LUKS2
	// header's own flags are ignored: the host can write them.
	ActivationFlags []string `json:"activation_flags,omitempty"`
	// RuntimeEvidence lets the workload ask the init for TEE reports over
	// data of its own, with report_data domain-separated from the boot
	// handshake (guest/runtimeev); without it the workload gets no
	// evidence at all.
	RuntimeEvidence bool `json:"runtime_evidence,omitempty"`

	// Integrity, Verity and OverlaySize: the root's integrity protection
	// (integrity.go).
	Integrity   string  `json:"integrity,omitempty"`
	Verity      *Verity `json:"verity,omitempty"`
	OverlaySize string  `json:"overlay_size,omitempty"`
}

// Parse decodes and validates config JSON. Every error names the key.
func Parse(b []byte) (*Config, error) {
	b = bytes.TrimRight(b, "\x00")
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("config is not a JSON object: %w", err)
	}
	if err := checkKeys(b); err != nil {
		return nil, err
	}
	for _, k := range []string{"tee", "tee_data", "workload_id", "cpus", "ram_mib", "attestation_url"} {
		if _, ok := raw[k]; !ok {
			return nil, fmt.Errorf("config key %q is missing", k)
		}
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks field values.
func (c *Config) Validate() error {
	if !attest.Known(c.TEE) {
		return fmt.Errorf("config key \"tee\": unknown TEE %q (want %s)", c.TEE, attest.Names(nil))
	}
	if c.TEEData != "" && !json.Valid([]byte(c.TEEData)) {
		return fmt.Errorf("config key \"tee_data\": not a JSON document")
	}
	if c.CPUs < 1 || c.CPUs > 255 {
		return fmt.Errorf("config key \"cpus\": %d is outside 1-255", c.CPUs)
	}
	if c.RAMMiB < 16 || c.RAMMiB > 1<<22 {
		return fmt.Errorf("config key \"ram_mib\": %d is outside 16-4194304", c.RAMMiB)
	}
	if c.AttestationURL != "" {
		u, err := url.Parse(c.AttestationURL)
		if err != nil {
			return fmt.Errorf("config key \"attestation_url\": %w", err)
		}
		switch u.Scheme {
		case "http", "https", "vsock":
		default:
			return fmt.Errorf("config key \"attestation_url\": scheme %q is not http, https or vsock", u.Scheme)
		}
		if u.Host == "" {
			return fmt.Errorf("config key \"attestation_url\": no host in %q", c.AttestationURL)
		}
	}
	switch c.KBSProtocol {
	case "", "krun", "trustee":
	default:
		return fmt.Errorf("config key \"kbs_protocol\": %q is not krun or trustee", c.KBSProtocol)
	}
	switch c.KBSKey {
	case "", "ec", "rsa":
	default:
		return fmt.Errorf("config key \"kbs_key\": %q is not ec or rsa", c.KBSKey)
	}
	if c.KBSResource != "" {
		if err := kbs.CheckResourcePath(c.KBSResource); err != nil {
			return fmt.Errorf("config key \"kbs_resource\": %w", err)
		}
	}
	if c.AttestTimeout != "" {
		d, err := time.ParseDuration(c.AttestTimeout)
		if err != nil || d <= 0 {
			return fmt.Errorf("config key \"attest_timeout\": %q is not a positive duration", c.AttestTimeout)
		}
	}
	if c.RootVolume != nil {
		if err := c.RootVolume.Validate(); err != nil {
			return fmt.Errorf("config key \"root_volume\": %w", err)
		}
	}
	for _, f := range c.ActivationFlags {
		if !KnownActivationFlag(f) {
			return fmt.Errorf("config key \"activation_flags\": %q is not allow-discards, same-cpu-crypt, submit-from-crypt-cpus, no-read-workqueue or no-write-workqueue", f)
		}
	}
	if err := c.validateIntegrity(); err != nil {
		return err
	}
	if attest.NeedsBroker(c.TEE) && c.AttestationURL == "" {
		return fmt.Errorf("config key \"attestation_url\" is empty but tee %q needs a broker", c.TEE)
	}
	return nil
}

// Dialect returns the broker dialect, defaulting to krun.
func (c *Config) Dialect() string {
	if c.KBSProtocol == "" {
		return "krun"
	}
	return c.KBSProtocol
}

// Deadline returns the attestation deadline (default 60 s).
func (c *Config) Deadline() time.Duration {
	if d, err := time.ParseDuration(c.AttestTimeout); err == nil && d > 0 {
		return d
	}
	return 60 * time.Second
}

// Marshal returns compact JSON with the six libkrun keys first, as buildah
// writes them, with HTML escaping off.
func (c *Config) Marshal() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return bytes.TrimSpace(b.Bytes()), nil
}

// String is a one-line description without anything secret (the config
// holds none, but keep it short for logs).
func (c *Config) String() string {
	return fmt.Sprintf("tee=%s workload=%s cpus=%d ram=%dMiB broker=%s", c.TEE, c.WorkloadID, c.CPUs, c.RAMMiB, strings.TrimSpace(c.AttestationURL))
}

// HostData is the value a launcher binds into the TEE's reports for a disk
// with config JSON raw (the exact footer bytes, as in krun-sev.json): its
// SHA-256. SNP carries it as HOST_DATA; a broker that registers it as the
// workload's host_data tells apart workloads that share a launch
// measurement (the measurement covers kernel, initrd and command line, not
// the disk's config). `sha256sum krun-sev.json` prints the same value.
func HostData(raw []byte) [32]byte { return sha256.Sum256(raw) }
