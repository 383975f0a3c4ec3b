"""Bounded access to an image and the findings every structure check adds to.

:class:`Image` reads byte ranges of the session file by seeking; a range
that reaches past the end of the file comes back short (the truncation is
reported once, by :mod:`.iso9660`), never as an exception.  It counts the
bytes it reads, so tests and callers can see that only metadata was read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO

#: The logical sector of optical media: volume descriptors live in these.
SECTOR = 2048
#: The system area (sectors 0–15) before the volume descriptor set.
SYSTEM_AREA = 16 * SECTOR
#: Smallest file that holds a system area and one volume descriptor.
MIN_IMAGE_BYTES = SYSTEM_AREA + SECTOR


class Image:
    """A seekable binary stream of known size, read in small bounded pieces."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self._stream = stream
        self.size = size
        #: Bytes read so far (metadata only: a test asserts it stays small).
        self.bytes_read = 0

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset``, fewer if the file ends first (``b""`` beyond it)."""
        if offset < 0 or length <= 0 or offset >= self.size:
            return b""
        length = min(length, self.size - offset)
        self._stream.seek(offset)
        parts: list[bytes] = []
        left = length
        while left > 0:
            chunk = self._stream.read(left)
            if not chunk:
                break
            parts.append(chunk)
            left -= len(chunk)
        data = b"".join(parts)
        self.bytes_read += len(data)
        return data

    def sector(self, number: int, size: int = SECTOR) -> bytes:
        return self.read(number * size, size)


@dataclass
class Findings:
    """What the structure checks found: problems (message id, args) and the image's layout."""

    problems: list[tuple[str, tuple[object, ...]]] = field(default_factory=list)
    #: Preview warnings: they do not make the image invalid.
    warnings: list[tuple[str, tuple[object, ...]]] = field(default_factory=list)
    #: Logical block size of the ISO 9660 volume (2048 unless the descriptor says otherwise).
    block_size: int = SECTOR
    #: Volume space size of the primary volume descriptor, in blocks (``None``: no PVD).
    volume_blocks: int | None = None
    #: The furthest byte any structure says the image extends to.
    volume_end: int = 0
    iso9660: bool = False
    joliet: bool = False
    rock_ridge: bool = False
    eltorito: bool = False
    udf: bool = False
    #: Logical block (sector) size of the UDF volume: 2048 on optical media, 512 to 32768 else.
    udf_block_size: int = SECTOR
    #: Partitions of a UDF volume: (number, first sector, sectors).
    udf_partitions: list[tuple[int, int, int]] = field(default_factory=list)
    hybrid: str | None = None
    #: Directory records walked in every tree, counted against ``record_limit``.
    records: int = 0
    record_limit: int = 1_000_000
    #: Set when the image is not an ISO image at all: nothing further is checked.
    fatal: bool = False

    def error(self, message_id: str, *args: object) -> None:
        self.problems.append((message_id, args))

    @property
    def ok(self) -> bool:
        return not self.problems

    #: Set once the record limit stopped a walk (reported once).
    walk_stopped: bool = False

    def records_left(self) -> int:
        return self.record_limit - self.records

    def count_record(self) -> bool:
        """Count one directory record (or sector); ``False`` once past the limit."""
        if self.walk_stopped:
            return False
        self.records += 1
        if self.records > self.record_limit:
            self.walk_stopped = True
            self.error("validator.iso.directory.too_many_records", self.record_limit)
            return False
        return True

    def extends_to(self, end: int) -> None:
        self.volume_end = max(self.volume_end, end)

    def inside(self, block: int, length: int) -> bool:
        """An extent of ``length`` bytes at ``block`` ends within the ISO 9660 volume."""
        if self.volume_blocks is None:
            return True
        blocks = -(-length // self.block_size) if length > 0 else 1
        return block >= 0 and block + blocks <= self.volume_blocks


def le16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "little")


def be16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "big")


def le32(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 4], "little")


def be32(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 4], "big")


def le64(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 8], "little")
