package configbind

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// refRPV is the reader configbind used before cbor.go, on fxamacker/cbor
// with the same limits: the reference the package's own reader must agree
// with.
func refRPV(tok []byte) ([]byte, error) {
	dec, _ := cbor.DecOptions{MaxNestedLevels: 16, MaxArrayElements: 1024, MaxMapPairs: 1024}.DecMode()
	var coll cbor.RawTag
	if err := dec.Unmarshal(tok, &coll); err != nil || coll.Number != ccaCollectionTag {
		return nil, fmt.Errorf("collection: %w", err)
	}
	var m map[uint64]cbor.RawMessage
	if err := dec.Unmarshal(coll.Content, &m); err != nil {
		return nil, err
	}
	var realm []byte
	if err := dec.Unmarshal(m[ccaRealmToken], &realm); err != nil || len(realm) == 0 {
		return nil, fmt.Errorf("realm: %w", err)
	}
	var sign1 cbor.RawTag
	if err := dec.Unmarshal(realm, &sign1); err != nil || sign1.Number != coseSign1Tag {
		return nil, fmt.Errorf("sign1: %w", err)
	}
	var parts []cbor.RawMessage
	if err := dec.Unmarshal(sign1.Content, &parts); err != nil || len(parts) != 4 {
		return nil, fmt.Errorf("parts: %w", err)
	}
	var payload []byte
	if err := dec.Unmarshal(parts[2], &payload); err != nil {
		return nil, err
	}
	var claims map[int64]cbor.RawMessage
	if err := dec.Unmarshal(payload, &claims); err != nil {
		return nil, err
	}
	var rpv []byte
	if err := dec.Unmarshal(claims[ccaRPVClaim], &rpv); err != nil || len(rpv) != RPVSize {
		return nil, fmt.Errorf("rpv: %w", err)
	}
	return rpv, nil
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCBORSkip(t *testing.T) {
	for _, tt := range []struct {
		hex  string
		n    int
		want string // error text; "" for well-formed
	}{
		// RFC 8949 Appendix A examples.
		{hex: "00", n: 1}, {hex: "1903e8", n: 3}, {hex: "3903e7", n: 3}, {hex: "1bffffffffffffffff", n: 9},
		{hex: "f93c00", n: 3}, {hex: "fb3ff199999999999a", n: 9}, {hex: "f4", n: 1}, {hex: "f6", n: 1}, {hex: "f8ff", n: 2},
		{hex: "c074323031332d30332d32315432303a30343a30305a", n: 22},
		{hex: "4401020304", n: 5}, {hex: "6449455446", n: 5}, {hex: "62c3bc", n: 3},
		{hex: "83010203", n: 4}, {hex: "8301820203820405", n: 8},
		{hex: "a201020304", n: 5}, {hex: "a26161016162820203", n: 9},
		{hex: "5f42010243030405ff", n: 9}, {hex: "7f657374726561646d696e67ff", n: 13},
		{hex: "9fff", n: 2}, {hex: "9f018202039f0405ffff", n: 10}, {hex: "bf61610161629f0203ffff", n: 11},
		{hex: "", want: "ends inside"},
		{hex: "18", want: "ends inside"},
		{hex: "1c", want: "reserved"},
		{hex: "1f", want: "indefinite"},
		{hex: "df00", want: "indefinite"},
		{hex: "ff", want: "break outside"},
		{hex: "f818", want: "shortest form"},
		{hex: "44010203", want: "ends inside"},
		{hex: "5bffffffffffffffff00", want: "ends inside"},
		{hex: "62c328", want: "UTF-8"},
		{hex: "5f4101", want: "ends inside"},
		{hex: "5f6161ff", want: "chunk"},
		{hex: "5f5f4101ffff", want: "chunk"},
		{hex: "8301", want: "ends inside"},
		{hex: "9f01", want: "ends inside"},
		{hex: "a1", want: "ends inside"},
		{hex: "c6", want: "ends inside"},
		{hex: "818181818181818181818100", want: "nested deeper"},
		{hex: "c6c6c6c6c6c6c6c6c600", want: "nested deeper"},
		{hex: "9a00000401" + strings.Repeat("00", 1025), want: "more than 1024"},
	} {
		b := mustHex(t, tt.hex)
		n, err := skipItem(b, 0)
		if tt.want == "" {
			if err != nil || n != tt.n {
				t.Errorf("skipItem(%s) = %d, %v; want %d", tt.hex, n, err, tt.n)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("skipItem(%s) = %d, %v; want an error containing %q", tt.hex, n, err, tt.want)
		}
	}
}

func TestCBORValues(t *testing.T) {
	s, err := cborByteString(mustHex(t, "5f42010243030405ff"))
	if err != nil || !bytes.Equal(s, []byte{1, 2, 3, 4, 5}) {
		t.Fatalf("indefinite byte string = %x, %v", s, err)
	}
	if _, err := cborByteString(mustHex(t, "440102030400")); err == nil || !strings.Contains(err.Error(), "extraneous") {
		t.Fatalf("trailing byte: %v", err)
	}
	if _, err := cborByteString(mustHex(t, "6161")); err == nil {
		t.Fatal("a text string was read as a byte string")
	}
	items, err := cborArrayItems(mustHex(t, "9f018202039f0405ffff"))
	if err != nil || len(items) != 3 || !bytes.Equal(items[1], mustHex(t, "820203")) {
		t.Fatalf("indefinite array = %x, %v", items, err)
	}
	// Keys 1, 2 and 1 again: the last value counts, as in the reference.
	v, err := cborIntMapValue(mustHex(t, "a3010a020b010c"), 1, true)
	if err != nil || !bytes.Equal(v, []byte{0x0c}) {
		t.Fatalf("map value = %x, %v", v, err)
	}
	if v, err := cborIntMapValue(mustHex(t, "a2200a0b0b"), -1, false); err != nil || !bytes.Equal(v, []byte{0x0a}) {
		t.Fatalf("negative key = %x, %v", v, err)
	}
	for _, tt := range []struct {
		hex      string
		unsigned bool
	}{
		{"a1200a", true},                  // negative key in an unsigned map
		{"a161610a", false},               // text key
		{"a13bffffffffffffffff0a", false}, // below int64
		{"a11bffffffffffffffff0a", false}, // above int64
		{"a10b0a", true},                  // no key 1
	} {
		if _, err := cborIntMapValue(mustHex(t, tt.hex), 1, tt.unsigned); err == nil {
			t.Errorf("cborIntMapValue(%s) accepted", tt.hex)
		}
	}
}

// TestCCARPVMatchesReference reads the real TF-RMM token and tokens built
// with ccatoken's builders both ways.
func TestCCARPVMatchesReference(t *testing.T) {
	toks := [][]byte{ccaToken(t, bytes.Repeat([]byte{0xab}, RPVSize)), ccaToken(t, make([]byte, RPVSize))}
	if b, err := os.ReadFile("../../host/verify/cca/testdata/tf-rmm-cca-token.cbor"); err == nil {
		toks = append(toks, b)
	} else {
		t.Fatal(err)
	}
	for i, tok := range toks {
		got, err := ccaRPV(tok)
		want, rerr := refRPV(tok)
		if err != nil || rerr != nil || !bytes.Equal(got, want) {
			t.Fatalf("token %d: ours %x, %v; reference %x, %v", i, got, err, want, rerr)
		}
	}
}

// FuzzCCARPV: whatever the package's reader accepts, the fxamacker/cbor
// reference accepts with the same value (the reader is never more lenient
// than the library it replaced), and it never panics.
func FuzzCCARPV(f *testing.F) {
	f.Add([]byte{0xd9, 0x01, 0x8f, 0xa1, 0x19, 0xac, 0xd1, 0x41, 0x00})
	if b, err := os.ReadFile("../../host/verify/cca/testdata/tf-rmm-cca-token.cbor"); err == nil {
		f.Add(b)
	}
	f.Add(ccaToken(f, bytes.Repeat([]byte{1}, RPVSize)))
	f.Fuzz(func(t *testing.T, tok []byte) {
		got, err := ccaRPV(tok)
		if err != nil {
			return
		}
		want, rerr := refRPV(tok)
		if rerr != nil || !bytes.Equal(got, want) {
			t.Fatalf("ours %x; reference %x, %v", got, want, rerr)
		}
	})
}
