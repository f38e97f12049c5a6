//go:build !goexperiment.runtimesecret

package cryptsetup

// secretDo runs f. Built with GOEXPERIMENT=runtimesecret it runs f under
// runtime/secret instead (secret_on.go).
func secretDo(f func()) { f() }
