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
		return nil, fmt.Errorf("the passphrase file %s is empty", path)
	}
	return b[:n], nil
}
