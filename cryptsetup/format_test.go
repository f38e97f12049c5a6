package cryptsetup

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containers/luksy"
)

func TestKDFPolicy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version int
		o       FormatOptions
		want    KDF // Iterations 1 means "benchmarked, at least the minimum"
		err     string
	}{
		{"LUKS1 machine passphrase", 1, FormatOptions{GeneratedPassphrase: true}, KDF{Type: "pbkdf2", Hash: "sha256", Iterations: 1000}, ""},
		{"LUKS1 user passphrase", 1, FormatOptions{KDF: KDFOptions{IterTime: 20 * time.Millisecond}}, KDF{Type: "pbkdf2", Hash: "sha256", Iterations: 1}, ""},
		{"LUKS1 sha512", 1, FormatOptions{GeneratedPassphrase: true, KDF: KDFOptions{Hash: "sha512"}}, KDF{Type: "pbkdf2", Hash: "sha512", Iterations: 1000}, ""},
		{"LUKS1 argon2", 1, FormatOptions{KDF: KDFOptions{Type: "argon2id"}}, KDF{}, "LUKS1 keyslots use pbkdf2"},
		{"LUKS2 machine passphrase", 2, FormatOptions{GeneratedPassphrase: true}, KDF{Type: "pbkdf2", Hash: "sha256", Iterations: 1000}, ""},
		{"LUKS2 machine passphrase argon2id", 2, FormatOptions{GeneratedPassphrase: true, GuestCPUs: 4, KDF: KDFOptions{Type: "argon2id"}}, KDF{Type: "argon2id", Time: 4, MemoryKiB: 32768, Parallel: 1}, ""},
		{"LUKS2 user 512 MiB 2 CPUs", 2, FormatOptions{GuestRAMMiB: 512, GuestCPUs: 2}, KDF{Type: "argon2id", Time: 4, MemoryKiB: 131072, Parallel: 2}, ""},
		{"LUKS2 user 16 GiB 8 CPUs", 2, FormatOptions{GuestRAMMiB: 16384, GuestCPUs: 8}, KDF{Type: "argon2id", Time: 4, MemoryKiB: 1 << 20, Parallel: 4}, ""},
		{"LUKS2 user 64 MiB", 2, FormatOptions{GuestRAMMiB: 64}, KDF{Type: "argon2id", Time: 4, MemoryKiB: 16384, Parallel: 1}, ""},
		{"LUKS2 user argon2i overrides", 2, FormatOptions{GuestRAMMiB: 512, KDF: KDFOptions{Type: "argon2i", Time: 7, MemoryKiB: 50000, Parallel: 3}}, KDF{Type: "argon2i", Time: 7, MemoryKiB: 50000, Parallel: 3}, ""},
		{"LUKS2 user pbkdf2 fixed", 2, FormatOptions{KDF: KDFOptions{Type: "pbkdf2", Iterations: 123456}}, KDF{Type: "pbkdf2", Hash: "sha256", Iterations: 123456}, ""},
		{"LUKS2 user without RAM", 2, FormatOptions{}, KDF{}, "set GuestRAMMiB"},
		{"too few iterations", 2, FormatOptions{KDF: KDFOptions{Type: "pbkdf2", Iterations: 10}}, KDF{}, "cryptsetup's minimum is 1000"},
		{"argon2 time 1", 2, FormatOptions{GuestRAMMiB: 512, KDF: KDFOptions{Time: 1}}, KDF{}, "cryptsetup's minimum is 4"},
		{"argon2 with hash", 2, FormatOptions{GuestRAMMiB: 512, KDF: KDFOptions{Hash: "sha1"}}, KDF{}, "applies to pbkdf2"},
		{"unknown hash", 2, FormatOptions{KDF: KDFOptions{Type: "pbkdf2", Hash: "md5", Iterations: 1000}}, KDF{}, "unsupported"},
		{"unknown type", 2, FormatOptions{KDF: KDFOptions{Type: "scrypt"}}, KDF{}, "want pbkdf2, argon2i or argon2id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.o.keyslotKDF(tc.version, 64)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, %v; want error %q", got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want.Iterations == 1 {
				if got.Iterations < MinPBKDF2Iterations {
					t.Fatalf("benchmarked %d iterations", got.Iterations)
				}
				tc.want.Iterations = got.Iterations
			}
			if got.Type != tc.want.Type || got.Hash != tc.want.Hash || got.Iterations != tc.want.Iterations ||
				got.Time != tc.want.Time || got.MemoryKiB != tc.want.MemoryKiB || got.Parallel != tc.want.Parallel {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// writeVolume formats plain into a temp file and returns the open file.
func writeVolume(t *testing.T, version int, plain []byte, o FormatOptions) (*os.File, int64) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "v.img"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	var end int64
	if version == 1 {
		end, err = FormatLUKS1(f, bytes.NewReader(plain), int64(len(plain)), []byte("pw"), o)
	} else {
		end, err = FormatLUKS2(f, bytes.NewReader(plain), int64(len(plain)), []byte("pw"), o)
	}
	if err != nil {
		t.Fatal(err)
	}
	return f, end
}

// Our LUKS1 header has buildah's (luksy's) layout field for field, and
// luksy, which buildah uses to check passphrases, decrypts our volume.
func TestLUKS1MatchesBuildah(t *testing.T) {
	if testing.Short() {
		t.Skip("luksy benchmarks PBKDF2 for a second")
	}
	ref, _, _, err := luksy.EncryptV1([]string{"pw"}, "")
	if err != nil {
		t.Fatal(err)
	}
	plain := make([]byte, 3<<20+1000) // not a whole number of sectors
	rand.Read(plain)
	f, end := writeVolume(t, 1, plain, FormatOptions{GeneratedPassphrase: true})
	if want := int64(LUKS1PayloadSectors*512) + roundUp(int64(len(plain)), 512); end != want {
		t.Fatalf("payload end %d, want %d", end, want)
	}
	ours := make([]byte, len(ref))
	if _, err := f.ReadAt(ours, 0); err != nil {
		t.Fatal(err)
	}
	be := binary.BigEndian
	same := func(what string, off, n int) {
		if !bytes.Equal(ours[off:off+n], ref[off:off+n]) {
			t.Errorf("%s differs: ours %q, buildah %q", what, ours[off:off+n], ref[off:off+n])
		}
	}
	same("magic and version", 0, 8)
	same("cipher name, mode and hash", 8, 96)
	same("payload offset and key bytes", 104, 8)
	same("MK digest iterations", 164, 4)
	for i := range 8 {
		o := 208 + i*48
		same("keyslot state", o, 4)
		same("keyslot key material offset and stripes", o+40, 8)
		if be.Uint32(ours[o+4:]) != be.Uint32(ours[208+4:]) {
			t.Errorf("keyslot %d iterations differ from keyslot 0's, unlike buildah's", i)
		}
	}
	// The unused keyslot areas are zeros, as in buildah's images.
	if !bytes.Equal(ours[592:4096], make([]byte, 4096-592)) || !bytes.Equal(ours[4096+256000:4096+258048], make([]byte, 2048)) {
		t.Error("padding after the header or after keyslot 0 is not zero")
	}

	// buildah's CheckLUKSPassphrase path: luksy.ReadHeaders + Decrypt.
	v1, _, _, _, err := luksy.ReadHeaders(f, luksy.ReadHeaderOptions{})
	if err != nil || v1 == nil {
		t.Fatalf("luksy.ReadHeaders: %v", err)
	}
	decrypt, bs, off, _, err := v1.Decrypt("pw", f)
	if err != nil {
		t.Fatalf("luksy decrypt: %v", err)
	}
	ct := make([]byte, 64*bs)
	f.ReadAt(ct, off)
	pt, err := decrypt(ct)
	if err != nil || !bytes.Equal(pt, plain[:len(ct)]) {
		t.Fatalf("luksy does not decrypt our payload (%v)", err)
	}
	if _, _, _, _, err := v1.Decrypt("wrong", f); err == nil {
		t.Fatal("luksy accepted a wrong passphrase")
	}
}

// luksy's LUKS2 images carry a bad secondary-header checksum; we open them
// through the primary and say so.
func TestLuksyLUKS2SecondaryHeaderWarning(t *testing.T) {
	if testing.Short() {
		t.Skip("luksy benchmarks argon2 and PBKDF2 for seconds")
	}
	hdr, _, _, err := luksy.EncryptV2([]string{"pw"}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	h, err := readHeader(bytes.NewReader(hdr), int64(len(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Warnings) != 1 || !strings.Contains(h.Warnings[0], "secondary LUKS2 header is damaged") || !strings.Contains(h.Warnings[0], "checksum") {
		t.Fatalf("warnings = %q", h.Warnings)
	}
	if h.Keyslots[0].KDF.Type != "argon2i" || h.Keyslots[0].KDF.Parallel != 16 {
		t.Fatalf("keyslot KDF = %+v", h.Keyslots[0].KDF)
	}
}

// Both formats round-trip through our reader and decrypt to the plaintext,
// for every sector size, key size and worker count, including payloads that
// are not a whole number of sectors or chunks.
func TestFormatRoundTrip(t *testing.T) {
	plain := make([]byte, 2*encryptChunk+12345)
	rand.Read(plain)
	for _, tc := range []struct {
		version int
		o       FormatOptions
	}{
		{1, FormatOptions{GeneratedPassphrase: true, Workers: 1}},
		{1, FormatOptions{GeneratedPassphrase: true, KeyBits: 256, Workers: 3}},
		{2, FormatOptions{GeneratedPassphrase: true}},
		{2, FormatOptions{GeneratedPassphrase: true, SectorSize: 512, KeyBits: 384, Workers: 1}},
		{2, FormatOptions{GeneratedPassphrase: true, SectorSize: 2048, DynamicSize: true, Label: "root", Subsystem: "sealroot", Flags: []string{"allow-discards", "no-read-workqueue"}}},
		{2, FormatOptions{GeneratedPassphrase: true, UUID: "0b1c9bd2-9a59-4c38-8a3a-6f2d3d0f6f2e", KDF: KDFOptions{Type: "argon2i", MemoryKiB: 64}}},
	} {
		f, end := writeVolume(t, tc.version, plain, tc.o)
		v, err := openFile(f.Name(), f)
		if err != nil {
			t.Fatal(err)
		}
		h := v.hdr
		ss := max(tc.o.SectorSize, 512)
		if tc.version == 2 && tc.o.SectorSize == 0 {
			ss = 4096
		}
		wantKey := tc.o.KeyBits
		if wantKey == 0 {
			wantKey = 512
		}
		if h.Version != tc.version || h.SectorSize != ss || h.KeyBits != wantKey || len(h.Warnings) > 0 {
			t.Fatalf("%+v: header v%d, %d-byte sectors, %d-bit key, warnings %q", tc.o, h.Version, h.SectorSize, h.KeyBits, h.Warnings)
		}
		if tc.o.UUID != "" && h.UUID != tc.o.UUID || h.Label != tc.o.Label || h.Subsystem != tc.o.Subsystem || strings.Join(h.Flags, ",") != strings.Join(tc.o.Flags, ",") {
			t.Fatalf("%+v: header uuid %q label %q subsystem %q flags %q", tc.o, h.UUID, h.Label, h.Subsystem, h.Flags)
		}
		padded := roundUp(int64(len(plain)), int64(ss))
		if end != h.PayloadOffset+padded {
			t.Fatalf("%+v: payload end %d, want %d", tc.o, end, h.PayloadOffset+padded)
		}
		if tc.version == 2 && !tc.o.DynamicSize && h.PayloadSize != padded {
			t.Fatalf("%+v: segment size %d, want %d", tc.o, h.PayloadSize, padded)
		}
		u, err := unseal(context.Background(), v.f, v.size, h, []byte("pw"), keyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, padded)
		if err := v.readPlain(u.key, got, 0); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[:len(plain)], plain) || !bytes.Equal(got[len(plain):], make([]byte, padded-int64(len(plain)))) {
			t.Fatalf("%+v: decrypted payload differs from the plaintext", tc.o)
		}
	}
}

// Formatting the same plaintext twice gives different volumes (fresh key,
// salts, UUID), and the randomness source is honoured.
func TestFormatRandomness(t *testing.T) {
	plain := make([]byte, 4096)
	a, _ := writeVolume(t, 2, plain, FormatOptions{GeneratedPassphrase: true})
	b, _ := writeVolume(t, 2, plain, FormatOptions{GeneratedPassphrase: true})
	ba, _ := io.ReadAll(io.NewSectionReader(a, 0, 1<<22))
	bb, _ := io.ReadAll(io.NewSectionReader(b, 0, 1<<22))
	if bytes.Equal(ba, bb) {
		t.Fatal("two formats produced identical images")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "x"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = FormatLUKS2(f, bytes.NewReader(plain), 4096, []byte("pw"), FormatOptions{GeneratedPassphrase: true, Rand: bytes.NewReader(make([]byte, 10))})
	if err == nil || !strings.Contains(err.Error(), "random") {
		t.Fatalf("short randomness source: %v", err)
	}
}
