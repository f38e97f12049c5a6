package cryptsetup

import "fmt"

// KDFParamError is a keyslot KDF setting outside the limits a volume may be
// formatted with. Param names the setting: type, hash, iterations, time,
// memory or parallel (the fields of KDFOptions), so that a command line can
// name its own flag.
type KDFParamError struct {
	Param string
	Err   error
}

func (e *KDFParamError) Error() string { return e.Err.Error() }
func (e *KDFParamError) Unwrap() error { return e.Err }

// GuestOverheadMiB is the memory a sealroot guest needs besides an argon2
// keyslot's memory cost when it unlocks its root: the kernel, the initrd
// unpacked in RAM and the init itself. A 512 MiB guest can afford an argon2
// cost of 384 MiB.
const GuestOverheadMiB = 128

// MinGuestMiB is the least guest memory (MiB) that can unlock a keyslot
// derived with k: its argon2 memory cost plus GuestOverheadMiB. PBKDF2 needs
// no memory of note (0).
func (k KDF) MinGuestMiB() int {
	if !k.isArgon2() {
		return 0
	}
	return int((k.MemoryKiB+1023)/1024) + GuestOverheadMiB
}

// ResolveKDF returns the keyslot KDF that FormatLUKS1 (version 1) or
// FormatLUKS2 (version 2) would write with o, checked against cryptsetup's
// limits, without running anything slow: a PBKDF2 count left to the
// benchmark is reported as MinPBKDF2Iterations (the benchmark stays within
// the limits). A builder calls it to refuse bad settings before it copies a
// root filesystem and runs mkfs.
func (o FormatOptions) ResolveKDF(version int) (KDF, error) {
	if version != 1 && version != 2 {
		return KDF{}, fmt.Errorf("LUKS version %d: want 1 or 2", version)
	}
	if o.KDF.Iterations == 0 {
		o.KDF.Iterations = MinPBKDF2Iterations
	}
	return o.keyslotKDF(version, 64)
}
