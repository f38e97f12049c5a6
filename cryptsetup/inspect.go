package cryptsetup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/sealroot/sealroot/wire/diskconfig"
)

// Info describes a disk image or device without unlocking it.
type Info struct {
	Path string `json:"path"`
	// Size is the file or device size in bytes.
	Size int64 `json:"size"`
	// Footer is the KRUN footer, when the image ends in one.
	Footer *FooterInfo `json:"footer,omitempty"`
	// Encrypted says the image starts with a LUKS header, described in
	// LUKS; PayloadOffset and PayloadSize then locate the encrypted
	// payload on this device (PayloadError says why they could not).
	Encrypted     bool    `json:"encrypted"`
	LUKS          *Header `json:"luks,omitempty"`
	PayloadOffset int64   `json:"payload_offset"`
	PayloadSize   int64   `json:"payload_size"`
	PayloadError  string  `json:"payload_error,omitempty"`
	// Unusable says why Unlock and Check would refuse this volume before
	// trying a passphrase (unsupported cipher, reencryption...).
	Unusable string `json:"unusable,omitempty"`
	// Filesystem is the plain filesystem of an unencrypted image.
	Filesystem *Filesystem `json:"filesystem,omitempty"`
}

// FooterInfo is a KRUN footer.
type FooterInfo struct {
	// Offset is where the config JSON starts.
	Offset int64 `json:"offset"`
	Length int   `json:"length"`
	// Config is the JSON, when it is valid JSON; Error says what was
	// wrong with the footer otherwise.
	Config json.RawMessage `json:"config,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// Inspect reads an image's KRUN footer and LUKS header (or, for an
// unencrypted image, its filesystem superblock). It needs no passphrase and
// never writes.
func Inspect(path string) (*Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening image: %w", err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("finding the size of %s: %w", path, err)
	}
	info := &Info{Path: path, Size: size}

	cfg, err := diskconfig.ReadFooter(f, size)
	switch {
	case err == nil:
		fi := &FooterInfo{Offset: size - diskconfig.FooterSize - int64(len(cfg)), Length: len(cfg)}
		if json.Valid(cfg) {
			fi.Config = cfg
		} else {
			fi.Error = "the footer config is not valid JSON"
		}
		info.Footer = fi
	case errors.Is(err, diskconfig.ErrNoFooter):
	default:
		info.Footer = &FooterInfo{Error: err.Error()}
	}

	h, err := readHeader(f, size)
	switch {
	case err == nil:
		info.Encrypted, info.LUKS = true, h
		if off, n, err := h.payloadSpan(size); err != nil {
			info.PayloadError = err.Error()
		} else {
			info.PayloadOffset, info.PayloadSize = off, n
		}
		if err := h.usable(); err != nil {
			info.Unusable = err.Error()
		}
	case errors.Is(err, ErrNotLUKS):
		buf := make([]byte, min(size, fsProbeSize))
		if _, err := f.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		info.Filesystem = detectFS(buf)
		info.PayloadSize = size
		if info.Footer != nil && info.Footer.Error == "" {
			info.PayloadSize = info.Footer.Offset
		}
	default:
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return info, nil
}
