"""Hybrid images: an MBR and/or a GPT in the system area (sectors 0–15), as isohybrid makes.

A hybrid image is accepted when its partition tables are consistent: the MBR
partitions and the GPT (header and entry-array CRC32s, partitions, backup
header) lie within the image file.  A system area without the ``55 AA`` MBR
signature, or whose partition entries are not entries (a status byte other
than ``00``/``80``), is boot code or nothing, and not checked.
"""

from __future__ import annotations

import zlib

from .image import Findings, Image, le32, le64

LBA = 512
PROTECTIVE = 0xEE
#: GPT entry arrays larger than this are refused (the usual one is 16 KiB).
MAX_GPT_ENTRIES_BYTES = 1 << 20


def check_system_area(image: Image, f: Findings) -> None:
    mbr = image.read(0, 2 * LBA)
    if len(mbr) < 2 * LBA or mbr[510:512] != b"\x55\xaa":
        return
    entries = [mbr[446 + 16 * i : 462 + 16 * i] for i in range(4)]
    if any(e[0] not in (0x00, 0x80) for e in entries):
        return
    bound = max(image.size, f.volume_end)
    used = [(i + 1, e) for i, e in enumerate(entries) if e[4] != 0 and le32(e, 12) != 0]
    if not used:
        return
    f.hybrid = "MBR"
    for number, e in used:
        start, count = le32(e, 8), le32(e, 12)
        if e[4] == PROTECTIVE:
            continue  # covers "the whole disk" (often 0xFFFFFFFF sectors): the GPT is checked
        if (start + count) * LBA > bound:
            f.error(
                "validator.iso.hybrid.partition_outside", number, start, start + count - 1, bound
            )
    if mbr[LBA : LBA + 8] == b"EFI PART":
        f.hybrid = "GPT"
        check_gpt(image, f, mbr[LBA:], bound)


def check_gpt(image: Image, f: Findings, header: bytes, bound: int) -> None:
    size = le32(header, 12)
    if size < 92 or size > LBA:
        f.error("validator.iso.hybrid.gpt_bad_header", "header size", size)
        return
    stored = le32(header, 16)
    if zlib.crc32(header[:16] + b"\0\0\0\0" + header[20:size]) != stored:
        f.error("validator.iso.hybrid.gpt_header_crc")
        return
    backup, entries_lba = le64(header, 32), le64(header, 72)
    count, entry_size = le32(header, 80), le32(header, 84)
    if entry_size < 128 or entry_size & (entry_size - 1):
        f.error("validator.iso.hybrid.gpt_bad_header", "partition entry size", entry_size)
        return
    if count * entry_size > MAX_GPT_ENTRIES_BYTES:
        f.error("validator.iso.hybrid.gpt_bad_header", "number of partition entries", count)
        return
    if (backup + 1) * LBA > bound:
        f.error("validator.iso.hybrid.gpt_backup_outside", backup, bound)
    array = image.read(entries_lba * LBA, count * entry_size)
    if len(array) < count * entry_size:
        f.error("validator.iso.hybrid.gpt_entries_outside", entries_lba, bound)
        return
    if zlib.crc32(array) != le32(header, 88):
        f.error("validator.iso.hybrid.gpt_entries_crc")
        return
    for index in range(count):
        e = array[index * entry_size : (index + 1) * entry_size]
        if not any(e[:16]):
            continue
        first, last = le64(e, 32), le64(e, 40)
        if last < first or (last + 1) * LBA > bound:
            f.error("validator.iso.hybrid.gpt_partition_outside", index + 1, first, last, bound)
