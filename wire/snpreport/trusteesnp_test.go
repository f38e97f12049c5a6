package snpreport

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"

	"github.com/sealroot/sealroot/attest"
)

// genoaEvidence is real Trustee-dialect evidence from Genoa hardware (see
// testdata/README.md for its source and licence).
const genoaEvidence = "testdata/trustee-snp-genoa-evidence.json"

const genoaMeasurement = "6a6519d757e68c2e939c9dbbbc1828498e8de35d2766dd05f1a2cca5059d0cf4ae62a36d75c837974dd50b315506e73e"

func readGenoa(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(genoaEvidence)
	if err != nil {
		t.Fatalf("reading the real Genoa evidence : %v", err)
	}
	return b
}

// verifyOffline checks a rebuilt report with go-sev-guest: the VCEK from the
// certificate table against AMD's embedded Genoa ASK/ARK, then the report
// signature. No network: DisableCertFetching.
//
// go-sev-guest v0.15.0 maps only CPU model 0x11 to Genoa; this report comes
// from a model 0xA0 part (Genoa family, as the sev crate and AMD's KDS
// treat it), for which go-sev-guest's product line is "Unknown". The
// embedded Genoa roots are therefore offered under that key too.
func verifyOffline(t *testing.T, ev *attest.Evidence) error {
	t.Helper()
	rep, err := abi.ReportToProto(ev.Report)
	if err != nil {
		return err
	}
	table := new(abi.CertTable)
	if err := table.Unmarshal(ev.Certs); err != nil {
		t.Fatalf("certificate table from Decode does not parse: %v", err)
	}
	genoa, err := trust.GetDefaultRootCerts("Genoa")
	if err != nil {
		t.Fatal(err)
	}
	line := kds.ProductLineFromFms(rep.GetCpuid1EaxFms())
	att := &spb.Attestation{Report: rep, CertificateChain: table.Proto()}
	return verify.SnpAttestation(att, &verify.Options{
		DisableCertFetching: true,
		TrustedRoots:        map[string][]*trust.AMDRootCerts{"Genoa": {genoa}, line: {genoa}},
		// The VCEK is valid from 2025-05-27 to 2032-05-27; pin the
		// clock so that the test does not expire with it.
		Now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	})
}

func TestDecodeRealGenoa(t *testing.T) {
	ev, err := Decode(readGenoa(t))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if ev.TEE != attest.TEESNP || len(ev.Report) != ReportSize {
		t.Fatalf("evidence tee %q, report %d bytes", ev.TEE, len(ev.Report))
	}
	if got := hex.EncodeToString(ev.Report[OffMeasurement : OffMeasurement+48]); got != genoaMeasurement {
		t.Fatalf("measurement %s, want %s", got, genoaMeasurement)
	}
	rep, err := abi.ReportToProto(ev.Report)
	if err != nil {
		t.Fatalf("go-sev-guest rejects the rebuilt report: %v", err)
	}
	if rep.Version != 3 || rep.Vmpl != 0 || rep.Policy != 0x30000 {
		t.Errorf("version %d vmpl %d policy %#x", rep.Version, rep.Vmpl, rep.Policy)
	}
	// Genoa layout: [bl,tee,0,0,0,0,snp,ucode] with bl=10 tee=0 snp=23 ucode=25.
	if rep.ReportedTcb != 0x191700000000000a {
		t.Errorf("reported tcb %#x, want 0x191700000000000a", rep.ReportedTcb)
	}
	if err := verifyOffline(t, ev); err != nil {
		t.Fatalf("rebuilt report does not verify against AMD's Genoa roots: %v", err)
	}
}

// TestTamperedFieldsFailVerification edits one signed value at a time in the
// JSON and checks that the rebuilt report no longer verifies.
func TestTamperedFieldsFailVerification(t *testing.T) {
	orig := readGenoa(t)
	tests := []struct {
		name string
		edit func(r map[string]any)
	}{
		{"measurement", func(r map[string]any) { flip(r["measurement"]) }},
		{"report_data", func(r map[string]any) { flip(r["report_data"]) }},
		{"host_data", func(r map[string]any) { flip(r["host_data"]) }},
		{"chip_id", func(r map[string]any) { flip(r["chip_id"]) }},
		{"policy", func(r map[string]any) { r["policy"] = float64(0x30000 | 1<<19) }},
		{"vmpl", func(r map[string]any) { r["vmpl"] = float64(1) }},
		{"guest_svn", func(r map[string]any) { r["guest_svn"] = float64(1) }},
		{"reported_tcb.snp", func(r map[string]any) { r["reported_tcb"].(map[string]any)["snp"] = float64(24) }},
		{"committed.minor", func(r map[string]any) { r["committed"].(map[string]any)["minor"] = float64(56) }},
		{"cpuid_step", func(r map[string]any) { r["cpuid_step"] = float64(1) }},
		{"signature.r", func(r map[string]any) { flip(r["signature"].(map[string]any)["r"]) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc map[string]any
			if err := json.Unmarshal(orig, &doc); err != nil {
				t.Fatal(err)
			}
			tt.edit(doc["attestation_report"].(map[string]any))
			b, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode of edited evidence: %v", err)
			}
			err = verifyOffline(t, ev)
			if err == nil {
				t.Fatal("edited report still verifies")
			}
			if !strings.Contains(err.Error(), "signature") {
				t.Fatalf("refused for another reason than the signature: %v", err)
			}
		})
	}
}

func TestTamperedVCEKFails(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(readGenoa(t), &doc); err != nil {
		t.Fatal(err)
	}
	data := doc["cert_chain"].([]any)[0].(map[string]any)["data"].([]any)
	// A byte inside the public key, so the certificate still parses.
	data[len(data)-700] = float64(int(data[len(data)-700].(float64)) ^ 1)
	b, _ := json.Marshal(doc)
	ev, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyOffline(t, ev); err == nil {
		t.Fatal("report verified with a tampered VCEK")
	}
}

func flip(v any) {
	a := v.([]any)
	a[0] = float64(int(a[0].(float64)) ^ 1)
}

func TestRoundTrip(t *testing.T) {
	orig := readGenoa(t)
	ev, err := Decode(orig)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := Encode(ev.Report, ev.Certs)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if bytes.Contains(enc, []byte(`"measurement":"`)) {
		t.Fatal("byte fields must be integer arrays, not strings")
	}
	again, err := Decode(enc)
	if err != nil {
		t.Fatalf("Decode(Encode(x)): %v", err)
	}
	if !bytes.Equal(again.Report, ev.Report) || !bytes.Equal(again.Certs, ev.Certs) {
		t.Fatal("Decode(Encode(Decode(x))) differs from Decode(x)")
	}
	// Same values as the Trustee original, key by key (the original omits
	// the v5-only mitigation vectors; Encode writes them as null like serde).
	var a, b map[string]any
	json.Unmarshal(orig, &a)
	json.Unmarshal(enc, &b)
	ra, rb := a["attestation_report"].(map[string]any), b["attestation_report"].(map[string]any)
	for k, v := range ra {
		if !jsonEqual(v, rb[k]) {
			t.Errorf("key %s: original %v, encoded %v", k, v, rb[k])
		}
	}
	for k, v := range rb {
		if _, ok := ra[k]; !ok && v != nil {
			t.Errorf("encoded has extra non-null key %s", k)
		}
	}
	if !jsonEqual(a["cert_chain"], b["cert_chain"]) {
		t.Error("cert_chain differs")
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// TestTurinLayout builds a Turin report, encodes it, and checks that FMC and
// the Turin byte order survive the trip both ways.
func TestTurinLayout(t *testing.T) {
	r := make([]byte, ReportSize)
	r[OffVersion] = 3
	r[OffPolicy+2] = 0x03
	r[OffCPUIDFam], r[OffCPUIDMod], r[OffCPUIDStep] = 0x1A, 0x02, 0x01
	tcb := []byte{1, 2, 3, 4, 0, 0, 0, 5} // fmc bl tee snp ... ucode
	for _, f := range tcbFields {
		copy(r[f.off:], tcb)
	}
	enc, err := Encode(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := `"reported_tcb":{"fmc":1,"bootloader":2,"tee":3,"snp":4,"microcode":5}`
	if !strings.Contains(string(enc), want) {
		t.Fatalf("encoded Turin report lacks %s:\n%s", want, enc)
	}
	if !strings.Contains(string(enc), `"cert_chain":null`) {
		t.Error("no certificates must encode as cert_chain null")
	}
	ev, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ev.Report, r) || ev.Certs != nil {
		t.Fatal("Turin report did not round-trip")
	}
	// A Turin TCB with a Genoa-only byte set cannot be encoded.
	r[OffLaunchTCB+5] = 9
	if _, err := Encode(r, nil); err == nil || !strings.Contains(err.Error(), "launch_tcb") {
		t.Fatalf("Encode with reserved Turin tcb byte: %v", err)
	}
}

func TestVersion5MitigationVectors(t *testing.T) {
	r := make([]byte, ReportSize)
	r[OffVersion] = 5
	r[OffCPUIDFam], r[OffCPUIDMod] = 0x19, 0x11
	r[OffLaunchMitVector] = 7
	r[OffCurrentMitVector+7] = 0x80
	enc, err := Encode(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(enc), `"launch_mit_vector":7,"current_mit_vector":9223372036854775808`) {
		t.Fatalf("mitigation vectors not encoded as integers:\n%s", enc)
	}
	ev, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ev.Report, r) {
		t.Fatal("v5 report did not round-trip")
	}
}

func TestVersion2(t *testing.T) {
	r := make([]byte, ReportSize)
	r[OffVersion] = 2
	r[OffReportedTCB], r[OffReportedTCB+6] = 3, 8
	enc, err := Encode(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(enc), `"cpuid_fam_id":null`) {
		t.Fatalf("v2 cpuid must be null:\n%s", enc)
	}
	ev, err := Decode(enc)
	if err != nil || !bytes.Equal(ev.Report, r) {
		t.Fatalf("v2 round trip: %v", err)
	}
}

func TestEncodeCertTable(t *testing.T) {
	other := "ecae0c0f-9502-43b1-afa2-0ae2e0d565b6"
	tbl := (&abi.CertTable{Entries: []abi.CertTableEntry{
		{GUID: mustUUID(abi.ArkGUID), RawCert: []byte{1, 2}},
		{GUID: mustUUID(CRLGUID), RawCert: []byte{3}},
		{GUID: mustUUID(other), RawCert: []byte{4, 5, 6}},
	}}).Marshal()
	ev, err := Decode(readGenoa(t))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := Encode(ev.Report, tbl)
	if err != nil {
		t.Fatal(err)
	}
	want := `"cert_chain":[{"cert_type":"ARK","data":[1,2]},{"cert_type":"CRL","data":[3]},{"cert_type":{"OTHER":"` + other + `"},"data":[4,5,6]}]`
	if !strings.Contains(string(enc), want) {
		t.Fatalf("cert_chain encoding:\n%s", enc)
	}
	back, err := Decode(enc)
	if err != nil || !bytes.Equal(back.Certs, tbl) {
		t.Fatalf("cert table round trip: %v", err)
	}

	bad := []struct {
		name  string
		table []byte
	}{
		{"no terminator", tbl[:24]},
		{"short header", tbl[:10]},
		{"range past end", func() []byte {
			b := bytes.Clone(tbl)
			b[20] = 0xff // length of entry 0
			return b
		}()},
		{"offset overflow", func() []byte {
			b := bytes.Clone(tbl)
			copy(b[16:24], []byte{0xf0, 0xff, 0xff, 0xff, 0x20, 0, 0, 0})
			return b
		}()},
	}
	for _, tt := range bad {
		if _, err := Encode(ev.Report, tt.table); err == nil {
			t.Errorf("%s: Encode accepted a broken certificate table", tt.name)
		}
	}
}

func mustUUID(s string) (u [16]byte) {
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil {
		panic(err)
	}
	copy(u[:], b)
	return u
}

func TestEncodeRejects(t *testing.T) {
	base := func() []byte {
		r := make([]byte, ReportSize)
		r[OffVersion] = 3
		r[OffCPUIDFam], r[OffCPUIDMod] = 0x19, 0x01
		return r
	}
	tests := []struct {
		name string
		edit func([]byte) []byte
		want string
	}{
		{"short", func(r []byte) []byte { return r[:ReportSize-1] }, "bytes"},
		{"version 1", func(r []byte) []byte { r[OffVersion] = 1; return r }, "version 1"},
		{"version 6", func(r []byte) []byte { r[OffVersion] = 6; return r }, "version 6"},
		{"reserved 0x4c", func(r []byte) []byte { r[0x4c] = 1; return r }, "0x4c"},
		{"reserved after cpuid", func(r []byte) []byte { r[0x18b] = 1; return r }, "0x18b"},
		{"reserved before signature", func(r []byte) []byte { r[0x29f] = 1; return r }, "0x29f"},
		{"reserved after signature", func(r []byte) []byte { r[SignatureEnd] = 1; return r }, "0x330"},
		{"unknown cpu", func(r []byte) []byte { r[OffCPUIDFam] = 0x17; return r }, "not a known"},
		{"mit vector before v5", func(r []byte) []byte { r[OffLaunchMitVector] = 1; return r }, "0x1f8"},
		{"cpuid in v2", func(r []byte) []byte { r[OffVersion] = 2; return r }, "0x188"},
		{"milan tcb reserved byte", func(r []byte) []byte { r[OffCurrentTCB+3] = 1; return r }, "current_tcb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Encode(tt.edit(base()), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Encode = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

// TestDecodeRejects edits the real evidence into malformed shapes.
func TestDecodeRejects(t *testing.T) {
	orig := readGenoa(t)
	tests := []struct {
		name string
		edit func(doc map[string]any, r map[string]any)
		want string
	}{
		{"short measurement", func(_, r map[string]any) { r["measurement"] = r["measurement"].([]any)[:47] }, "attestation_report.measurement: array has 47 elements, want exactly 48"},
		{"long report_data", func(_, r map[string]any) { r["report_data"] = append(r["report_data"].([]any), 0.0) }, "want exactly 64"},
		{"byte 256", func(_, r map[string]any) { r["host_data"].([]any)[3] = 256.0 }, "host_data[3]: 256 is not an integer 0-255"},
		{"negative byte", func(_, r map[string]any) { r["chip_id"].([]any)[0] = -1.0 }, "chip_id[0]"},
		{"fractional byte", func(_, r map[string]any) { r["chip_id"].([]any)[0] = 1.5 }, "chip_id[0]"},
		{"quoted byte", func(_, r map[string]any) { r["chip_id"].([]any)[0] = "1" }, "chip_id[0]"},
		{"hex string field", func(_, r map[string]any) { r["measurement"] = genoaMeasurement }, "never hex or base64"},
		{"missing field", func(_, r map[string]any) { delete(r, "report_id_ma") }, "report_id_ma: missing"},
		{"null integer", func(_, r map[string]any) { r["guest_svn"] = nil }, "guest_svn: is null"},
		{"vmpl over u32", func(_, r map[string]any) { r["vmpl"] = 4294967296.0 }, "vmpl"},
		{"negative policy", func(_, r map[string]any) { r["policy"] = -1.0 }, "policy"},
		{"version 6", func(_, r map[string]any) { r["version"] = 6.0 }, "version 6 not supported"},
		{"tcb byte over 255", func(_, r map[string]any) { r["launch_tcb"].(map[string]any)["microcode"] = 300.0 }, "launch_tcb.microcode"},
		{"fmc on genoa", func(_, r map[string]any) { r["current_tcb"].(map[string]any)["fmc"] = 1.0 }, "current_tcb.fmc: must be null on Genoa"},
		{"cpuid null on v3", func(_, r map[string]any) { r["cpuid_step"] = nil }, "required for report version 3"},
		{"unknown cpu model", func(_, r map[string]any) { r["cpuid_mod_id"] = 0x50 }, "not a known SEV-SNP product"},
		{"mit vector on v3", func(_, r map[string]any) { r["launch_mit_vector"] = 1.0 }, "must be null before report version 5"},
		{"v5 without mit vectors", func(_, r map[string]any) { r["version"] = 5.0 }, "launch_mit_vector: required"},
		{"signature short", func(_, r map[string]any) {
			s := r["signature"].(map[string]any)
			s["s"] = s["s"].([]any)[:48]
		}, "signature.s: array has 48"},
		{"current not object", func(_, r map[string]any) { r["current"] = "1.55.40" }, "current: not a json object"},
		{"unknown cert type", func(d, _ map[string]any) { d["cert_chain"].([]any)[0].(map[string]any)["cert_type"] = "PEK" }, `unknown certificate type "PEK"`},
		{"duplicate cert", func(d, _ map[string]any) {
			d["cert_chain"] = append(d["cert_chain"].([]any), d["cert_chain"].([]any)[0])
		}, "given twice"},
		{"cert data base64", func(d, _ map[string]any) { d["cert_chain"].([]any)[0].(map[string]any)["data"] = "MIIB" }, "cert_chain[0].data"},
		{"empty cert data", func(d, _ map[string]any) { d["cert_chain"].([]any)[0].(map[string]any)["data"] = []any{} }, "empty certificate"},
		{"bad other uuid", func(d, _ map[string]any) {
			d["cert_chain"].([]any)[0].(map[string]any)["cert_type"] = map[string]any{"OTHER": "nope"}
		}, "not a uuid"},
		{"chain not array", func(d, _ map[string]any) { d["cert_chain"] = map[string]any{} }, "want null or an array"},
		{"report missing", func(d, _ map[string]any) { delete(d, "attestation_report") }, "attestation_report: missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc map[string]any
			if err := json.Unmarshal(orig, &doc); err != nil {
				t.Fatal(err)
			}
			r, _ := doc["attestation_report"].(map[string]any)
			tt.edit(doc, r)
			b, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Decode(b)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Decode = %v, want error containing %q", err, tt.want)
			}
		})
	}
	for _, in := range []string{"", "null", "[]", `"x"`, "{", strings.Repeat(" ", MaxEvidenceSize+1)} {
		if _, err := Decode([]byte(in)); err == nil {
			t.Errorf("Decode(%.10q) succeeded", in)
		}
	}
}

func TestDecodeAcceptsVariants(t *testing.T) {
	orig := readGenoa(t)
	ref, err := Decode(orig)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		edit      func(doc map[string]any, r map[string]any)
		wantCerts bool
	}{
		{"null cert chain", func(d, _ map[string]any) { d["cert_chain"] = nil }, false},
		{"absent cert chain", func(d, _ map[string]any) { delete(d, "cert_chain") }, false},
		{"empty entry skipped", func(d, _ map[string]any) {
			d["cert_chain"] = append(d["cert_chain"].([]any), map[string]any{"cert_type": "Empty", "data": []any{}})
		}, true},
		{"explicit null mit vectors", func(_, r map[string]any) { r["launch_mit_vector"], r["current_mit_vector"] = nil, nil }, true},
		{"unknown extra key", func(_, r map[string]any) { r["future_field"] = 1.0 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc map[string]any
			json.Unmarshal(orig, &doc)
			tt.edit(doc, doc["attestation_report"].(map[string]any))
			b, _ := json.Marshal(doc)
			ev, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ev.Report, ref.Report) {
				t.Fatal("report differs")
			}
			if tt.wantCerts != (ev.Certs != nil) || (tt.wantCerts && !bytes.Equal(ev.Certs, ref.Certs)) {
				t.Fatalf("certs: got %d bytes", len(ev.Certs))
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	// Seeds stay small: the fuzzer minimizes every input that finds new
	// coverage, and a 30 KB seed makes that take most of a short run. The
	// real evidence is exercised by TestRoundTrip.
	r := make([]byte, ReportSize)
	r[OffVersion] = 3
	r[OffCPUIDFam], r[OffCPUIDMod] = 0x1A, 0x02
	if enc, err := Encode(r, nil); err == nil {
		f.Add(enc)
	}
	f.Add([]byte(`{"attestation_report":{},"cert_chain":null}`))
	f.Add([]byte(`{"attestation_report":{"version":3},"cert_chain":[{"cert_type":{"OTHER":"ecae0c0f-9502-43b1-afa2-0ae2e0d565b6"},"data":[1]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := Decode(b)
		if err != nil {
			return
		}
		if len(ev.Report) != ReportSize {
			t.Fatalf("report of %d bytes", len(ev.Report))
		}
		// Whatever decodes must encode and decode to the same bytes.
		enc, err := Encode(ev.Report, ev.Certs)
		if err != nil {
			t.Fatalf("Encode of decoded evidence: %v", err)
		}
		again, err := Decode(enc)
		if err != nil || !bytes.Equal(again.Report, ev.Report) || !bytes.Equal(again.Certs, ev.Certs) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func TestProductFromCPUID(t *testing.T) {
	tests := []struct {
		family, model uint8
		want          Product // ProductUnknown: an error
	}{
		{0x19, 0x00, ProductMilan}, {0x19, 0x01, ProductMilan}, {0x19, 0x0F, ProductMilan},
		{0x19, 0x10, ProductGenoa}, {0x19, 0x11, ProductGenoa}, {0x19, 0x1F, ProductGenoa},
		{0x19, 0xA0, ProductGenoa}, {0x19, 0xAF, ProductGenoa},
		{0x19, 0x21, ProductUnknown}, {0x19, 0x9F, ProductUnknown}, {0x19, 0xB0, ProductUnknown},
		{0x1A, 0x00, ProductTurin}, {0x1A, 0x02, ProductTurin}, {0x1A, 0x11, ProductTurin},
		{0x1A, 0x12, ProductUnknown},
		{0x17, 0x31, ProductUnknown}, // Rome: SEV-ES, no SNP reports
	}
	for _, tt := range tests {
		got, err := ProductFromCPUID(tt.family, tt.model)
		if got != tt.want || (err != nil) != (tt.want == ProductUnknown) {
			t.Errorf("ProductFromCPUID(%#x, %#x) = %v, %v; want %v", tt.family, tt.model, got, err, tt.want)
		}
		if err != nil && !strings.Contains(err.Error(), "not a known SEV-SNP product") {
			t.Errorf("ProductFromCPUID(%#x, %#x): error %q does not say why", tt.family, tt.model, err)
		}
	}
}
