package cryptsetup

import (
	"fmt"
	"time"
)

// Mapping is an active dm-crypt mapping of an unlocked volume.
type Mapping struct {
	// Name is the device-mapper name; Device the node to mount
	// (/dev/dm-N, or /dev/mapper/<name> when devtmpfs made none).
	Name   string `json:"name"`
	Device string `json:"device"`
	Major  uint32 `json:"major"`
	Minor  uint32 `json:"minor"`
	// DMUUID is the device-mapper UUID, in cryptsetup's form
	// CRYPT-LUKS<v>-<uuid without dashes>-<name>.
	DMUUID string `json:"dm_uuid"`
	// Keyslot opened; KDFTime is how long its key derivation took.
	Keyslot int           `json:"keyslot"`
	KDFTime time.Duration `json:"kdf_ns"`
	// Size is the mapped length in bytes.
	Size       int64  `json:"size"`
	SectorSize int    `json:"sector_size"`
	Cipher     string `json:"cipher"`
	// Flags are the dm-crypt optional parameters applied; IgnoredFlags
	// are header flags dm-crypt has no parameter for.
	Flags        []string `json:"flags,omitempty"`
	IgnoredFlags []string `json:"ignored_flags,omitempty"`
	ReadOnly     bool     `json:"read_only,omitempty"`

	createdNode string
}

// dmFlags turns LUKS2 flag names into dm-crypt optional parameters,
// deduplicated. Header flags dm-crypt has no parameter for are returned as
// ignored, as cryptsetup ignores unknown persistent flags; an unknown extra
// flag is an error.
func dmFlags(header, extra []string) (dm, ignored []string, err error) {
	seen := map[string]bool{}
	for i, f := range append(append([]string(nil), header...), extra...) {
		k, ok := knownFlags[f]
		if !ok {
			if i >= len(header) {
				return nil, nil, fmt.Errorf("activation flag %q: want allow-discards, same-cpu-crypt, submit-from-crypt-cpus, no-read-workqueue or no-write-workqueue", f)
			}
			ignored = append(ignored, f)
			continue
		}
		if !seen[k] {
			seen[k] = true
			dm = append(dm, k)
		}
	}
	return dm, ignored, nil
}
