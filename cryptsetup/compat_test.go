package cryptsetup_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/cryptsetup/testdisks"
)

// The compatibility matrix: every image testdisks makes (by the real
// cryptsetup and by our formatter) must pass Check with the right keyslot
// and filesystem, give cryptsetup's own volume key, decrypt to exactly the
// filesystem that was encrypted (and e2fsprogs must read the test file out
// of it), and refuse a wrong passphrase. Our images must also satisfy
// cryptsetup's luksDump, isLuks and open --test-passphrase and stay
// byte-identical through them.

var (
	matrixOnce sync.Once
	matrixDir  string
	matrix     *testdisks.Manifest
	matrixErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if matrixDir != "" {
		os.RemoveAll(matrixDir)
	}
	os.Exit(code)
}

// needMatrix generates the matrix once per test binary run.
func needMatrix(t *testing.T) *testdisks.Manifest {
	t.Helper()
	matrixOnce.Do(func() {
		if matrixDir, matrixErr = os.MkdirTemp("", "sealroot-luks-matrix-"); matrixErr != nil {
			return
		}
		matrix, matrixErr = testdisks.Generate(matrixDir, testdisks.Options{})
	})
	if errors.Is(matrixErr, testdisks.ErrNoTools) {
		skipOrFail(t, "compatibility matrix: %v (apt-get install cryptsetup-bin e2fsprogs)", matrixErr)
	}
	if matrixErr != nil {
		t.Fatal(matrixErr)
	}
	return matrix
}

func cryptsetupPath(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"cryptsetup", "/usr/sbin/cryptsetup", "/sbin/cryptsetup"} {
		if q, err := exec.LookPath(p); err == nil {
			return q
		}
	}
	skipOrFail(t, "cryptsetup is not installed")
	return ""
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// cryptsetupKey asks cryptsetup for the volume key.
func cryptsetupKey(t *testing.T, cs, img, keyFile string) []byte {
	t.Helper()
	out, err := exec.Command(cs, "luksDump", "-q", "--dump-volume-key", "--key-file", keyFile, img).CombinedOutput()
	if err != nil {
		t.Fatalf("cryptsetup luksDump --dump-volume-key: %v: %s", err, out)
	}
	// "MK dump:\t<hex bytes>" continued on following indented lines.
	text := string(out)
	i := strings.Index(text, "MK dump:")
	if i < 0 {
		t.Fatalf("no MK dump in cryptsetup output")
	}
	var hexs strings.Builder
	for _, line := range strings.Split(text[i+len("MK dump:"):], "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || len(f[0]) != 2 {
			break
		}
		for _, b := range f {
			hexs.WriteString(b)
		}
	}
	key, err := hex.DecodeString(hexs.String())
	if err != nil {
		t.Fatalf("parsing cryptsetup key dump: %v", err)
	}
	return key
}

func TestCompatMatrix(t *testing.T) {
	m := needMatrix(t)
	cs := cryptsetupPath(t)
	for _, d := range m.Disks {
		t.Run(d.Name, func(t *testing.T) {
			img := filepath.Join(matrixDir, d.File)
			keyFile := filepath.Join(matrixDir, d.Name+".key")
			before := fileSum(t, img)

			res, err := cryptsetup.Check(img, []byte(d.Passphrase))
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if res.Keyslot != d.Keyslot || res.LUKSVersion != d.LUKSVersion || res.SectorSize != d.SectorSize || res.KeyBits != d.KeyBits || res.Cipher != d.Cipher {
				t.Errorf("Check found keyslot %d, LUKS%d, %d-byte sectors, %d-bit %s; want %d, LUKS%d, %d, %d-bit %s",
					res.Keyslot, res.LUKSVersion, res.SectorSize, res.KeyBits, res.Cipher, d.Keyslot, d.LUKSVersion, d.SectorSize, d.KeyBits, d.Cipher)
			}
			if fs := res.Filesystem; fs == nil || fs.Type != d.FSType || fs.Size != d.FSSize || fs.Label != "sealroot-test" {
				t.Errorf("Check filesystem = %+v, want %s of %d bytes labelled sealroot-test", fs, d.FSType, d.FSSize)
			}
			if !strings.HasPrefix(res.KDF, d.KDF) {
				t.Errorf("Check KDF = %q, want %s", res.KDF, d.KDF)
			}

			v, err := cryptsetup.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			key, slot, err := cryptsetup.UnsealForTest(v, []byte(d.Passphrase), nil)
			if err != nil || slot != d.Keyslot {
				t.Fatalf("unseal: slot %d, %v", slot, err)
			}
			if want := cryptsetupKey(t, cs, img, keyFile); !bytes.Equal(key, want) {
				t.Errorf("volume key differs from cryptsetup's")
			}

			// Decrypt the whole filesystem and compare with what was encrypted.
			plain := make([]byte, d.FSSize)
			if err := cryptsetup.ReadPlainForTest(v, key, plain, 0); err != nil {
				t.Fatal(err)
			}
			if s := sha256.Sum256(plain); hex.EncodeToString(s[:]) != d.FSSHA256 {
				t.Fatalf("decrypted filesystem differs from the plaintext that was encrypted")
			}
			if debugfs, err := exec.LookPath("debugfs"); err == nil {
				fsImg := filepath.Join(t.TempDir(), "fs.img")
				if err := os.WriteFile(fsImg, plain, 0o600); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(debugfs, "-R", "cat "+d.FilePath, fsImg).Output()
				if err != nil || string(out) != d.FileContent {
					t.Errorf("debugfs cat %s = %q, %v; want %q", d.FilePath, out, err, d.FileContent)
				}
			}

			if _, err := cryptsetup.Check(img, []byte(d.Passphrase+"x")); !errors.Is(err, cryptsetup.ErrWrongPassphrase) {
				t.Errorf("wrong passphrase: %v, want ErrWrongPassphrase", err)
			}

			// cryptsetup reads our images as they are, without repairs.
			if d.Maker == "sealroot" {
				for _, args := range [][]string{
					{"isLuks", img},
					{"luksDump", img},
					{"open", "--test-passphrase", "--key-file", keyFile, img},
				} {
					if out, err := exec.Command(cs, args...).CombinedOutput(); err != nil {
						t.Errorf("cryptsetup %s: %v: %s", strings.Join(args, " "), err, out)
					}
				}
				if out, err := exec.Command(cs, "open", "--test-passphrase", "--key-file", "/dev/null", img).CombinedOutput(); err == nil {
					t.Errorf("cryptsetup open --test-passphrase accepted an empty passphrase: %s", out)
				}
				if len(v.Header().Warnings) > 0 {
					t.Errorf("header warnings on our own image: %v", v.Header().Warnings)
				}
			}
			if after := fileSum(t, img); after != before {
				t.Errorf("image changed during the checks (sha256 %s -> %s)", before, after)
			}
		})
	}
}

// skipOrFail skips a test whose prerequisite is missing, except under
// CI=true, where `make deps` has installed everything and a skip would hide
// a broken setup.
func skipOrFail(t testing.TB, format string, a ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("prerequisite missing under CI: "+format, a...)
	}
	t.Skipf(format, a...)
}
