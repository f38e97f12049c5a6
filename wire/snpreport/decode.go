package snpreport

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/internal/textclip"
)

// MaxEvidenceSize bounds the JSON that Decode accepts. A report with a full
// ARK/ASK/VCEK chain and a CRL is well under 100 KiB in this form.
const MaxEvidenceSize = 1 << 20

// CRLGUID is the GUID the sev crate uses for a CRL entry in a certificate
// table (certtable.go has the others).
const CRLGUID = "92f81bc3-5811-4d3d-97ff-d19f88dc67ea"

// certTypeGUIDs maps the sev crate's CertType names to table GUIDs.
var certTypeGUIDs = map[string]string{
	"ARK":  ArkGUID,
	"ASK":  AskGUID,
	"VCEK": VcekGUID,
	"VLEK": VlekGUID,
	"CRL":  CRLGUID,
}

// Decode parses a Trustee SNP primary_evidence object and returns SNP
// evidence: the rebuilt 1184-byte report and, when cert_chain holds
// certificates, a GHCB certificate table in go-sev-guest's layout.
func Decode(b []byte) (*attest.Evidence, error) {
	if len(b) > MaxEvidenceSize {
		return nil, fmt.Errorf("snp evidence is %d bytes, more than the %d allowed", len(b), MaxEvidenceSize)
	}
	top, err := parseObject(b, "primary_evidence")
	if err != nil {
		return nil, err
	}
	rep, err := top.object("attestation_report")
	if err != nil {
		return nil, err
	}
	report, err := decodeReport(rep)
	if err != nil {
		return nil, err
	}
	certs, err := decodeCertChain(top)
	if err != nil {
		return nil, err
	}
	return &attest.Evidence{TEE: attest.TEESNP, Report: report, Certs: certs}, nil
}

func decodeReport(o object) ([]byte, error) {
	r := make([]byte, ReportSize)
	u32 := func(key string, off int) (uint32, error) {
		v, err := o.uint(key, 32)
		binary.LittleEndian.PutUint32(r[off:], uint32(v))
		return uint32(v), err
	}
	u64 := func(key string, off int) error {
		v, err := o.uint(key, 64)
		binary.LittleEndian.PutUint64(r[off:], v)
		return err
	}

	version, err := u32("version", OffVersion)
	if err != nil {
		return nil, err
	}
	if version < MinReportVersion || version > MaxReportVersion {
		return nil, fmt.Errorf("%s: report version %d not supported (want %d to %d)", o.path("version"), version,
			MinReportVersion, MaxReportVersion)
	}
	for _, f := range []struct {
		key string
		off int
	}{{"guest_svn", OffGuestSVN}, {"vmpl", OffVMPL}, {"sig_algo", OffSigAlgo}, {"key_info", OffKeyInfo}} {
		if _, err := u32(f.key, f.off); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		key string
		off int
	}{{"policy", OffPolicy}, {"plat_info", OffPlatInfo}} {
		if err := u64(f.key, f.off); err != nil {
			return nil, err
		}
	}
	for _, f := range byteFields {
		v, err := o.bytes(f.name, f.size)
		if err != nil {
			return nil, err
		}
		copy(r[f.off:], v)
	}

	product, err := decodeCPUID(o, version, r)
	if err != nil {
		return nil, err
	}
	for _, f := range tcbFields {
		t, err := o.object(f.name)
		if err != nil {
			return nil, err
		}
		parts, err := decodeTCB(t, product)
		if err != nil {
			return nil, err
		}
		putTCB(r[f.off:], parts, product)
	}
	for _, f := range []struct {
		key string
		off int
	}{{"current", OffCurrentBuild}, {"committed", OffCommittedBuild}} {
		v, err := o.object(f.key)
		if err != nil {
			return nil, err
		}
		for i, k := range []string{"build", "minor", "major"} {
			n, err := v.uint(k, 8)
			if err != nil {
				return nil, err
			}
			r[f.off+i] = uint8(n)
		}
	}
	for _, f := range []struct {
		key string
		off int
	}{{"launch_mit_vector", OffLaunchMitVector}, {"current_mit_vector", OffCurrentMitVector}} {
		v, present, err := o.optUint(f.key, 64)
		if err != nil {
			return nil, err
		}
		switch {
		case version >= 5 && !present:
			return nil, fmt.Errorf("%s: required for report version %d, found null", o.path(f.key), version)
		case version < 5 && present:
			return nil, fmt.Errorf("%s: must be null before report version 5 (version is %d)", o.path(f.key), version)
		}
		binary.LittleEndian.PutUint64(r[f.off:], v)
	}

	sig, err := o.object("signature")
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		key string
		off int
	}{{"r", OffSignatureR}, {"s", OffSignatureS}} {
		v, err := sig.bytes(f.key, SigComponentSize)
		if err != nil {
			return nil, err
		}
		copy(r[f.off:], v)
	}
	return r, nil
}

// decodeCPUID fills the CPUID bytes (v3+) and returns the product they name.
func decodeCPUID(o object, version uint32, r []byte) (Product, error) {
	keys := []string{"cpuid_fam_id", "cpuid_mod_id", "cpuid_step"}
	var vals [3]uint8
	present := 0
	for i, k := range keys {
		v, ok, err := o.optUint(k, 8)
		if err != nil {
			return 0, err
		}
		if ok {
			present++
		}
		vals[i] = uint8(v)
	}
	if version < 3 {
		if present != 0 {
			return 0, fmt.Errorf("%s: cpuid fields must be null in a version %d report", o.path("cpuid_fam_id"), version)
		}
		return ProductUnknown, nil
	}
	if present != len(keys) {
		return 0, fmt.Errorf("%s: cpuid_fam_id, cpuid_mod_id and cpuid_step are required for report version %d", o.path("cpuid_fam_id"), version)
	}
	copy(r[OffCPUIDFam:], vals[:])
	p, err := ProductFromCPUID(vals[0], vals[1])
	if err != nil {
		return 0, fmt.Errorf("%s: %w", o.path("cpuid_fam_id"), err)
	}
	return p, nil
}

func decodeTCB(o object, p Product) (attest.TCB, error) {
	var t attest.TCB
	for _, f := range []struct {
		key string
		dst *uint8
	}{{"bootloader", &t.Bootloader}, {"tee", &t.TEE}, {"snp", &t.SNP}, {"microcode", &t.Microcode}} {
		v, err := o.uint(f.key, 8)
		if err != nil {
			return t, err
		}
		*f.dst = uint8(v)
	}
	fmc, present, err := o.optUint("fmc", 8)
	if err != nil {
		return t, err
	}
	switch {
	case p.turinLayout() && !present:
		return t, fmt.Errorf("%s: required on %s, found null", o.path("fmc"), p)
	case !p.turinLayout() && present:
		return t, fmt.Errorf("%s: must be null on %s (the tcb layout has no fmc byte)", o.path("fmc"), p)
	}
	t.FMC = uint8(fmc)
	return t, nil
}

func decodeCertChain(top object) ([]byte, error) {
	raw, ok := top.m["cert_chain"]
	if !ok || isNull(raw) {
		return nil, nil
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("%s: want null or an array of certificates", top.path("cert_chain"))
	}
	var table []certEntry
	seen := map[guid]bool{}
	for i, e := range entries {
		ctx := fmt.Sprintf("%s[%d]", top.path("cert_chain"), i)
		entry, err := parseObject(e, ctx)
		if err != nil {
			return nil, err
		}
		guid, skip, err := certGUID(entry)
		if err != nil {
			return nil, err
		}
		data, err := entry.byteSlice("data")
		if err != nil {
			return nil, err
		}
		if skip {
			continue
		}
		if len(data) == 0 {
			return nil, fmt.Errorf("%s: empty certificate data", entry.path("data"))
		}
		if seen[guid] {
			return nil, fmt.Errorf("%s: certificate type given twice", entry.path("cert_type"))
		}
		seen[guid] = true
		table = append(table, certEntry{guid: guid, cert: data})
	}
	return marshalCertTable(table), nil
}

// certGUID reads cert_type: a name ("VCEK"), "Empty" (skipped) or the sev
// crate's {"OTHER":"<uuid>"}.
func certGUID(entry object) (guid, bool, error) {
	raw, ok := entry.m["cert_type"]
	if !ok {
		return zeroGUID, false, fmt.Errorf("%s: missing", entry.path("cert_type"))
	}
	var name string
	if err := json.Unmarshal(raw, &name); err == nil {
		if name == "Empty" {
			return zeroGUID, true, nil
		}
		g, ok := certTypeGUIDs[name]
		if !ok {
			return zeroGUID, false, fmt.Errorf("%s: unknown certificate type %q (want ARK, ASK, VCEK, VLEK, CRL or {\"OTHER\":uuid})", entry.path("cert_type"), name)
		}
		return mustGUID(g), false, nil
	}
	other, err := parseObject(raw, entry.path("cert_type"))
	if err != nil {
		return zeroGUID, false, err
	}
	var s string
	if len(other.m) != 1 || json.Unmarshal(other.m["OTHER"], &s) != nil {
		return zeroGUID, false, fmt.Errorf("%s: want a type name or {\"OTHER\":\"<uuid>\"}", entry.path("cert_type"))
	}
	g, err := parseGUID(s)
	if err != nil || len(s) != 36 {
		return zeroGUID, false, fmt.Errorf("%s: %q is not a uuid", other.path("OTHER"), s)
	}
	if g == zeroGUID {
		return zeroGUID, false, fmt.Errorf("%s: the zero uuid ends a certificate table and cannot name an entry", other.path("OTHER"))
	}
	return g, false, nil
}

// object is a JSON object whose values are looked up by exact key; ctx is
// its path for error messages.
type object struct {
	m   map[string]json.RawMessage
	ctx string
}

func parseObject(b []byte, ctx string) (object, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return object{}, fmt.Errorf("%s: not a json object", ctx)
	}
	return object{m: m, ctx: ctx}, nil
}

func (o object) path(key string) string { return o.ctx + "." + key }

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

func (o object) object(key string) (object, error) {
	raw, ok := o.m[key]
	if !ok {
		return object{}, fmt.Errorf("%s: missing", o.path(key))
	}
	return parseObject(raw, o.path(key))
}

// uint reads a required non-negative integer that fits in bits.
func (o object) uint(key string, bits int) (uint64, error) {
	v, present, err := o.optUint(key, bits)
	if err == nil && !present {
		if _, ok := o.m[key]; ok {
			return 0, fmt.Errorf("%s: is null, want an integer", o.path(key))
		}
		return 0, fmt.Errorf("%s: missing", o.path(key))
	}
	return v, err
}

// optUint reads an integer that may be null or absent.
func (o object) optUint(key string, bits int) (uint64, bool, error) {
	raw, ok := o.m[key]
	if !ok || isNull(raw) {
		return 0, false, nil
	}
	v, err := strconv.ParseUint(string(raw), 10, bits)
	if err != nil {
		return 0, false, fmt.Errorf("%s: %s is not an integer in 0..%d", o.path(key), textclip.Clip(string(raw), maxQuoted), uint64(1)<<bits-1)
	}
	return v, true, nil
}

// bytes reads an array of exactly n integers 0-255.
func (o object) bytes(key string, n int) ([]byte, error) {
	b, err := o.byteSlice(key)
	if err != nil {
		return nil, err
	}
	if len(b) != n {
		return nil, fmt.Errorf("%s: array has %d elements, want exactly %d", o.path(key), len(b), n)
	}
	return b, nil
}

// byteSlice reads an array of integers 0-255 of any length.
func (o object) byteSlice(key string) ([]byte, error) {
	raw, ok := o.m[key]
	if !ok {
		return nil, fmt.Errorf("%s: missing", o.path(key))
	}
	// Elements stay raw so that a quoted "5" or 5.0 is refused: encoding/json
	// would coerce both into a number type.
	var vals []json.RawMessage
	if isNull(raw) || json.Unmarshal(raw, &vals) != nil {
		return nil, fmt.Errorf("%s: want an array of integers 0-255 (not a string: byte fields are never hex or base64 here)", o.path(key))
	}
	out := make([]byte, len(vals))
	for i, v := range vals {
		n, err := strconv.ParseUint(string(v), 10, 8)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %s is not an integer 0-255", o.path(key), i, textclip.Clip(string(v), maxQuoted))
		}
		out[i] = byte(n)
	}
	return out, nil
}

// maxQuoted bounds a raw JSON value quoted in an error message.
const maxQuoted = 24
