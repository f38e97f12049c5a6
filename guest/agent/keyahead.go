package agent

import (
	"crypto/rsa"
	"sync"
	"time"
)

// aheadKey hands out, once, an RSA key made before the exchange started
// (Options.FirstRSAKey). It is used by the first handshake that needs an
// RSA key and never again: a key is bound to one nonce only.
type aheadKey struct {
	once sync.Once
	get  func() (*rsa.PrivateKey, error)
}

// take returns the key made ahead, or nil when there is none (already
// taken, never asked for, or its generation failed: the caller then makes
// one as usual).
func (a *aheadKey) take() (k *rsa.PrivateKey) {
	if a == nil || a.get == nil {
		return nil
	}
	a.once.Do(func() {
		if key, err := a.get(); err == nil && key != nil && key.N.BitLen() == 2048 {
			k = key
		}
	})
	return k
}

// rsaAhead is keyMaker.rsa's fast path: the key made ahead, logged with how
// long the exchange still waited for it.
func (m keyMaker) rsaAhead() *rsa.PrivateKey {
	start := m.now()
	k := m.ahead.take()
	if k != nil {
		m.logf("agent: RSA-2048 guest key made ahead of time (waited %s for it)", m.now().Sub(start).Round(time.Millisecond))
	}
	return k
}
