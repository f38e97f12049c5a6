#!/usr/bin/env python3
"""Independent TDX RTMR1/RTMR2 computation for host/measure's tests.

Written for these tests from the description in docs/measurement.md (the
Authenticode image hash of the PE/COFF specification and the direct-boot
event order); it shares no code with the Go implementation and uses only
the standard library.

usage: rtmr.py KERNEL INITRD CMDLINE GENERATION
prints three lines: "authenticode HEX", "rtmr1 HEX", "rtmr2 HEX".
usage: rtmr.py --pe FILE...
prints "FILE HEX", the Authenticode digest of each file.
"""
import hashlib
import struct
import sys


def pe_hash(data):
    """Authenticode SHA-384 of a PE/COFF image."""
    (e_lfanew,) = struct.unpack_from("<I", data, 0x3C)
    assert data[:2] == b"MZ" and data[e_lfanew:e_lfanew + 4] == b"PE\0\0"
    n_sections, = struct.unpack_from("<H", data, e_lfanew + 6)
    opt_size, = struct.unpack_from("<H", data, e_lfanew + 20)
    opt = e_lfanew + 24
    magic, = struct.unpack_from("<H", data, opt)
    plus = {0x10B: False, 0x20B: True}[magic]
    size_of_headers, = struct.unpack_from("<I", data, opt + 60)
    csum = opt + 64
    n_rva, = struct.unpack_from("<I", data, opt + (108 if plus else 92))
    dirs = opt + (112 if plus else 96)

    # Byte ranges of the header that are left out of the hash.
    skip = [(csum, csum + 4)]
    cert_len = 0
    if n_rva > 4:
        sec_dir = dirs + 4 * 8
        skip.append((sec_dir, sec_dir + 8))
        _, cert_len = struct.unpack_from("<II", data, sec_dir)

    md = hashlib.sha384()
    pos = 0
    for lo, hi in skip:
        md.update(data[pos:lo])
        pos = hi
    md.update(data[pos:size_of_headers])

    table = opt + opt_size
    raw = []
    for i in range(n_sections):
        size, ptr = struct.unpack_from("<II", data, table + 40 * i + 16)
        if size:
            raw.append((ptr, i, size))
    done = size_of_headers
    for ptr, _, size in sorted(raw):
        assert ptr + size <= len(data)
        md.update(data[ptr:ptr + size])
        done += size

    rest = len(data) - done - cert_len
    if rest > 0:
        md.update(data[done:done + rest])
    return md.digest()


def extend(reg, event_digest):
    return hashlib.sha384(reg + event_digest).digest()


def main():
    if sys.argv[1] == "--pe":
        for path in sys.argv[2:]:
            print(path, pe_hash(open(path, "rb").read()).hex())
        return
    kernel_path, initrd_path, cmdline, generation = sys.argv[1:5]
    kernel = open(kernel_path, "rb").read()
    initrd = open(initrd_path, "rb").read()

    authenticode = pe_hash(kernel)
    r1 = bytes(48)
    for ev in (
        authenticode,
        hashlib.sha384(b"Calling EFI Application from Boot Option").digest(),
        hashlib.sha384(struct.pack("<I", 0)).digest(),
        hashlib.sha384(b"Exit Boot Services Invocation").digest(),
        hashlib.sha384(b"Exit Boot Services Returned with Success").digest(),
    ):
        r1 = extend(r1, ev)

    opts = cmdline
    if initrd:
        if generation == "edk2-202508":
            opts = "initrd=initrd " + cmdline
        elif generation == "edk2-202502":
            opts = cmdline + " initrd=initrd"
        else:
            raise SystemExit("unknown generation " + generation)
    # The firmware widens each command-line byte to one UTF-16 unit.
    wide = b"".join(struct.pack("<H", c) for c in opts.encode("latin-1")) + b"\0\0"
    r2 = extend(bytes(48), hashlib.sha384(wide).digest())
    if initrd:
        r2 = extend(r2, hashlib.sha384(initrd).digest())

    print("authenticode", authenticode.hex())
    print("rtmr1", r1.hex())
    print("rtmr2", r2.hex())


if __name__ == "__main__":
    main()
