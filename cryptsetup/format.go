package cryptsetup

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/sealroot/sealroot/wire/diskconfig"
)

// Formatting writes a complete LUKS volume into a file in one pass: the
// header region (built in memory, at most a few MiB) at offset 0, then the
// plaintext encrypted sector by sector as it streams in. Nothing needs root
// or device-mapper, and the plaintext is never held in memory whole.
//
// LUKS1 (FormatLUKS1) reproduces the layout buildah writes through luksy:
// aes-xts-plain64, a 512-bit key, sha256, 4000 AF stripes, all eight
// keyslots laid out at 4 KiB-aligned offsets with only keyslot 0 active,
// the payload at sector 4040, and the volume-key digest at 4000 PBKDF2
// iterations. LUKS2 (FormatLUKS2) writes aes-xts-plain64 with 4096-byte
// sectors by default, 16 KiB metadata copies whose checksums are both
// correct (cryptsetup reads them without repairing anything), keyslot 0 in
// a 2 MiB header region (room for 8 keyslots of a 512-bit key), and a data
// segment of fixed size, so that a KRUN footer after the payload stays
// outside the dm-crypt mapping.

// Constants of the formats this package writes.
const (
	// LUKS1PayloadSectors is buildah's LUKS1 payload offset for a
	// 512-bit key, in 512-byte sectors.
	LUKS1PayloadSectors = 4040
	// LUKS2PayloadOffset is where FormatLUKS2 starts the payload.
	LUKS2PayloadOffset = 2 << 20
	luks2HdrSize       = 16 << 10
	luks1DigestIter    = 4000 // luksy's value
	luks2DigestIter    = 1000 // cryptsetup's minimum; the key is random
	afStripes          = 4000
	saltSize           = 32
)

// KDFOptions override the keyslot KDF policy. Zero fields take the policy
// values described on FormatOptions.
type KDFOptions struct {
	// Type is pbkdf2, argon2i or argon2id (LUKS1: pbkdf2 only).
	Type string
	// Hash is the PBKDF2 hash; default sha256. For LUKS1 it is also the
	// header hash (AF splitter and digest).
	Hash string
	// Iterations is the PBKDF2 iteration count.
	Iterations uint32
	// Time, MemoryKiB and Parallel are the argon2 costs.
	Time      uint32
	MemoryKiB uint32
	Parallel  uint32
	// IterTime is the target unlock time on this machine when PBKDF2
	// iterations are benchmarked (user passphrases); default 1s.
	IterTime time.Duration
}

// FormatOptions control FormatLUKS1 and FormatLUKS2.
//
// KDF policy. A machine passphrase (GeneratedPassphrase, as made by
// GeneratePassphrase) already carries 256 bits of entropy, so key
// stretching buys nothing and only slows every boot: it gets PBKDF2-SHA256
// with 1000 iterations, or with KDF.Type argon2i/argon2id the cryptsetup
// minimum t=4 with 32 MiB and one lane. A user passphrase gets, for LUKS2,
// argon2id with t=4, a quarter of GuestRAMMiB (at most 1 GiB, as
// cryptsetup caps it) and min(GuestCPUs, 4) lanes, so that the guest can always afford
// the unlock; for LUKS1 (and LUKS2 with KDF.Type pbkdf2), PBKDF2-SHA256
// benchmarked on this machine to KDF.IterTime. Every value can be set
// explicitly in KDF and is checked against cryptsetup's limits.
type FormatOptions struct {
	// GeneratedPassphrase says the passphrase is random (GeneratePassphrase).
	GeneratedPassphrase bool
	KDF                 KDFOptions
	// GuestRAMMiB and GuestCPUs describe the machine that will unlock the
	// volume (the config's ram_mib and cpus); they size argon2.
	GuestRAMMiB int
	GuestCPUs   int
	// KeyBits is the XTS key length: 256, 384 or 512 (default 512).
	KeyBits int
	// SectorSize is the LUKS2 encryption sector: 512, 1024, 2048 or 4096
	// (default 4096). LUKS1 always uses 512.
	SectorSize int
	// UUID is the volume UUID; default random.
	UUID string
	// Label and Subsystem are LUKS2 header labels (at most 47 bytes).
	Label, Subsystem string
	// Flags are LUKS2 persistent activation flags (allow-discards, ...).
	Flags []string
	// DynamicSize makes the LUKS2 data segment run to the device end
	// instead of ending with the payload.
	DynamicSize bool
	// Workers is the number of encryption goroutines; default GOMAXPROCS.
	Workers int
	// Rand is the randomness source; default crypto/rand.
	Rand io.Reader
}

// knownFlags are the LUKS2 persistent flags dm-crypt understands, with their
// table names.
var knownFlags = map[string]string{
	"allow-discards":         "allow_discards",
	"same-cpu-crypt":         "same_cpu_crypt",
	"submit-from-crypt-cpus": "submit_from_crypt_cpus",
	"no-read-workqueue":      "no_read_workqueue",
	"no-write-workqueue":     "no_write_workqueue",
}

// prepared is the common part of both formats.
type prepared struct {
	rnd     io.Reader
	keyLen  int
	uuid    string
	kdf     KDF
	workers int
}

func (o *FormatOptions) prepare(version int, plaintextSize int64) (*prepared, error) {
	if plaintextSize <= 0 {
		return nil, fmt.Errorf("plaintext size %d: want at least one byte", plaintextSize)
	}
	p := &prepared{rnd: o.Rand, workers: o.Workers}
	if p.rnd == nil {
		p.rnd = rand.Reader
	}
	switch o.KeyBits {
	case 0:
		p.keyLen = 64
	case 256, 384, 512:
		p.keyLen = o.KeyBits / 8
	default:
		return nil, fmt.Errorf("key size %d bits: want 256, 384 or 512", o.KeyBits)
	}
	p.uuid = o.UUID
	if p.uuid == "" {
		var b [16]byte
		if _, err := io.ReadFull(p.rnd, b[:]); err != nil {
			return nil, fmt.Errorf("reading random UUID: %w", err)
		}
		b[6] = b[6]&0x0f | 0x40
		b[8] = b[8]&0x3f | 0x80
		p.uuid = formatUUID(b[:])
	} else if !diskconfig.IsUUID(p.uuid, false) {
		return nil, fmt.Errorf("UUID %q is not a lowercase RFC 4122 UUID", p.uuid)
	}
	var err error
	if p.kdf, err = o.keyslotKDF(version, p.keyLen); err != nil {
		return nil, err
	}
	if p.kdf.salt, err = randomBytes(p.rnd, saltSize); err != nil {
		return nil, err
	}
	return p, nil
}

// keyslotKDF applies the KDF policy (see FormatOptions) for a keyslot that
// derives keyLen bytes.
func (o *FormatOptions) keyslotKDF(version, keyLen int) (KDF, error) {
	k := KDF{Type: o.KDF.Type}
	if k.Type == "" {
		k.Type = KDFArgon2id
		if version == 1 || o.GeneratedPassphrase {
			k.Type = KDFPBKDF2
		}
	}
	if version == 1 && k.Type != KDFPBKDF2 {
		return k, fmt.Errorf("LUKS1 keyslots use pbkdf2, not %s", k.Type)
	}
	switch k.Type {
	case KDFPBKDF2:
		k.Hash = o.KDF.Hash
		if k.Hash == "" {
			k.Hash = "sha256"
		}
		k.Iterations = o.KDF.Iterations
		if k.Iterations == 0 {
			if o.GeneratedPassphrase {
				k.Iterations = MinPBKDF2Iterations
			} else {
				target := o.KDF.IterTime
				if target <= 0 {
					target = time.Second
				}
				n, err := benchmarkPBKDF2(k.Hash, keyLen, target)
				if err != nil {
					return k, err
				}
				k.Iterations = n
			}
		}
	case KDFArgon2i, KDFArgon2id:
		if o.KDF.Hash != "" {
			return k, fmt.Errorf("KDF hash %q applies to pbkdf2, not %s", o.KDF.Hash, k.Type)
		}
		k.Time, k.MemoryKiB, k.Parallel = o.KDF.Time, o.KDF.MemoryKiB, o.KDF.Parallel
		if k.Time == 0 {
			k.Time = MinArgon2Time
		}
		if k.Parallel == 0 {
			k.Parallel = 1
			if !o.GeneratedPassphrase && o.GuestCPUs > 1 {
				k.Parallel = uint32(min(o.GuestCPUs, MaxArgon2Parallel))
			}
		}
		if k.MemoryKiB == 0 {
			switch {
			case o.GeneratedPassphrase:
				k.MemoryKiB = 32 << 10
			case o.GuestRAMMiB <= 0:
				return k, fmt.Errorf("argon2 memory for a user passphrase is sized to the guest: set GuestRAMMiB (or KDF.MemoryKiB)")
			default:
				m := uint64(o.GuestRAMMiB) * 1024 / 4
				k.MemoryKiB = uint32(max(min(m, 1<<20), MinArgon2MemoryKiB))
			}
		}
	}
	return k, k.validateFormat()
}

// benchmarkPBKDF2 finds the iteration count that takes target here for a
// keyLen-byte output (a 64-byte key from sha256 costs two PBKDF2 blocks).
func benchmarkPBKDF2(hashName string, keyLen int, target time.Duration) (uint32, error) {
	h, err := hashByName(hashName)
	if err != nil {
		return 0, err
	}
	pass, salt := []byte("benchmark passphrase"), make([]byte, saltSize)
	for n := 1000; ; n *= 2 {
		start := time.Now()
		pbkdf2Key(h, pass, salt, n, keyLen)
		el := time.Since(start)
		if el >= 100*time.Millisecond || n >= 1<<30 {
			it := float64(n) * float64(target) / float64(el)
			return uint32(min(max(it, MinPBKDF2Iterations), maxReadPBKDF2Iterations)), nil
		}
	}
}

func randomBytes(r io.Reader, n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("reading %d random bytes: %w", n, err)
	}
	return b, nil
}

// sealKeyslot derives the keyslot key from the passphrase and returns the
// AF-split, encrypted key material for volume key mk.
func sealKeyslot(p *prepared, afHash string, passphrase, mk []byte) ([]byte, error) {
	var material []byte
	var err error
	secretDo(func() {
		var derived []byte
		if derived, err = p.kdf.derive(context.Background(), passphrase, len(mk)); err != nil {
			return
		}
		defer wipe(derived)
		h, _ := hashByName(afHash)
		var split []byte
		if split, err = afSplit(h, mk, afStripes, p.rnd); err != nil {
			return
		}
		var sc *sectorCipher
		if sc, err = newSectorCipher(cipherSpec{"aes", "xts", "plain64"}, derived); err != nil {
			wipe(split)
			return
		}
		buf := make([]byte, roundUp(int64(len(split)), 512))
		copy(buf, split)
		wipe(split)
		sc.encrypt(buf, 0, 512)
		material = make([]byte, len(buf))
		copy(material, buf)
	})
	return material, err
}

// FormatLUKS1 writes a LUKS1 volume into w (from offset 0): the header, then
// plaintextSize bytes read from plaintext, encrypted, and zero-padded to a
// 512-byte sector. It returns the end of the payload, where a KRUN footer
// may follow (AppendFooter). Options that only LUKS2 has (SectorSize,
// Label, Flags, DynamicSize) must be unset. The caller owns the passphrase.
func FormatLUKS1(w *os.File, plaintext io.Reader, plaintextSize int64, passphrase []byte, o FormatOptions) (payloadEnd int64, err error) {
	if o.SectorSize != 0 && o.SectorSize != 512 || o.Label != "" || o.Subsystem != "" || len(o.Flags) > 0 || o.DynamicSize {
		return 0, fmt.Errorf("LUKS1 has no sector size, label, subsystem, flags or segment size options")
	}
	p, err := o.prepare(1, plaintextSize)
	if err != nil {
		return 0, fmt.Errorf("formatting LUKS1: %w", err)
	}
	mk, err := randomBytes(p.rnd, p.keyLen)
	if err != nil {
		return 0, err
	}
	defer wipe(mk)
	hashName := p.kdf.Hash
	h, _ := hashByName(hashName)
	dsalt, err := randomBytes(p.rnd, luks1SaltSize)
	if err != nil {
		return 0, err
	}
	offsets, payloadOff := luks1Layout(p.keyLen, afStripes)
	hp := &luks1Params{
		cipherName: "aes", cipherMode: "xts-plain64", hashSpec: hashName,
		payloadOffset: payloadOff, keyBytes: p.keyLen,
		digest:     pbkdf2Key(h, mk, dsalt, luks1DigestIter, luks1DigestSize),
		digestSalt: dsalt, digestIter: luks1DigestIter, uuid: p.uuid,
	}
	for i := range hp.slots {
		salt := p.kdf.salt
		if i > 0 {
			// Inactive keyslots carry a salt and the iteration count as
			// luksy writes them; cryptsetup ignores both.
			if salt, err = randomBytes(p.rnd, luks1SaltSize); err != nil {
				return 0, err
			}
		}
		hp.slots[i] = luks1SlotParams{active: i == 0, iterations: p.kdf.Iterations, salt: salt, offset: offsets[i], stripes: afStripes}
	}
	material, err := sealKeyslot(p, hashName, passphrase, mk)
	if err != nil {
		return 0, fmt.Errorf("sealing keyslot 0: %w", err)
	}
	defer wipe(material)
	head := make([]byte, payloadOff)
	defer wipe(head)
	copy(head, marshalLUKS1(hp))
	copy(head[offsets[0]:], material)
	if _, err := w.WriteAt(head, 0); err != nil {
		return 0, fmt.Errorf("writing LUKS1 header to %s: %w", w.Name(), err)
	}
	sc, err := newSectorCipher(cipherSpec{"aes", "xts", "plain64"}, mk)
	if err != nil {
		return 0, err
	}
	n, err := encryptPayload(w, payloadOff, plaintext, plaintextSize, sc, 512, 0, p.workers)
	if err != nil {
		return 0, err
	}
	return payloadOff + n, nil
}

// FormatLUKS2 writes a LUKS2 volume into w (from offset 0): both metadata
// copies, keyslot 0, then plaintextSize bytes read from plaintext,
// encrypted, and zero-padded to the sector size. It returns the end of the
// payload, where a KRUN footer may follow. The data segment's size is the
// padded payload unless DynamicSize is set. The caller owns the passphrase.
func FormatLUKS2(w *os.File, plaintext io.Reader, plaintextSize int64, passphrase []byte, o FormatOptions) (payloadEnd int64, err error) {
	ss := o.SectorSize
	switch ss {
	case 0:
		ss = 4096
	case 512, 1024, 2048, 4096:
	default:
		return 0, fmt.Errorf("sector size %d: want 512, 1024, 2048 or 4096", ss)
	}
	if len(o.Label) > 47 || len(o.Subsystem) > 47 {
		return 0, fmt.Errorf("LUKS2 label and subsystem hold at most 47 bytes")
	}
	for _, f := range o.Flags {
		if _, ok := knownFlags[f]; !ok {
			return 0, fmt.Errorf("LUKS2 flag %q: want allow-discards, same-cpu-crypt, submit-from-crypt-cpus, no-read-workqueue or no-write-workqueue", f)
		}
	}
	p, err := o.prepare(2, plaintextSize)
	if err != nil {
		return 0, fmt.Errorf("formatting LUKS2: %w", err)
	}
	mk, err := randomBytes(p.rnd, p.keyLen)
	if err != nil {
		return 0, err
	}
	defer wipe(mk)
	dsalt, err := randomBytes(p.rnd, saltSize)
	if err != nil {
		return 0, err
	}
	sha256New, _ := hashByName("sha256")
	dig := pbkdf2Key(sha256New, mk, dsalt, luks2DigestIter, 32)

	const payloadOff = LUKS2PayloadOffset
	areaOff := int64(2 * luks2HdrSize)
	areaSize := roundUp(int64(p.keyLen*afStripes), 4096)
	padded := roundUp(plaintextSize, int64(ss))
	segSize := "dynamic"
	if !o.DynamicSize {
		segSize = strconv.FormatInt(padded, 10)
	}
	b64 := base64.StdEncoding.EncodeToString
	kdf := l2KDF{Type: p.kdf.Type, Salt: b64(p.kdf.salt)}
	if p.kdf.Type == KDFPBKDF2 {
		kdf.Hash, kdf.Iterations = p.kdf.Hash, p.kdf.Iterations
	} else {
		kdf.Time, kdf.Memory, kdf.CPUs = p.kdf.Time, p.kdf.MemoryKiB, p.kdf.Parallel
	}
	meta := &l2Meta{
		Keyslots: map[string]l2Keyslot{"0": {
			Type: "luks2", KeySize: p.keyLen,
			AF: l2AF{Type: "luks1", Stripes: afStripes, Hash: "sha256"},
			Area: l2Area{Type: "raw", Offset: strconv.FormatInt(areaOff, 10), Size: strconv.FormatInt(areaSize, 10),
				Encryption: "aes-xts-plain64", KeySize: p.keyLen},
			KDF: kdf,
		}},
		Tokens: map[string]json.RawMessage{},
		Segments: map[string]l2Segment{"0": {
			Type: "crypt", Offset: strconv.Itoa(payloadOff), Size: segSize, IVTweak: "0",
			Encryption: "aes-xts-plain64", SectorSize: ss,
		}},
		Digests: map[string]l2Digest{"0": {
			Type: "pbkdf2", Keyslots: []string{"0"}, Segments: []string{"0"}, Hash: "sha256",
			Iterations: luks2DigestIter, Salt: b64(dsalt), Digest: b64(dig),
		}},
		Config: &l2Config{
			JSONSize:     strconv.Itoa(luks2HdrSize - luks2BinSize),
			KeyslotsSize: strconv.Itoa(payloadOff - 2*luks2HdrSize),
			Flags:        o.Flags,
		},
	}
	salts, err := randomBytes(p.rnd, 2*luks2SaltSize)
	if err != nil {
		return 0, err
	}
	hdr, err := marshalLUKS2(&luks2Params{
		hdrSize: luks2HdrSize, uuid: p.uuid, label: o.Label, subsystem: o.Subsystem, seqid: 1,
		salt1: salts[:luks2SaltSize], salt2: salts[luks2SaltSize:], meta: meta,
	})
	if err != nil {
		return 0, err
	}
	material, err := sealKeyslot(p, "sha256", passphrase, mk)
	if err != nil {
		return 0, fmt.Errorf("sealing keyslot 0: %w", err)
	}
	defer wipe(material)
	head := make([]byte, payloadOff)
	defer wipe(head)
	copy(head, hdr)
	copy(head[areaOff:], material)
	if _, err := w.WriteAt(head, 0); err != nil {
		return 0, fmt.Errorf("writing LUKS2 header to %s: %w", w.Name(), err)
	}
	sc, err := newSectorCipher(cipherSpec{"aes", "xts", "plain64"}, mk)
	if err != nil {
		return 0, err
	}
	n, err := encryptPayload(w, payloadOff, plaintext, plaintextSize, sc, ss, 0, p.workers)
	if err != nil {
		return 0, err
	}
	return payloadOff + n, nil
}
