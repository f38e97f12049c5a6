package diskconfig

import (
	"strings"
	"testing"
)

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
