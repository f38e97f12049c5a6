//go:build goexperiment.runtimesecret

package cryptsetup

import "runtime/secret"

// secretDo runs f under runtime/secret when the binary was built with
// GOEXPERIMENT=runtimesecret: the stack and registers f used are erased when
// it returns, and its heap allocations (the argon2 memory, hash states) are
// erased once the garbage collector frees them.
func secretDo(f func()) { secret.Do(f) }
