package cryptsetup

import "errors"

// Sentinel errors. Every error returned by this package that falls into one
// of these classes wraps the sentinel, so callers test with errors.Is and
// still get a message naming what was wrong and where. Messages never hold
// passphrases, keys or key material.
var (
	// ErrNotLUKS: the device does not start with a LUKS1 or LUKS2 header.
	ErrNotLUKS = errors.New("not a LUKS volume")
	// ErrTruncatedHeader: the device ends inside the LUKS header or its
	// keyslot areas (a short or cut-off image).
	ErrTruncatedHeader = errors.New("LUKS header is truncated")
	// ErrCorruptHeader: the header is present but unusable (bad checksum
	// on every copy, malformed JSON, impossible values).
	ErrCorruptHeader = errors.New("LUKS header is corrupt")
	// ErrUnsupported: a valid LUKS feature this package does not
	// implement (reencryption in progress, integrity, unknown KDF or hash,
	// detached header, mandatory requirements).
	ErrUnsupported = errors.New("unsupported LUKS feature")
	// ErrUnsupportedCipher: the data segment or a keyslot area uses a
	// cipher other than AES-XTS (for example aes-cbc-essiv:sha256).
	ErrUnsupportedCipher = errors.New("unsupported cipher")
	// ErrCorruptKeyslot: a keyslot is structurally damaged (key material
	// outside its area, overwritten sectors, malformed digest). A keyslot
	// damaged in a way that only changes bits of the key material cannot
	// be told apart from a wrong passphrase: that case is
	// ErrWrongPassphrase.
	ErrCorruptKeyslot = errors.New("keyslot is corrupt")
	// ErrWrongPassphrase: every usable keyslot was tried and none opened
	// with the passphrase.
	ErrWrongPassphrase = errors.New("no keyslot matches the passphrase")
	// ErrNoKeyslot: there is no keyslot to try (none active, all set to
	// priority "ignore", or a named keyslot does not exist).
	ErrNoKeyslot = errors.New("no usable keyslot")
	// ErrInsufficientMemory: an argon2 keyslot needs more memory than the
	// machine has available.
	ErrInsufficientMemory = errors.New("not enough memory for the key derivation")
	// ErrPayloadBeyondDevice: the encrypted payload starts or ends past
	// the end of the device.
	ErrPayloadBeyondDevice = errors.New("payload extends beyond the device end")
	// ErrNoFilesystem: the passphrase opened the volume but the decrypted
	// payload does not start with a filesystem this package recognises.
	ErrNoFilesystem = errors.New("no known filesystem in the decrypted payload")
)
