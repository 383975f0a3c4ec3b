"""``validator info`` for ISO images: the volume, its file systems and its boot entries.

The facts ``isoinfo -d`` or ``xorriso -report_el_torito`` print, read from the
metadata the structure check reads (the volume descriptors, the UDF
descriptors, the system area, the boot catalog) and never from file data: the
primary descriptor's identifiers and sizes, which file systems are present
(ISO 9660, Joliet, Rock Ridge, UDF, El Torito), each boot entry (platform,
emulation, load size, where its image starts) and a hybrid MBR or GPT.
"""

from __future__ import annotations

from typing import Any

from .check import inspect
from .eltorito import BOOTABLE, ENTRY, EXTENSION, HEADER_LAST, HEADER_MORE, MAX_CATALOG
from .image import SECTOR, Findings, Image, le16, le32
from .iso9660 import TYPE_PRIMARY, find_boot_catalog, is_iso9660, read_descriptor_set

#: El Torito platform ids.
PLATFORMS = {0x00: "x86", 0x01: "PowerPC", 0x02: "Mac", 0xEF: "EFI"}
#: El Torito boot media types.
EMULATIONS = {
    0: "no emulation",
    1: "1.2M floppy",
    2: "1.44M floppy",
    3: "2.88M floppy",
    4: "hard disk",
}
#: Where the primary volume descriptor keeps its identifiers (byte offset, length).
IDENTIFIERS = (
    ("system_id", 8, 32),
    ("volume_id", 40, 32),
    ("volume_set_id", 190, 128),
    ("publisher", 318, 128),
    ("data_preparer", 446, 128),
    ("application", 574, 128),
)


def describe(image: Image, record_limit: int) -> dict[str, Any]:
    """The facts of one image, and the ids of the problems the structure check finds."""
    f = inspect(image, record_limit, use_pycdlib=False)
    facts: dict[str, Any] = {"image_bytes": image.size}
    scratch = Findings(record_limit=record_limit)  # the descriptors are checked by inspect
    descriptors: list[Any] = []
    if image.size >= 17 * SECTOR and is_iso9660(image.sector(16)):
        descriptors, _ = read_descriptor_set(image, scratch)
    primary = next((vd for vd in descriptors if vd.type == TYPE_PRIMARY), None)
    if primary is not None:
        for key, at, length in IDENTIFIERS:
            facts[key] = _identifier(primary.data[at : at + length])
    facts["volume_blocks"] = f.volume_blocks
    facts["block_size"] = f.block_size if f.volume_blocks is not None else None
    facts["volume_bytes"] = f.volume_blocks * f.block_size if f.volume_blocks else None
    facts["file_systems"] = [
        name
        for name, present in (
            ("ISO 9660", f.iso9660),
            ("Joliet", f.joliet),
            ("Rock Ridge", f.rock_ridge),
            ("UDF", f.udf),
            ("El Torito", f.eltorito),
        )
        if present
    ]
    boot: list[dict[str, Any]] = []
    catalog = find_boot_catalog(scratch, descriptors) if descriptors else None
    if catalog is not None and f.volume_blocks is not None:
        boot = boot_entries(image, catalog, f.block_size)
        facts["boot_catalog_block"] = catalog
    facts["boot_entries"] = boot
    facts["hybrid"] = f.hybrid
    facts["problems"] = [message for message, _ in f.problems]
    facts["warnings"] = [message for message, _ in f.warnings]
    return facts


def _identifier(raw: bytes) -> str | None:
    """A d-/a-character identifier: padded with spaces (or NULs), ``None`` when blank."""
    value = raw.decode("latin-1").strip(" \x00")
    return value or None


def boot_entries(image: Image, block: int, block_size: int) -> list[dict[str, Any]]:
    """The boot catalog's entries: platform, bootable, emulation, load size, image block.

    Reads the catalog as :func:`.eltorito.check_catalog` does and stops where it
    stops; a malformed catalog (reported by the check) gives the entries before
    the damage.
    """
    data = image.read(block * block_size, MAX_CATALOG)
    if len(data) < ENTRY or data[0] != 1 or data[30:32] != b"\x55\xaa":
        return []
    platform = data[1]
    out = [_entry(data[ENTRY : 2 * ENTRY], platform, default=True)]
    at = 2 * ENTRY
    while at + ENTRY <= len(data):
        header = data[at]
        if header not in (HEADER_MORE, HEADER_LAST):
            break
        platform = data[at + 1]
        count = le16(data, at + 2)
        at += ENTRY
        for _ in range(count):
            if at + ENTRY > len(data):
                break
            out.append(_entry(data[at : at + ENTRY], platform, default=False))
            at += ENTRY
            while at + ENTRY <= len(data) and data[at] == EXTENSION:
                at += ENTRY
        if header == HEADER_LAST:
            break
    return out


def _entry(entry: bytes, platform: int, default: bool) -> dict[str, Any]:
    media = entry[1] if default else entry[1] & 0x0F
    return {
        "platform": PLATFORMS.get(platform, f"0x{platform:02X}"),
        "default": default,
        "bootable": entry[0] == BOOTABLE,
        "emulation": EMULATIONS.get(media, f"media type {media}"),
        "load_sectors": le16(entry, 6),
        "image_block": le32(entry, 8),
    }
