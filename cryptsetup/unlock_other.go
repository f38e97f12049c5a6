//go:build !linux

package cryptsetup

import (
	"context"
	"errors"
	"fmt"
)

var errNoDM = errors.New("dm-crypt mappings need Linux")

// Unlock needs Linux device-mapper; elsewhere it only reports that.
func (v *Volume) Unlock(passphrase []byte, o UnlockOptions) (*Mapping, error) {
	return v.UnlockContext(context.Background(), passphrase, o)
}

// UnlockContext needs Linux device-mapper; elsewhere it only reports that.
func (v *Volume) UnlockContext(ctx context.Context, passphrase []byte, o UnlockOptions) (*Mapping, error) {
	return nil, fmt.Errorf("%s: %w", v.path, errNoDM)
}

// Remove needs Linux device-mapper.
func (m *Mapping) Remove() error { return errNoDM }
