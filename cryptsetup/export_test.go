package cryptsetup

import "context"

// Test hooks for the external test package (package cryptsetup_test),
// which cannot see unexported names but must compare volume keys with
// cryptsetup's and decrypt whole payloads.

// UnsealForTest returns the volume key and the keyslot that opened.
func UnsealForTest(v *Volume, passphrase []byte, keyslots []int) ([]byte, int, error) {
	u, err := unseal(context.Background(), v.f, v.size, v.hdr, passphrase, keyOptions{keyslots: keyslots})
	if err != nil {
		return nil, -1, err
	}
	return u.key, u.slot.ID, nil
}

// ReadPlainForTest decrypts payload bytes at a payload-relative offset.
func ReadPlainForTest(v *Volume, key, buf []byte, off int64) error { return v.readPlain(key, buf, off) }
