package cryptsetup

import (
	"bytes"
	"context"
	"crypto/sha1" //nolint:gosec // LUKS headers may name it; it is only read here
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"encoding"
	"encoding/binary"
	"fmt"
	"hash"
	"runtime/debug"

	"github.com/jzelinskie/whirlpool"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/ripemd160" //nolint:staticcheck,gosec // LUKS volumes may use it; it is only read here
)

// KDF types as they appear in LUKS2 JSON (LUKS1 is always pbkdf2).
const (
	KDFPBKDF2   = "pbkdf2"
	KDFArgon2i  = "argon2i"
	KDFArgon2id = "argon2id"
)

// Limits cryptsetup enforces when it formats a volume; sealroot's formatter
// keeps within them so that every cryptsetup tool accepts its images.
const (
	MinPBKDF2Iterations = 1000
	MinArgon2Time       = 4
	MinArgon2MemoryKiB  = 32
	MaxArgon2MemoryKiB  = 4 << 20 // 4 GiB
	MaxArgon2Parallel   = 4
)

// Bounds applied when reading an untrusted header. They accept every header
// cryptsetup or luksy writes with default or benchmarked costs, and refuse
// costs that only a hostile or hand-made header has. They do not make a
// hostile header cheap: at the caps one keyslot still costs tens of seconds
// (2^26 PBKDF2 iterations take about 10 s per hash-sized block on a fast
// x86 core with SHA-NI, so about 20 s for a 64-byte key from SHA-256 and 25 s
// from SHA-512; argon2 at 2^12 passes over the memory MemAvailable allows
// takes minutes), and a header may hold several keyslots. The caller bounds
// the rest with a deadline: UnlockContext and CheckContext stop key
// derivation when their context ends.
const (
	// maxReadPBKDF2Iterations bounds PBKDF2 iterations of keyslots and
	// digests. cryptsetup benchmarks iterations to its --iter-time (2 s by
	// default); at the 4 to 7 million SHA-256 iterations per second of
	// current x86 cores (cryptsetup benchmark; Go's PBKDF2 here does 7M/s
	// with SHA-NI) that is 8 to 14 million, digests an eighth of it.
	// 2^26 (67,108,864) leaves about five times that.
	maxReadPBKDF2Iterations = 1 << 26
	// maxReadArgon2Time bounds argon2 passes. cryptsetup's benchmark
	// raises the memory cost first and the time cost above its minimum of
	// 4 only once the memory is at its maximum (1 GiB by default, or
	// --pbkdf-memory); luksy writes 16. 2^12 passes at a 2 s target means
	// memory forced below about 1 MiB, which defeats argon2's purpose.
	maxReadArgon2Time = 1 << 12
	// maxReadArgon2Parallel is the most lanes x/crypto/argon2 takes (its
	// lane count is a uint8). cryptsetup formats at most
	// MaxArgon2Parallel lanes, luksy writes 16; the argon2 specification
	// allows up to 2^24-1, which no LUKS tool writes.
	maxReadArgon2Parallel = 255
)

// pbkdf2CheckEvery is how many PBKDF2 iterations run between looks at the
// context: well under a millisecond of work for any hash.
const pbkdf2CheckEvery = 4096

// KDF describes the key derivation of one keyslot.
type KDF struct {
	// Type is pbkdf2, argon2i or argon2id.
	Type string `json:"type"`
	// Hash is the PBKDF2 hash (sha256, sha512, ...); empty for argon2.
	Hash string `json:"hash,omitempty"`
	// Iterations is the PBKDF2 iteration count.
	Iterations uint32 `json:"iterations,omitempty"`
	// Time is the argon2 time cost (passes).
	Time uint32 `json:"time,omitempty"`
	// MemoryKiB is the argon2 memory cost in KiB.
	MemoryKiB uint32 `json:"memory_kib,omitempty"`
	// Parallel is the argon2 lane count (cryptsetup calls it cpus/threads).
	Parallel uint32 `json:"parallel,omitempty"`

	salt []byte
}

// String is a short human description, e.g. "argon2id t=4 m=65536KiB p=1".
func (k KDF) String() string {
	if k.Type == KDFPBKDF2 {
		return fmt.Sprintf("pbkdf2-%s %d iterations", k.Hash, k.Iterations)
	}
	return fmt.Sprintf("%s t=%d m=%dKiB p=%d", k.Type, k.Time, k.MemoryKiB, k.Parallel)
}

// isArgon2 reports whether the KDF allocates its memory cost.
func (k KDF) isArgon2() bool { return k.Type == KDFArgon2i || k.Type == KDFArgon2id }

// validateRead checks KDF parameters read from a header.
func (k KDF) validateRead() error {
	switch k.Type {
	case KDFPBKDF2:
		if _, err := hashByName(k.Hash); err != nil {
			return err
		}
		if k.Iterations == 0 {
			return fmt.Errorf("%w: pbkdf2 iteration count 0 is out of range", ErrCorruptKeyslot)
		}
		if k.Iterations > maxReadPBKDF2Iterations {
			return fmt.Errorf("%w: pbkdf2 iteration count %d exceeds the %d this unlocker accepts", ErrUnsupported, k.Iterations, maxReadPBKDF2Iterations)
		}
	case KDFArgon2i, KDFArgon2id:
		if k.Time == 0 {
			return fmt.Errorf("%w: %s time cost 0 is out of range", ErrCorruptKeyslot, k.Type)
		}
		if k.Time > maxReadArgon2Time {
			return fmt.Errorf("%w: %s time cost %d exceeds the %d passes this unlocker accepts", ErrUnsupported, k.Type, k.Time, maxReadArgon2Time)
		}
		if err := k.checkLanes(); err != nil {
			return err
		}
		if k.MemoryKiB < 8*k.Parallel || k.MemoryKiB > MaxArgon2MemoryKiB {
			return fmt.Errorf("%w: %s memory cost %d KiB is out of range", ErrCorruptKeyslot, k.Type, k.MemoryKiB)
		}
	default:
		return fmt.Errorf("%w: key derivation %q", ErrUnsupported, k.Type)
	}
	if len(k.salt) == 0 {
		return fmt.Errorf("%w: %s salt is empty", ErrCorruptKeyslot, k.Type)
	}
	return nil
}

// checkLanes refuses an argon2 lane count x/crypto/argon2 cannot take: 0
// (a damaged keyslot) or more than maxReadArgon2Parallel (valid argon2, but
// a uint8 conversion would wrap it, and argon2 panics on 0 lanes).
func (k KDF) checkLanes() error {
	if k.Parallel == 0 {
		return fmt.Errorf("%w: %s parallel cost 0 is out of range", ErrCorruptKeyslot, k.Type)
	}
	if k.Parallel > maxReadArgon2Parallel {
		return fmt.Errorf("%w: %s parallel cost %d (cpus) exceeds the %d lanes this unlocker supports (cryptsetup formats at most %d)",
			ErrUnsupported, k.Type, k.Parallel, maxReadArgon2Parallel, MaxArgon2Parallel)
	}
	return nil
}

// validateFormat checks KDF parameters against cryptsetup's format limits.
// Its errors are *KDFParamError naming the parameter at fault.
func (k KDF) validateFormat() error {
	bad := func(param, format string, a ...any) error {
		return &KDFParamError{Param: param, Err: fmt.Errorf(format, a...)}
	}
	switch k.Type {
	case KDFPBKDF2:
		if _, err := hashByName(k.Hash); err != nil {
			return &KDFParamError{Param: "hash", Err: err}
		}
		if k.Iterations < MinPBKDF2Iterations {
			return bad("iterations", "pbkdf2 iterations %d: cryptsetup's minimum is %d", k.Iterations, MinPBKDF2Iterations)
		}
		if k.Iterations > maxReadPBKDF2Iterations {
			return bad("iterations", "pbkdf2 iterations %d: the guest unlocks at most %d", k.Iterations, maxReadPBKDF2Iterations)
		}
	case KDFArgon2i, KDFArgon2id:
		if k.Time < MinArgon2Time {
			return bad("time", "%s time cost %d: cryptsetup's minimum is %d", k.Type, k.Time, MinArgon2Time)
		}
		if k.Time > maxReadArgon2Time {
			return bad("time", "%s time cost %d: the guest unlocks at most %d", k.Type, k.Time, maxReadArgon2Time)
		}
		if k.MemoryKiB < MinArgon2MemoryKiB || k.MemoryKiB > MaxArgon2MemoryKiB {
			return bad("memory", "%s memory %d KiB: want %d to %d KiB", k.Type, k.MemoryKiB, MinArgon2MemoryKiB, MaxArgon2MemoryKiB)
		}
		if k.Parallel < 1 || k.Parallel > MaxArgon2Parallel {
			return bad("parallel", "%s parallel cost %d: want 1 to %d", k.Type, k.Parallel, MaxArgon2Parallel)
		}
		if k.MemoryKiB < 8*k.Parallel {
			return bad("memory", "%s memory %d KiB is below 8 KiB per lane (%d lanes)", k.Type, k.MemoryKiB, k.Parallel)
		}
	default:
		return bad("type", "key derivation %q: want pbkdf2, argon2i or argon2id", k.Type)
	}
	return nil
}

// derive runs the KDF over the passphrase and returns keyLen bytes. The
// caller wipes the result. When ctx ends first, derive returns an error
// wrapping ctx.Err(): PBKDF2 stops within pbkdf2CheckEvery iterations;
// argon2, which x/crypto cannot interrupt, is abandoned and finishes in the
// background (see argon2).
func (k KDF) derive(ctx context.Context, passphrase []byte, keyLen int) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s key derivation not started: %w", k.Type, err)
	}
	switch k.Type {
	case KDFPBKDF2:
		h, err := hashByName(k.Hash)
		if err != nil {
			return nil, err
		}
		out, err := pbkdf2KeyContext(ctx, h, passphrase, k.salt, int(k.Iterations), keyLen)
		if err != nil {
			return nil, fmt.Errorf("pbkdf2 key derivation stopped: %w", err)
		}
		return out, nil
	case KDFArgon2i, KDFArgon2id:
		return k.argon2(ctx, passphrase, keyLen)
	}
	return nil, fmt.Errorf("%w: key derivation %q", ErrUnsupported, k.Type)
}

// argon2 runs argon2i or argon2id. x/crypto/argon2 has no way to stop, so
// under a context that can end it runs in its own goroutine on a copy of
// the passphrase, and argon2 returns ctx.Err() as soon as the context ends.
// The abandoned derivation finishes in the background: it keeps its CPU
// time and memory (at most the keyslot's memory cost, which checkMemory
// bounded) until then, and then wipes its passphrase copy and its result.
func (k KDF) argon2(ctx context.Context, passphrase []byte, keyLen int) ([]byte, error) {
	// Checked again here, whatever validated k before: argon2 panics on
	// zero time or lanes, and uint8 would wrap 256 lanes to 0.
	if err := k.checkLanes(); err != nil {
		return nil, err
	}
	if k.Time == 0 {
		return nil, fmt.Errorf("%w: %s time cost 0 is out of range", ErrCorruptKeyslot, k.Type)
	}
	kdf := argon2.IDKey
	if k.Type == KDFArgon2i {
		kdf = argon2.Key
	}
	run := func(pass []byte) []byte {
		out := kdf(pass, k.salt, k.Time, k.MemoryKiB, uint8(k.Parallel), uint32(keyLen))
		// Hand the (unwiped) argon2 memory back to the kernel now
		// rather than at the next GC cycle: in a small guest it is
		// most of RAM.
		debug.FreeOSMemory()
		return out
	}
	if ctx.Done() == nil {
		return run(passphrase), nil // cannot be canceled: no goroutine
	}
	pass := bytes.Clone(passphrase) // the caller may wipe its own once we return
	result := make(chan []byte)
	go func() {
		var out []byte
		// secretDo does not reach into goroutines its caller starts, so
		// this one asks for its own.
		secretDo(func() { out = run(pass) })
		wipe(pass)
		select {
		case result <- out:
		case <-ctx.Done():
			wipe(out) // nobody is waiting any more
		}
	}()
	select {
	case out := <-result:
		return out, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%s key derivation abandoned (it finishes in the background): %w", k.Type, ctx.Err())
	}
}

// hashByName maps cryptsetup's hash names to Go implementations. stribog and
// sm3, which cryptsetup can use through its crypto backends, have no Go
// implementation here and are reported as unsupported.
func hashByName(name string) (func() hash.Hash, error) {
	switch name {
	case "sha1":
		return sha1.New, nil
	case "sha224":
		return sha256.New224, nil
	case "sha256":
		return sha256.New, nil
	case "sha384":
		return sha512.New384, nil
	case "sha512":
		return sha512.New, nil
	case "sha3-224":
		return func() hash.Hash { return sha3.New224() }, nil
	case "sha3-256":
		return func() hash.Hash { return sha3.New256() }, nil
	case "sha3-384":
		return func() hash.Hash { return sha3.New384() }, nil
	case "sha3-512":
		return func() hash.Hash { return sha3.New512() }, nil
	case "ripemd160":
		return ripemd160.New, nil
	case "whirlpool":
		return whirlpool.New, nil
	case "blake2b-160", "blake2b-256", "blake2b-384", "blake2b-512":
		var size int
		if _, err := fmt.Sscanf(name, "blake2b-%d", &size); err != nil {
			return nil, fmt.Errorf("hash %q: %w", name, err)
		}
		return func() hash.Hash {
			h, err := blake2b.New(size/8, nil)
			if err != nil {
				panic(err) // unreachable: the sizes above are valid
			}
			return h
		}, nil
	case "blake2s-256":
		return func() hash.Hash {
			h, err := blake2s.New256(nil)
			if err != nil {
				panic(err) // unreachable: no key
			}
			return h
		}, nil
	}
	return nil, fmt.Errorf("%w: hash %q", ErrUnsupported, name)
}

// pbkdf2Key is pbkdf2KeyContext without a context, for the formatter's own
// costs and for tests.
func pbkdf2Key(h func() hash.Hash, password, salt []byte, iter, keyLen int) []byte {
	out, _ := pbkdf2KeyContext(context.Background(), h, password, salt, iter, keyLen) // fails only when ctx ends
	return out
}

// pbkdf2KeyContext is PBKDF2 (RFC 8018) with HMAC over h. It is written here
// rather than taken from crypto/pbkdf2 because that API takes the password
// as a string, an immutable copy that can never be wiped, and cannot be
// stopped. It returns ctx.Err() when ctx ends, checking it every
// pbkdf2CheckEvery iterations. The HMAC pads, the saved hash states and the
// running blocks are wiped before returning; what the hash implementations
// keep inside their own state is not reachable.
func pbkdf2KeyContext(ctx context.Context, h func() hash.Hash, password, salt []byte, iter, keyLen int) ([]byte, error) {
	done := ctx.Done() // nil for a context that never ends: the check below is then free
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	inner, outer := h(), h()
	bs, size := inner.BlockSize(), inner.Size()

	// HMAC key schedule: K' = K, or H(K) when longer than a block.
	pad := make([]byte, 2*bs)
	defer wipe(pad)
	ipad, opad := pad[:bs], pad[bs:]
	if len(password) > bs {
		inner.Write(password)
		sum := inner.Sum(nil)
		copy(ipad, sum)
		copy(opad, sum)
		wipe(sum)
		inner.Reset()
	} else {
		copy(ipad, password)
		copy(opad, password)
	}
	for i := range ipad {
		ipad[i] ^= 0x36
		opad[i] ^= 0x5c
	}
	inner.Write(ipad)
	outer.Write(opad)

	// Save the keyed states once so that each HMAC costs two compression
	// calls, as in every serious PBKDF2; fall back to re-hashing the pads
	// for hashes that cannot save their state.
	var innerState, outerState []byte
	mi, ok1 := inner.(encoding.BinaryMarshaler)
	mo, ok2 := outer.(encoding.BinaryMarshaler)
	ui, ok3 := inner.(encoding.BinaryUnmarshaler)
	uo, ok4 := outer.(encoding.BinaryUnmarshaler)
	saved := ok1 && ok2 && ok3 && ok4
	if saved {
		var err1, err2 error
		innerState, err1 = mi.MarshalBinary()
		outerState, err2 = mo.MarshalBinary()
		saved = err1 == nil && err2 == nil
		defer wipe(innerState)
		defer wipe(outerState)
	}
	restore := func() {
		if saved {
			if ui.UnmarshalBinary(innerState) == nil && uo.UnmarshalBinary(outerState) == nil {
				return
			}
			saved = false
		}
		inner.Reset()
		inner.Write(ipad)
		outer.Reset()
		outer.Write(opad)
	}
	defer inner.Reset()
	defer outer.Reset()

	blocks := (keyLen + size - 1) / size
	out := make([]byte, 0, blocks*size)
	u := make([]byte, 0, size)
	t := make([]byte, size)
	defer wipe(u[:size])
	defer wipe(t)
	var ctr [4]byte
	for block := 1; block <= blocks; block++ {
		binary.BigEndian.PutUint32(ctr[:], uint32(block))
		restore()
		inner.Write(salt)
		inner.Write(ctr[:])
		u = inner.Sum(u[:0])
		outer.Write(u)
		u = outer.Sum(u[:0])
		copy(t, u)
		for n := 1; n < iter; n++ {
			if done != nil && n%pbkdf2CheckEvery == 0 {
				select {
				case <-done:
					wipe(out[:cap(out)])
					return nil, ctx.Err()
				default:
				}
			}
			restore()
			inner.Write(u)
			u = inner.Sum(u[:0])
			outer.Write(u)
			u = outer.Sum(u[:0])
			for i := range t {
				t[i] ^= u[i]
			}
		}
		out = append(out, t...)
	}
	if len(out) > keyLen {
		wipe(out[keyLen:])
	}
	return out[:keyLen], nil
}
