package kbs

import (
	"math"
	"strings"
	"testing"

	"github.com/gowebpki/jcs"
)

// TestCanonicalJSONRFC8785 runs the worked examples of RFC 8785: §3.2.2's
// mixed document and §3.2.3's member ordering by UTF-16 code units.
func TestCanonicalJSONRFC8785(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"3.2.2", `{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`, `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`},
		{"3.2.3", `{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}`, "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"\u00f6\":\"Latin Small Letter O With Diaeresis\",\"\u20ac\":\"Euro Sign\",\"\U0001F600\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}"},
		{"nested", ` { "b" : [ {"z":1,"y":{}} , [] ] , "a" : "\u2028\t" } `, "{\"a\":\"\u2028\\t\",\"b\":[{\"y\":{},\"z\":1},[]]}"},
		{"scalar", ` -0.0 `, `0`},
	} {
		got, err := canonicalJSON([]byte(tc.in))
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: %s, %v\nwant %s", tc.name, got, err, tc.want)
		}
	}
}

// TestES6NumberRFC8785 prints the doubles of RFC 8785 Appendix B, given
// by their IEEE 754 bits, as ECMAScript does.
func TestES6NumberRFC8785(t *testing.T) {
	for _, tc := range []struct {
		bits uint64
		want string
	}{
		{0x0000000000000000, "0"},
		{0x8000000000000000, "0"},
		{0x0000000000000001, "5e-324"},
		{0x8000000000000001, "-5e-324"},
		{0x7fefffffffffffff, "1.7976931348623157e+308"},
		{0xffefffffffffffff, "-1.7976931348623157e+308"},
		{0x4340000000000000, "9007199254740992"},
		{0xc340000000000000, "-9007199254740992"},
		{0x4430000000000000, "295147905179352830000"},
		{0x44b52d02c7e14af5, "9.999999999999997e+22"},
		{0x44b52d02c7e14af6, "1e+23"},
		{0x44b52d02c7e14af7, "1.0000000000000001e+23"},
		{0x444b1ae4d6e2ef4e, "999999999999999700000"},
		{0x444b1ae4d6e2ef4f, "999999999999999900000"},
		{0x444b1ae4d6e2ef50, "1e+21"},
		{0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
		{0x3eb0c6f7a0b5ed8d, "0.000001"},
		{0x41b3de4355555553, "333333333.3333332"},
		{0x41b3de4355555554, "333333333.33333325"},
		{0x41b3de4355555555, "333333333.3333333"},
		{0x41b3de4355555556, "333333333.3333334"},
		{0x41b3de4355555557, "333333333.33333343"},
		{0xbecbf647612f3696, "-0.0000033333333333333333"},
		{0x43143ff3c1cb0959, "1424953923781206.2"},
	} {
		f := math.Float64frombits(tc.bits)
		if got := es6Number(f); got != tc.want {
			t.Errorf("%016x: %s, want %s", tc.bits, got, tc.want)
		}
		if ref, err := jcs.NumberToJSON(f); err != nil || ref != tc.want {
			t.Errorf("%016x: the reference gives %s, %v", tc.bits, ref, err)
		}
	}
}

// TestCanonicalJSONRefuses: what RFC 8785 cannot canonicalize is refused
// with an error naming the problem.
func TestCanonicalJSONRefuses(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"a":1,"a":2}`, `"a" appears twice`},
		{`"\ud800"`, "without a low one"},
		{`"\udc00"`, "lone low surrogate"},
		{`"\ud800\u0041"`, "not a low one"},
		{"\"\xff\"", "invalid UTF-8"},
		{"\"\x01\"", "control character"},
		{`1e400`, "not a finite double"},
		{`01`, "malformed number"},
		{`1.`, "malformed number"},
		{`[1,]`, "unexpected character"},
		{`{"a" 1}`, "want :"},
		{`{"a":1 "b":2}`, "want , or }"},
		{`[1 2]`, "want , or ]"},
		{`"\x"`, `invalid escape`},
		{`"\u12G4"`, `invalid \u escape`},
		{`"\u+123"`, `invalid \u escape`},
		{`{} x`, "data after the value"},
		{``, "end of input"},
		{`tru`, "unexpected character"},
		{strings.Repeat("[", maxCanonDepth+1) + strings.Repeat("]", maxCanonDepth+1), "nested deeper"},
	} {
		if got, err := canonicalJSON([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.40q: %s, %v; want an error with %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := canonicalJSON([]byte(strings.Repeat("[", maxCanonDepth) + strings.Repeat("]", maxCanonDepth))); err != nil {
		t.Errorf("depth %d refused: %v", maxCanonDepth, err)
	}
}

// FuzzCanonicalJSON compares canonicalJSON with gowebpki/jcs on arbitrary
// input: where the reference canonicalizes, canonicalJSON gives the same
// bytes (or refuses only for nesting it bounds); where canonicalJSON
// succeeds, so does the reference; and canonical output is a fixed point.
func FuzzCanonicalJSON(f *testing.F) {
	f.Add([]byte(`{"numbers":[333333333.33333329,1E30,4.50,2e-3,1e-27],"s":"\u20ac\u000f\ud83d\ude00","l":[null,true,false]}`))
	f.Add([]byte(`{"additional-evidence":"","nonce":"n","tee-pubkey":{"kty":"EC","crv":"P-256","x":"a","y":"b","alg":"ECDH-ES+A256KW"}}`))
	f.Add([]byte(`[-0, 1e21, 1e-7, 123456789012345678901234567890, 5e-324]`))
	f.Add([]byte(`{"\ufb33":1,"\ud83d\ude00":2,"\u0080":3}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := canonicalJSON(in)
		want, refErr := jcs.Transform(in)
		switch {
		case err == nil && refErr != nil:
			t.Fatalf("canonicalized to %s where the reference refuses: %v", got, refErr)
		case err != nil && refErr == nil:
			if !strings.Contains(err.Error(), "nested deeper") {
				t.Fatalf("refused (%v) where the reference gives %s", err, want)
			}
		case err == nil && string(got) != string(want):
			t.Fatalf("got %s, reference %s", got, want)
		}
		if err == nil {
			if again, err := canonicalJSON(got); err != nil || string(again) != string(got) {
				t.Fatalf("not a fixed point: %s -> %s, %v", got, again, err)
			}
		}
	})
}
