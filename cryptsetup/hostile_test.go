package cryptsetup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
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
			if _, err := k.derive(context.Background(), []byte("pw"), 32); !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrCorruptKeyslot) {
				t.Errorf("%s with %d lanes: %v, want a refusal", typ, p, err)
			}
		}
	}
}

// TestHostileKDFCosts: costs no cryptsetup or luksy header has, which made
// one keyslot take minutes to hours, are refused before any derivation,
// naming the keyslot.
func TestHostileKDFCosts(t *testing.T) {
	pbkdf2 := KDFOptions{Type: KDFPBKDF2, Hash: "sha256", Iterations: 1000}
	argon := KDFOptions{Type: KDFArgon2id, Time: 4, MemoryKiB: 4096, Parallel: 1}
	for _, tc := range []struct {
		name     string
		kdf      KDFOptions
		old, new string
		want     error
		message  string
	}{
		{"pbkdf2 above the cap", pbkdf2, `"iterations":1000,"salt"`, `"iterations":67108865,"salt"`, ErrUnsupported, "pbkdf2 iteration count 67108865 exceeds the 67108864"},
		{"pbkdf2 at the old cap", pbkdf2, `"iterations":1000,"salt"`, `"iterations":2147483648,"salt"`, ErrUnsupported, "iteration count 2147483648"},
		{"argon2 time above the cap", argon, `"time":4,`, `"time":4097,`, ErrUnsupported, "argon2id time cost 4097 exceeds the 4096"},
		{"argon2 time at the old cap", argon, `"time":4,`, `"time":1048576,`, ErrUnsupported, "time cost 1048576"},
		{"digest iterations above the cap", argon, `"iterations":1000`, `"iterations":67108865`, ErrCorruptKeyslot, "malformed digest (67108865 iterations"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := hostileVolume(t, tc.kdf, tc.old, tc.new)
			_, err := v.Check([]byte("pw"), UnlockOptions{})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), "keyslot 0") || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("Check = %v, want %v naming keyslot 0 and %q", err, tc.want, tc.message)
			}
		})
	}
}

// TestCheckContextStops: key derivation stops when the context ends, for
// PBKDF2 in the middle of its iterations and for argon2, whose goroutine is
// abandoned. Each keyslot here would take seconds to derive; the context
// ends long before (the outcome, not the time, is checked).
func TestCheckContextStops(t *testing.T) {
	pbkdf2 := KDFOptions{Type: KDFPBKDF2, Hash: "sha256", Iterations: 1000}
	argon := KDFOptions{Type: KDFArgon2id, Time: 4, MemoryKiB: 4096, Parallel: 1}
	canceled := func() context.Context {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx
	}
	soon := func(t *testing.T) context.Context {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		time.AfterFunc(50*time.Millisecond, cancel)
		return ctx
	}
	deadline := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	for _, tc := range []struct {
		name     string
		kdf      KDFOptions
		old, new string
		ctx      func(t *testing.T) context.Context
		want     error
		message  string
	}{
		// 2^26 iterations, the most a header may ask for: ~10 s of PBKDF2.
		{"pbkdf2 canceled while deriving", pbkdf2, `"iterations":1000,"salt"`, `"iterations":67108864,"salt"`, soon, context.Canceled, "pbkdf2 key derivation stopped"},
		{"pbkdf2 past its deadline", pbkdf2, `"iterations":1000,"salt"`, `"iterations":67108864,"salt"`, deadline, context.DeadlineExceeded, "pbkdf2 key derivation stopped"},
		// 1000 passes over 4 MiB: a second or two of argon2.
		{"argon2 canceled while deriving", argon, `"time":4,`, `"time":1000,`, soon, context.Canceled, "abandoned (it finishes in the background)"},
		{"argon2 past its deadline", argon, `"time":4,`, `"time":1000,`, deadline, context.DeadlineExceeded, "abandoned"},
		{"canceled before the first keyslot", pbkdf2, `"iterations":1000,"salt"`, `"iterations":67108864,"salt"`, func(*testing.T) context.Context { return canceled() }, context.Canceled, "not started"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := hostileVolume(t, tc.kdf, tc.old, tc.new)
			_, err := v.CheckContext(tc.ctx(t), []byte("pw"), UnlockOptions{})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), "keyslot 0") || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("CheckContext = %v, want %v naming keyslot 0 and %q", err, tc.want, tc.message)
			}
			t.Logf("error: %v", err)
		})
	}
}

// TestDeriveWithLiveContext: a context that never ends changes nothing in
// the derived keys, across several of PBKDF2's context checks.
func TestDeriveWithLiveContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	salt := []byte("0123456789abcdef0123456789abcdef")
	for _, k := range []KDF{
		{Type: KDFPBKDF2, Hash: "sha256", Iterations: 3*pbkdf2CheckEvery + 7, salt: salt},
		{Type: KDFPBKDF2, Hash: "sha512", Iterations: 1000, salt: salt},
		{Type: KDFArgon2id, Time: 4, MemoryKiB: 64, Parallel: 2, salt: salt},
		{Type: KDFArgon2i, Time: 4, MemoryKiB: 64, Parallel: 1, salt: salt},
	} {
		want, err := k.derive(context.Background(), []byte("pw"), 64)
		if err != nil {
			t.Fatal(err)
		}
		got, err := k.derive(ctx, []byte("pw"), 64)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s under a live context: %x, %v; want %x", k, got, err, want)
		}
	}
}
