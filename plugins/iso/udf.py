"""UDF (ECMA-167 / OSTA UDF): the recognition sequence, the anchors and the descriptor sequence.

A UDF bridge image carries an ISO 9660 volume and a UDF volume over the same
files; a pure UDF image has no ISO 9660 descriptors at all (its recognition
sequence starts at sector 16).  Both are accepted (see docs/iso.md): the
recognition sequence must be complete (``BEA01``, ``NSR02``/``NSR03``,
``TEA01``), logical sector 256 must hold a valid anchor volume descriptor
pointer (tag checksum, CRC and recorded location), and the main volume
descriptor sequence it points to must be valid and hold a primary volume,
partition and logical volume descriptor.  The file tree inside the partition
is read by pycdlib (:mod:`.pycdlib_check`).

UDF's logical sector is the volume's block size, which is not always 2048
bytes: ``mkudffs`` makes 512-byte blocks for a hard-disk image (its default
for a file) and up to 32 KiB on request.  The recognition sequence is in
2048-byte units from byte 32768 (block-aligned for larger blocks); the block
size is the one whose sector 256 holds the anchor.

A UDF volume has no size field: its end is the end of the medium.  A pure
UDF image is measured by its partition, its descriptor sequences and its
anchors (a backup anchor at the last sector *N* and at *N* − 256: an anchor
found in the last 256 sectors whose twin lies beyond the file means the file
lost its tail).  On write-once media (partition access type 2, an open
CD-R/DVD-R/BD-R as ``mkudffs --media-type=dvdr`` makes it) the partition is
as large as the blank disc and only its recorded start is in the image; such
a volume has a virtual allocation table (VAT) in its last recorded sector,
which must therefore be the image's last sector.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field

from .image import SECTOR, Findings, Image, le16, le32
from .iso9660 import VRS_IDS

ANCHOR_SECTOR = 256
TAG_PRIMARY, TAG_ANCHOR, TAG_POINTER, TAG_PARTITION, TAG_LOGICAL, TAG_TERMINATOR = 1, 2, 3, 5, 6, 8
TAG_FILE_SET, TAG_FILE_ENTRY, TAG_EXTENDED_FILE_ENTRY = 256, 261, 266
REQUIRED = {
    TAG_PRIMARY: "Primary Volume Descriptor",
    TAG_PARTITION: "Partition Descriptor",
    TAG_LOGICAL: "Logical Volume Descriptor",
}
#: Descriptors read from one volume descriptor sequence.
MAX_SEQUENCE = 64
MAX_VRS = 64
#: Logical block sizes UDF allows (mkudffs makes all of them), the usual ones first.
BLOCK_SIZES = (2048, 512, 1024, 4096, 8192, 16384, 32768)
ACCESS_WRITE_ONCE = 2
#: File types of a VAT's file entry: 248 (UDF 2.00 and later), 0 (UDF 1.50).
VAT_FILE_TYPES = (0, 248)
VIRTUAL_PARTITION = b"*UDF Virtual Partition"


def _scan_vrs(image: Image, start_byte: int, step: int) -> list[bytes]:
    ids: list[bytes] = []
    for n in range(MAX_VRS):
        data = image.read(start_byte + n * step, 7)
        if len(data) < 7 or data[1:6] not in VRS_IDS:
            break
        ids.append(data[1:6])
    return ids


def recognition_sequence(image: Image, f: Findings, start: int) -> None:
    """Read the extended area from sector ``start``; sets ``f.udf`` when it announces UDF.

    Descriptors follow each other every 2048 bytes, or every block for blocks
    larger than that (then the first one is at a block boundary too).
    """
    start_byte = start * SECTOR
    ids = _scan_vrs(image, start_byte, SECTOR)
    if not any(x in (b"NSR02", b"NSR03") for x in ids) and ids and start_byte % 4096 == 0:
        for step in BLOCK_SIZES[3:]:
            if start_byte % step:
                break
            wider = _scan_vrs(image, start_byte, step)
            if any(x in (b"NSR02", b"NSR03") for x in wider):
                ids = wider
                f.udf_block_size = step
                break
    nsr = [i for i, x in enumerate(ids) if x in (b"NSR02", b"NSR03")]
    if not nsr:
        if b"BEA01" in ids or b"TEA01" in ids:
            f.error("validator.iso.udf.incomplete_vrs", start)
        return
    f.udf = True
    bea = [i for i, x in enumerate(ids) if x == b"BEA01"]
    tea = [i for i, x in enumerate(ids) if x == b"TEA01"]
    if not bea or not tea or bea[0] > nsr[0] or tea[-1] < nsr[-1]:
        f.error("validator.iso.udf.incomplete_vrs", start)


def tag_problem(f: Findings, data: bytes, sector: int, recorded: int | None = None) -> bool:
    """Check a descriptor tag (checksum, CRC, location); ``True`` if one is wrong (reported).

    ``recorded`` is the location the tag must hold when it is not ``sector`` (a descriptor
    inside a partition records its block number relative to the partition).
    """
    tag = le16(data, 0)
    if (sum(data[0:4]) + sum(data[5:16])) & 0xFF != data[4]:
        f.error("validator.iso.udf.bad_tag_checksum", sector, tag)
        return True
    crc_length = le16(data, 10)
    if 16 + crc_length > len(data) or binascii.crc_hqx(data[16 : 16 + crc_length], 0) != le16(
        data, 8
    ):
        f.error("validator.iso.udf.bad_tag_crc", sector, tag)
        return True
    expected = sector if recorded is None else recorded
    if le32(data, 12) != expected:
        f.error(
            "validator.iso.udf.bad_tag_location", sector, tag, le32(data, 12) - expected + sector
        )
        return True
    return False


def is_anchor(data: bytes, sector: int) -> bool:
    """A sound anchor volume descriptor pointer recorded at ``sector`` (nothing reported)."""
    if len(data) < 512 or le16(data, 0) != TAG_ANCHOR or le32(data, 12) != sector:
        return False
    if (sum(data[0:4]) + sum(data[5:16])) & 0xFF != data[4]:
        return False
    crc_length = le16(data, 10)
    return 16 + crc_length <= len(data) and binascii.crc_hqx(data[16 : 16 + crc_length], 0) == le16(
        data, 8
    )


def find_block_size(image: Image, f: Findings) -> int:
    """The block size whose sector 256 holds an anchor (2048 when none does)."""
    if f.udf_block_size != SECTOR:
        return f.udf_block_size  # the recognition sequence already told (blocks > 2048)
    if f.volume_blocks is not None:
        return SECTOR  # a bridge image: UDF shares the ISO 9660 volume's 2048-byte sectors
    tagged: int | None = None
    for size in BLOCK_SIZES[:3]:
        head = image.read(ANCHOR_SECTOR * size, 16)
        if len(head) == 16 and le16(head, 0) == TAG_ANCHOR:
            if le32(head, 12) == ANCHOR_SECTOR:
                return size
            tagged = size if tagged is None else tagged
    return tagged if tagged is not None else SECTOR


@dataclass
class Sequence:
    """What a volume descriptor sequence holds (the parts the later checks need)."""

    tags: set[int] = field(default_factory=set)
    #: Partition descriptors: (number, first sector, sectors, access type).
    partitions: list[tuple[int, int, int, int]] = field(default_factory=list)
    logical: bytes = b""


def read_sequence(
    image: Image, f: Findings, location: int, length: int, bs: int
) -> Sequence | None:
    """The descriptors of one sequence, each tag checked; ``None`` once one is damaged."""
    seq = Sequence()
    for sector in range(location, location + min(-(-length // bs), MAX_SEQUENCE)):
        data = image.read(sector * bs, bs)
        if len(data) < bs:
            return seq  # truncated file (reported once)
        tag = le16(data, 0)
        if tag == 0 and not any(data[:16]):
            break  # the sequence ends without a terminating descriptor
        if tag_problem(f, data, sector):
            return None
        seq.tags.add(tag)
        if tag == TAG_PARTITION:
            seq.partitions.append(
                (le16(data, 22), le32(data, 188), le32(data, 192), le32(data, 184))
            )
        elif tag == TAG_LOGICAL and not seq.logical:
            seq.logical = data
        if tag in (TAG_TERMINATOR, TAG_POINTER):
            break
    return seq


def check_udf(image: Image, f: Findings) -> None:
    """The anchor at sector 256, the descriptor sequences it points to, and the file set."""
    bs = f.udf_block_size = find_block_size(image, f)
    f.extends_to((ANCHOR_SECTOR + 1) * bs)
    anchor = image.read(ANCHOR_SECTOR * bs, bs)
    if len(anchor) < bs:
        return  # the file ends before the anchor: reported as truncation
    if le16(anchor, 0) != TAG_ANCHOR:
        f.error("validator.iso.udf.no_anchor", ANCHOR_SECTOR)
        return
    if tag_problem(f, anchor, ANCHOR_SECTOR):
        return
    pure = f.volume_blocks is None
    bound = image.size if f.volume_blocks is None else f.volume_blocks * f.block_size
    extents = ((le32(anchor, 16), le32(anchor, 20)), (le32(anchor, 24), le32(anchor, 28)))
    for i, (length, location) in enumerate(extents):
        if i == 1 and length == 0:
            break  # no reserve sequence
        end = (location + -(-length // bs)) * bs
        if length < bs or location * bs < 16 * SECTOR or (end > bound and not (pure and i)):
            f.error("validator.iso.udf.vds_outside", location, length, bound // bs)
            return
        if pure:
            f.extends_to(end)  # the sequences are part of the volume: they must be there
    main = read_sequence(image, f, extents[0][1], extents[0][0], bs)
    if main is None:
        return
    location = extents[0][1]
    for tag, name in REQUIRED.items():
        if tag not in main.tags:
            f.error("validator.iso.udf.vds_missing", location, name)
    write_once = False
    for number, start, count, access in main.partitions:
        f.udf_partitions.append((number, start, count))
        end = (start + count) * bs
        if access == ACCESS_WRITE_ONCE:
            write_once = True  # sized as the blank disc: only its start is recorded
        elif pure:
            f.extends_to(end)  # a pure UDF image: its partition is the volume
        elif end > max(bound, image.size):
            f.error("validator.iso.udf.partition_outside", number, start, count, bound // bs)
    if not f.ok:
        return
    reserve_length, reserve_location = extents[1]
    if reserve_length and (reserve_location + 1) * bs <= image.size:
        read_sequence(image, f, reserve_location, reserve_length, bs)  # damage is reported
    virtual = VIRTUAL_PARTITION in main.logical[440 : 440 + min(le32(main.logical, 264), bs)]
    if main.logical and main.partitions and not virtual:
        check_file_set(image, f, main, bs)
    if pure and f.ok:
        if write_once and virtual:
            check_vat(image, f, bs)
        elif not write_once:
            check_end_anchors(image, f, bs)


def check_file_set(image: Image, f: Findings, main: Sequence, bs: int) -> None:
    """The integrity descriptor, the file set descriptor and the root directory's file entry.

    Only on a volume whose first partition map is a plain (type 1) map of a partition
    described here: metadata (UDF 2.50), sparable and virtual maps move these elsewhere.
    """
    lvd = main.logical
    integrity_length, integrity_location = le32(lvd, 432), le32(lvd, 436)
    if integrity_length and (integrity_location + 1) * bs <= image.size:
        data = image.read(integrity_location * bs, bs)
        if any(data[:16]) and tag_problem(f, data, integrity_location):
            return
    maps = lvd[440 : 440 + min(le32(lvd, 264), bs - 440)]
    if len(maps) < 6 or maps[0] != 1:
        return
    number = le16(maps, 4)
    found = [p for p in main.partitions if p[0] == number]
    if not found:
        return
    _, start, count, _ = found[0]
    fsd_block = le32(lvd, 252)  # logical volume contents use: a long_ad of the file set
    if le16(lvd, 256) != 0 or fsd_block >= count:
        return
    data = image.read((start + fsd_block) * bs, bs)
    if len(data) < bs or tag_problem(f, data, start + fsd_block, fsd_block):
        return
    if le16(data, 0) != TAG_FILE_SET:
        return  # something else, soundly tagged: left to pycdlib
    root_block = le32(data, 404)  # root directory ICB: a long_ad
    if le16(data, 408) != 0 or root_block >= count:
        return
    root = image.read((start + root_block) * bs, bs)
    if len(root) == bs:
        tag_problem(f, root, start + root_block, root_block)


def check_vat(image: Image, f: Findings, bs: int) -> None:
    """An open write-once volume: its last recorded sector, the file's last, holds the VAT."""
    last = image.size // bs - 1
    data = image.read(last * bs, bs)
    tag = le16(data, 0) if len(data) == bs else 0
    sound = (
        tag in (TAG_FILE_ENTRY, TAG_EXTENDED_FILE_ENTRY)
        and (sum(data[0:4]) + sum(data[5:16])) & 0xFF == data[4]
        and data[27] in VAT_FILE_TYPES
    )
    if not sound:
        f.error("validator.iso.udf.no_vat", last, image.size)


def check_end_anchors(image: Image, f: Findings, bs: int) -> None:
    """Backup anchors at N and N − 256: one found whose twin lies beyond the file is a cut."""
    last = image.size // bs - 1
    if last <= 2 * ANCHOR_SECTOR:
        return
    if is_anchor(image.read(last * bs, bs), last):
        return
    if is_anchor(image.read((last - ANCHOR_SECTOR) * bs, bs), last - ANCHOR_SECTOR):
        return
    # An anchor at S in the last 256 sectors is N − 256 (the file lost 256 − (last − S)
    # sectors) unless S − 256 is one too (then S is N and the file is padded).  Only the
    # 16-byte tags are read, from the end.
    for sector in range(last - 1, last - ANCHOR_SECTOR, -1):
        head = image.read(sector * bs, 16)
        if len(head) < 16 or le16(head, 0) != TAG_ANCHOR or le32(head, 12) != sector:
            continue
        if not is_anchor(image.read(sector * bs, bs), sector):
            continue
        twin = sector - ANCHOR_SECTOR
        if not is_anchor(image.read(twin * bs, bs), twin):
            f.extends_to((sector + ANCHOR_SECTOR + 1) * bs)
        return
