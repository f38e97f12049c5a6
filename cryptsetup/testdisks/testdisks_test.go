package testdisks

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestMakeGuestDisks is the shell entry point for the lead's harness:
//
//	SEALROOT_MAKE_DISKS=/some/dir go test -run TestMakeGuestDisks ./cryptsetup/testdisks
//
// writes the whole matrix and manifest.json into the directory. Without the
// variable it generates two disks into a temp dir and checks the manifest.
func TestMakeGuestDisks(t *testing.T) {
	dir, only := os.Getenv("SEALROOT_MAKE_DISKS"), []string(nil)
	if dir == "" {
		dir, only = t.TempDir(), []string{"cs-luks2-pbkdf2-sha256", "sr-luks1"}
	}
	m, err := Generate(dir, Options{Only: only})
	if errors.Is(err, ErrNoTools) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	back, err := ReadManifest(filepath.Join(dir, ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Disks) != len(m.Disks) || (only != nil && len(m.Disks) != len(only)) {
		t.Fatalf("manifest has %d disks, generated %d", len(back.Disks), len(m.Disks))
	}
	for _, d := range back.Disks {
		if d.UUID == "" || len(d.FSSHA256) != 64 || d.FSSize == 0 || back.ByUUID(d.UUID).Name != d.Name {
			t.Errorf("disk %+v is incomplete", d)
		}
		st, err := os.Stat(filepath.Join(dir, d.File))
		if err != nil || st.Size() < d.PayloadOffset+d.FSSize {
			t.Errorf("image %s: %v (size too small?)", d.File, err)
		}
		if key, err := os.ReadFile(filepath.Join(dir, d.Name+".key")); err != nil || string(key) != d.Passphrase {
			t.Errorf("key file of %s does not hold the passphrase", d.Name)
		}
	}
	if back.ByUUID("nope") != nil {
		t.Error("ByUUID found a missing disk")
	}
	if os.Getenv("SEALROOT_MAKE_DISKS") != "" {
		t.Logf("wrote %d disks and %s to %s", len(m.Disks), ManifestName, dir)
	}
}

func TestReadManifestRejects(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"v2.json": `{"version":2}`, "bad.json": `{`} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		if _, err := ReadManifest(p); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}
