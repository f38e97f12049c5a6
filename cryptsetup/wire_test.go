package cryptsetup

import (
	"slices"
	"testing"

	"github.com/sealroot/sealroot/wire/diskconfig"
)

// TestWireLimitsAgree: the limits the disk config states for a root volume
// binding and for activation flags (wire/diskconfig) are this package's:
// every digest hash it allows is one PBKDF2 here computes, its iteration
// bound is the header reader's, and its activation flags are exactly the
// ones mapped to dm-crypt parameters.
func TestWireLimitsAgree(t *testing.T) {
	for _, name := range diskconfig.KeyDigestHashes {
		if _, err := hashByName(name); err != nil {
			t.Errorf("digest hash %q: %v", name, err)
		}
	}
	for _, name := range []string{"md5", "SHA256", "blake2b-128", ""} {
		if slices.Contains(diskconfig.KeyDigestHashes, name) {
			t.Errorf("%q allowed", name)
		}
	}
	if maxReadPBKDF2Iterations != diskconfig.MaxKeyDigestIterations {
		t.Errorf("iterations: header reader %d, disk config %d", maxReadPBKDF2Iterations, diskconfig.MaxKeyDigestIterations)
	}
	var mapped []string
	for name := range knownFlags {
		mapped = append(mapped, name)
	}
	slices.Sort(mapped)
	if wire := slices.Sorted(slices.Values(diskconfig.ActivationFlags)); !slices.Equal(mapped, wire) {
		t.Errorf("activation flags: dm-crypt %v, disk config %v", mapped, wire)
	}
}
