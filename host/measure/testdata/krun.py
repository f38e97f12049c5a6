#!/usr/bin/env python3
# An independent libkrun SEV-SNP launch digest for host/measure's tests,
# written from docs/measurement.md ("libkrun") without reference to the Go
# code. Usage: krun.py QBOOT KERNEL_BUNDLE INITRD_BUNDLE LOAD_ADDR CPUS:MEM_MIB...
# prints one digest per CPUS:MEM_MIB pair.
import hashlib
import struct
import sys


def page_info(ld, contents, typ, gpa):
    rec = ld + contents + struct.pack("<HBB4sQ", 0x70, typ, 0, b"\0" * 4, gpa)
    assert len(rec) == 0x70
    return hashlib.sha384(rec).digest()


def normal(ld, data, gpa):
    for off in range(0, len(data), 4096):
        ld = page_info(ld, hashlib.sha384(data[off:off + 4096]).digest(), 1, gpa + off)
    return ld


def vmsa(bsp):
    p = bytearray(4096)
    segs = [(0, 0x93, 0xffff, 0), (0xf000, 0x9a, 0xffff, 0xffff0000), (0, 0x92, 0xffff, 0), (0, 0x93, 0xffff, 0),
            (0, 0x93, 0xffff, 0), (0, 0x93, 0xffff, 0), (0, 0, 0xffff, 0), (0, 0x82, 0xffff, 0), (0, 0, 0xffff, 0),
            (0, 0x83, 0xffff, 0)]
    for i, s in enumerate(segs):
        struct.pack_into("<HHIQ", p, 16 * i, *s)
    regs = {0xd0: 0x1000, 0x148: 0x40, 0x158: 0x10, 0x160: 0x400, 0x168: 0xffff0ff0, 0x170: 2,
            0x178: 0xfff0 if bsp else 0xfff3, 0x268: 0x0007040600070406, 0x3b0: 1, 0x3e8: 1}
    if bsp:
        regs.update({0x1d8: 0x8ff0, 0x328: 0x8ff0, 0x330: 0x7000})
    for off, v in regs.items():
        struct.pack_into("<Q", p, off, v)
    return bytes(p)


def zero_page(cpus, mem_mib, initrd_size):
    p = bytearray(4096)
    struct.pack_into("<I", p, 0x1f4, cpus)
    struct.pack_into("<H", p, 0x1fe, 0xaa55)
    struct.pack_into("<I", p, 0x202, 0x53726448)
    p[0x210] = 0xff
    struct.pack_into("<IIxxxxxxxxI", p, 0x218, 0xa00000, initrd_size, 0x20000)
    struct.pack_into("<I", p, 0x230, 0x1000000)
    struct.pack_into("<I", p, 0x238, 0x200)
    mem = mem_mib << 20
    e820 = [(0, 0x9fc00)]
    if mem <= 0xd0000000:
        e820.append((0x100000, mem - 0x100000 + 1))
    else:
        e820 += [(0x100000, 0xd0000000 - 0x100000), (1 << 32, mem - 0xd0000000 + 1)]
    p[0x1e8] = len(e820)
    for i, (addr, size) in enumerate(e820):
        struct.pack_into("<QQI", p, 0x2d0 + 20 * i, addr, size, 1)
    return bytes(p)


def digest(qboot, kernel, initrd, load, cpus, mem):
    ld = bytes(48)
    ld = normal(ld, qboot, 0xffff0000)
    ld = normal(ld, kernel, load)
    ld = normal(ld, initrd, 0xa00000)
    ld = normal(ld, zero_page(cpus, mem, len(initrd)), 0x7000)
    ld = page_info(ld, bytes(48), 3, 0)
    ld = page_info(ld, bytes(48), 5, 0x5000)
    ld = page_info(ld, bytes(48), 6, 0x6000)
    for off in range(0, 0x7000, 0x1000):
        ld = page_info(ld, bytes(48), 3, 0x8000 + off)
    for i in range(cpus):
        ld = page_info(ld, hashlib.sha384(vmsa(i == 0)).digest(), 2, 0xFFFFFFFFF000)
    return ld.hex()


def main():
    qboot, kernel, initrd = (open(f, "rb").read() for f in sys.argv[1:4])
    load = int(sys.argv[4], 0)
    for pair in sys.argv[5:]:
        cpus, mem = (int(x) for x in pair.split(":"))
        print(digest(qboot, kernel, initrd, load, cpus, mem))


main()
