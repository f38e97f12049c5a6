package kbs

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"strings"
	"testing"
)

// TestDecodeInitData: the envelope, format and size rules, and the digest
// rule under each of the three algorithm names. The TOML document itself
// is the broker's check (host/broker/initdata_test.go).
func TestDecodeInitData(t *testing.T) {
	doc := "version = \"0.1.0\"\nalgorithm = \"sha512\"\n[data]\n\"cdh.toml\" = \"x\"\n"
	d, err := DecodeInitData(json.RawMessage(`{"format":"toml","body":` + string(mustMarshal(doc)) + `}`))
	if err != nil || d.Body != doc || d.Format != InitDataFormatTOML {
		t.Fatalf("DecodeInitData = %v, %v", d, err)
	}
	for _, raw := range []string{"", "null", " null "} {
		if d, err := DecodeInitData(json.RawMessage(raw)); d != nil || err != nil {
			t.Errorf("%q: %v %v", raw, d, err)
		}
	}
	for _, tc := range []struct{ raw, want string }{
		{`{"format":"TOML","body":""}`, `format "TOML"`},
		{`[]`, "init-data"},
		{`{"format":"toml","body":"` + strings.Repeat("a", MaxInitData+1) + `"}`, "exceeds"},
	} {
		if _, err := DecodeInitData(json.RawMessage(tc.raw)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.60s: %v, want %q", tc.raw, err, tc.want)
		}
	}
	d512, err := InitDataDigest("sha512", doc)
	want := sha512.Sum512([]byte(doc))
	if err != nil || string(d512) != string(want[:]) {
		t.Fatalf("sha512 digest %x %v", d512, err)
	}
	d384, err := InitDataDigest("sha384", doc)
	w384 := sha512.Sum384([]byte(doc))
	if err != nil || string(d384) != string(w384[:]) {
		t.Fatalf("sha384 digest %x %v", d384, err)
	}
	d256, err := InitDataDigest("sha256", "version = \"1\"\nalgorithm = \"sha256\"\n[data]\n")
	w256 := sha256.Sum256([]byte("version = \"1\"\nalgorithm = \"sha256\"\n[data]\n"))
	if err != nil || string(d256) != string(w256[:]) {
		t.Fatalf("sha256 digest %x %v", d256, err)
	}
	for _, alg := range []string{"SHA256", "sha1", ""} {
		if _, err := InitDataDigest(alg, doc); err == nil || !strings.Contains(err.Error(), "is not sha256") {
			t.Errorf("algorithm %q: %v", alg, err)
		}
	}
	if b := InitDataBinding(d256, 48); len(b) != 48 || string(b[:32]) != string(d256) || strings.Trim(string(b[32:]), "\x00") != "" {
		t.Fatalf("binding %x", b)
	}
	if b := InitDataBinding(want[:], 32); string(b) != string(want[:32]) {
		t.Fatalf("cut binding %x", b)
	}
}

func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func TestParseAdditionalEvidence(t *testing.T) {
	m, err := ParseAdditionalEvidence(`{"nvidia":{"a":1},"sampledevice":"x"}`)
	if err != nil || len(m) != 2 || string(m["nvidia"]) != `{"a":1}` {
		t.Fatalf("%v %v", m, err)
	}
	if m, err := ParseAdditionalEvidence(""); m != nil || err != nil {
		t.Fatalf("empty: %v %v", m, err)
	}
	for _, s := range []string{"x", "[]", `{"a":}`, `{"":1}`, `{"A":1}`, `{"a-b":1}`, "{" + strings.Repeat(`"a":1,`, 0) + `"` + strings.Repeat("a", 33) + `":1}`} {
		if _, err := ParseAdditionalEvidence(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

// FuzzDecodeInitData: untrusted init-data members decode or fail cleanly,
// and a decoded body is within the size bound.
func FuzzDecodeInitData(f *testing.F) {
	for _, seed := range []string{`{"format":"toml","body":"version = \"0.1.0\"\n"}`, ` null `, `{"format":"TOML","body":""}`, `{"body":"x","format":"toml","extra":1}`, `[]`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := DecodeInitData(raw)
		if err == nil && d != nil && (d.Format != InitDataFormatTOML || len(d.Body) > MaxInitData) {
			t.Fatalf("accepted format %q with %d bytes", d.Format, len(d.Body))
		}
	})
}

// FuzzParseAdditionalEvidence: arbitrary additional_evidence strings.
func FuzzParseAdditionalEvidence(f *testing.F) {
	f.Add(`{"nvidia":{"evidence_list":[]}}`)
	f.Add("")
	f.Add("{}")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseAdditionalEvidence(s)
		if err == nil && len(m) > maxAdditionalEntries {
			t.Fatalf("%d entries accepted", len(m))
		}
	})
}
