"""UDF (ECMA-167 / OSTA UDF): the recognition sequence, the anchor and the descriptor sequence.

A UDF bridge image carries an ISO 9660 volume and a UDF volume over the same
files; a pure UDF image has no ISO 9660 descriptors at all (its recognition
sequence starts at sector 16).  Both are accepted (see docs/iso.md): the
recognition sequence must be complete (``BEA01``, ``NSR02``/``NSR03``,
``TEA01``), sector 256 must hold a valid anchor volume descriptor pointer
(tag checksum, CRC and recorded location), and the main volume descriptor
sequence it points to must be valid and hold a primary volume, partition and
logical volume descriptor.  The file tree inside the partition is read by
pycdlib (:mod:`.pycdlib_check`).
"""

from __future__ import annotations

import binascii

from .image import SECTOR, Findings, Image, le16, le32
from .iso9660 import VRS_IDS

ANCHOR_SECTOR = 256
TAG_PRIMARY, TAG_ANCHOR, TAG_POINTER, TAG_PARTITION, TAG_LOGICAL, TAG_TERMINATOR = 1, 2, 3, 5, 6, 8
REQUIRED = {
    TAG_PRIMARY: "Primary Volume Descriptor",
    TAG_PARTITION: "Partition Descriptor",
    TAG_LOGICAL: "Logical Volume Descriptor",
}
#: Descriptors read from one volume descriptor sequence.
MAX_SEQUENCE = 64
MAX_VRS = 64


def recognition_sequence(image: Image, f: Findings, start: int) -> None:
    """Read the extended area from ``start``; sets ``f.udf`` when it announces UDF."""
    ids: list[bytes] = []
    for sector in range(start, start + MAX_VRS):
        data = image.sector(sector)
        if len(data) < 7 or data[1:6] not in VRS_IDS:
            break
        ids.append(data[1:6])
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


def tag_problem(f: Findings, data: bytes, sector: int) -> bool:
    """Check a descriptor tag (checksum, CRC, location); ``True`` if one is wrong (reported)."""
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
    if le32(data, 12) != sector:
        f.error("validator.iso.udf.bad_tag_location", sector, tag, le32(data, 12))
        return True
    return False


def check_udf(image: Image, f: Findings) -> None:
    """The anchor at sector 256 and the main volume descriptor sequence it points to."""
    f.extends_to((ANCHOR_SECTOR + 1) * SECTOR)
    anchor = image.sector(ANCHOR_SECTOR)
    if len(anchor) < SECTOR:
        return  # the file ends before the anchor: reported as truncation
    if le16(anchor, 0) != TAG_ANCHOR:
        f.error("validator.iso.udf.no_anchor", ANCHOR_SECTOR)
        return
    if tag_problem(f, anchor, ANCHOR_SECTOR):
        return
    length, location = le32(anchor, 16), le32(anchor, 20)
    sectors = -(-length // SECTOR)
    bound = f.volume_blocks * f.block_size if f.volume_blocks is not None else image.size
    if length < SECTOR or location < 16 or (location + sectors) * SECTOR > bound:
        f.error("validator.iso.udf.vds_outside", location, length, bound // SECTOR)
        return
    found: set[int] = set()
    for sector in range(location, location + min(sectors, MAX_SEQUENCE)):
        data = image.sector(sector)
        if len(data) < SECTOR:
            return  # truncated file
        tag = le16(data, 0)
        if tag == 0 and not any(data[:16]):
            break  # the sequence ends without a terminating descriptor
        if tag_problem(f, data, sector):
            return
        found.add(tag)
        if tag == TAG_PARTITION:
            number, start, count = le16(data, 22), le32(data, 188), le32(data, 192)
            f.udf_partitions.append((number, start, count))
            end = (start + count) * SECTOR
            if f.volume_blocks is None:
                f.extends_to(end)  # a pure UDF image: its partition is the volume
            elif end > max(bound, image.size):
                f.error(
                    "validator.iso.udf.partition_outside", number, start, count, bound // SECTOR
                )
        if tag in (TAG_TERMINATOR, TAG_POINTER):
            break
    for tag, name in REQUIRED.items():
        if tag not in found:
            f.error("validator.iso.udf.vds_missing", location, name)
