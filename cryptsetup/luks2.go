package cryptsetup

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// LUKS2 on-disk format: two copies of the metadata, each a 4096-byte binary
// header followed by a NUL-padded JSON area, then the keyslot areas, then
// the data segment. Binary header fields (big-endian):
//
//	0   magic[6] ("LUKS\xba\xbe" primary, "SKUL\xba\xbe" secondary)
//	6   version u16 = 2
//	8   hdr_size u64 (binary header + JSON area: 16 KiB to 4 MiB)
//	16  seqid u64
//	24  label[48]
//	72  checksum_alg[32]
//	104 salt[64] (unique per copy)
//	168 uuid[40]
//	208 subsystem[48]
//	256 hdr_offset u64 (0, or hdr_size for the secondary copy)
//	448 csum[64]: checksum_alg over binary header (csum zeroed) + JSON area
//
// Each copy's checksum covers its whole JSON area including the zero
// padding; the copies have the same seqid and JSON and differ in magic,
// salt, offset and checksum.
const (
	luks2BinSize  = 4096
	luks2CsumOff  = 448
	luks2SaltSize = 64
	luks2MinHdr   = 16 << 10
	luks2MaxHdr   = 4 << 20
)

// LUKS2 JSON, in the field order cryptsetup writes. Numbers that may exceed
// 2^53 are decimal strings, as the format requires.
type l2Meta struct {
	Keyslots map[string]l2Keyslot       `json:"keyslots"`
	Tokens   map[string]json.RawMessage `json:"tokens"`
	Segments map[string]l2Segment       `json:"segments"`
	Digests  map[string]l2Digest        `json:"digests"`
	Config   *l2Config                  `json:"config"`
}

type l2Keyslot struct {
	Type     string `json:"type"`
	KeySize  int    `json:"key_size"`
	AF       l2AF   `json:"af"`
	Area     l2Area `json:"area"`
	KDF      l2KDF  `json:"kdf"`
	Priority *int   `json:"priority,omitempty"`
}

type l2AF struct {
	Type    string `json:"type"`
	Stripes int    `json:"stripes"`
	Hash    string `json:"hash"`
}

type l2Area struct {
	Type       string `json:"type"`
	Offset     string `json:"offset"`
	Size       string `json:"size"`
	Encryption string `json:"encryption"`
	KeySize    int    `json:"key_size"`
}

type l2KDF struct {
	Type       string `json:"type"`
	Hash       string `json:"hash,omitempty"`
	Iterations uint32 `json:"iterations,omitempty"`
	Time       uint32 `json:"time,omitempty"`
	Memory     uint32 `json:"memory,omitempty"`
	CPUs       uint32 `json:"cpus,omitempty"`
	Salt       string `json:"salt"`
}

type l2Segment struct {
	Type       string          `json:"type"`
	Offset     string          `json:"offset"`
	Size       string          `json:"size"`
	IVTweak    string          `json:"iv_tweak"`
	Encryption string          `json:"encryption"`
	SectorSize int             `json:"sector_size"`
	Integrity  json.RawMessage `json:"integrity,omitempty"`
	Flags      []string        `json:"flags,omitempty"`
}

type l2Digest struct {
	Type       string   `json:"type"`
	Keyslots   []string `json:"keyslots"`
	Segments   []string `json:"segments"`
	Hash       string   `json:"hash"`
	Iterations uint32   `json:"iterations"`
	Salt       string   `json:"salt"`
	Digest     string   `json:"digest"`
}

type l2Config struct {
	JSONSize     string          `json:"json_size"`
	KeyslotsSize string          `json:"keyslots_size"`
	Flags        []string        `json:"flags,omitempty"`
	Requirements *l2Requirements `json:"requirements,omitempty"`
}

type l2Requirements struct {
	Mandatory []string `json:"mandatory,omitempty"`
}

// l2Copy is one parsed metadata copy.
type l2Copy struct {
	offset                       int64
	hdrSize                      int64
	seqid                        uint64
	label, subsystem, uuid, csum string
	meta                         *l2Meta
	binOK                        bool // binary header passed the pre-checksum checks
}

// luks2HdrOffsets are where a secondary header may sit when the primary
// cannot tell its size.
var luks2HdrOffsets = []int64{16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20}

func validHdrSize(n uint64) bool {
	for _, s := range luks2HdrOffsets {
		if n == uint64(s) {
			return true
		}
	}
	return false
}

// readL2Copy reads and verifies the metadata copy at off.
func readL2Copy(r io.ReaderAt, size, off int64, secondary bool) (*l2Copy, error) {
	which := "primary"
	magic := luksMagic
	if secondary {
		which, magic = "secondary", luks2MagicSecondary
	}
	bin := make([]byte, luks2BinSize)
	if err := readAt(r, size, bin, off, which+" LUKS2 header"); err != nil {
		return nil, err
	}
	c := &l2Copy{offset: off}
	be := binary.BigEndian
	if !bytes.Equal(bin[:6], magic) {
		return c, fmt.Errorf("%w: no %s LUKS2 magic at offset %d", ErrCorruptHeader, which, off)
	}
	if v := be.Uint16(bin[6:]); v != 2 {
		return c, fmt.Errorf("%w: %s header at offset %d has version %d", ErrCorruptHeader, which, off, v)
	}
	hs := be.Uint64(bin[8:])
	if !validHdrSize(hs) {
		return c, fmt.Errorf("%w: %s header at offset %d has metadata size %d", ErrCorruptHeader, which, off, hs)
	}
	if ho := be.Uint64(bin[256:]); ho != uint64(off) {
		return c, fmt.Errorf("%w: %s header at offset %d says it is at offset %d", ErrCorruptHeader, which, off, ho)
	}
	if secondary && hs != uint64(off) {
		return c, fmt.Errorf("%w: secondary header at offset %d has metadata size %d", ErrCorruptHeader, off, hs)
	}
	c.hdrSize = int64(hs)
	c.seqid = be.Uint64(bin[16:])
	c.label = cString(bin[24:72])
	c.csum = cString(bin[72:104])
	c.uuid = cString(bin[168:208])
	c.subsystem = cString(bin[208:256])
	c.binOK = true

	area := make([]byte, c.hdrSize-luks2BinSize)
	if err := readAt(r, size, area, off+luks2BinSize, which+" LUKS2 JSON area"); err != nil {
		return c, err
	}
	newHash, err := hashByName(c.csum)
	if err != nil {
		return c, fmt.Errorf("%w: %s header checksum algorithm %q", ErrCorruptHeader, which, c.csum)
	}
	hh := newHash()
	if hh.Size() > 64 {
		return c, fmt.Errorf("%w: %s header checksum algorithm %q is longer than the field", ErrCorruptHeader, which, c.csum)
	}
	want := append([]byte(nil), bin[luks2CsumOff:luks2CsumOff+hh.Size()]...)
	clear(bin[luks2CsumOff : luks2CsumOff+64])
	hh.Write(bin)
	hh.Write(area)
	if subtle.ConstantTimeCompare(hh.Sum(nil), want) != 1 {
		return c, fmt.Errorf("%w: %s header at offset %d fails its %s checksum", ErrCorruptHeader, which, off, c.csum)
	}
	meta, err := parseL2JSON(area, c.hdrSize)
	if err != nil {
		return c, fmt.Errorf("%s header: %w", which, err)
	}
	c.meta = meta
	return c, nil
}

// parseL2JSON checks the JSON area's framing (one JSON object, then only
// NUL bytes) and decodes it.
func parseL2JSON(area []byte, hdrSize int64) (*l2Meta, error) {
	if len(area) == 0 || area[0] != '{' {
		return nil, fmt.Errorf("%w: JSON area does not start with '{'", ErrCorruptHeader)
	}
	end := bytes.IndexByte(area, 0)
	if end < 0 {
		return nil, fmt.Errorf("%w: JSON area has no terminating NUL", ErrCorruptHeader)
	}
	for _, c := range area[end:] {
		if c != 0 {
			return nil, fmt.Errorf("%w: non-zero bytes after the JSON text", ErrCorruptHeader)
		}
	}
	var m l2Meta
	if err := unmarshalJSON(area[:end], &m, "LUKS2 JSON"); err != nil {
		return nil, err
	}
	if m.Keyslots == nil || m.Segments == nil || m.Digests == nil || m.Config == nil || m.Tokens == nil {
		return nil, fmt.Errorf("%w: LUKS2 JSON lacks one of keyslots, tokens, segments, digests, config", ErrCorruptHeader)
	}
	js, err := parseU64(m.Config.JSONSize, "config json_size")
	if err != nil {
		return nil, err
	}
	if js != uint64(hdrSize-luks2BinSize) {
		return nil, fmt.Errorf("%w: config json_size %d does not match the %d-byte JSON area", ErrCorruptHeader, js, hdrSize-luks2BinSize)
	}
	ks, err := parseU64(m.Config.KeyslotsSize, "config keyslots_size")
	if err != nil {
		return nil, err
	}
	if ks%4096 != 0 || ks > 128<<20 {
		return nil, fmt.Errorf("%w: config keyslots_size %d (want a multiple of 4096 up to 128 MiB)", ErrCorruptHeader, ks)
	}
	return &m, nil
}

func readLUKS2(r io.ReaderAt, size int64) (*Header, error) {
	p, perr := readL2Copy(r, size, 0, false)
	if perr != nil && errors.Is(perr, ErrTruncatedHeader) && (p == nil || !p.binOK) {
		return nil, perr
	}
	var s *l2Copy
	var serr error
	if p != nil && p.binOK {
		s, serr = readL2Copy(r, size, p.hdrSize, true)
	} else {
		serr = fmt.Errorf("%w: no secondary LUKS2 header at any known offset", ErrCorruptHeader)
		for _, off := range luks2HdrOffsets {
			if c, err := readL2Copy(r, size, off, true); err == nil {
				s, serr = c, nil
				break
			}
		}
	}
	pOK, sOK := perr == nil, serr == nil
	var use *l2Copy
	var warnings []string
	switch {
	case pOK && sOK:
		use = p
		if s.seqid > p.seqid {
			use = s
			warnings = append(warnings, fmt.Sprintf("the secondary LUKS2 header is newer (seqid %d) than the primary (%d); cryptsetup would rewrite the primary", s.seqid, p.seqid))
		} else if s.seqid < p.seqid {
			warnings = append(warnings, fmt.Sprintf("the secondary LUKS2 header is older (seqid %d) than the primary (%d); cryptsetup would rewrite it", s.seqid, p.seqid))
		}
	case pOK:
		use = p
		warnings = append(warnings, fmt.Sprintf("the secondary LUKS2 header is damaged (%v); cryptsetup would silently rewrite it on its next use of the volume", serr))
	case sOK:
		use = s
		warnings = append(warnings, fmt.Sprintf("the primary LUKS2 header is damaged (%v); using the secondary copy", perr))
	default:
		return nil, perr
	}
	h, err := headerFromL2(use, size)
	if err != nil {
		return nil, err
	}
	h.Warnings = append(warnings, h.Warnings...)
	return h, nil
}

// headerFromL2 converts checked LUKS2 metadata into a Header.
func headerFromL2(c *l2Copy, size int64) (*Header, error) {
	m := c.meta
	ksSize, _ := parseOffset(m.Config.KeyslotsSize, "keyslots_size")
	h := &Header{
		Version:      2,
		UUID:         c.uuid,
		Label:        c.label,
		Subsystem:    c.subsystem,
		MetadataSize: c.hdrSize,
		AreasEnd:     2*c.hdrSize + ksSize,
		SequenceID:   c.seqid,
		Tokens:       len(m.Tokens),
		Segments:     len(m.Segments),
		Flags:        m.Config.Flags,
	}
	if m.Config.Requirements != nil {
		h.Requirements = m.Config.Requirements.Mandatory
	}
	if h.AreasEnd > size {
		return nil, fmt.Errorf("%w: LUKS2 metadata and keyslot areas end at byte %d but the device has %d bytes", ErrTruncatedHeader, h.AreasEnd, size)
	}

	// The data segment: the lowest-numbered one (there is one unless a
	// reencryption is in progress, which usable() refuses).
	segID := -1
	for k := range m.Segments {
		id, err := parseU64(k, "segment id")
		if err != nil {
			return nil, err
		}
		if segID < 0 || int(id) < segID {
			segID = int(id)
		}
	}
	if segID < 0 {
		return nil, fmt.Errorf("%w: LUKS2 header has no data segment", ErrCorruptHeader)
	}
	seg := m.Segments[strconv.Itoa(segID)]
	if seg.Type != "crypt" {
		return nil, fmt.Errorf("%w: data segment %d has type %q", ErrUnsupported, segID, seg.Type)
	}
	var err error
	if h.PayloadOffset, err = parseOffset(seg.Offset, "segment offset"); err != nil {
		return nil, err
	}
	if h.PayloadOffset%512 != 0 {
		return nil, fmt.Errorf("%w: segment offset %d is not a multiple of 512", ErrCorruptHeader, h.PayloadOffset)
	}
	if h.PayloadOffset != 0 && h.PayloadOffset < h.AreasEnd {
		return nil, fmt.Errorf("%w: data segment at byte %d overlaps the keyslot areas ending at %d", ErrCorruptHeader, h.PayloadOffset, h.AreasEnd)
	}
	if seg.Size != "dynamic" {
		if h.PayloadSize, err = parseOffset(seg.Size, "segment size"); err != nil {
			return nil, err
		}
		if h.PayloadSize == 0 {
			return nil, fmt.Errorf("%w: segment size is 0", ErrCorruptHeader)
		}
	}
	if h.IVTweak, err = parseU64(seg.IVTweak, "segment iv_tweak"); err != nil {
		return nil, err
	}
	h.Cipher = seg.Encryption
	h.SectorSize = seg.SectorSize
	switch h.SectorSize {
	case 512, 1024, 2048, 4096:
	default:
		return nil, fmt.Errorf("%w: segment sector size %d", ErrCorruptHeader, h.SectorSize)
	}
	if h.PayloadSize%int64(h.SectorSize) != 0 {
		return nil, fmt.Errorf("%w: segment size %d is not a multiple of the %d-byte sector", ErrCorruptHeader, h.PayloadSize, h.SectorSize)
	}
	if len(seg.Integrity) > 0 && string(seg.Integrity) != "null" {
		h.Integrity = string(seg.Integrity)
	}

	// Digests, by keyslot.
	slotDigest := map[int]*digest{}
	for id, d := range m.Digests {
		if d.Type != "pbkdf2" {
			continue // keyslots that rely on it fail with "no digest"
		}
		salt, err1 := base64.StdEncoding.DecodeString(d.Salt)
		val, err2 := base64.StdEncoding.DecodeString(d.Digest)
		if err1 != nil || err2 != nil || len(val) == 0 {
			return nil, fmt.Errorf("%w: digest %s has a malformed salt or value", ErrCorruptHeader, id)
		}
		slots, err := parseIDs(d.Keyslots, "digest keyslot")
		if err != nil {
			return nil, err
		}
		segs, err := parseIDs(d.Segments, "digest segment")
		if err != nil {
			return nil, err
		}
		dg := &digest{hash: d.Hash, iterations: d.Iterations, salt: salt, value: val}
		covers := false
		for _, s := range segs {
			covers = covers || s == segID
		}
		if !covers {
			continue
		}
		for _, s := range slots {
			slotDigest[s] = dg
		}
	}

	for id, k := range m.Keyslots {
		n, err := parseU64(id, "keyslot id")
		if err != nil {
			return nil, err
		}
		if n > 255 {
			return nil, fmt.Errorf("%w: keyslot id %d", ErrCorruptHeader, n)
		}
		ks := Keyslot{
			ID:          int(n),
			Type:        k.Type,
			Priority:    PriorityNormal,
			KeyBits:     k.KeySize * 8,
			AFStripes:   k.AF.Stripes,
			AFHash:      k.AF.Hash,
			AreaCipher:  k.Area.Encryption,
			AreaKeyBits: k.Area.KeySize * 8,
			digest:      slotDigest[int(n)],
		}
		if k.Priority != nil {
			if *k.Priority < 0 || *k.Priority > 2 {
				return nil, fmt.Errorf("%w: keyslot %d priority %d", ErrCorruptHeader, n, *k.Priority)
			}
			ks.Priority = Priority(*k.Priority)
		}
		if k.Type == "luks2" {
			if k.KeySize <= 0 || k.KeySize > 256 {
				return nil, fmt.Errorf("%w: keyslot %d key size %d bytes", ErrCorruptHeader, n, k.KeySize)
			}
			if k.AF.Type != "luks1" {
				return nil, fmt.Errorf("%w: keyslot %d anti-forensic type %q", ErrUnsupported, n, k.AF.Type)
			}
			if k.Area.Type != "raw" {
				return nil, fmt.Errorf("%w: keyslot %d area type %q", ErrUnsupported, n, k.Area.Type)
			}
			if ks.AreaOffset, err = parseOffset(k.Area.Offset, "keyslot area offset"); err != nil {
				return nil, err
			}
			if ks.AreaSize, err = parseOffset(k.Area.Size, "keyslot area size"); err != nil {
				return nil, err
			}
			salt, err := base64.StdEncoding.DecodeString(k.KDF.Salt)
			if err != nil {
				return nil, fmt.Errorf("%w: keyslot %d KDF salt is not base64", ErrCorruptHeader, n)
			}
			ks.KDF = KDF{Type: k.KDF.Type, Hash: k.KDF.Hash, Iterations: k.KDF.Iterations,
				Time: k.KDF.Time, MemoryKiB: k.KDF.Memory, Parallel: k.KDF.CPUs, salt: salt}
			if ks.KDF.Type != KDFPBKDF2 {
				ks.KDF.Hash, ks.KDF.Iterations = "", 0
			}
		}
		h.Keyslots = append(h.Keyslots, ks)
	}
	sortKeyslots(h.Keyslots)
	// The segment's key length is that of the keyslots its digest covers
	// (LUKS2 does not store it in the segment); take the lowest-numbered
	// one, and let checkSlot refuse any keyslot that disagrees.
	for _, ks := range h.Keyslots {
		if ks.Type == "luks2" && ks.digest != nil {
			h.KeyBits = ks.KeyBits
			break
		}
	}
	return h, nil
}

// checkLUKS2Slot checks a LUKS2 keyslot's placement before use.
func checkLUKS2Slot(h *Header, ks *Keyslot) error {
	lo, hi := 2*h.MetadataSize, h.AreasEnd
	if ks.AreaOffset < lo || ks.AreaSize > hi-lo || ks.AreaOffset > hi-ks.AreaSize {
		return fmt.Errorf("%w: keyslot %d area (bytes %d-%d) lies outside the keyslots area (bytes %d-%d)", ErrCorruptKeyslot, ks.ID, ks.AreaOffset, ks.AreaOffset+ks.AreaSize, lo, hi)
	}
	if ks.AreaOffset%512 != 0 {
		return fmt.Errorf("%w: keyslot %d area offset %d is not sector-aligned", ErrCorruptKeyslot, ks.ID, ks.AreaOffset)
	}
	return nil
}

// luks2Params are the fields of a LUKS2 header being written.
type luks2Params struct {
	hdrSize                int64
	uuid, label, subsystem string
	seqid                  uint64
	salt1, salt2           []byte
	meta                   *l2Meta
}

// marshalLUKS2 renders both metadata copies (2*hdrSize bytes) with correct
// checksums. The JSON areas are identical, zero-padded, and each checksum
// covers its whole area, padding included.
func marshalLUKS2(p *luks2Params) ([]byte, error) {
	text, err := json.Marshal(p.meta)
	if err != nil {
		return nil, fmt.Errorf("encoding LUKS2 JSON: %w", err)
	}
	if int64(len(text)) >= p.hdrSize-luks2BinSize {
		return nil, fmt.Errorf("LUKS2 JSON of %d bytes does not fit a %d-byte area", len(text), p.hdrSize-luks2BinSize)
	}
	out := make([]byte, 2*p.hdrSize)
	for i, c := range []struct {
		magic []byte
		salt  []byte
	}{{luksMagic, p.salt1}, {luks2MagicSecondary, p.salt2}} {
		off := int64(i) * p.hdrSize
		b := out[off : off+p.hdrSize]
		be := binary.BigEndian
		copy(b, c.magic)
		be.PutUint16(b[6:], 2)
		be.PutUint64(b[8:], uint64(p.hdrSize))
		be.PutUint64(b[16:], p.seqid)
		copy(b[24:71], p.label)
		copy(b[72:103], "sha256")
		copy(b[104:168], c.salt)
		copy(b[168:207], p.uuid)
		copy(b[208:255], p.subsystem)
		be.PutUint64(b[256:], uint64(off))
		copy(b[luks2BinSize:], text)
		newHash, _ := hashByName("sha256")
		h := newHash()
		h.Write(b)
		copy(b[luks2CsumOff:], h.Sum(nil))
	}
	return out, nil
}
