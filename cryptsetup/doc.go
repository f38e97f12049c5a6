// Package cryptsetup is sealroot's LUKS layer: the KRUN footer that carries
// the workload config at the end of a disk, unlocking LUKS1/LUKS2 volumes
// into dm-crypt mappings without the cryptsetup binary, and formatting LUKS
// volumes in pure Go (LUKS1 byte-compatible with buildah's images).
//
// # Reading and unlocking
//
// Open parses the header itself: LUKS1's binary header, or both LUKS2
// metadata copies with their checksums (the newer valid copy wins, a damaged
// copy becomes a Header warning, which is how luksy's bad secondary
// checksum shows up). Every size, offset and cost read from the disk is
// bounded before it is used, since the header is attacker-controlled until
// the digest has verified the key. anatol/luks.go is not used for this: its
// volume key is unexported (so no user-space check), it reads only the
// primary LUKS2 header and checks neither bounds nor memory.
//
// Keyslots are tried in LUKS2 priority order (prefer, then normal; "ignore"
// only when named in UnlockOptions.Keyslots), each one fully checked before
// any key derivation: placement inside the keyslot area, KDF parameters,
// AES-XTS for both the area and the data segment, and key material that has
// not been overwritten. An argon2 keyslot whose memory cost exceeds
// MemAvailable is refused with ErrInsufficientMemory instead of meeting the
// OOM killer; KDF costs above what any cryptsetup or luksy header uses
// (PBKDF2 2^26 iterations, argon2 2^12 passes and 255 lanes) are refused
// as ErrUnsupported. Then the KDF (PBKDF2 with any hash LUKS uses and Go
// has, argon2i, argon2id), XTS decryption of the key material, the AF merge
// and the PBKDF2 digest comparison. UnlockContext and CheckContext stop when
// their context ends: PBKDF2 checks it every few thousand iterations, and an
// argon2 run, which cannot be interrupted, is abandoned to finish in the
// background. A wrong passphrase and a keyslot whose key
// material changed by a few bits are cryptographically the same event, so
// both are ErrWrongPassphrase; structural damage is ErrCorruptKeyslot.
//
// (*Volume).Unlock then maps the data segment with dm-crypt through
// device-mapper ioctls: devmapper.go creates, resumes and removes the
// device, and this package loads the crypt table itself (see Secrets). The
// table honours the segment's offset, size (or the device end for LUKS1 and
// "dynamic"), sector size and IV tweak and the LUKS2 persistent flags. The
// node is found without udev: /dev/dm-N, named by sysfs and created by
// devtmpfs, or else /dev/mapper/<name> made with mknod. KernelModules names
// the modules the cipher needs (xts needs ecb, which an initrd without
// modprobe must load itself).
//
// Check does the same unlock in user space (no root, no device-mapper),
// decrypts the first 128 KiB of the payload and identifies the filesystem.
// Inspect reads footer and header without a passphrase.
//
// # Formatting
//
// FormatLUKS1 and FormatLUKS2 stream a plaintext (a filesystem image) into
// an encrypted volume: the header region is built in memory, the payload
// is encrypted in 1 MiB chunks by one goroutine per CPU (crypto/aes with
// x/crypto/xts) and written in place, so memory stays at a few MiB whatever
// the image size. LUKS1 reproduces buildah's layout; LUKS2 writes both
// metadata copies with correct checksums, so cryptsetup reads the image
// without rewriting a byte. FormatOptions carries the KDF policy: minimal
// work for a machine passphrase (GeneratePassphrase), argon2id sized to the
// guest's RAM for a human one.
//
// # Secrets
//
// What this package wipes: every buffer it allocates for derived keys,
// volume keys, decrypted key material, AF stripes, HMAC pads and saved HMAC
// states, the PBKDF2 running blocks, and the DM_TABLE_LOAD ioctl buffer
// holding the key in hex (the ioctl also sets DM_SECURE_DATA_FLAG so that
// the kernel wipes its copy). That is why PBKDF2 is implemented here
// (crypto/pbkdf2 takes the password as an immutable string) and why the
// table load bypasses devmapper.go (which formats the key into a string).
// The passphrase belongs to the caller, who should Wipe it.
//
// What Go cannot promise: the garbage collector may have copied a buffer
// before it was wiped (stack growth moves stacks; the heap does not move
// today, but nothing guarantees it); hash.Hash implementations, crypto/aes
// key schedules and x/crypto/argon2's memory blocks keep derived state in
// allocations this package cannot reach; register and stack spills are
// never cleared. Built with GOEXPERIMENT=runtimesecret (Go 1.26), key
// derivation and unsealing run inside runtime/secret.Do, which erases the
// stack and registers they used and their heap allocations once freed —
// except the goroutines argon2 starts for its lanes. Memory is not locked,
// so a system with swap may write secrets to disk; the guest initrd has
// none.
package cryptsetup
