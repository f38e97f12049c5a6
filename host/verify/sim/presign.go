package sim

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"math/big"
	"sync"
)

// Presigning lets a load generator keep the simulated secure processor's
// expensive half of each report signature out of its timed windows.
//
// An ECDSA signature over digest e with key d is (r, s) where r is the x
// coordinate of k·G, reduced mod the group order n, and s = k⁻¹·(e + r·d)
// mod n, for a fresh random k per signature. Only s depends on the report:
// the scalar multiplication k·G and the inverse k⁻¹, about four fifths of
// the cost of a P-384 signature, do not. Presign computes (r, k⁻¹) pairs
// ahead of time; Sign then takes one pair per report and spends a few
// microseconds of big-integer arithmetic on s. Each pair is used once and
// dropped, so no k ever signs two reports (which would give away d).
//
// The signatures are ordinary ECDSA P-384 signatures: the verifier cannot
// tell them from crypto/ecdsa's and checks them the same way. On real
// hardware the report is signed by the secure processor, not by a CPU the
// broker shares, which is what a load test on one machine approximates by
// presigning. The arithmetic is not constant-time, which is of no matter for
// a simulator whose key is a file on disk anyway.

// presigned is the report-independent half of one signature.
type presigned struct{ r, kInv *big.Int }

// presignPool holds an Authority's unused presigned halves.
type presignPool struct {
	mu   sync.Mutex
	d    *big.Int // the VCEK's private scalar, set by the first Presign
	pool []presigned
}

// Presign tops up the Authority's pool of presigned signature halves to n
// (it computes nothing when n are already pooled). Later Sign calls use one
// each until the pool is empty, then sign in full again. It is safe to call
// while other goroutines Sign.
func (a *Authority) Presign(n int) error {
	a.pre.mu.Lock()
	have := len(a.pre.pool)
	if a.pre.d == nil {
		b, err := a.vcekKey.Bytes()
		if err != nil {
			a.pre.mu.Unlock()
			return fmt.Errorf("sim: presigning: %w", err)
		}
		a.pre.d = new(big.Int).SetBytes(b)
	}
	a.pre.mu.Unlock()
	if have >= n {
		return nil
	}
	fresh := make([]presigned, 0, n-have)
	order := elliptic.P384().Params().N
	for len(fresh) < n-have {
		// ecdh's key generation draws k uniformly from [1, n-1] and
		// computes k·G with the standard library's constant-time P-384.
		k, err := ecdh.P384().GenerateKey(rand.Reader)
		if err != nil {
			return fmt.Errorf("sim: presigning: %w", err)
		}
		pt := k.PublicKey().Bytes() // 0x04 || X || Y
		r := new(big.Int).SetBytes(pt[1 : 1+48])
		r.Mod(r, order)
		if r.Sign() == 0 {
			continue
		}
		kInv := new(big.Int).ModInverse(new(big.Int).SetBytes(k.Bytes()), order)
		fresh = append(fresh, presigned{r: r, kInv: kInv})
	}
	a.pre.mu.Lock()
	a.pre.pool = append(a.pre.pool, fresh...)
	a.pre.mu.Unlock()
	return nil
}

// Presigned is the number of presigned halves left in the pool.
func (a *Authority) Presigned() int {
	a.pre.mu.Lock()
	defer a.pre.mu.Unlock()
	return len(a.pre.pool)
}

// signDigest signs a SHA-384 digest with the VCEK: with a presigned half
// when the pool has one, else in full with crypto/ecdsa.
func (a *Authority) signDigest(digest []byte) (r, s *big.Int, err error) {
	a.pre.mu.Lock()
	var p presigned
	if n := len(a.pre.pool); n > 0 {
		p = a.pre.pool[n-1]
		a.pre.pool[n-1] = presigned{}
		a.pre.pool = a.pre.pool[:n-1]
	}
	d := a.pre.d
	a.pre.mu.Unlock()
	if p.r != nil {
		// The digest is as long as the group order (384 bits), so it is
		// taken whole as e, as ECDSA does; the reduction below covers
		// e ≥ n.
		order := elliptic.P384().Params().N
		s := new(big.Int).Mul(p.r, d)
		s.Add(s, new(big.Int).SetBytes(digest))
		s.Mul(s, p.kInv)
		s.Mod(s, order)
		if s.Sign() != 0 {
			return p.r, s, nil
		}
	}
	return ecdsa.Sign(rand.Reader, a.vcekKey, digest)
}
