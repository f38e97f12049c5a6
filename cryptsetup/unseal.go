package cryptsetup

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// errMismatch: the keyslot decrypted but the key failed the digest, which is
// what a wrong passphrase looks like.
var errMismatch = errors.New("digest mismatch")

// keyOptions selects keyslots and bounds the KDF memory.
type keyOptions struct {
	keyslots       []int
	memoryLimitKiB uint64
}

// unsealed is the result of a successful unseal. The caller wipes key.
type unsealed struct {
	key     []byte
	slot    *Keyslot
	kdfTime time.Duration
}

// unseal recovers the volume key with the passphrase, trying keyslots in
// priority order (or the named ones). When ctx ends it stops at once, in
// the middle of a key derivation if need be, with an error wrapping
// ctx.Err() and naming the keyslot.
func unseal(ctx context.Context, r io.ReaderAt, devSize int64, h *Header, passphrase []byte, o keyOptions) (*unsealed, error) {
	if err := h.usable(); err != nil {
		return nil, err
	}
	slots, err := h.orderedSlots(o.keyslots)
	if err != nil {
		return nil, err
	}
	var firstErr error
	var tried []string
	for _, ks := range slots {
		u, err := openSlot(ctx, r, devSize, h, ks, passphrase, o)
		if err == nil {
			return u, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("keyslot %d: %w", ks.ID, err)
		}
		if errors.Is(err, errMismatch) {
			tried = append(tried, fmt.Sprint(ks.ID))
			continue
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("keyslot %d: %w", ks.ID, err)
		}
	}
	if firstErr != nil {
		if len(tried) > 0 {
			return nil, fmt.Errorf("%w (and keyslot %s did not match the passphrase)", firstErr, strings.Join(tried, ", "))
		}
		return nil, firstErr
	}
	return nil, fmt.Errorf("%w (tried keyslot %s)", ErrWrongPassphrase, strings.Join(tried, ", "))
}

// checkSlot runs every check on a keyslot that needs no passphrase.
func checkSlot(devSize int64, h *Header, ks *Keyslot) (area cipherSpec, material int, err error) {
	if ks.digest == nil {
		return area, 0, fmt.Errorf("%w: no pbkdf2 digest covers this keyslot and the data segment", ErrCorruptKeyslot)
	}
	if h.Version == 1 {
		err = checkLUKS1Slot(h, ks)
	} else {
		err = checkLUKS2Slot(h, ks)
	}
	if err != nil {
		return area, 0, err
	}
	if h.KeyBits != 0 && ks.KeyBits != h.KeyBits {
		return area, 0, fmt.Errorf("%w: stores a %d-bit key for a %d-bit data segment", ErrCorruptKeyslot, ks.KeyBits, h.KeyBits)
	}
	if err := ks.KDF.validateRead(); err != nil {
		return area, 0, err
	}
	if _, err := hashByName(ks.AFHash); err != nil {
		return area, 0, fmt.Errorf("anti-forensic splitter: %w", err)
	}
	if ks.AFStripes <= 0 || ks.AFStripes > 1<<16 {
		return area, 0, fmt.Errorf("%w: %d anti-forensic stripes", ErrCorruptKeyslot, ks.AFStripes)
	}
	material = ks.KeyBits / 8 * ks.AFStripes
	if int64(material) > ks.AreaSize {
		return area, 0, fmt.Errorf("%w: %d bytes of key material do not fit the %d-byte area", ErrCorruptKeyslot, material, ks.AreaSize)
	}
	if area, err = parseCipher(ks.AreaCipher); err != nil {
		return area, 0, fmt.Errorf("keyslot area: %w", err)
	}
	if err := area.checkKeySize(ks.AreaKeyBits / 8); err != nil {
		return area, 0, fmt.Errorf("keyslot area: %w", err)
	}
	d := ks.digest
	if _, err := hashByName(d.hash); err != nil {
		return area, 0, fmt.Errorf("digest: %w", err)
	}
	if d.iterations == 0 || d.iterations > maxReadPBKDF2Iterations || len(d.value) > 64 || len(d.salt) == 0 {
		// An honest digest costs an eighth of a keyslot's PBKDF2 time;
		// one above the keyslot cap is damage or hostility.
		return area, 0, fmt.Errorf("%w: malformed digest (%d iterations, %d-byte value)", ErrCorruptKeyslot, d.iterations, len(d.value))
	}
	if ks.AreaOffset+roundUp(int64(material), 512) > devSize {
		return area, 0, fmt.Errorf("%w: keyslot %d key material ends at byte %d but the device has %d bytes", ErrTruncatedHeader, ks.ID, ks.AreaOffset+int64(material), devSize)
	}
	return area, material, nil
}

// openSlot tries one keyslot.
func openSlot(ctx context.Context, r io.ReaderAt, devSize int64, h *Header, ks *Keyslot, passphrase []byte, o keyOptions) (*unsealed, error) {
	area, material, err := checkSlot(devSize, h, ks)
	if err != nil {
		return nil, err
	}
	if ks.KDF.isArgon2() {
		if err := checkMemory(ks, o.memoryLimitKiB); err != nil {
			return nil, err
		}
	}
	buf := make([]byte, roundUp(int64(material), 512))
	defer wipe(buf)
	if err := readAt(r, devSize, buf, ks.AreaOffset, fmt.Sprintf("keyslot %d key material", ks.ID)); err != nil {
		return nil, err
	}
	if err := checkOverwritten(buf[:material/512*512], ks); err != nil {
		return nil, err
	}

	var key []byte
	var kdfTime time.Duration
	secretDo(func() {
		start := time.Now()
		var derived []byte
		derived, err = ks.KDF.derive(ctx, passphrase, ks.AreaKeyBits/8)
		kdfTime = time.Since(start)
		if err != nil {
			return
		}
		defer wipe(derived)
		var sc *sectorCipher
		if sc, err = newSectorCipher(area, derived); err != nil {
			return
		}
		sc.decrypt(buf, 0, 512)
		afHash, _ := hashByName(ks.AFHash)
		var cand []byte
		if cand, err = afMerge(afHash, buf, ks.KeyBits/8, ks.AFStripes); err != nil {
			return
		}
		dh, _ := hashByName(ks.digest.hash)
		var check []byte
		if check, err = pbkdf2KeyContext(ctx, dh, cand, ks.digest.salt, int(ks.digest.iterations), len(ks.digest.value)); err != nil {
			wipe(cand)
			err = fmt.Errorf("digest check stopped: %w", err)
			return
		}
		ok := subtle.ConstantTimeCompare(check, ks.digest.value) == 1
		wipe(check)
		if !ok {
			wipe(cand)
			err = errMismatch
			return
		}
		// Copy the key out of secretDo's allocations, which are erased.
		key = make([]byte, len(cand))
		copy(key, cand)
		wipe(cand)
	})
	if err != nil {
		return nil, err
	}
	return &unsealed{key: key, slot: ks, kdfTime: kdfTime}, nil
}

// checkOverwritten reports key material with a sector that is one repeated
// byte. Encrypted key material is indistinguishable from random, so such a
// sector (probability 2^-4088 by chance) means something overwrote the
// keyslot: a wipe, a filesystem written over the header, a bad copy.
func checkOverwritten(m []byte, ks *Keyslot) error {
	for off := 0; off+512 <= len(m); off += 512 {
		s := m[off : off+512]
		same := true
		for _, c := range s[1:] {
			if c != s[0] {
				same = false
				break
			}
		}
		if same {
			return fmt.Errorf("%w: keyslot %d key material at byte %d is filled with 0x%02x (overwritten or wiped)", ErrCorruptKeyslot, ks.ID, ks.AreaOffset+int64(off), s[0])
		}
	}
	return nil
}

// checkMemory refuses an argon2 keyslot that needs more memory than is
// available, before the allocation would bring the OOM killer.
func checkMemory(ks *Keyslot, limitKiB uint64) error {
	avail, where := limitKiB, "the configured limit"
	if avail == 0 {
		a, err := memAvailableKiB()
		if err != nil {
			return nil // no /proc/meminfo: nothing to compare with
		}
		avail, where = a, "MemAvailable"
	}
	need := uint64(ks.KDF.MemoryKiB)
	if need <= avail {
		return nil
	}
	return fmt.Errorf("%w: keyslot %d needs %d MiB for %s but only %d MiB is free (%s); rebuild the image with a smaller --kdf-memory (sealroot image build; cryptsetup calls it --pbkdf-memory) or give the machine more memory (--memory)",
		ErrInsufficientMemory, ks.ID, (need+1023)/1024, ks.KDF.Type, avail/1024, where)
}
