package cryptsetup

import (
	"context"
	"fmt"
	"io"
)

// PayloadReader reads the decrypted payload of a volume in user space (no
// device-mapper, no root), for offline checks of what the payload holds,
// such as a dm-verity tree (`sealroot image check`). It holds the volume
// key until Close, which wipes it.
type PayloadReader struct {
	v    *Volume
	key  []byte
	size int64
}

// OpenPayload unlocks the volume in user space with the passphrase. Of the
// options, Keyslots and MemoryLimitKiB apply; ctx bounds the key
// derivation as in UnlockContext.
func (v *Volume) OpenPayload(ctx context.Context, passphrase []byte, o UnlockOptions) (*PayloadReader, error) {
	_, length, err := v.Payload()
	if err != nil {
		return nil, err
	}
	u, err := unseal(ctx, v.f, v.size, v.hdr, passphrase, o.keyOptions())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", v.path, err)
	}
	return &PayloadReader{v: v, key: u.key, size: length}, nil
}

// Size is the payload's length in bytes.
func (r *PayloadReader) Size() int64 { return r.size }

// ReadAt decrypts len(p) bytes of the payload at off (any alignment).
func (r *PayloadReader) ReadAt(p []byte, off int64) (int, error) {
	if r.key == nil {
		return 0, fmt.Errorf("payload reader of %s is closed", r.v.path)
	}
	if off < 0 {
		return 0, fmt.Errorf("payload read at negative offset %d", off)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	want := len(p)
	short := false
	if int64(want) > r.size-off {
		want, short = int(r.size-off), true
	}
	ss := int64(r.v.hdr.SectorSize)
	start := off / ss * ss
	end := (off + int64(want) + ss - 1) / ss * ss
	const chunk = 1 << 20
	buf := make([]byte, min(end-start, chunk))
	defer wipe(buf)
	n := 0
	for pos := start; pos < end; pos += int64(len(buf)) {
		b := buf[:min(int64(len(buf)), end-pos)]
		if err := r.v.readPlain(r.key, b, pos); err != nil {
			return n, err
		}
		lo := max(off, pos) - pos
		hi := min(off+int64(want), pos+int64(len(b))) - pos
		n += copy(p[n:], b[lo:hi])
	}
	if short {
		return n, io.EOF
	}
	return n, nil
}

// Close wipes the volume key. The volume stays open.
func (r *PayloadReader) Close() error {
	wipe(r.key)
	r.key = nil
	return nil
}
