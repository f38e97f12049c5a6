package cryptsetup

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
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
			var back VolumeID
			if err := json.Unmarshal(raw, &back); err != nil || back.Validate() != nil {
				t.Fatalf("round trip: %v %v", err, back.Validate())
			}
			if err := back.Match(tenant.Header()); err != nil {
				t.Fatalf("the tenant's own volume: %v", err)
			}
			err = back.Match(host.Header())
			if !errors.Is(err, ErrVolumeMismatch) || !strings.Contains(err.Error(), "LUKS UUID") {
				t.Fatalf("another volume: %v, want a UUID mismatch", err)
			}

			ctx := context.Background()
			tu, err := unseal(ctx, tenant.f, tenant.size, tenant.Header(), []byte("pw"), keyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer wipe(tu.key)
			if err := back.checkKey(ctx, tu.key, tu.slot.digest); err != nil {
				t.Fatalf("the tenant's key, digest already verified: %v", err)
			}
			if err := back.checkKey(ctx, tu.key, nil); err != nil {
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
			if err := back.checkKey(ctx, hu.key, hu.slot.digest); !errors.Is(err, ErrVolumeMismatch) {
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
	if err := id.Match(forged.Header()); err != nil {
		t.Fatalf("the forged header should match the binding's fields: %v", err)
	}
	_, err = forged.Check([]byte("pw"), UnlockOptions{VolumeID: id})
	if !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("forged header unlocked with the host's passphrase: %v, want a refusal", err)
	}
}

func TestVolumeIDValidate(t *testing.T) {
	good := VolumeID{LUKS: 2, UUID: "0b6a5c3e-2c0e-4cd5-9a8e-3c1f2b7d9e01", Cipher: "aes-xts-plain64", KeyBits: 512,
		SectorSize: 4096, PayloadOffset: 16 << 20, Digest: KeyDigest{Hash: "sha256", Iterations: 1000, Salt: make([]byte, 32), Value: make([]byte, 32)}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		field string
		edit  func(*VolumeID)
	}{
		{"luks", func(v *VolumeID) { v.LUKS = 3 }},
		{"uuid", func(v *VolumeID) { v.UUID = "not-a-uuid" }},
		{"cipher", func(v *VolumeID) { v.Cipher = "" }},
		{"key_bits", func(v *VolumeID) { v.KeyBits = 7 }},
		{"sector_size", func(v *VolumeID) { v.SectorSize = 100 }},
		{"payload_offset", func(v *VolumeID) { v.PayloadOffset = 0 }},
		{"digest.hash", func(v *VolumeID) { v.Digest.Hash = "md5" }},
		{"digest.iterations", func(v *VolumeID) { v.Digest.Iterations = 0 }},
		{"digest.salt", func(v *VolumeID) { v.Digest.Salt = nil }},
		{"digest.value", func(v *VolumeID) { v.Digest.Value = make([]byte, 4) }},
	} {
		v := good
		tc.edit(&v)
		if err := v.Validate(); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v", tc.field, err)
		}
	}
}
