package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/sealroot/sealroot/init/event"
)

// unlockEncrypted attests, fetches the passphrase and opens the LUKS root.
func unlockEncrypted(ctx context.Context, b *boot) error {
	return fail(event.StatusUnlockFailed, errors.New(fmt.Sprint("encrypted roots are not supported by this init yet")))
}
