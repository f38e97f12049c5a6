package cryptsetup

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/wire/diskconfig"
)

func openTestVolume(t *testing.T, f *os.File) *Volume {
	t.Helper()
	g, err := os.Open(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	v, err := openFile(f.Name(), g)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func TestVolumeIDBinding(t *testing.T) {
	plain := make([]byte, 1<<20)
	o := FormatOptions{GeneratedPassphrase: true}
	for _, version := range []int{1, 2} {
		t.Run(map[int]string{1: "LUKS1", 2: "LUKS2"}[version], func(t *testing.T) {
			tf, _ := writeVolume(t, version, plain, o)
			hf, _ := writeVolume(t, version, plain, o)
			tenant, host := openTestVolume(t, tf), openTestVolume(t, hf)
			id, err := tenant.Header().VolumeID()
			if err != nil {
				t.Fatal(err)
			}
			// It survives the disk config's JSON.
			raw, _ := json.Marshal(id)
			var back diskconfig.VolumeID
			if err := json.Unmarshal(raw, &back); err != nil || back.Validate() != nil {
				t.Fatalf("round trip: %v %v", err, back.Validate())
			}
			if err := MatchVolume(&back, tenant.Header()); err != nil {
				t.Fatalf("the tenant's own volume: %v", err)
			}
			err = MatchVolume(&back, host.Header())
			if !errors.Is(err, ErrVolumeMismatch) || !strings.Contains(err.Error(), "LUKS UUID") {
				t.Fatalf("another volume: %v, want a UUID mismatch", err)
			}

			ctx := context.Background()
			tu, err := unseal(ctx, tenant.f, tenant.size, tenant.Header(), []byte("pw"), keyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer wipe(tu.key)
			if err := checkVolumeKey(ctx, &back, tu.key, tu.slot.digest); err != nil {
				t.Fatalf("the tenant's key, digest already verified: %v", err)
			}
			if err := checkVolumeKey(ctx, &back, tu.key, nil); err != nil {
				t.Fatalf("the tenant's key, digest recomputed: %v", err)
			}
			// A header that opens with the host's passphrase to the host's
			// key, verified by the host's own digest (as a LUKS2 header with
			// a second digest would be): the key is not the bound one.
			hu, err := unseal(ctx, host.f, host.size, host.Header(), []byte("pw"), keyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer wipe(hu.key)
			if err := checkVolumeKey(ctx, &back, hu.key, hu.slot.digest); !errors.Is(err, ErrVolumeMismatch) {
				t.Fatalf("the host's key: %v, want ErrVolumeMismatch", err)
			}
		})
	}
}

// The host copies the bound digest, salt, iterations and UUID into the
// header of its own LUKS1 volume: the header now matches the binding, but
// the host's passphrase opens its keyslot to the host's key, which the
// copied digest rejects.
func TestVolumeIDForgedHeader(t *testing.T) {
	plain := make([]byte, 1<<20)
	o := FormatOptions{GeneratedPassphrase: true}
	tf, _ := writeVolume(t, 1, plain, o)
	hf, _ := writeVolume(t, 1, plain, o)
	tenant := openTestVolume(t, tf)
	id, err := tenant.Header().VolumeID()
	if err != nil {
		t.Fatal(err)
	}
	var hdr [592]byte
	if _, err := tf.ReadAt(hdr[:], 0); err != nil {
		t.Fatal(err)
	}
	// mk_digest, its salt and iterations (bytes 112-168), and the UUID.
	if _, err := hf.WriteAt(hdr[112:168], 112); err != nil {
		t.Fatal(err)
	}
	if _, err := hf.WriteAt(hdr[168:208], 168); err != nil {
		t.Fatal(err)
	}
	forged := openTestVolume(t, hf)
	if err := MatchVolume(id, forged.Header()); err != nil {
		t.Fatalf("the forged header should match the binding's fields: %v", err)
	}
	_, err = forged.Check([]byte("pw"), UnlockOptions{VolumeID: id})
	if !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("forged header unlocked with the host's passphrase: %v, want a refusal", err)
	}
}
