#!/usr/bin/env python3
# An independent MRTD computation for host/measure's tests, written from
# the TDVF layout in docs/measurement.md without reference to the Go code.
# Usage: mrtd.py FIRMWARE ; prints "ORDER MRTD" for single-pass and two-pass.
import hashlib
import struct
import sys
import uuid

FOOTER = uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d").bytes_le
TDX_META = uuid.UUID("e47a6535-984a-4798-865e-4685a7bf8ec2").bytes_le


def table(img):
    end = len(img) - 32
    size, guid = struct.unpack_from("<H16s", img, end - 18)
    assert guid == FOOTER, "no footer table"
    body = img[end - size:end - 18]
    entries = {}
    while body:
        esize, eguid = struct.unpack_from("<H16s", body, len(body) - 18)
        entries[eguid] = body[len(body) - esize:len(body) - 18]
        body = body[:len(body) - esize]
    return entries


def mrtd(img, order):
    off = struct.unpack_from("<I", table(img)[TDX_META])[0]
    base = len(img) - off
    sig, _length, version, n = struct.unpack_from("<4sIII", img, base)
    assert sig == b"TDVF" and version == 1
    h = hashlib.sha384()
    for i in range(n):
        data_off, _raw, addr, size, _typ, attr = struct.unpack_from("<IIQQII", img, base + 16 + 32 * i)
        adds, extends = [], []
        for p in range(size // 4096):
            gpa = addr + p * 4096
            a = [] if attr & 2 else [(b"MEM.PAGE.ADD".ljust(16, b"\0") + struct.pack("<Q", gpa)).ljust(128, b"\0")]
            e = []
            if attr & 1:
                for c in range(0, 4096, 256):
                    rec = (b"MR.EXTEND".ljust(16, b"\0") + struct.pack("<Q", gpa + c)).ljust(128, b"\0")
                    chunk = img[data_off + p * 4096 + c:data_off + p * 4096 + c + 256]
                    assert len(chunk) == 256
                    e.append(rec + chunk)
            if order == "single-pass":
                adds += a + e
            else:
                adds += a
                extends += e
        for b in adds + extends:
            h.update(b)
    return h.hexdigest()


if __name__ == "__main__":
    img = open(sys.argv[1], "rb").read()
    for order in ("single-pass", "two-pass"):
        print(order, mrtd(img, order))
