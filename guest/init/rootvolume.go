package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/wire/event"
)

// checkRootVolume runs in the payload phase, before anything is asked of a
// broker: the root disk must be the volume the disk config binds
// (root_volume). The config is covered by HOST_DATA / MRCONFIGID / RPV, so
// a host that attaches its own volume to the tenant's config is refused
// here; one that forges the header fields is refused after unlock, when
// the key it opened fails the bound digest (unlockOptions).
func (b *boot) checkRootVolume(vol *cryptsetup.Volume) error {
	id := b.cfg.RootVolume
	if id == nil {
		if vol != nil {
			b.report.Log("payload", "the disk config binds no root volume: any LUKS volume that the broker's passphrase opens is accepted (docs/threat-model.md)")
		}
		return nil
	}
	if vol == nil {
		return fail(event.StatusVolumeMismatch, fmt.Errorf("%w: %s is not LUKS but the disk config binds LUKS volume %s", cryptsetup.ErrVolumeMismatch, b.opts.root, id.UUID))
	}
	if err := cryptsetup.MatchVolume(id, vol.Header()); err != nil {
		return fail(event.StatusVolumeMismatch, fmt.Errorf("%s: %w", b.opts.root, err))
	}
	return nil
}

// unlockOptions maps the root with the activation flags the config asks
// for and none of the header's, and checks the unlocked key against the
// binding.
func (b *boot) unlockOptions() cryptsetup.UnlockOptions {
	return cryptsetup.UnlockOptions{Name: "root", VolumeID: b.cfg.RootVolume,
		IgnoreHeaderFlags: true, Flags: b.cfg.ActivationFlags}
}

// unlockFailure gives a binding mismatch found at unlock its own status.
// Under a binding, every keyslot is verified by the bound digest, so a
// passphrase that opens none is either wrong or opens a keyslot to another
// key than the bound one (a forged header): the line says both.
func (b *boot) unlockFailure(err error) error {
	if errors.Is(err, cryptsetup.ErrVolumeMismatch) {
		return fail(event.StatusVolumeMismatch, err)
	}
	if errors.Is(err, cryptsetup.ErrWrongPassphrase) && b.cfg.RootVolume != nil {
		return fmt.Errorf("%w; with the root_volume binding, no keyslot opens to the bound volume key", err)
	}
	return err
}

// logIgnoredFlags notes header flags that were not applied.
func (b *boot) logIgnoredFlags(m *cryptsetup.Mapping) {
	if len(m.IgnoredFlags) > 0 {
		b.report.Log("unlock", "LUKS2 header flags not applied (the disk config's activation_flags decide): %s", strings.Join(m.IgnoredFlags, ", "))
	}
}
