// Package testdisks makes the LUKS compatibility matrix: small disk images
// holding a real ext4 filesystem, encrypted by the real cryptsetup (LUKS1,
// LUKS2 with each KDF, sector size, key size and keyslot layout) and by
// sealroot's own formatter, plus a manifest saying how to open each one and
// what must be inside. The host tests of package cryptsetup check every
// image in user space; the lead's QEMU harness attaches the same images to a
// guest where the in-guest tests unlock them with dm-crypt.
//
// It runs on the host without root or device-mapper: filesystems come from
// `mkfs.ext4 -d`, cryptsetup encrypts them in place with
// `reencrypt --encrypt --force-offline-reencrypt` (LUKS2; LUKS1 by
// `convert --type luks1` of a LUKS2 pbkdf2 image), and sealroot's images
// are written by cryptsetup.FormatLUKS1/FormatLUKS2.
//
// # Manifest (manifest.json, format version 1)
//
//	{"version":1,"disks":[{
//	  "name":"cs-luks2-argon2id-4k",   // unique; the image is <name>.img
//	  "file":"cs-luks2-argon2id-4k.img",
//	  "maker":"cryptsetup",            // or "sealroot"
//	  "luks_version":2, "uuid":"…",    // the LUKS UUID identifies the disk
//	  "passphrase":"…",                 // test secret, also in <name>.key
//	  "keyslot":0,                     // the keyslot the passphrase opens
//	  "cipher":"aes-xts-plain64","key_bits":512,"sector_size":4096,
//	  "kdf":"argon2id","flags":["allow-discards"],
//	  "payload_offset":2097152,
//	  "fs_type":"ext4","fs_size":8388608,
//	  "fs_sha256":"…",                 // sha256 of the first fs_size bytes of the plaintext
//	  "file_path":"/sealroot-test.txt",
//	  "file_content":"sealroot test disk cs-luks2-argon2id-4k\n"}]}
//
// Disks are matched to devices by LUKS UUID, never by order.
package testdisks

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/sealroot/sealroot/cryptsetup"
)

// ManifestName is the manifest's file name inside the output directory.
const ManifestName = "manifest.json"

// TestFile is the file every test filesystem holds.
const TestFile = "/sealroot-test.txt"

// Manifest lists the generated disks.
type Manifest struct {
	Version int    `json:"version"`
	Disks   []Disk `json:"disks"`
}

// Disk describes one image.
type Disk struct {
	Name          string   `json:"name"`
	File          string   `json:"file"`
	Maker         string   `json:"maker"`
	LUKSVersion   int      `json:"luks_version"`
	UUID          string   `json:"uuid"`
	Passphrase    string   `json:"passphrase"`
	Keyslot       int      `json:"keyslot"`
	Cipher        string   `json:"cipher"`
	KeyBits       int      `json:"key_bits"`
	SectorSize    int      `json:"sector_size"`
	KDF           string   `json:"kdf"`
	Flags         []string `json:"flags,omitempty"`
	PayloadOffset int64    `json:"payload_offset"`
	FSType        string   `json:"fs_type"`
	FSSize        int64    `json:"fs_size"`
	FSSHA256      string   `json:"fs_sha256"`
	FilePath      string   `json:"file_path"`
	FileContent   string   `json:"file_content"`
}

// Spec is one cell of the matrix.
type Spec struct {
	Name  string
	Maker string // "cryptsetup" or "sealroot"
	LUKS  int
	// KDF is pbkdf2, argon2i or argon2id; Hash the pbkdf2 hash.
	KDF, Hash  string
	SectorSize int
	KeyBits    int
	// Keyslot puts the passphrase in this keyslot (cryptsetup cells).
	Keyslot int
	// SecondKeyslot adds another passphrase in the next free keyslot and
	// makes the test passphrase that one (cryptsetup LUKS2 cells).
	SecondKeyslot bool
	// Flags are LUKS2 persistent flags (sealroot cells).
	Flags []string
}

// Matrix is the full compatibility matrix. Argon2 costs are small
// (t=4, 32 MiB, one lane) so that a TCG guest unlocks each disk in seconds.
var Matrix = []Spec{
	{Name: "cs-luks1", Maker: "cryptsetup", LUKS: 1, KDF: "pbkdf2", Hash: "sha256", SectorSize: 512, KeyBits: 512},
	{Name: "cs-luks2-argon2id-4k", Maker: "cryptsetup", LUKS: 2, KDF: "argon2id", SectorSize: 4096, KeyBits: 512},
	{Name: "cs-luks2-argon2i-512", Maker: "cryptsetup", LUKS: 2, KDF: "argon2i", SectorSize: 512, KeyBits: 512},
	{Name: "cs-luks2-pbkdf2-sha256", Maker: "cryptsetup", LUKS: 2, KDF: "pbkdf2", Hash: "sha256", SectorSize: 4096, KeyBits: 512},
	{Name: "cs-luks2-pbkdf2-sha512", Maker: "cryptsetup", LUKS: 2, KDF: "pbkdf2", Hash: "sha512", SectorSize: 512, KeyBits: 512},
	{Name: "cs-luks2-xts256", Maker: "cryptsetup", LUKS: 2, KDF: "pbkdf2", Hash: "sha256", SectorSize: 4096, KeyBits: 256},
	{Name: "cs-luks2-slot3", Maker: "cryptsetup", LUKS: 2, KDF: "argon2id", SectorSize: 4096, KeyBits: 512, Keyslot: 3},
	{Name: "cs-luks2-two-slots", Maker: "cryptsetup", LUKS: 2, KDF: "pbkdf2", Hash: "sha256", SectorSize: 4096, KeyBits: 512, SecondKeyslot: true},
	{Name: "sr-luks1", Maker: "sealroot", LUKS: 1, KDF: "pbkdf2", Hash: "sha256", SectorSize: 512, KeyBits: 512},
	{Name: "sr-luks2-argon2id", Maker: "sealroot", LUKS: 2, KDF: "argon2id", SectorSize: 4096, KeyBits: 512, Flags: []string{"allow-discards"}},
	{Name: "sr-luks2-pbkdf2-512", Maker: "sealroot", LUKS: 2, KDF: "pbkdf2", Hash: "sha256", SectorSize: 512, KeyBits: 256},
}

// Options tune Generate.
type Options struct {
	// Only limits generation to these matrix names.
	Only []string
	// FSSizeMiB is each filesystem's size; default 8.
	FSSizeMiB int
	// Cryptsetup and Mkfs are the tools; default from PATH (and /sbin).
	Cryptsetup, Mkfs string
}

// ErrNoTools is returned when cryptsetup or mkfs.ext4 is missing.
var ErrNoTools = errors.New("cryptsetup and mkfs.ext4 are needed to make the test disks")

// Generate writes every selected disk image, its key file and the
// manifest into dir (created if needed) and returns the manifest.
func Generate(dir string, o Options) (*Manifest, error) {
	var err error
	if o.Cryptsetup == "" {
		if o.Cryptsetup, err = findTool("cryptsetup"); err != nil {
			return nil, err
		}
	}
	if o.Mkfs == "" {
		if o.Mkfs, err = findTool("mkfs.ext4"); err != nil {
			return nil, err
		}
	}
	if o.FSSizeMiB == 0 {
		o.FSSizeMiB = 8
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	m := &Manifest{Version: 1}
	for _, s := range Matrix {
		if len(o.Only) > 0 && !slices.Contains(o.Only, s.Name) {
			continue
		}
		d, err := makeDisk(dir, s, o)
		if err != nil {
			return nil, fmt.Errorf("test disk %s: %w", s.Name, err)
		}
		m.Disks = append(m.Disks, *d)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestName), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	return m, nil
}

// ReadManifest reads a manifest file.
func ReadManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	if m.Version != 1 {
		return nil, fmt.Errorf("manifest %s: version %d, want 1", path, m.Version)
	}
	return &m, nil
}

// ByUUID returns the disk with a LUKS UUID, or nil.
func (m *Manifest) ByUUID(uuid string) *Disk {
	for i := range m.Disks {
		if m.Disks[i].UUID == uuid {
			return &m.Disks[i]
		}
	}
	return nil
}

func findTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(d, name); isExec(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: %s not found", ErrNoTools, name)
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

func run(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// kdfArgs are cryptsetup's flags for a spec's keyslot KDF, at test cost.
func kdfArgs(s Spec) []string {
	if s.KDF == "pbkdf2" {
		return []string{"--pbkdf", "pbkdf2", "--hash", s.Hash, "--pbkdf-force-iterations", "1000"}
	}
	return []string{"--pbkdf", s.KDF, "--pbkdf-force-iterations", "4", "--pbkdf-memory", "32768", "--pbkdf-parallel", "1"}
}

func makeDisk(dir string, s Spec, o Options) (*Disk, error) {
	d := &Disk{
		Name: s.Name, File: s.Name + ".img", Maker: s.Maker, LUKSVersion: s.LUKS,
		Passphrase: "sealroot test passphrase " + s.Name, Keyslot: s.Keyslot,
		Cipher: "aes-xts-plain64", KeyBits: s.KeyBits, SectorSize: s.SectorSize, KDF: s.KDF,
		Flags: s.Flags, FSType: "ext4", FSSize: int64(o.FSSizeMiB) << 20,
		FilePath: TestFile, FileContent: "sealroot test disk " + s.Name + "\n",
	}
	img := filepath.Join(dir, d.File)
	keyFile := filepath.Join(dir, s.Name+".key")
	if err := os.WriteFile(keyFile, []byte(d.Passphrase), 0o600); err != nil {
		return nil, err
	}

	// The plaintext filesystem.
	work, err := os.MkdirTemp(dir, ".work-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	root := filepath.Join(work, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(root, strings.TrimPrefix(TestFile, "/")), []byte(d.FileContent), 0o644); err != nil {
		return nil, err
	}
	plain := filepath.Join(work, "plain.img")
	if err := run(o.Mkfs, "-q", "-F", "-t", "ext4", "-b", "4096", "-L", "sealroot-test", "-d", root, plain, strconv.Itoa(o.FSSizeMiB)+"M"); err != nil {
		return nil, err
	}
	if d.FSSHA256, err = fileSHA256(plain, d.FSSize); err != nil {
		return nil, err
	}

	switch s.Maker {
	case "cryptsetup":
		err = makeWithCryptsetup(img, plain, keyFile, d, s, o)
	case "sealroot":
		err = makeWithSealroot(img, plain, d, s)
	default:
		err = fmt.Errorf("unknown maker %q", s.Maker)
	}
	if err != nil {
		return nil, err
	}
	v, err := cryptsetup.Open(img)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	d.UUID = v.UUID()
	d.PayloadOffset = v.Header().PayloadOffset
	return d, nil
}

// makeWithCryptsetup encrypts the filesystem in place with cryptsetup's
// offline reencryption: the image is the filesystem plus 4 MiB, of which
// cryptsetup takes 2 MiB for the header at the front.
func makeWithCryptsetup(img, plain, keyFile string, d *Disk, s Spec, o Options) error {
	if err := copyFile(img, plain, d.FSSize+4<<20); err != nil {
		return err
	}
	args := []string{"reencrypt", "-q", "--encrypt", "--type", "luks2", "--reduce-device-size", "4M",
		"--force-offline-reencrypt", "--key-file", keyFile, "--cipher", d.Cipher,
		"--key-size", strconv.Itoa(s.KeyBits), "--sector-size", strconv.Itoa(s.SectorSize),
		"--key-slot", strconv.Itoa(s.Keyslot)}
	args = append(args, kdfArgs(s)...)
	if err := run(o.Cryptsetup, append(args, img)...); err != nil {
		return err
	}
	if s.SecondKeyslot {
		second := keyFile + ".second"
		pass := d.Passphrase + " (second keyslot)"
		if err := os.WriteFile(second, []byte(pass), 0o600); err != nil {
			return err
		}
		defer os.Remove(second)
		if err := run(o.Cryptsetup, append(append([]string{"luksAddKey", "-q", "--key-file", keyFile}, kdfArgs(s)...), img, second)...); err != nil {
			return err
		}
		d.Passphrase, d.Keyslot = pass, s.Keyslot+1
		if err := os.WriteFile(keyFile, []byte(pass), 0o600); err != nil {
			return err
		}
	}
	if s.LUKS == 1 {
		return run(o.Cryptsetup, "convert", "-q", "--type", "luks1", img)
	}
	return nil
}

func makeWithSealroot(img, plain string, d *Disk, s Spec) error {
	in, err := os.Open(plain)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(img, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	fo := cryptsetup.FormatOptions{
		KeyBits: s.KeyBits, Flags: s.Flags,
		KDF: cryptsetup.KDFOptions{Type: s.KDF, Hash: s.Hash, Iterations: 1000, Time: 4, MemoryKiB: 32768, Parallel: 1},
	}
	if s.KDF == "pbkdf2" {
		fo.KDF.Time, fo.KDF.MemoryKiB, fo.KDF.Parallel = 0, 0, 0
	} else {
		fo.KDF.Iterations = 0
	}
	if s.LUKS == 1 {
		_, err = cryptsetup.FormatLUKS1(out, in, d.FSSize, []byte(d.Passphrase), fo)
	} else {
		fo.SectorSize = s.SectorSize
		_, err = cryptsetup.FormatLUKS2(out, in, d.FSSize, []byte(d.Passphrase), fo)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// copyFile copies src into a new dst of the given size (sparse tail).
func copyFile(dst, src string, size int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Truncate(size); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func fileSHA256(path string, n int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, f, n); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
