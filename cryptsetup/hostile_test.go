package cryptsetup

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"
)

// rewriteLUKS2JSON edits the JSON of both LUKS2 metadata copies of the
// volume in f and recomputes their checksums, as a hostile host could: the
// header stays valid and only the values change.
func rewriteLUKS2JSON(t *testing.T, f *os.File, edit func(string) string) {
	t.Helper()
	bin := make([]byte, luks2BinSize)
	if _, err := f.ReadAt(bin, 0); err != nil {
		t.Fatal(err)
	}
	hdrSize := int64(binary.BigEndian.Uint64(bin[8:]))
	for _, off := range []int64{0, hdrSize} {
		b := make([]byte, hdrSize)
		if _, err := f.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		area := b[luks2BinSize:]
		text := edit(string(bytes.TrimRight(area, "\x00")))
		if len(text) >= len(area) {
			t.Fatalf("edited JSON of %d bytes does not fit", len(text))
		}
		clear(area)
		copy(area, text)
		clear(b[luks2CsumOff : luks2CsumOff+64])
		sum := sha256.Sum256(b)
		copy(b[luks2CsumOff:], sum[:])
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
}

// hostileVolume formats a LUKS2 volume with kdf, then replaces old with
// new in its JSON, and opens it.
func hostileVolume(t *testing.T, kdf KDFOptions, old, new string) *Volume {
	t.Helper()
	f, _ := writeVolume(t, 2, make([]byte, 1<<16), FormatOptions{KDF: kdf, GeneratedPassphrase: true})
	rewriteLUKS2JSON(t, f, func(s string) string {
		if !strings.Contains(s, old) {
			t.Fatalf("%q is not in the JSON %s", old, s)
		}
		return strings.Replace(s, old, new, 1)
	})
	v, err := openFile(f.Name(), f)
	if err != nil {
		t.Fatalf("the edited header does not open: %v", err)
	}
	return v
}

// TestArgon2LanesBeyondArgon2: a keyslot asking for more argon2 lanes than
// x/crypto/argon2 takes (its lane count is a uint8, so 256 became 0 and
// argon2 panicked in PID 1) is refused, naming the keyslot.
func TestArgon2LanesBeyondArgon2(t *testing.T) {
	argon := KDFOptions{Type: KDFArgon2id, Time: 4, MemoryKiB: 4096, Parallel: 1}
	for _, tc := range []struct {
		cpus string
		want error
	}{
		{`"cpus":256`, ErrUnsupported},
		{`"cpus":65536`, ErrUnsupported},
		{`"cpus":4294967295`, ErrUnsupported},
		{`"cpus":0`, ErrCorruptKeyslot},
	} {
		t.Run(tc.cpus, func(t *testing.T) {
			v := hostileVolume(t, argon, `"cpus":1`, tc.cpus)
			_, err := v.Check([]byte("pw"), UnlockOptions{})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), "keyslot 0") || !strings.Contains(err.Error(), "parallel") {
				t.Fatalf("Check = %v, want %v naming keyslot 0 and its parallel cost", err, tc.want)
			}
			t.Logf("error: %v", err)
		})
	}
	// 255 lanes is what argon2 can take: the keyslot is tried (and the
	// changed cost gives another key, so the passphrase does not match).
	v := hostileVolume(t, argon, `"cpus":1`, `"cpus":255`)
	if _, err := v.Check([]byte("pw"), UnlockOptions{}); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("255 lanes: %v, want ErrWrongPassphrase", err)
	}
}

// TestDeriveRefusesLanes: derive itself never hands argon2 a lane count it
// would truncate or panic on, whatever validated the KDF before.
func TestDeriveRefusesLanes(t *testing.T) {
	salt := []byte("0123456789abcdef")
	for _, p := range []uint32{0, 256, 1 << 16} {
		for _, typ := range []string{KDFArgon2i, KDFArgon2id} {
			k := KDF{Type: typ, Time: 1, MemoryKiB: 8 * 1024, Parallel: p, salt: salt}
			if _, err := k.derive([]byte("pw"), 32); !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrCorruptKeyslot) {
				t.Errorf("%s with %d lanes: %v, want a refusal", typ, p, err)
			}
		}
	}
}
