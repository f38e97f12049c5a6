package broker

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/verify/sim"
	"github.com/sealroot/sealroot/wire/kbs"
)

// TestTrusteeP521Key: a guest key on P-521 (the attestation agent's
// ECDH-ES+A256KW-P521) attests and receives its passphrase in a JWE whose
// epk is on P-521.
func TestTrusteeP521Key(t *testing.T) {
	b := newTestBroker(t)
	m := measurement(40)
	pass := b.registerSim(t, "tw", m)
	c := newTrusteeClient(t, b.URL, "ec521")
	nonce, _ := c.auth(t)
	if code, body := c.attest(t, nonce, m); code != http.StatusOK {
		t.Fatalf("attest with a P-521 key: %d %s", code, body)
	}
	got, code, body := c.resource(t, kbs.PassphrasePath("tw"), false)
	if code != http.StatusOK || got != pass {
		t.Fatalf("resource: %d %s", code, body)
	}
	var j kbs.JWE
	_ = json.Unmarshal([]byte(body), &j)
	hdr, _ := base64.RawURLEncoding.DecodeString(j.Protected)
	if !strings.Contains(string(hdr), `"epk":{"crv":"P-521","kty":"EC"`) {
		t.Fatalf("protected header %s", hdr)
	}
}

// initDataTOML is an init-data document as Kata hands it to the guest.
const initDataTOML = `version = "0.1.0"
algorithm = "sha384"

[data]
"aa.toml" = '''
[token_configs.kbs]
url = "http://127.0.0.1:8080"
'''
"policy.rego" = "package agent_policy\ndefault AllowRequestsFailingPolicy := true\n"
`

func initDataMember(body string) string {
	return mustJSON(map[string]string{"format": "toml", "body": body})
}

// TestTrusteeInitData: init-data is accepted only when its digest is the
// report's HOST_DATA (a SHA-384 digest cut to 32 bytes, a SHA-256 one
// whole) and it parses as Trustee's init-data TOML; otherwise 401.
func TestTrusteeInitData(t *testing.T) {
	m := measurement(41)
	sum384 := sha512.Sum384([]byte(initDataTOML))
	sha256Doc := strings.Replace(initDataTOML, "sha384", "sha256", 1)
	sum256 := sha256.Sum256([]byte(sha256Doc))
	hostData := func(d []byte) func(*sim.ReportParams) {
		return func(p *sim.ReportParams) { copy(p.HostData[:], d) }
	}
	for _, tc := range []struct {
		name     string
		initData string
		params   func(*sim.ReportParams)
		code     int
		want     string
	}{
		{"sha384 bound", initDataMember(initDataTOML), hostData(sum384[:32]), 200, ""},
		{"sha256 bound", initDataMember(sha256Doc), hostData(sum256[:]), 200, ""},
		{"no init-data, any host data", "null", hostData(sum384[:32]), 200, ""},
		{"digest not in HOST_DATA", initDataMember(initDataTOML), hostData(sum256[:]), 401, "init-data digest does not match the evidence's HOST_DATA"},
		{"zero HOST_DATA", initDataMember(initDataTOML), nil, 401, "does not match the evidence's HOST_DATA"},
		{"one changed byte", initDataMember(strings.Replace(initDataTOML, "8080", "8081", 1)), hostData(sum384[:32]), 401, "does not match"},
		{"not TOML", initDataMember("version = \"0.1.0\"\nalgorithm = sha384\n"), hostData(sum384[:32]), 401, "init-data: body is not TOML"},
		{"no algorithm", initDataMember("version = \"0.1.0\"\n[data]\n"), nil, 401, "init-data: body has no algorithm"},
		{"unknown algorithm", initDataMember("version = \"0.1.0\"\nalgorithm = \"md5\"\n[data]\n"), nil, 401, "is not sha256, sha384 or sha512"},
		{"data not strings", initDataMember("version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\nx = 1\n"), nil, 401, "init-data: body is not TOML"},
		{"json format", `{"format":"json","body":"{}"}`, nil, 401, "is not supported (want"},
		{"not an object", `"version = 1"`, nil, 401, "init-data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBroker(t)
			b.registerSim(t, "tw", m)
			c := newTrusteeClient(t, b.URL, "ec")
			c.initData, c.params = tc.initData, tc.params
			nonce, _ := c.auth(t)
			code, body := c.attest(t, nonce, m)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("attest: %d %s, want %d and %q", code, body, tc.code, tc.want)
			}
			if tc.code != 200 {
				if rec := b.audit.lastRefusal(t); rec["check"] != "init_data" {
					t.Fatalf("audit %v, want check init_data", rec)
				}
			}
		})
	}
}

// TestTrusteeAdditionalEvidence: additional-evidence is parsed and bound;
// none ("" or {}) passes, and any device evidence, which this broker
// cannot verify, is refused with 401 naming the devices.
func TestTrusteeAdditionalEvidence(t *testing.T) {
	m := measurement(42)
	for _, tc := range []struct {
		name, additional string
		code             int
		want             string
	}{
		{"none", "", 200, ""},
		{"empty object", "{}", 200, ""},
		{"gpu", `{"nvidia":{"evidence_list":[]}}`, 401, "additional-evidence carries evidence for nvidia, which this broker cannot verify"},
		{"two devices", `{"tdx":{"quote":"AA=="},"sampledevice":{"svn":"1"}}`, 401, "evidence for sampledevice, tdx"},
		{"not json", "not json", 401, "additional-evidence: not a JSON object"},
		{"array", "[1,2]", 401, "additional-evidence: not a JSON object"},
		{"bad name", `{"Nvidia GPU":{}}`, 401, "is not a tee name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBroker(t)
			b.registerSim(t, "tw", m)
			c := newTrusteeClient(t, b.URL, "ec")
			c.additional = tc.additional
			nonce, _ := c.auth(t)
			code, body := c.attest(t, nonce, m)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("attest: %d %s, want %d and %q", code, body, tc.code, tc.want)
			}
			if tc.code != 200 {
				if rec := b.audit.lastRefusal(t); rec["check"] != "additional_evidence" {
					t.Fatalf("audit %v", rec)
				}
			}
		})
	}
}

// TestCheckInitDataPadding: the digest is cut or zero-padded to the TEE's
// field, as Trustee regularizes it: on TDX a SHA-256 digest is followed by
// 16 zero bytes in MRCONFIGID (the layout of sealroot's config binding) and
// a SHA-384 digest fills it; on SNP a SHA-384 digest is cut to 32 bytes.
func TestCheckInitDataPadding(t *testing.T) {
	d256 := sha256.Sum256([]byte("a"))
	d384 := sha512.Sum384([]byte("a"))
	pad := func(b []byte, n int) []byte { return append(append([]byte{}, b...), make([]byte, n-len(b))...) }
	for _, tc := range []struct {
		tee    string
		digest []byte
		host   []byte
		ok     bool
	}{
		{"tdx", d256[:], pad(d256[:], 48), true},
		{"tdx", d384[:], d384[:], true},
		{"tdx", d256[:], pad(d256[:16], 48), false},
		{"tdx", d256[:], d384[:], false},
		{"snp", d384[:], d384[:32], true},
		{"snp", d256[:], d256[:], true},
		{"snp", d384[:], make([]byte, 32), false},
		{"cca", d256[:], pad(d256[:], 64), true},
		{"tdx", d256[:], nil, false},
	} {
		ref := checkInitData(tc.tee, tc.digest, &attest.Claims{HostData: tc.host})
		if (ref == nil) != tc.ok {
			t.Errorf("%s digest %d bytes, host field %x: refusal %v, want ok=%t", tc.tee, len(tc.digest), tc.host, ref, tc.ok)
		}
	}
	if ref := checkInitData("tdx", nil, &attest.Claims{}); ref != nil {
		t.Errorf("no init-data refused: %v", ref)
	}
}
