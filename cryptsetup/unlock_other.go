//go:build !linux

package cryptsetup

import (
	"errors"
	"fmt"
)

var errNoDM = errors.New("dm-crypt mappings need Linux")

// Unlock needs Linux device-mapper; elsewhere it only reports that.
func (v *Volume) Unlock(passphrase []byte, o UnlockOptions) (*Mapping, error) {
	return nil, fmt.Errorf("%s: %w", v.path, errNoDM)
}

// Remove needs Linux device-mapper.
func (m *Mapping) Remove() error { return errNoDM }
