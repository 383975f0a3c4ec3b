"""The ISO image check: one :class:`ReaderCheck` that seeks and reads metadata only.

Order: what kind of image it is (ISO 9660 at sector 16, or a pure UDF
recognition sequence, or neither: "not an ISO image"), the volume
descriptors, UDF, the system area (hybrid MBR/GPT), truncation, then the
directory trees, path tables and El Torito catalog, and last pycdlib as a
second reader on an image that passed all of that.  Only the first two
steps can stop the rest.
"""

from __future__ import annotations

from typing import BinaryIO

from validator.checks import ReaderCheck, Reporter

from . import eltorito, iso9660, udf
from .image import MIN_IMAGE_BYTES, SECTOR, Findings, Image
from .pycdlib_check import run_pycdlib
from .system_area import check_system_area

#: pycdlib is skipped above this many directory records (it keeps every record in memory).
PYCDLIB_MAX_RECORDS = 200_000


def inspect(image: Image, record_limit: int, use_pycdlib: bool = True) -> Findings:
    """Every structure check of an image; never raises on bad input (only ``OSError``)."""
    f = Findings(record_limit=record_limit)
    if image.size == 0:
        f.error("validator.iso.image.empty")
        return f
    if image.size < MIN_IMAGE_BYTES:
        f.error("validator.iso.image.too_small", image.size, MIN_IMAGE_BYTES)
        return f
    first = image.sector(16)
    if iso9660.is_iso9660(first):
        f.iso9660 = True
        check_iso9660(image, f)
    elif first[1:6] in iso9660.VRS_IDS:
        udf.recognition_sequence(image, f, 16)
        if not f.udf:
            f.error("validator.iso.image.not_iso")
            return f
        udf.check_udf(image, f)  # a pure UDF image (see docs/iso.md)
        check_system_area(image, f)
        check_truncation(image, f)
    else:
        f.error("validator.iso.image.not_iso")
        return f
    if use_pycdlib and f.ok and f.records <= PYCDLIB_MAX_RECORDS:
        run_pycdlib(image, f)
    return f


def check_iso9660(image: Image, f: Findings) -> None:
    descriptors, after = iso9660.read_descriptor_set(image, f)
    primaries = [vd for vd in descriptors if vd.type == iso9660.TYPE_PRIMARY]
    if not primaries:
        f.error("validator.iso.descriptor.no_primary")
        return
    volume = iso9660.read_volume(f, primaries[0])
    if not iso9660.check_primary(f, volume, len(descriptors)):
        return
    others = [
        iso9660.read_volume(f, vd) for vd in descriptors if vd.type == iso9660.TYPE_SUPPLEMENTARY
    ]
    f.joliet = any(v.joliet for v in others)
    if after * SECTOR < image.size:
        udf.recognition_sequence(image, f, after)
    if f.udf:
        udf.check_udf(image, f)
    check_system_area(image, f)
    check_truncation(image, f)
    walked = {volume.root[2:6]}
    iso9660.Walker(image, f, volume, "").walk()
    for other in others:
        # Only the block sizes must agree: xorriso's -partition_offset with an appended
        # partition (Ubuntu's layout) counts the partitions in the primary descriptor's
        # volume size only.  Every tree is bounded by the primary volume.
        if other.block_size != volume.block_size:
            f.error(
                "validator.iso.descriptor.volume_mismatch",
                other.sector,
                other.blocks,
                other.block_size,
                volume.blocks,
                volume.block_size,
            )
            continue
        if other.root[2:6] in walked:
            continue
        walked.add(other.root[2:6])
        iso9660.Walker(image, f, other, "Joliet" if other.joliet else "ISO 9660:1999").walk()
    catalog = iso9660.find_boot_catalog(f, descriptors)
    if catalog is not None:
        eltorito.check_catalog(image, f, catalog)


def check_truncation(image: Image, f: Findings) -> None:
    """The volume (and UDF partition) must fit in the file: say how many bytes are missing."""
    if f.volume_end > image.size:
        f.problems.insert(
            0,
            (
                "validator.iso.image.truncated",
                (f.volume_end, image.size, f.volume_end - image.size),
            ),
        )


class IsoImageCheck(ReaderCheck):
    """Checks an ISO 9660 / UDF image's metadata by seeking; never reads file data."""

    label = "iso-structure"

    def __init__(self, name: str, record_limit: int) -> None:
        self.name = name
        self.record_limit = record_limit
        #: The findings of the last run (for tests and callers that want the layout).
        self.findings: Findings | None = None
        self.bytes_read = 0

    def run(self, stream: BinaryIO, size: int, report: Reporter) -> None:
        image = Image(stream, size)
        f = inspect(image, self.record_limit)
        self.findings = f
        self.bytes_read = image.bytes_read
        for message_id, args in f.problems:
            report.error(self.name, message_id, *args)
        for message_id, args in f.warnings:
            report.warning(self.name, message_id, *args)
