package kbs

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"strings"
	"testing"
)

func TestParseInitData(t *testing.T) {
	doc := "version = \"0.1.0\"\nalgorithm = \"sha512\"\n[data]\n\"cdh.toml\" = \"x\"\n"
	d, digest, err := ParseInitData(json.RawMessage(`{"format":"toml","body":` + string(mustMarshal(doc)) + `}`))
	want := sha512.Sum512([]byte(doc))
	if err != nil || d.Body != doc || string(digest) != string(want[:]) {
		t.Fatalf("ParseInitData = %v, %x, %v", d, digest, err)
	}
	for _, raw := range []string{"", "null", " null "} {
		if d, digest, err := ParseInitData(json.RawMessage(raw)); d != nil || digest != nil || err != nil {
			t.Errorf("%q: %v %x %v", raw, d, digest, err)
		}
	}
	for _, tc := range []struct{ raw, want string }{
		{`{"format":"toml"}`, "no version"},
		{`{"format":"TOML","body":""}`, `format "TOML"`},
		{`{"format":"toml","body":"version = \"1\"\nalgorithm = \"sha256\"\n"}`, "no [data] table"},
		{`{"format":"toml","body":"algorithm = \"sha256\"\n[data]\n"}`, "no version"},
		{`{"format":"toml","body":"version = 1\nalgorithm = \"sha256\"\n[data]\n"}`, "not TOML"},
		{`{"format":"toml","body":"version = \"1\"\nalgorithm = \"SHA256\"\n[data]\n"}`, "is not sha256"},
		{`[]`, "init-data"},
		{`{"format":"toml","body":"` + strings.Repeat("a", maxInitData+1) + `"}`, "exceeds"},
	} {
		if _, _, err := ParseInitData(json.RawMessage(tc.raw)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.60s: %v, want %q", tc.raw, err, tc.want)
		}
	}
	d256, err := InitDataDigest("version = \"1\"\nalgorithm = \"sha256\"\n[data]\n")
	w256 := sha256.Sum256([]byte("version = \"1\"\nalgorithm = \"sha256\"\n[data]\n"))
	if err != nil || string(d256) != string(w256[:]) {
		t.Fatalf("sha256 digest %x %v", d256, err)
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

// FuzzParseInitData: untrusted init-data members parse or fail cleanly, and
// a digest, when returned, has a SHA-2 length.
func FuzzParseInitData(f *testing.F) {
	f.Add([]byte(`{"format":"toml","body":"version = \"0.1.0\"\nalgorithm = \"sha384\"\n[data]\nk = \"v\"\n"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"format":"toml","body":"[data]\n'a' = '''\nb\n'''"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, digest, err := ParseInitData(raw)
		if err == nil && digest != nil && len(digest) != 32 && len(digest) != 48 && len(digest) != 64 {
			t.Fatalf("digest of %d bytes", len(digest))
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
