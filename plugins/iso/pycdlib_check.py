"""pycdlib as a second reader: Joliet, Rock Ridge, El Torito and the UDF file tree.

pycdlib parses more of an image than our structure checks do (every Rock
Ridge entry, the UDF file set and file entries), so it runs after them on an
image they found sound, and tells us two things:

* whether a widely used ISO library can read the image at all: if it refuses
  one that passed our checks, that is a *warning* (pycdlib rejects some
  genuine images, e.g. some UDF revisions), never an error on its own;
* the UDF file entries, whose extents we then check against the partition
  (our own bound check on what pycdlib parsed).

It is never trusted alone and never allowed to do harm: it reads through a
:class:`GuardedReader` that refuses to read more than a budget of bytes,
its boot-info-table probe (which would read whole boot images: file data) is
switched off, and every exception it raises ends as a message.
"""

from __future__ import annotations

import io
import os
from collections import deque
from typing import Any, BinaryIO, cast

from .image import SECTOR, Findings, Image

#: Bytes pycdlib may read: its metadata is at most a few times ours, plus this.
BASE_BUDGET = 8 << 20


class BudgetExceeded(Exception):
    """pycdlib asked for more bytes than its budget: it is reading file data, or looping."""


class GuardedReader(io.RawIOBase):
    """A read-only view of the image for pycdlib: seek and read within a byte budget."""

    def __init__(self, image: Image, budget: int) -> None:
        super().__init__()
        self._image = image
        self._pos = 0
        self.budget = budget
        self.used = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._image.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self._image.size - self._pos
        size = max(0, min(size, self._image.size - self._pos))
        if self.used + size > self.budget:
            raise BudgetExceeded(f"pycdlib tried to read more than {self.budget} bytes")
        data = self._image.read(self._pos, size)
        self.used += len(data)
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _metadata_only_class() -> type[Any]:
    import pycdlib

    class MetadataOnly(pycdlib.PyCdlib):
        """PyCdlib without the boot-info-table probe, which reads whole boot images."""

        def _check_for_eltorito_boot_info_table(self, ino: Any) -> None:
            return None

    return MetadataOnly


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_pycdlib(image: Image, f: Findings) -> None:
    """Open the image with pycdlib: a refusal is a warning, a UDF extent out of bounds an error."""
    reader = GuardedReader(image, BASE_BUDGET + 4 * image.bytes_read)
    try:
        iso = _metadata_only_class()()
        iso.open_fp(cast(BinaryIO, reader))
    except Exception as exc:  # pycdlib raises many kinds on bad input: each is a message
        f.warnings.append(("validator.iso.pycdlib.rejected", (_describe(exc),)))
        return
    try:
        if f.udf and iso.has_udf():
            check_udf_files(iso, f)
    except Exception as exc:  # its internals are not an API: a change ends as a warning
        f.warnings.append(("validator.iso.pycdlib.rejected", (_describe(exc),)))


def _name(fi: Any) -> str:
    raw = getattr(fi, "fi", b"")
    encoding = getattr(fi, "encoding", "latin-1") or "latin-1"
    try:
        return str(raw.decode(encoding, "replace"))
    except (LookupError, AttributeError):
        return repr(raw)


def check_udf_files(iso: Any, f: Findings) -> None:
    """Every UDF file entry's extents lie inside the partition (pycdlib parsed them)."""
    partitions = iso.udf_main_descs.partitions
    root = iso.udf_root
    if not partitions or root is None:
        return
    length = int(partitions[0].part_length)
    queue: deque[tuple[str, Any]] = deque([("/", root)])
    seen = {id(root)}
    count = 0
    while queue:
        path, entry = queue.popleft()
        descs = getattr(entry, "fi_descs", None) or {}
        for fi in descs.values() if isinstance(descs, dict) else descs:
            if fi.is_parent() or fi.file_entry is None or id(fi.file_entry) in seen:
                continue
            count += 1
            if count > f.record_limit:
                return
            child = fi.file_entry
            seen.add(id(child))
            child_path = path.rstrip("/") + "/" + _name(fi)
            for ad in getattr(child, "alloc_descs", []):
                if type(ad).__name__ == "UDFInlineAD":
                    continue  # the data is inside the file entry itself
                size = int(getattr(ad, "extent_length", 0)) & 0x3FFFFFFF
                block = int(getattr(ad, "log_block_num", 0))
                if size and block + -(-size // SECTOR) > length:
                    f.error("validator.iso.udf.file_outside", child_path, block, size, length)
                    break
            if child.is_dir():
                queue.append((child_path, child))
