#!/usr/bin/env python3
"""Writes the seed corpus of elf_fuzz (tests/fuzz/corpus/elf/): small ELF64 files made by hand,
with a build id note, a symbol table (a thunk, a compiler-made part, a plain function) and
variants (no build id, no sections, a stripped one with .dynsym only). Run from anywhere."""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "elf")


def elf(build_id=b"\x11" * 20, symtab_type=2, with_sections=True):
    names = [b"_ZN2mp6detail5thunkIiEEvRNS_7DecoderEPNS_7EncoderE", b"square.cold", b"square"]
    strtab = b"\0" + b"\0".join(names) + b"\0"
    offs, o = [], 1
    for n in names:
        offs.append(o)
        o += len(n) + 1
    sym = struct.pack("<IBBHQQ", 0, 0, 0, 0, 0, 0)
    for i, v in enumerate((0x1000, 0x1080, 0x1100)):
        sym += struct.pack("<IBBHQQ", offs[i], 0x12, 0, 1, v, 16)  # GLOBAL FUNC in section 1
    note = struct.pack("<III", 4, len(build_id), 3) + b"GNU\0" + build_id if build_id else b""
    shstrtab = b"\0.symtab\0.strtab\0.shstrtab\0"
    ehdr_size, phdr_size = 64, 56
    note_off = ehdr_size + phdr_size
    sym_off = note_off + len(note)
    str_off = sym_off + len(sym)
    shs_off = str_off + len(strtab)
    sh_off = (shs_off + len(shstrtab) + 7) // 8 * 8
    shnum = 4 if with_sections else 0
    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    ehdr += struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, ehdr_size, sh_off if with_sections else 0, 0,
                        ehdr_size, phdr_size, 1, 64, shnum, 3 if with_sections else 0)
    phdr = struct.pack("<IIQQQQQQ", 4, 4, note_off, note_off, 0, len(note), len(note), 4)
    body = ehdr + phdr + note + sym + strtab + shstrtab
    body += b"\0" * (sh_off - len(body))
    if with_sections:
        body += b"\0" * 64
        body += struct.pack("<IIQQQQIIQQ", 1, symtab_type, 0, 0, sym_off, len(sym), 2, 1, 8, 24)
        body += struct.pack("<IIQQQQIIQQ", 9, 3, 0, 0, str_off, len(strtab), 0, 0, 1, 0)
        body += struct.pack("<IIQQQQIIQQ", 17, 3, 0, 0, shs_off, len(shstrtab), 0, 0, 1, 0)
    return body


def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {
        "full": elf(),
        "no_build_id": elf(build_id=b""),
        "stripped_dynsym": elf(symtab_type=11),
        "no_sections": elf(with_sections=False),
        "not_elf": b"#!/bin/sh\necho not an ELF file\n",
    }
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
