package kbs

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/sealroot/sealroot/wire/snpreport"
)

// Every decoder of peer bytes is fuzzed: it must not panic, and what it
// accepts must satisfy the invariants its callers rely on.

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"version":"0.0.0","tee":"snp","extra-params":"{\"workload_id\":\"w\"}"}`))
	f.Add([]byte(`{"version":"0.4.0","tee":"snp","extra-params":{"supported-hash-algorithms":["sha384"]}}`))
	f.Add([]byte(`{"version":"0.4.0","tee":"tdx","extra-params":""}`))
	f.Add([]byte(`{"version":"0.0.0","tee":"snp","extra-params":"\"x\""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			return
		}
		if r.Version == "" || r.TEE == "" {
			t.Fatal("accepted a request without version or tee")
		}
		if id, err := r.KrunWorkloadID(); err == nil && id == "" {
			t.Fatal("empty workload id accepted")
		}
	})
}

func FuzzParseKrunAttestation(f *testing.F) {
	k := testRSAKey(f)
	pk, _ := json.Marshal(NewKrunPubKey(&k.PublicKey))
	f.Add([]byte(`{"tee-pubkey":` + string(pk) + `,"tee-evidence":"{\"gen\":\"milan\",\"report\":\"00\",\"cert_chain\":\"[]\"}"}`))
	f.Add([]byte(`{"tee-pubkey":{"alg":"RSA","k-mod":"AQAB","k-exp":"AQAB"},"tee-evidence":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseKrunAttestation(b)
		if err != nil {
			return
		}
		if pub, err := a.TEEPubKey.RSAPublicKey(); err == nil {
			if bits := pub.N.BitLen(); bits != 8*KrunModulusSize || pub.E < 3 || pub.E%2 == 0 {
				t.Fatalf("accepted a %d-bit key with e=%d", bits, pub.E)
			}
			// Only the canonical texts, so the binding splits one way.
			if NewKrunPubKey(pub).KMod != a.TEEPubKey.KMod || NewKrunPubKey(pub).KExp != a.TEEPubKey.KExp {
				t.Fatal("accepted a key in non-canonical base64")
			}
		}
		_, _, _ = DecodeKrunSNPEvidence(a.TEEEvidence)
	})
}

func FuzzDecodeKrunSNPEvidence(f *testing.F) {
	report := strings.Repeat("00", snpreport.ReportSize)
	f.Add(`{"gen":"milan","report":"` + report + `","cert_chain":"[]"}`)
	f.Add(`{"gen":"genoa","report":"` + report + `","cert_chain":"0102"}`)
	f.Add(`{"gen":"milan","report":"` + report + `"}`)
	f.Fuzz(func(t *testing.T, s string) {
		r, c, err := DecodeKrunSNPEvidence(s)
		if err != nil {
			return
		}
		if len(r) != snpreport.ReportSize || len(c) > maxCertTable {
			t.Fatalf("accepted report of %d bytes, table of %d", len(r), len(c))
		}
	})
}

func FuzzParseAttestation(f *testing.F) {
	f.Add([]byte(`{"init-data":null,"runtime-data":{"nonce":"bm9uY2U=","tee-pubkey":{"kty":"EC","crv":"P-256","alg":"ECDH-ES+A256KW","x":"AQ","y":"Ag"}},"tee-evidence":{"primary_evidence":{},"additional_evidence":""}}`))
	f.Add([]byte(`{"runtime-data":{"nonce":"n","tee-pubkey":{"kty":"RSA","alg":"RSA-OAEP-256","n":"AQAB","e":"AQAB"}},"tee-evidence":{"primary_evidence":{"quote":""}}}`))
	f.Add([]byte(`{"tee-pubkey":{"kty":"EC"},"tee-evidence":"{}"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAttestation(b)
		if err != nil {
			return
		}
		if a.RuntimeData.Nonce == "" || len(a.TEEEvidence.PrimaryEvidence) == 0 {
			t.Fatal("accepted attestation without nonce or evidence")
		}
		_, _ = a.RuntimeData.TEEPubKey.PublicKey()
		rd := TrusteeReportData(a.RuntimeData.Nonce, a.RuntimeData.TEEPubKey, a.TEEEvidence.AdditionalEvidence, 64)
		if len(rd) != 64 {
			t.Fatalf("binding of %d bytes", len(rd))
		}
		_, _, _ = DecodeTDXEvidence(a.TEEEvidence.PrimaryEvidence)
		_, _ = DecodeCCAEvidence(a.TEEEvidence.PrimaryEvidence)
	})
}

func FuzzJWKPublicKey(f *testing.F) {
	x, _ := ecdh.P256().GenerateKey(rand.Reader)
	j, _ := NewJWK(x.PublicKey())
	b, _ := json.Marshal(j)
	f.Add(b)
	f.Add([]byte(`{"kty":"RSA","alg":"RSA-OAEP-256","n":"AQAB","e":"AQAB"}`))
	f.Add([]byte(`{"kty":"EC","crv":"P-256","x":"","y":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var j JWK
		if json.Unmarshal(b, &j) != nil {
			return
		}
		pub, err := j.PublicKey()
		if err != nil {
			return
		}
		again, err := NewJWK(pub)
		if err != nil {
			t.Fatalf("accepted key does not re-encode: %v", err)
		}
		if again.Kty != j.Kty {
			t.Fatalf("kty changed from %q to %q", j.Kty, again.Kty)
		}
	})
}

var (
	fuzzKeyOnce sync.Once
	fuzzECKey   *ecdh.PrivateKey
)

func FuzzJWEDecrypt(f *testing.F) {
	fuzzKeyOnce.Do(func() { fuzzECKey, _ = ecdh.P256().GenerateKey(rand.Reader) })
	rsaKey := testRSAKey(f)
	ecJWK, _ := NewJWK(fuzzECKey.PublicKey())
	rsaJWK, _ := NewJWK(&rsaKey.PublicKey)
	for _, to := range []JWK{ecJWK, rsaJWK} {
		j, err := EncryptJWE(to, []byte("seed secret"))
		if err != nil {
			f.Fatal(err)
		}
		b, _ := json.Marshal(j)
		f.Add(b)
	}
	f.Add([]byte(`{"protected":"e30","encrypted_key":"","iv":"AAAAAAAAAAAAAAAA","ciphertext":"","tag":"AAAAAAAAAAAAAAAAAAAAAA"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := ParseJWE(b)
		if err != nil {
			return
		}
		_, _ = j.Decrypt(fuzzECKey)
		_, _ = j.Decrypt(rsaKey)
	})
}

func FuzzKrunDecryptSecret(f *testing.F) {
	k := testRSAKey(f)
	body, _ := KrunEncryptSecret(&k.PublicKey, []byte("seed"))
	f.Add(body)
	f.Add([]byte(`"` + strings.Repeat("00", 256) + `"`))
	f.Add([]byte(`"zz"`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = KrunDecryptSecret(k, b)
	})
}

func FuzzParseProblem(f *testing.F) {
	f.Add([]byte(`{"type":"https://github.com/confidential-containers/kbs/errors/PolicyDeny","detail":"x"}`))
	f.Add([]byte(`{"type":"","detail":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseProblem(b)
		if err != nil {
			return
		}
		if p.Type == "" || len(p.Detail) > 520 {
			t.Fatalf("accepted %+v", p)
		}
		_ = p.Variant()
		_ = p.Error()
	})
}

func FuzzDecodeTDXEvidence(f *testing.F) {
	f.Add([]byte(`{"cc_eventlog":null,"quote":"AAAA"}`))
	f.Add([]byte(`{"cc_eventlog":"AAAA","quote":"AAAA"}`))
	f.Add([]byte(`{"token":"` + hex.EncodeToString([]byte("x")) + `"}`))
	f.Add([]byte(`{"token":[217,1,143,161]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		q, _, err := DecodeTDXEvidence(b)
		if err == nil && len(q) > maxQuote {
			t.Fatalf("quote of %d bytes accepted", len(q))
		}
		tok, err := DecodeCCAEvidence(b)
		if err == nil && (len(tok) == 0 || len(tok) > maxQuote) {
			t.Fatalf("token of %d bytes accepted", len(tok))
		}
	})
}
