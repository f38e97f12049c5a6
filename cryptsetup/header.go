package cryptsetup

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// luksMagic starts a LUKS1 header and the primary LUKS2 header;
// luks2MagicSecondary starts the secondary LUKS2 header.
var (
	luksMagic           = []byte{'L', 'U', 'K', 'S', 0xba, 0xbe}
	luks2MagicSecondary = []byte{'S', 'K', 'U', 'L', 0xba, 0xbe}
)

// Priority is a LUKS2 keyslot priority. LUKS1 keyslots are all normal.
type Priority int

// Keyslot priorities as LUKS2 stores them.
const (
	PriorityIgnore Priority = 0 // tried only when named explicitly
	PriorityNormal Priority = 1
	PriorityPrefer Priority = 2 // tried before normal keyslots
)

func (p Priority) String() string {
	switch p {
	case PriorityIgnore:
		return "ignore"
	case PriorityNormal:
		return "normal"
	case PriorityPrefer:
		return "prefer"
	}
	return fmt.Sprintf("priority(%d)", int(p))
}

// MarshalText writes the priority as cryptsetup names it on its command line.
func (p Priority) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// Header is what this package reads from a LUKS1 or LUKS2 header. Sizes and
// offsets are in bytes.
type Header struct {
	Version   int    `json:"version"`
	UUID      string `json:"uuid"`
	Label     string `json:"label,omitempty"`
	Subsystem string `json:"subsystem,omitempty"`
	// Cipher is the data segment's dm-crypt cipher spec, e.g. aes-xts-plain64.
	Cipher  string `json:"cipher"`
	KeyBits int    `json:"key_bits"`
	// SectorSize is the encryption sector size of the payload.
	SectorSize int `json:"sector_size"`
	// PayloadOffset is where the encrypted payload starts.
	PayloadOffset int64 `json:"payload_offset"`
	// PayloadSize is the payload length, or 0 when it runs to the end of
	// the device (always for LUKS1; "dynamic" in LUKS2).
	PayloadSize int64 `json:"payload_size,omitempty"`
	// IVTweak is added to the 512-byte sector number to form the IV.
	IVTweak uint64 `json:"iv_tweak,omitempty"`
	// Integrity is a LUKS2 segment's authenticated-encryption mode; not
	// supported by sealroot when set.
	Integrity string `json:"integrity,omitempty"`
	// Flags are LUKS2 persistent activation flags (allow-discards, ...).
	Flags []string `json:"flags,omitempty"`
	// Requirements are LUKS2 mandatory requirements (e.g. reencryption).
	Requirements []string `json:"requirements,omitempty"`
	// MetadataSize is the size of one LUKS2 header copy (binary + JSON);
	// for LUKS1 the 592-byte binary header.
	MetadataSize int64 `json:"metadata_size"`
	// AreasEnd is where the header and keyslot areas end.
	AreasEnd   int64     `json:"areas_end"`
	SequenceID uint64    `json:"seqid,omitempty"`
	Keyslots   []Keyslot `json:"keyslots"`
	Tokens     int       `json:"tokens,omitempty"`
	// Segments counts LUKS2 data segments; only one is supported.
	Segments int `json:"segments,omitempty"`
	// Warnings note recoverable header problems, such as a damaged
	// secondary LUKS2 header that cryptsetup would silently rewrite.
	Warnings []string `json:"warnings,omitempty"`
}

// Keyslot is one active keyslot.
type Keyslot struct {
	ID       int      `json:"id"`
	Priority Priority `json:"priority"`
	KDF      KDF      `json:"kdf"`
	// KeyBits is the volume key length this keyslot stores.
	KeyBits    int    `json:"key_bits"`
	AFStripes  int    `json:"af_stripes"`
	AFHash     string `json:"af_hash"`
	AreaOffset int64  `json:"area_offset"`
	AreaSize   int64  `json:"area_size"`
	// AreaCipher encrypts the keyslot's key material.
	AreaCipher  string `json:"area_cipher"`
	AreaKeyBits int    `json:"area_key_bits"`
	// Type is the LUKS2 keyslot type ("luks2"; "reencrypt" slots hold no
	// passphrase); "luks1" for LUKS1.
	Type string `json:"type"`

	digest *digest
}

// digest verifies a candidate volume key: PBKDF2 of the key must match.
type digest struct {
	hash       string
	iterations uint32
	salt       []byte
	value      []byte
}

// readHeader reads and checks the LUKS header of a device of the given size.
func readHeader(r io.ReaderAt, size int64) (*Header, error) {
	var pre [8]byte
	if err := readAt(r, size, pre[:], 0, "LUKS magic"); err != nil {
		if errors.Is(err, ErrTruncatedHeader) {
			return nil, fmt.Errorf("%w: device has %d bytes", ErrNotLUKS, size)
		}
		return nil, err
	}
	if !bytes.Equal(pre[:6], luksMagic) {
		return nil, fmt.Errorf("%w: no LUKS magic at offset 0", ErrNotLUKS)
	}
	switch v := int(pre[6])<<8 | int(pre[7]); v {
	case 1:
		return readLUKS1(r, size)
	case 2:
		return readLUKS2(r, size)
	default:
		return nil, fmt.Errorf("%w: LUKS version %d", ErrUnsupported, v)
	}
}

// readAt reads len(buf) bytes at off, reporting a read past size as a
// truncated header.
func readAt(r io.ReaderAt, size int64, buf []byte, off int64, what string) error {
	if off < 0 || off > size || int64(len(buf)) > size-off {
		return fmt.Errorf("%w: %s at bytes %d-%d, but the device has %d bytes", ErrTruncatedHeader, what, off, off+int64(len(buf)), size)
	}
	n, err := r.ReadAt(buf, off)
	if n == len(buf) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %s at offset %d: read %d of %d bytes", ErrTruncatedHeader, what, off, n, len(buf))
	}
	return fmt.Errorf("reading %s at offset %d: %w", what, off, err)
}

// cString returns a NUL-terminated string from a fixed-size field.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// orderedSlots returns the keyslots to try: the named ones in the given
// order (whatever their priority), or else preferred slots, then normal
// ones, each group by keyslot number. Ignored slots are never tried unless
// named; reencrypt slots never.
func (h *Header) orderedSlots(named []int) ([]*Keyslot, error) {
	byID := map[int]*Keyslot{}
	for i := range h.Keyslots {
		byID[h.Keyslots[i].ID] = &h.Keyslots[i]
	}
	var out []*Keyslot
	if len(named) > 0 {
		for _, id := range named {
			ks, ok := byID[id]
			if !ok {
				return nil, fmt.Errorf("%w: keyslot %d is not active (active: %s)", ErrNoKeyslot, id, h.slotList())
			}
			if ks.Type != "luks1" && ks.Type != "luks2" {
				return nil, fmt.Errorf("%w: keyslot %d is a %q keyslot, not a passphrase keyslot", ErrNoKeyslot, id, ks.Type)
			}
			out = append(out, ks)
		}
		return out, nil
	}
	for _, p := range []Priority{PriorityPrefer, PriorityNormal} {
		for i := range h.Keyslots {
			ks := &h.Keyslots[i]
			if ks.Priority == p && (ks.Type == "luks1" || ks.Type == "luks2") {
				out = append(out, ks)
			}
		}
	}
	if len(h.Keyslots) == 0 {
		return nil, fmt.Errorf("%w: the volume has no active keyslot", ErrNoKeyslot)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: active keyslots are %s and none has priority normal or prefer (name one to use an ignored keyslot)", ErrNoKeyslot, h.slotList())
	}
	return out, nil
}

func (h *Header) slotList() string {
	if len(h.Keyslots) == 0 {
		return "none"
	}
	var s []string
	for _, k := range h.Keyslots {
		s = append(s, fmt.Sprintf("%d (%s)", k.ID, k.Priority))
	}
	return strings.Join(s, ", ")
}

// usable reports why the volume cannot be unlocked by this package, if so.
func (h *Header) usable() error {
	if len(h.Requirements) > 0 {
		return fmt.Errorf("%w: the volume has mandatory requirements %s (an interrupted reencryption?); finish it with cryptsetup first", ErrUnsupported, strings.Join(h.Requirements, ", "))
	}
	if h.Version == 2 && h.Segments != 1 {
		return fmt.Errorf("%w: %d data segments (reencryption in progress?); sealroot needs exactly one", ErrUnsupported, h.Segments)
	}
	if h.Integrity != "" {
		return fmt.Errorf("%w: authenticated encryption (integrity %s)", ErrUnsupported, h.Integrity)
	}
	if h.PayloadOffset == 0 {
		return fmt.Errorf("%w: payload offset 0 means a detached header", ErrUnsupported)
	}
	c, err := parseCipher(h.Cipher)
	if err != nil {
		return fmt.Errorf("data segment: %w", err)
	}
	if h.KeyBits != 0 { // 0: no keyslot with a digest; orderedSlots says so
		if err := c.checkKeySize(h.KeyBits / 8); err != nil {
			return fmt.Errorf("data segment: %w", err)
		}
	}
	switch h.SectorSize {
	case 512, 1024, 2048, 4096:
	default:
		return fmt.Errorf("%w: data segment sector size %d", ErrCorruptHeader, h.SectorSize)
	}
	return nil
}

// payloadSpan returns the payload's offset and length on a device of the
// given size, checking that it lies within the device.
func (h *Header) payloadSpan(devSize int64) (off, length int64, err error) {
	off = h.PayloadOffset
	if off >= devSize {
		return 0, 0, fmt.Errorf("%w: the payload starts at byte %d but the device has only %d bytes", ErrPayloadBeyondDevice, off, devSize)
	}
	if h.PayloadSize > 0 {
		if h.PayloadSize > devSize-off {
			return 0, 0, fmt.Errorf("%w: the payload is bytes %d-%d but the device has only %d bytes (%d missing)", ErrPayloadBeyondDevice, off, off+h.PayloadSize, devSize, off+h.PayloadSize-devSize)
		}
		return off, h.PayloadSize, nil
	}
	length = devSize - off
	length -= length % int64(h.SectorSize)
	if length == 0 {
		return 0, 0, fmt.Errorf("%w: less than one %d-byte sector follows the payload offset %d on a %d-byte device", ErrPayloadBeyondDevice, h.SectorSize, off, devSize)
	}
	return off, length, nil
}

// parseJSONNumber parses a LUKS2 JSON string holding an unsigned decimal.
func parseU64(s, what string) (uint64, error) {
	if s == "" || len(s) > 20 {
		return 0, fmt.Errorf("%w: %s %q is not a number", ErrCorruptHeader, what, s)
	}
	var v uint64
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %s %q is not a number", ErrCorruptHeader, what, s)
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, fmt.Errorf("%w: %s %q overflows", ErrCorruptHeader, what, s)
		}
		v = v*10 + d
	}
	return v, nil
}

// parseOffset parses a LUKS2 offset or size that must fit in an int64.
func parseOffset(s, what string) (int64, error) {
	v, err := parseU64(s, what)
	if err != nil {
		return 0, err
	}
	if v > 1<<62 {
		return 0, fmt.Errorf("%w: %s %d is beyond any device", ErrCorruptHeader, what, v)
	}
	return int64(v), nil
}

// keyslotIDs parses a LUKS2 JSON array of keyslot/segment numbers.
func parseIDs(list []string, what string) ([]int, error) {
	var out []int
	for _, s := range list {
		v, err := parseU64(s, what)
		if err != nil {
			return nil, err
		}
		if v > 1024 {
			return nil, fmt.Errorf("%w: %s %d out of range", ErrCorruptHeader, what, v)
		}
		out = append(out, int(v))
	}
	return out, nil
}

func sortKeyslots(ks []Keyslot) {
	slices.SortFunc(ks, func(a, b Keyslot) int { return a.ID - b.ID })
}

// unmarshalStrict decodes JSON, reporting type errors as a corrupt header.
func unmarshalJSON(b []byte, v any, what string) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorruptHeader, what, err)
	}
	return nil
}
