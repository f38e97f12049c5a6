package cryptsetup

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

// headerSeed returns the first n bytes of a freshly formatted volume.
func headerSeed(t testing.TB, version, n int, o FormatOptions) []byte {
	f, err := os.CreateTemp(t.TempDir(), "seed")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o.GeneratedPassphrase = true
	plain := bytes.NewReader(make([]byte, 4096))
	if version == 1 {
		_, err = FormatLUKS1(f, plain, 4096, []byte("pw"), o)
	} else {
		_, err = FormatLUKS2(f, plain, 4096, []byte("pw"), o)
	}
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, n)
	f.ReadAt(b, 0)
	return b
}

// knownErr reports whether err belongs to one of the package's classes.
func knownErr(err error) bool {
	for _, s := range []error{ErrNotLUKS, ErrTruncatedHeader, ErrCorruptHeader, ErrUnsupported, ErrUnsupportedCipher, ErrCorruptKeyslot, ErrNoKeyslot, ErrPayloadBeyondDevice} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// exercise runs every passphrase-free check on a parsed header.
func exercise(t *testing.T, h *Header, size int64) {
	_ = h.usable()
	// A header's own identity always matches it, and survives validation.
	if id, err := h.VolumeID(); err == nil {
		if err := id.Validate(); err != nil {
			t.Fatalf("VolumeID of a header fails Validate: %v", err)
		}
		if err := MatchVolume(id, h); err != nil {
			t.Fatalf("a header does not match its own VolumeID: %v", err)
		}
	} else if !knownErr(err) {
		t.Fatalf("VolumeID: unclassified error %v", err)
	}
	_, _, _ = h.payloadSpan(size)
	if slots, err := h.orderedSlots(nil); err == nil {
		for _, ks := range slots {
			_, _, err := checkSlot(size, h, ks)
			if err != nil && !knownErr(err) {
				t.Fatalf("checkSlot: unclassified error %v", err)
			}
			// A keyslot that passes every check must be derivable:
			// argon2 takes 1 to 255 lanes (a uint8) and panics on 0.
			if p := ks.KDF.Parallel; err == nil && ks.KDF.isArgon2() && (p == 0 || uint32(uint8(p)) != p) {
				t.Fatalf("checkSlot accepted keyslot %d with %d argon2 lanes", ks.ID, p)
			}
		}
	}
	_, _ = h.orderedSlots([]int{0, 7, 31})
}

// FuzzReadHeader feeds arbitrary devices to the header reader: it must never
// panic, and every error must belong to a documented class.
func FuzzReadHeader(f *testing.F) {
	f.Add(headerSeed(f, 1, 4096, FormatOptions{}))
	l2 := headerSeed(f, 2, 3*luks2HdrSize, FormatOptions{Flags: []string{"allow-discards"}, Label: "x"})
	f.Add(l2)
	f.Add(l2[:luks2HdrSize+100])
	f.Add([]byte("LUKS\xba\xbe\x00\x02"))
	f.Add([]byte("LUKS\xba\xbe\x00\x03 future"))
	f.Add([]byte("not luks at all"))
	f.Fuzz(func(t *testing.T, b []byte) {
		// Claim a large device so that area checks, not the buffer end,
		// decide; reads beyond the buffer return EOF.
		for _, size := range []int64{int64(len(b)), 1 << 30} {
			h, err := readHeader(bytes.NewReader(b), size)
			if err != nil {
				if !knownErr(err) {
					t.Fatalf("unclassified error %v", err)
				}
				continue
			}
			exercise(t, h, size)
		}
	})
}

// FuzzLUKS2JSON reaches the JSON interpretation past the checksums.
func FuzzLUKS2JSON(f *testing.F) {
	l2 := headerSeed(f, 2, luks2HdrSize, FormatOptions{Flags: []string{"allow-discards"}})
	f.Add(bytes.TrimRight(l2[luks2BinSize:], "\x00"))
	// An argon2 keyslot with 256 lanes, which a uint8 conversion turned
	// into 0 and argon2 into a panic.
	a2 := headerSeed(f, 2, luks2HdrSize, FormatOptions{KDF: KDFOptions{Type: KDFArgon2id, Time: 4, MemoryKiB: 4096, Parallel: 1}})
	f.Add(bytes.Replace(bytes.TrimRight(a2[luks2BinSize:], "\x00"), []byte(`"cpus":1`), []byte(`"cpus":256`), 1))
	f.Add([]byte(`{"keyslots":{"0":{"type":"luks2","key_size":64,"af":{"type":"luks1","stripes":4000,"hash":"sha256"},"area":{"type":"raw","offset":"32768","size":"258048","encryption":"aes-cbc-essiv:sha256","key_size":32},"kdf":{"type":"argon2id","time":4,"memory":1048576,"cpus":4,"salt":"AAAA"},"priority":2}},"tokens":{"0":{"type":"x","keyslots":["0"]}},"segments":{"0":{"type":"crypt","offset":"16777216","size":"dynamic","iv_tweak":"0","encryption":"aes-xts-plain64","sector_size":4096},"1":{"type":"linear","offset":"0","size":"4096"}},"digests":{"0":{"type":"pbkdf2","keyslots":["0"],"segments":["0"],"hash":"sha256","iterations":1000,"salt":"AAAA","digest":"AAAA"}},"config":{"json_size":"12288","keyslots_size":"16744448","requirements":{"mandatory":["online-reencrypt-v2"]}}}`))
	f.Fuzz(func(t *testing.T, text []byte) {
		area := make([]byte, luks2HdrSize-luks2BinSize)
		if len(text) >= len(area) {
			return
		}
		copy(area, text)
		m, err := parseL2JSON(area, luks2HdrSize)
		if err != nil {
			if !knownErr(err) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		c := &l2Copy{hdrSize: luks2HdrSize, meta: m, binOK: true, uuid: "u"}
		h, err := headerFromL2(c, 1<<40)
		if err != nil {
			if !knownErr(err) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		exercise(t, h, 1<<40)
	})
}

func TestReadHeaderRejects(t *testing.T) {
	l1 := headerSeed(t, 1, 1<<22, FormatOptions{})
	l2 := headerSeed(t, 2, 1<<22, FormatOptions{})
	mut := func(b []byte, off int, v ...byte) []byte {
		c := append([]byte(nil), b...)
		copy(c[off:], v)
		return c
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrNotLUKS, "device has 0 bytes"},
		{"version 3", mut(l1, 7, 3), ErrUnsupported, "LUKS version 3"},
		{"LUKS1 keyslot state", mut(l1, 208, 1, 2, 3, 4), ErrCorruptHeader, "keyslot 0 has state 0x01020304"},
		{"LUKS1 key bytes 0", mut(l1, 108, 0, 0, 0, 0), ErrCorruptHeader, "key length 0"},
		{"LUKS2 bad header size", mut(mut(l2, 8, 0, 0, 0, 0, 0, 0, 0x50, 0), luks2HdrSize+8, 0, 0, 0, 0, 0, 0, 0x50, 0), ErrCorruptHeader, "metadata size 20480"},
		{"LUKS2 JSON garbage", mut(mut(l2, 4096, 'x'), luks2HdrSize+4096, 'x'), ErrCorruptHeader, "checksum"},
	} {
		_, err := readHeader(bytes.NewReader(tc.b), int64(len(tc.b)))
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %v with %q", tc.name, err, tc.want, tc.msg)
		}
	}
}

// The JSON framing rules cryptsetup applies: one object, then only NULs,
// and a json_size matching the area.
func TestParseL2JSONFraming(t *testing.T) {
	valid := bytes.TrimRight(headerSeed(t, 2, luks2HdrSize, FormatOptions{})[luks2BinSize:], "\x00")
	area := func(s string) []byte {
		a := make([]byte, luks2HdrSize-luks2BinSize)
		copy(a, s)
		return a
	}
	if _, err := parseL2JSON(area(string(valid)), luks2HdrSize); err != nil {
		t.Fatalf("valid JSON rejected: %v", err)
	}
	for _, tc := range []struct{ name, text, msg string }{
		{"leading space", " " + string(valid), "does not start with '{'"},
		{"trailing garbage", string(valid) + "\x00junk", "non-zero bytes after the JSON"},
		{"json_size", strings.Replace(string(valid), `"json_size":"12288"`, `"json_size":"4096"`, 1), "does not match"},
		{"keyslots_size", strings.Replace(string(valid), `"keyslots_size":"2064384"`, `"keyslots_size":"100"`, 1), "multiple of 4096"},
		{"missing digests", strings.Replace(string(valid), `"digests"`, `"digestz"`, 1), "lacks one of"},
		{"not an object", "{]", "LUKS2 JSON"},
	} {
		if _, err := parseL2JSON(area(tc.text), luks2HdrSize); !errors.Is(err, ErrCorruptHeader) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.msg)
		}
	}
	full := make([]byte, luks2HdrSize-luks2BinSize)
	for i := range full {
		full[i] = '{'
	}
	if _, err := parseL2JSON(full, luks2HdrSize); !errors.Is(err, ErrCorruptHeader) {
		t.Errorf("no terminating NUL: %v", err)
	}
}

func TestParseU64(t *testing.T) {
	for _, tc := range []struct {
		s  string
		v  uint64
		ok bool
	}{
		{"0", 0, true}, {"18446744073709551615", 1<<64 - 1, true}, {"18446744073709551616", 0, false},
		{"", 0, false}, {"-1", 0, false}, {"1e3", 0, false}, {"+5", 0, false}, {" 5", 0, false},
	} {
		v, err := parseU64(tc.s, "x")
		if (err == nil) != tc.ok || v != tc.v {
			t.Errorf("parseU64(%q) = %d, %v", tc.s, v, err)
		}
	}
}
