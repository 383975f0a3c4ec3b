"""El Torito: the boot catalog a boot record descriptor points to.

The catalog is a list of 32-byte entries: a validation entry (header 1, key
``55 AA``, a checksum that makes its sixteen 16-bit words sum to zero), the
initial/default entry, then optional section headers (``90``, the last one
``91``) each followed by its section entries and their extensions (``44``).
We check that it lies in the volume, that it is well formed and that every
boot image it names lies in the volume; the boot images themselves are file
data and are never read.
"""

from __future__ import annotations

from .image import SECTOR, Findings, Image, le16, le32

ENTRY = 32
#: The catalog is read up to this many bytes (2048 entries; real ones use one sector).
MAX_CATALOG = 32 * SECTOR
BOOTABLE, NOT_BOOTABLE = 0x88, 0x00
HEADER_MORE, HEADER_LAST, EXTENSION = 0x90, 0x91, 0x44
#: Sizes of the emulated floppies (media types 1–3), in bytes.
FLOPPY = {1: 1_228_800, 2: 1_474_560, 3: 2_949_120}


def check_catalog(image: Image, f: Findings, block: int) -> None:
    assert f.volume_blocks is not None
    volume_bytes = f.volume_blocks * f.block_size
    # Boot images may lie in a partition appended after the volume (xorriso's
    # ``-e --interval:appended_partition_2``): the image file is their bound.
    image_bytes = max(volume_bytes, image.size)
    start = block * f.block_size
    if block < 16 or not f.inside(block, SECTOR):
        f.error("validator.iso.eltorito.catalog_outside", block, f.volume_blocks)
        return
    data = image.read(start, min(MAX_CATALOG, volume_bytes - start))
    if len(data) < SECTOR:
        return  # past the end of a truncated file (reported once)
    validation = data[:ENTRY]
    if validation[0] != 1 or validation[30:32] != b"\x55\xaa":
        f.error("validator.iso.eltorito.bad_validation_entry", block)
        return
    if sum(le16(validation, i) for i in range(0, ENTRY, 2)) & 0xFFFF:
        f.error("validator.iso.eltorito.bad_checksum", block)
        return
    check_entry(f, data[ENTRY : 2 * ENTRY], 1, image_bytes, default=True)
    number = 2
    at = 2 * ENTRY
    while at + ENTRY <= len(data):
        header = data[at]
        if header not in (HEADER_MORE, HEADER_LAST):
            if any(data[at : at + ENTRY]):
                f.error("validator.iso.eltorito.bad_section_header", block, at, f"{header:02X}")
            return
        count = le16(data, at + 2)
        at += ENTRY
        for _ in range(count):
            if at + ENTRY > len(data):
                break
            if not check_entry(f, data[at : at + ENTRY], number, image_bytes, default=False):
                return
            number += 1
            at += ENTRY
            while at + ENTRY <= len(data) and data[at] == EXTENSION:
                at += ENTRY
        if header == HEADER_LAST:
            return
    f.error("validator.iso.eltorito.catalog_unterminated", block, len(data))


def check_entry(f: Findings, entry: bytes, number: int, image_bytes: int, default: bool) -> bool:
    """One initial/default or section entry; ``False`` if it is too broken to go on."""
    indicator = entry[0]
    if indicator not in (BOOTABLE, NOT_BOOTABLE):
        f.error("validator.iso.eltorito.bad_boot_indicator", number, f"{indicator:02X}")
        return False
    media = entry[1] if default else entry[1] & 0x0F
    if media > 4:
        f.error("validator.iso.eltorito.bad_media_type", number, media)
        return False
    sectors = le16(entry, 6)
    rba = le32(entry, 8)
    size = FLOPPY.get(media, sectors * 512)
    if indicator == BOOTABLE and (rba < 16 or rba * SECTOR + size > image_bytes):
        f.error("validator.iso.eltorito.image_outside", number, rba, size, image_bytes // SECTOR)
    return True
