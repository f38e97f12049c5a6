package cryptsetup_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/wire/diskconfig"
)

var testPass = []byte("correct horse battery staple")

// fakeExt4 is a plaintext that Check recognises: an ext4 superblock
// claiming a filesystem of the given size, followed by zeros.
func fakeExt4(size int64) []byte {
	b := make([]byte, size)
	sb := b[1024:]
	binary.LittleEndian.PutUint32(sb[4:], uint32(size/4096)) // blocks
	binary.LittleEndian.PutUint32(sb[24:], 2)                // 4096-byte blocks
	binary.LittleEndian.PutUint16(sb[56:], 0xEF53)
	binary.LittleEndian.PutUint32(sb[0x60:], 0x40) // extents: ext4
	copy(sb[0x78:], "fake")
	return b
}

// formatted writes a small volume made by our formatter and returns its path.
func formatted(t *testing.T, version int, plain []byte, o cryptsetup.FormatOptions) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if o.KDF.Type == "" {
		o.GeneratedPassphrase = true
	}
	if version == 1 {
		_, err = cryptsetup.FormatLUKS1(f, bytes.NewReader(plain), int64(len(plain)), testPass, o)
	} else {
		_, err = cryptsetup.FormatLUKS2(f, bytes.NewReader(plain), int64(len(plain)), testPass, o)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// patch overwrites bytes of a file.
func patch(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// sparse creates a file of the given size.
func sparse(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err == nil {
		err = f.Truncate(size)
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func TestErrors(t *testing.T) {
	plain := fakeExt4(1 << 20)
	argon := cryptsetup.FormatOptions{KDF: cryptsetup.KDFOptions{Type: "argon2id", Time: 4, MemoryKiB: 8192, Parallel: 1}}
	for _, tc := range []struct {
		name    string
		make    func(t *testing.T) string
		pass    []byte
		opts    cryptsetup.UnlockOptions
		want    error
		message string // a substring of the error text
	}{
		{
			name: "wrong passphrase",
			make: func(t *testing.T) string { return formatted(t, 2, plain, cryptsetup.FormatOptions{}) },
			pass: []byte("Tr0ub4dor&3"), want: cryptsetup.ErrWrongPassphrase,
			message: "no keyslot matches the passphrase (tried keyslot 0)",
		},
		{
			name: "not LUKS",
			make: func(t *testing.T) string {
				p := filepath.Join(t.TempDir(), "plain.img")
				os.WriteFile(p, plain, 0o600)
				return p
			},
			want: cryptsetup.ErrNotLUKS, message: "no LUKS magic",
		},
		{
			name: "LUKS1 truncated in the header",
			make: func(t *testing.T) string {
				p := formatted(t, 1, plain, cryptsetup.FormatOptions{})
				truncate(t, p, 300)
				return p
			},
			want: cryptsetup.ErrTruncatedHeader, message: "LUKS1 header at bytes 0-592, but the device has 300 bytes",
		},
		{
			name: "LUKS1 truncated in the key material",
			make: func(t *testing.T) string {
				p := formatted(t, 1, plain, cryptsetup.FormatOptions{})
				truncate(t, p, 100000)
				return p
			},
			want: cryptsetup.ErrTruncatedHeader, message: "LUKS1 key material ends at byte 260096 but the device has 100000 bytes",
		},
		{
			name: "LUKS2 truncated in the secondary header",
			make: func(t *testing.T) string {
				p := formatted(t, 2, plain, cryptsetup.FormatOptions{})
				truncate(t, p, 20000)
				return p
			},
			want: cryptsetup.ErrTruncatedHeader, message: "but the device has 20000 bytes",
		},
		{
			name: "LUKS2 truncated in the keyslot area",
			make: func(t *testing.T) string {
				p := formatted(t, 2, plain, cryptsetup.FormatOptions{})
				truncate(t, p, 100000)
				return p
			},
			want: cryptsetup.ErrTruncatedHeader, message: "keyslot areas end at byte 2097152",
		},
		{
			name: "LUKS2 payload cut short",
			make: func(t *testing.T) string {
				p := formatted(t, 2, plain, cryptsetup.FormatOptions{})
				truncate(t, p, cryptsetup.LUKS2PayloadOffset+4096)
				return p
			},
			want: cryptsetup.ErrPayloadBeyondDevice, message: "but the device has only 2101248 bytes",
		},
		{
			name: "LUKS1 without payload",
			make: func(t *testing.T) string {
				p := formatted(t, 1, plain, cryptsetup.FormatOptions{})
				truncate(t, p, cryptsetup.LUKS1PayloadSectors*512)
				return p
			},
			want: cryptsetup.ErrPayloadBeyondDevice, message: "payload starts at byte 2068480",
		},
		{
			name: "keyslot wiped",
			make: func(t *testing.T) string {
				p := formatted(t, 2, plain, cryptsetup.FormatOptions{})
				patch(t, p, 32768+4096, make([]byte, 512))
				return p
			},
			want: cryptsetup.ErrCorruptKeyslot, message: "keyslot 0 key material at byte 36864 is filled with 0x00",
		},
		{
			name: "LUKS1 keyslot overwritten",
			make: func(t *testing.T) string {
				p := formatted(t, 1, plain, cryptsetup.FormatOptions{})
				patch(t, p, 8192, bytes.Repeat([]byte{0xff}, 1024))
				return p
			},
			want: cryptsetup.ErrCorruptKeyslot, message: "filled with 0xff",
		},
		{
			// A flipped bit in the key material destroys the key just as a
			// wrong passphrase does: the two cannot be told apart.
			name: "keyslot bit flip",
			make: func(t *testing.T) string {
				p := formatted(t, 2, plain, cryptsetup.FormatOptions{})
				f, _ := os.OpenFile(p, os.O_RDWR, 0)
				var b [1]byte
				f.ReadAt(b[:], 40000)
				b[0] ^= 0x10
				f.WriteAt(b[:], 40000)
				f.Close()
				return p
			},
			want: cryptsetup.ErrWrongPassphrase,
		},
		{
			name: "both LUKS2 headers corrupt",
			make: func(t *testing.T) string {
				p := formatted(t, 2, plain, cryptsetup.FormatOptions{})
				patch(t, p, 4096+10, []byte("X"))
				patch(t, p, 16384+4096+10, []byte("X"))
				return p
			},
			want: cryptsetup.ErrCorruptHeader, message: "primary header at offset 0 fails its sha256 checksum",
		},
		{
			name: "argon2 memory above the limit",
			make: func(t *testing.T) string { return formatted(t, 2, plain, argon) },
			opts: cryptsetup.UnlockOptions{MemoryLimitKiB: 4096}, want: cryptsetup.ErrInsufficientMemory,
			message: "keyslot 0 needs 8 MiB for argon2id but only 4 MiB is free",
		},
		{
			// The fix names sealroot's own flags, not cryptsetup's.
			name: "argon2 memory hint",
			make: func(t *testing.T) string { return formatted(t, 2, plain, argon) },
			opts: cryptsetup.UnlockOptions{MemoryLimitKiB: 4096}, want: cryptsetup.ErrInsufficientMemory,
			message: "rebuild the image with a smaller --kdf-memory",
		},
		{
			name: "named keyslot missing",
			make: func(t *testing.T) string { return formatted(t, 2, plain, cryptsetup.FormatOptions{}) },
			opts: cryptsetup.UnlockOptions{Keyslots: []int{5}}, want: cryptsetup.ErrNoKeyslot,
			message: "keyslot 5 is not active (active: 0 (normal))",
		},
		{
			name: "no filesystem in the payload",
			make: func(t *testing.T) string { return formatted(t, 2, make([]byte, 1<<20), cryptsetup.FormatOptions{}) },
			want: cryptsetup.ErrNoFilesystem,
		},
		{
			name: "filesystem larger than the payload",
			make: func(t *testing.T) string {
				fs := fakeExt4(1 << 20)
				binary.LittleEndian.PutUint32(fs[1024+4:], 1024) // claims 4 MiB
				return formatted(t, 2, fs, cryptsetup.FormatOptions{})
			},
			want: cryptsetup.ErrPayloadBeyondDevice, message: "the ext4 filesystem is 4194304 bytes but the payload holds only 1048576",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.make(t)
			pass := tc.pass
			if pass == nil {
				pass = testPass
			}
			v, err := cryptsetup.Open(p)
			if err == nil {
				_, err = v.Check(pass, tc.opts)
				v.Close()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("error %q does not say %q", err, tc.message)
			}
			if strings.Contains(err.Error(), string(testPass)) {
				t.Fatal("the error text holds the passphrase")
			}
		})
	}
}

// A damaged primary LUKS2 header falls back to the secondary, with a warning.
func TestSecondaryHeaderFallback(t *testing.T) {
	p := formatted(t, 2, fakeExt4(1<<20), cryptsetup.FormatOptions{})
	patch(t, p, 4096+10, []byte("X"))
	v, err := cryptsetup.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if w := v.Header().Warnings; len(w) != 1 || !strings.Contains(w[0], "primary LUKS2 header is damaged") {
		t.Fatalf("warnings = %q", w)
	}
	if _, err := v.Check(testPass, cryptsetup.UnlockOptions{}); err != nil {
		t.Fatalf("Check through the secondary header: %v", err)
	}
}

func TestUnsupportedCipher(t *testing.T) {
	cs := cryptsetupPath(t)
	dir := t.TempDir()
	img, kf := filepath.Join(dir, "cbc.img"), filepath.Join(dir, "key")
	os.WriteFile(kf, testPass, 0o600)
	sparse(t, img, 4<<20)
	out, err := exec.Command(cs, "luksFormat", "-q", "--type", "luks1", "--cipher", "aes-cbc-essiv:sha256", "--key-size", "256",
		"--pbkdf-force-iterations", "1000", "--key-file", kf, img).CombinedOutput()
	if err != nil {
		t.Fatalf("cryptsetup luksFormat: %v: %s", err, out)
	}
	_, err = cryptsetup.Check(img, testPass)
	if !errors.Is(err, cryptsetup.ErrUnsupportedCipher) || !strings.Contains(err.Error(), "aes-cbc-essiv:sha256 (sealroot supports aes-xts-plain64") {
		t.Fatalf("Check = %v, want ErrUnsupportedCipher naming the cipher", err)
	}
	info, err := cryptsetup.Inspect(img)
	if err != nil || info.LUKS.Cipher != "aes-cbc-essiv:sha256" || !strings.Contains(info.Unusable, "unsupported cipher") {
		t.Fatalf("Inspect = %+v, %v", info, err)
	}
}

// Keyslot priorities: preferred slots first, ignored ones only when named.
func TestKeyslotPriority(t *testing.T) {
	cs := cryptsetupPath(t)
	dir := t.TempDir()
	img, kf := filepath.Join(dir, "prio.img"), filepath.Join(dir, "key")
	os.WriteFile(kf, testPass, 0o600)
	sparse(t, img, 4<<20)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(cs, args...).CombinedOutput(); err != nil {
			t.Fatalf("cryptsetup %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	fast := []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"}
	run(append([]string{"luksFormat", "-q", "--type", "luks2", "--key-file", kf}, append(fast, img)...)...)
	run(append([]string{"luksAddKey", "-q", "--key-file", kf}, append(fast, img, kf)...)...) // same passphrase in slot 1
	v, err := cryptsetup.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	slot := func(named ...int) (int, error) {
		v, err := cryptsetup.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		_, s, err := cryptsetup.UnsealForTest(v, testPass, named)
		return s, err
	}
	v.Close()
	if s, err := slot(); s != 0 || err != nil {
		t.Fatalf("normal priorities: slot %d, %v; want 0", s, err)
	}
	run("config", "--priority", "prefer", "--key-slot", "1", img)
	if s, err := slot(); s != 1 || err != nil {
		t.Fatalf("slot 1 preferred: slot %d, %v; want 1", s, err)
	}
	run("config", "--priority", "ignore", "--key-slot", "1", img)
	if s, err := slot(); s != 0 || err != nil {
		t.Fatalf("slot 1 ignored: slot %d, %v; want 0", s, err)
	}
	if s, err := slot(1); s != 1 || err != nil {
		t.Fatalf("ignored slot 1 named: slot %d, %v; want 1", s, err)
	}
	run("config", "--priority", "ignore", "--key-slot", "0", img)
	if _, err := slot(); !errors.Is(err, cryptsetup.ErrNoKeyslot) {
		t.Fatalf("all ignored: %v, want ErrNoKeyslot", err)
	}
	if s, err := slot(1, 0); s != 1 || err != nil {
		t.Fatalf("named 1,0: slot %d, %v", s, err)
	}
}

// Unlock refuses a regular file before deriving any key.
func TestUnlockNeedsBlockDevice(t *testing.T) {
	p := formatted(t, 2, fakeExt4(1<<20), cryptsetup.FormatOptions{})
	v, err := cryptsetup.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	_, err = v.Unlock(testPass, cryptsetup.UnlockOptions{Name: "test"})
	if err == nil || !strings.Contains(err.Error(), "not a block device") {
		t.Fatalf("Unlock on a file = %v", err)
	}
}

// Format rejects plaintext that does not match the announced size.
func TestFormatPlaintextSize(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "x.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o := cryptsetup.FormatOptions{GeneratedPassphrase: true}
	if _, err := cryptsetup.FormatLUKS2(f, bytes.NewReader(make([]byte, 1000)), 2000, testPass, o); err == nil || !strings.Contains(err.Error(), "plaintext ended after 1000 bytes, 2000 were announced") {
		t.Errorf("short plaintext: %v", err)
	}
	if _, err := cryptsetup.FormatLUKS1(f, bytes.NewReader(make([]byte, 3<<20)), 2<<20, testPass, o); err == nil || !strings.Contains(err.Error(), "longer than the announced") {
		t.Errorf("long plaintext: %v", err)
	}
	if _, err := cryptsetup.FormatLUKS2(f, io.MultiReader(), 0, testPass, o); err == nil {
		t.Error("empty plaintext accepted")
	}
	if _, err := cryptsetup.FormatLUKS1(f, bytes.NewReader(make([]byte, 512)), 512, testPass, cryptsetup.FormatOptions{GeneratedPassphrase: true, SectorSize: 4096}); err == nil {
		t.Error("LUKS1 accepted a 4096-byte sector size")
	}
	if _, err := cryptsetup.FormatLUKS2(f, bytes.NewReader(make([]byte, 512)), 512, testPass, cryptsetup.FormatOptions{GeneratedPassphrase: true, Flags: []string{"no-journal"}}); err == nil {
		t.Error("unknown LUKS2 flag accepted")
	}
}

// A LUKS1 volume whose only keyslot was killed has nothing to try.
func TestNoActiveKeyslot(t *testing.T) {
	p := formatted(t, 1, fakeExt4(1<<20), cryptsetup.FormatOptions{})
	patch(t, p, 208, []byte{0, 0, 0xde, 0xad}) // keyslot 0 inactive
	_, err := cryptsetup.Check(p, testPass)
	if !errors.Is(err, cryptsetup.ErrNoKeyslot) || !strings.Contains(err.Error(), "no active keyslot") {
		t.Fatalf("Check = %v", err)
	}
}

func TestInspect(t *testing.T) {
	// An unencrypted image with a footer: the filesystem and the payload
	// before the footer.
	dir := t.TempDir()
	plainImg := filepath.Join(dir, "plain.img")
	f, _ := os.Create(plainImg)
	f.Write(fakeExt4(1 << 20))
	cfg := []byte(`{"tee":"none","tee_data":"","workload_id":"w","cpus":1,"ram_mib":256,"attestation_url":""}`)
	total, err := diskconfig.AppendFooter(f, 1<<20, cfg)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	info, err := cryptsetup.Inspect(plainImg)
	if err != nil {
		t.Fatal(err)
	}
	if info.Encrypted || info.Size != total || info.Filesystem == nil || info.Filesystem.Type != "ext4" ||
		info.Footer == nil || string(info.Footer.Config) != string(cfg) || info.PayloadSize != total-diskconfig.FooterSize-int64(len(cfg)) {
		t.Fatalf("plain image: %+v footer %+v", info, info.Footer)
	}

	// A buildah-style LUKS1 image: header, payload, footer.
	img := formatted(t, 1, fakeExt4(1<<20), cryptsetup.FormatOptions{})
	f, _ = os.OpenFile(img, os.O_RDWR, 0)
	st, _ := f.Stat()
	diskconfig.AppendFooter(f, st.Size(), []byte("{not json"))
	f.Close()
	info, err = cryptsetup.Inspect(img)
	if err != nil {
		t.Fatal(err)
	}
	h := info.LUKS
	if !info.Encrypted || h.Version != 1 || h.PayloadOffset != cryptsetup.LUKS1PayloadSectors*512 || len(h.Keyslots) != 1 ||
		h.Keyslots[0].KDF.Iterations != 1000 || info.Footer.Error == "" || info.Unusable != "" {
		t.Fatalf("LUKS1 image: %+v header %+v footer %+v", info, h, info.Footer)
	}
	// LUKS1 maps to the end of the device, footer included.
	if info.PayloadSize != info.Size-info.PayloadOffset {
		t.Fatalf("payload size %d, want %d", info.PayloadSize, info.Size-info.PayloadOffset)
	}

	if _, err := cryptsetup.Inspect(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("Inspect of a missing file succeeded")
	}
}
