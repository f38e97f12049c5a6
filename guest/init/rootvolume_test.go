package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/wire/diskconfig"
	"github.com/sealroot/sealroot/wire/event"
)

func TestUnlockFailure(t *testing.T) {
	bound := &boot{cfg: &diskconfig.Config{RootVolume: &diskconfig.VolumeID{}}}
	unbound := &boot{cfg: &diskconfig.Config{}}
	var f *failure
	err := bound.unlockFailure(fmt.Errorf("/dev/vda: %w", cryptsetup.ErrVolumeMismatch))
	if !errors.As(err, &f) || f.status != event.StatusVolumeMismatch {
		t.Fatalf("a key that is not the bound one: %v, want status %d", err, event.StatusVolumeMismatch)
	}
	wrong := fmt.Errorf("/dev/vda: %w", cryptsetup.ErrWrongPassphrase)
	if err := bound.unlockFailure(wrong); !errors.Is(err, cryptsetup.ErrWrongPassphrase) || !strings.Contains(err.Error(), "bound volume key") {
		t.Fatalf("bound: %v", err)
	}
	if err := unbound.unlockFailure(wrong); err != wrong { //nolint:errorlint // the error must come back unchanged
		t.Fatalf("unbound: %v", err)
	}
}
