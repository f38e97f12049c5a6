package cryptsetup

import (
	"encoding/binary"
	"fmt"
	"io"
)

// LUKS1 on-disk format (all integers big-endian):
//
//	0   magic[6] version u16 cipher_name[32] cipher_mode[32] hash_spec[32]
//	104 payload_offset u32 (512-byte sectors)  key_bytes u32
//	112 mk_digest[20] mk_digest_salt[32] mk_digest_iter u32
//	168 uuid[40]
//	208 8 keyslots of 48 bytes: active u32, iterations u32, salt[32],
//	    key_material_offset u32 (sectors), stripes u32
//	592 end
//
// The key material of a keyslot is key_bytes*stripes bytes of AF-split key,
// encrypted with the volume's cipher under the PBKDF2-derived key, with IVs
// counting 512-byte sectors from the start of the material.
const (
	luks1HeaderSize   = 592
	luks1NumKeyslots  = 8
	luks1KeyslotSize  = 48
	luks1SlotActive   = 0x00AC71F3
	luks1SlotInactive = 0x0000DEAD
	luks1DigestSize   = 20
	luks1SaltSize     = 32
)

func readLUKS1(r io.ReaderAt, size int64) (*Header, error) {
	var b [luks1HeaderSize]byte
	if err := readAt(r, size, b[:], 0, "LUKS1 header"); err != nil {
		return nil, err
	}
	be := binary.BigEndian
	h := &Header{
		Version:       1,
		Cipher:        cString(b[8:40]) + "-" + cString(b[40:72]),
		SectorSize:    512,
		PayloadOffset: int64(be.Uint32(b[104:])) * 512,
		UUID:          cString(b[168:208]),
		MetadataSize:  luks1HeaderSize,
		AreasEnd:      luks1HeaderSize,
	}
	hashSpec := cString(b[72:104])
	keyBytes := be.Uint32(b[108:])
	if keyBytes == 0 || keyBytes > 256 {
		return nil, fmt.Errorf("%w: LUKS1 key length %d bytes", ErrCorruptHeader, keyBytes)
	}
	h.KeyBits = int(keyBytes) * 8
	d := &digest{
		hash:       hashSpec,
		iterations: be.Uint32(b[164:]),
		salt:       append([]byte(nil), b[132:164]...),
		value:      append([]byte(nil), b[112:132]...),
	}
	for i := range luks1NumKeyslots {
		s := b[208+i*luks1KeyslotSize : 208+(i+1)*luks1KeyslotSize]
		switch active := be.Uint32(s[0:]); active {
		case luks1SlotInactive:
			continue
		case luks1SlotActive:
		default:
			return nil, fmt.Errorf("%w: LUKS1 keyslot %d has state 0x%08x (neither active nor inactive)", ErrCorruptHeader, i, active)
		}
		stripes := be.Uint32(s[44:])
		if stripes == 0 || stripes > 1<<16 {
			return nil, fmt.Errorf("%w: LUKS1 keyslot %d has %d AF stripes", ErrCorruptHeader, i, stripes)
		}
		ks := Keyslot{
			ID:       i,
			Type:     "luks1",
			Priority: PriorityNormal,
			KDF: KDF{
				Type:       KDFPBKDF2,
				Hash:       hashSpec,
				Iterations: be.Uint32(s[4:]),
				salt:       append([]byte(nil), s[8:40]...),
			},
			KeyBits:     int(keyBytes) * 8,
			AFStripes:   int(stripes),
			AFHash:      hashSpec,
			AreaOffset:  int64(be.Uint32(s[40:])) * 512,
			AreaSize:    roundUp(int64(keyBytes)*int64(stripes), 512),
			AreaCipher:  h.Cipher,
			AreaKeyBits: int(keyBytes) * 8,
			digest:      d,
		}
		h.Keyslots = append(h.Keyslots, ks)
		h.AreasEnd = max(h.AreasEnd, ks.AreaOffset+ks.AreaSize)
	}
	if h.AreasEnd > size {
		return nil, fmt.Errorf("%w: LUKS1 key material ends at byte %d but the device has %d bytes", ErrTruncatedHeader, h.AreasEnd, size)
	}
	return h, nil
}

// checkLUKS1Slot checks a LUKS1 keyslot's placement before use.
func checkLUKS1Slot(h *Header, ks *Keyslot) error {
	if ks.AreaOffset < luks1HeaderSize {
		return fmt.Errorf("%w: keyslot %d key material at byte %d overlaps the header", ErrCorruptKeyslot, ks.ID, ks.AreaOffset)
	}
	if h.PayloadOffset > 0 && ks.AreaOffset+ks.AreaSize > h.PayloadOffset {
		return fmt.Errorf("%w: keyslot %d key material (bytes %d-%d) overlaps the payload at %d", ErrCorruptKeyslot, ks.ID, ks.AreaOffset, ks.AreaOffset+ks.AreaSize, h.PayloadOffset)
	}
	return nil
}

// luks1Layout places the 8 LUKS1 keyslots as luksy (and so buildah) does:
// the first keyslot's material starts at 4096 bytes, each keyslot's material
// is rounded up to 4096 bytes, and the payload follows the last keyslot.
// With a 64-byte key and 4000 stripes that puts the payload at sector 4040.
func luks1Layout(keyBytes, stripes int) (slotOffsets [luks1NumKeyslots]int64, payloadOffset int64) {
	off := int64(4096)
	for i := range slotOffsets {
		slotOffsets[i] = off
		off = roundUp(off+int64(keyBytes*stripes), 4096)
	}
	return slotOffsets, off
}

// luks1Params are the fields of a LUKS1 header being written.
type luks1Params struct {
	cipherName, cipherMode, hashSpec string
	payloadOffset                    int64
	keyBytes                         int
	digest, digestSalt               []byte
	digestIter                       uint32
	uuid                             string
	slots                            [luks1NumKeyslots]luks1SlotParams
}

type luks1SlotParams struct {
	active     bool
	iterations uint32
	salt       []byte
	offset     int64
	stripes    int
}

// marshalLUKS1 renders the 592-byte binary header.
func marshalLUKS1(p *luks1Params) []byte {
	b := make([]byte, luks1HeaderSize)
	be := binary.BigEndian
	copy(b[0:], luksMagic)
	be.PutUint16(b[6:], 1)
	copy(b[8:39], p.cipherName)
	copy(b[40:71], p.cipherMode)
	copy(b[72:103], p.hashSpec)
	be.PutUint32(b[104:], uint32(p.payloadOffset/512))
	be.PutUint32(b[108:], uint32(p.keyBytes))
	copy(b[112:132], p.digest)
	copy(b[132:164], p.digestSalt)
	be.PutUint32(b[164:], p.digestIter)
	copy(b[168:207], p.uuid)
	for i, s := range p.slots {
		o := b[208+i*luks1KeyslotSize:]
		if s.active {
			be.PutUint32(o[0:], luks1SlotActive)
		} else {
			be.PutUint32(o[0:], luks1SlotInactive)
		}
		be.PutUint32(o[4:], s.iterations)
		copy(o[8:40], s.salt)
		be.PutUint32(o[40:], uint32(s.offset/512))
		be.PutUint32(o[44:], uint32(s.stripes))
	}
	return b
}

func roundUp(n, m int64) int64 { return (n + m - 1) / m * m }
