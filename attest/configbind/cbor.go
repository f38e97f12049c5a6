package configbind

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// A small CBOR (RFC 8949) reader: just what ccaRPV needs to walk a CCA
// token, so that the guest does not link a general CBOR library (see
// docs/libkrunfw.md "Initrd size"). Every item is checked for
// well-formedness, including the ones it only skips: definite and
// indefinite lengths, no reserved additional information, no stray
// "break", valid UTF-8 text, simple values in their shortest form, nesting
// and element counts bounded.
const (
	cborMaxDepth    = 8    // containers and tags within one item
	cborMaxElements = 1024 // array elements or map pairs
)

// CBOR major types.
const (
	cborUint   = 0
	cborNegInt = 1
	cborBytes  = 2
	cborText   = 3
	cborArray  = 4
	cborMap    = 5
	cborTag    = 6
	cborSimple = 7
)

var errCBORShort = errors.New("cbor: data ends inside an item")

// cborHead is an item's initial byte and argument.
type cborHead struct {
	major byte
	arg   uint64 // the argument; for major 7, the simple value or float bits
	indef bool   // indefinite length (major 2-5) or break (major 7)
	n     int    // bytes of the head
}

func readHead(b []byte) (cborHead, error) {
	if len(b) == 0 {
		return cborHead{}, errCBORShort
	}
	h := cborHead{major: b[0] >> 5, n: 1}
	info := b[0] & 0x1f
	switch {
	case info < 24:
		h.arg = uint64(info)
	case info <= 27:
		size := 1 << (info - 24)
		if len(b) < 1+size {
			return cborHead{}, errCBORShort
		}
		switch size {
		case 1:
			h.arg = uint64(b[1])
		case 2:
			h.arg = uint64(binary.BigEndian.Uint16(b[1:]))
		case 4:
			h.arg = uint64(binary.BigEndian.Uint32(b[1:]))
		default:
			h.arg = binary.BigEndian.Uint64(b[1:])
		}
		h.n += size
		if h.major == cborSimple && size == 1 && h.arg < 32 {
			return cborHead{}, fmt.Errorf("cbor: simple value %d is not in its shortest form", h.arg)
		}
	case info == 31:
		switch h.major {
		case cborBytes, cborText, cborArray, cborMap, cborSimple:
			h.indef = true
		default:
			return cborHead{}, fmt.Errorf("cbor: major type %d cannot have an indefinite length", h.major)
		}
	default:
		return cborHead{}, fmt.Errorf("cbor: reserved additional information %d", info)
	}
	return h, nil
}

// skipItem returns the length of the well-formed item at the start of b.
func skipItem(b []byte, depth int) (int, error) {
	h, err := readHead(b)
	if err != nil {
		return 0, err
	}
	switch h.major {
	case cborUint, cborNegInt:
		return h.n, nil
	case cborBytes, cborText:
		_, n, err := readString(b, h)
		return n, err
	case cborArray, cborMap:
		if depth >= cborMaxDepth {
			return 0, fmt.Errorf("cbor: nested deeper than %d", cborMaxDepth)
		}
		per := 1
		if h.major == cborMap {
			per = 2
		}
		off := h.n
		for i := uint64(0); h.indef || i < h.arg; i++ {
			if h.indef && off < len(b) && b[off] == 0xff {
				return off + 1, nil
			}
			if i >= cborMaxElements {
				return 0, fmt.Errorf("cbor: more than %d elements", cborMaxElements)
			}
			for range per {
				n, err := skipItem(b[off:], depth+1)
				if err != nil {
					return 0, err
				}
				off += n
			}
		}
		return off, nil
	case cborTag:
		if depth >= cborMaxDepth {
			return 0, fmt.Errorf("cbor: nested deeper than %d", cborMaxDepth)
		}
		n, err := skipItem(b[h.n:], depth+1)
		return h.n + n, err
	}
	if h.indef {
		return 0, errors.New("cbor: break outside an indefinite-length item")
	}
	return h.n, nil
}

// readString returns the content of the byte or text string whose head is
// h and the length of the whole item. An indefinite-length string is the
// concatenation of its definite chunks of the same type.
func readString(b []byte, h cborHead) ([]byte, int, error) {
	if !h.indef {
		if h.arg > uint64(len(b)-h.n) {
			return nil, 0, errCBORShort
		}
		s := b[h.n : h.n+int(h.arg)]
		if h.major == cborText && !utf8.Valid(s) {
			return nil, 0, errors.New("cbor: text string is not UTF-8")
		}
		return s, h.n + int(h.arg), nil
	}
	var out []byte
	off := h.n
	for {
		if off >= len(b) {
			return nil, 0, errCBORShort
		}
		if b[off] == 0xff {
			return out, off + 1, nil
		}
		c, err := readHead(b[off:])
		if err != nil {
			return nil, 0, err
		}
		if c.major != h.major || c.indef {
			return nil, 0, errors.New("cbor: a chunk of an indefinite-length string is not a definite string of its type")
		}
		s, n, err := readString(b[off:], c)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, s...)
		off += n
	}
}

// cborWhole checks that b is exactly one well-formed item and returns its
// head.
func cborWhole(b []byte) (cborHead, error) {
	n, err := skipItem(b, 0)
	if err != nil {
		return cborHead{}, err
	}
	if n != len(b) {
		return cborHead{}, fmt.Errorf("cbor: %d bytes of extraneous data", len(b)-n)
	}
	return readHead(b)
}

// cborTagged returns the tag number and the content item of the tag that is
// all of b.
func cborTagged(b []byte) (uint64, []byte, error) {
	h, err := cborWhole(b)
	if err != nil {
		return 0, nil, err
	}
	if h.major != cborTag {
		return 0, nil, fmt.Errorf("cbor: major type %d is not a tag", h.major)
	}
	return h.arg, b[h.n:], nil
}

// cborByteString returns the content of the byte string that is all of b.
func cborByteString(b []byte) ([]byte, error) {
	h, err := cborWhole(b)
	if err != nil {
		return nil, err
	}
	if h.major != cborBytes {
		return nil, fmt.Errorf("cbor: major type %d is not a byte string", h.major)
	}
	s, _, err := readString(b, h)
	return s, err
}

// cborArrayItems returns the items of the array that is all of b.
func cborArrayItems(b []byte) ([][]byte, error) {
	h, err := cborWhole(b)
	if err != nil {
		return nil, err
	}
	if h.major != cborArray {
		return nil, fmt.Errorf("cbor: major type %d is not an array", h.major)
	}
	var items [][]byte
	off := h.n
	for off < len(b) && !(h.indef && b[off] == 0xff) {
		n, _ := skipItem(b[off:], 1) // well-formed: cborWhole checked it
		items = append(items, b[off:off+n])
		off += n
	}
	return items, nil
}

// cborIntMapValue returns the value of key in the map that is all of b,
// whose keys must all be integers: unsigned ones when unsigned is set,
// else any that fit an int64. A key given twice takes its last value.
func cborIntMapValue(b []byte, key int64, unsigned bool) ([]byte, error) {
	h, err := cborWhole(b)
	if err != nil {
		return nil, err
	}
	if h.major != cborMap {
		return nil, fmt.Errorf("cbor: major type %d is not a map", h.major)
	}
	var val []byte
	off := h.n
	for off < len(b) && !(h.indef && b[off] == 0xff) {
		k, _ := readHead(b[off:])
		var kv int64
		switch {
		case k.major == cborUint && k.arg <= math.MaxInt64:
			kv = int64(k.arg)
		case k.major == cborUint && unsigned:
			kv = -1 // never a key asked for
		case k.major == cborNegInt && !unsigned && k.arg <= math.MaxInt64:
			kv = -1 - int64(k.arg)
		default:
			return nil, fmt.Errorf("cbor: map key of major type %d is not an integer of the expected range", k.major)
		}
		off += k.n
		n, _ := skipItem(b[off:], 1)
		if kv == key {
			val = b[off : off+n]
		}
		off += n
	}
	if val == nil {
		return nil, fmt.Errorf("cbor: map has no key %d", key)
	}
	return val, nil
}
