package broker

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"strings"
	"testing"
)

// TestParseInitData: the broker's reading of Trustee's init-data document
// (a string version, an algorithm and a [data] table of strings) on top of
// the wire package's envelope and digest rules.
func TestParseInitData(t *testing.T) {
	member := func(body string) json.RawMessage {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		return json.RawMessage(`{"format":"toml","body":` + string(b) + `}`)
	}
	doc := "version = \"0.1.0\"\nalgorithm = \"sha512\"\n[data]\n\"cdh.toml\" = \"x\"\n"
	digest, err := parseInitData(member(doc))
	want := sha512.Sum512([]byte(doc))
	if err != nil || string(digest) != string(want[:]) {
		t.Fatalf("parseInitData = %x, %v", digest, err)
	}
	doc256 := "version = \"1\"\nalgorithm = \"sha256\"\n[data]\n"
	d256, err := parseInitData(member(doc256))
	w256 := sha256.Sum256([]byte(doc256))
	if err != nil || string(d256) != string(w256[:]) {
		t.Fatalf("sha256 digest %x %v", d256, err)
	}
	for _, raw := range []string{"", "null", " null "} {
		if digest, err := parseInitData(json.RawMessage(raw)); digest != nil || err != nil {
			t.Errorf("%q: %x %v", raw, digest, err)
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
		{`{"format":"toml","body":"` + strings.Repeat("a", 256<<10+1) + `"}`, "exceeds"},
	} {
		if _, err := parseInitData(json.RawMessage(tc.raw)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.60s: %v, want %q", tc.raw, err, tc.want)
		}
	}
}

// FuzzParseInitData: untrusted init-data members parse or fail cleanly,
// and a digest, when returned, has a SHA-2 length.
func FuzzParseInitData(f *testing.F) {
	f.Add([]byte(`{"format":"toml","body":"version = \"0.1.0\"\nalgorithm = \"sha384\"\n[data]\nk = \"v\"\n"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"format":"toml","body":"[data]\n'a' = '''\nb\n'''"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		digest, err := parseInitData(raw)
		if err == nil && digest != nil && len(digest) != 32 && len(digest) != 48 && len(digest) != 64 {
			t.Fatalf("digest of %d bytes", len(digest))
		}
	})
}
