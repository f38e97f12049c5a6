package main

import (
	"fmt"
	"io"
	"os"

	"github.com/sealroot/sealroot/cryptsetup"
)

// readPassphrase reads a passphrase, dropping one trailing newline.
func readPassphrase(path string, stdin io.Reader) ([]byte, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the passphrase: %w", err)
	}
	n := len(b)
	if n > 0 && b[n-1] == '\n' {
		n--
		if n > 0 && b[n-1] == '\r' {
			n--
		}
	}
	cryptsetup.Wipe(b[n:])
	if n == 0 {
		if path == "-" {
			return nil, fmt.Errorf("the passphrase on standard input is empty")
		}
		return nil, fmt.Errorf("the passphrase file %s is empty", path)
	}
	return b[:n], nil
}

// writeSecretFile writes secret to path readable by its owner only: a new
// file is created 0600 and an existing one is made 0600 before the secret
// goes in, so the secret is never in a file others can read.
func writeSecretFile(path string, secret []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(secret); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
