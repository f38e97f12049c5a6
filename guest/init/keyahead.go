package main

import (
	"crypto/rand"
	"crypto/rsa"
	"runtime"

	"golang.org/x/sys/unix"
)

// keyAhead is an RSA-2048 guest key pair being made from PID 1's first
// moment, beside the boot phases: the krun dialect (and Trustee with an RSA
// key) needs one for its first handshake, and making it takes hundreds of
// milliseconds that would otherwise come after every phase before attest.
// It runs on its own OS thread at the lowest priority (nice 19), so it uses
// the time the phases spend waiting for devices and hardly slows them (or a
// plain boot, which never uses it) when they need the CPU.
type keyAhead struct {
	done chan struct{}
	key  *rsa.PrivateKey
	err  error
}

func startKeyAhead() *keyAhead {
	k := &keyAhead{done: make(chan struct{})}
	go func() {
		// The thread is never unlocked: it ends with this goroutine, and
		// its niceness with it.
		runtime.LockOSThread()
		_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 19) // a hint: the key comes either way
		k.key, k.err = rsa.GenerateKey(rand.Reader, 2048)
		close(k.done)
	}()
	return k
}

// get waits for the key (agent.Options.FirstRSAKey); nil-safe.
func (k *keyAhead) get() (*rsa.PrivateKey, error) {
	if k == nil {
		return nil, nil
	}
	<-k.done
	return k.key, k.err
}
