"""The checks the ``disk`` plugin hands to the engine, and what ``validator info`` shows.

- :class:`DiskImageCheck` (a :class:`~validator.checks.ReaderCheck`): a disk
  image file on its own.  It tells the format from the content, reports a name
  that promises another format, refuses the formats it does not check, and runs
  the format's parser on the metadata only (seek and read).
- A VMDK is checked by the ``ovf`` adapter's :class:`~validator_plugins.ovf.vmdk.VmdkChecker`
  (one implementation for both item types), fed its metadata only
  (:class:`VmdkMetadataCheck`: header, descriptor, tables, and a
  streamOptimized disk's markers, by seeking); a source that cannot seek is
  read whole (:func:`vmdk_check`).
- :class:`DiskStreamCheck` (a :class:`~validator.checks.StreamCheck`): a disk
  inside an OVF package (the ``validator_disk_checks`` hook), fed the disk's
  content; the same parsers, on the regions they ask for as the bytes go past.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from validator.checks import ReaderCheck, Reporter, StreamCheck
from validator.limits import Limits

from .base import Parser, Problem, StreamFetch, run_on_file
from .sniff import (
    HEAD_BYTES,
    ISO,
    LUKS,
    QCOW1,
    RAW,
    UNSUPPORTED,
    VMDK,
    VMDK_DESCRIPTOR,
    partition_table,
    sniff,
    suffix_format,
)

#: Format → (module, parser class); a module is imported for an image of its format only.
PARSERS: dict[str, tuple[str, str]] = {
    "qcow2": ("qcow2", "Qcow2"),
    "vhd": ("vhd", "Vhd"),
    "vhdx": ("vhdx", "Vhdx"),
    "vdi": ("vdi", "Vdi"),
    RAW: ("raw", "Raw"),
}
#: How a format is shown in messages.
NAMES = {
    "qcow2": "qcow2",
    "vhd": "VHD",
    "vhdx": "VHDX",
    "vdi": "VDI",
    VMDK: "VMDK",
    RAW: "raw",
    **UNSUPPORTED,
}


def read_ends(stream: BinaryIO, size: int) -> tuple[bytes, bytes]:
    """The first :data:`HEAD_BYTES` and the last 512 bytes of a seekable file."""
    stream.seek(0)
    head = stream.read(HEAD_BYTES)
    if size <= len(head):
        return head, head[-512:]
    stream.seek(max(0, size - 512))
    return head, stream.read(512)


def parser_for(fmt: str, name: str, limits: Limits) -> Parser:
    from importlib import import_module

    module, cls = PARSERS[fmt]
    parser: type[Parser] = getattr(import_module(f".{module}", __package__), cls)
    return parser(name, max_virtual=limits.disk_virtual_bytes, budget=limits.disk_metadata_bytes)


def format_problems(name: str, fmt: str, head: bytes) -> list[Problem]:
    """Problems of the format itself (one not checked here), and of the name promising another."""
    problems: list[Problem] = []
    promised = suffix_format(name)
    found = VMDK if fmt == VMDK_DESCRIPTOR else "qcow2" if fmt == QCOW1 else fmt
    if promised is not None and promised != found:
        problems.append(
            ("validator.disk.name_mismatch", (name, NAMES.get(promised, promised), NAMES[fmt]))
        )
    if fmt == VMDK_DESCRIPTOR:
        problems.append(("validator.disk.vmdk.descriptor_only", (name, _create_type(head))))
    elif fmt == LUKS:
        problems.append(("validator.disk.encrypted", (name, "LUKS", "LUKS")))
    elif fmt == ISO:
        problems.append(("validator.disk.iso_image", (name,)))
    elif fmt in UNSUPPORTED:
        problems.append(("validator.disk.unsupported_format", (name, UNSUPPORTED[fmt])))
    return problems


def _create_type(head: bytes) -> str:
    text = head[:4096].decode("utf-8", "replace")
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "createType":
            return value.strip().strip('"')[:64]
    return "?"


class DiskImageCheck(ReaderCheck):
    """A disk image file of a ``disk`` item: format, name, and the format's metadata."""

    label = "disk"

    def __init__(self, name: str, limits: Limits) -> None:
        self.name = name
        self.limits = limits

    def run(self, stream: BinaryIO, size: int, report: Reporter) -> None:
        for message_id, args in inspect(self.name, stream, size, self.limits)[1]:
            report.error(self.name, message_id, *args)


def inspect(
    name: str, stream: BinaryIO, size: int, limits: Limits
) -> tuple[dict[str, Any], list[Problem]]:
    """Facts (``validator info``) and problems of a disk image file, from its metadata.

    A VMDK's problems come from the stream check (:func:`vmdk_check`); here
    only its header's facts.
    """
    head, tail = read_ends(stream, size)
    fmt = sniff(head, tail)
    problems = format_problems(name, fmt, head)
    info: dict[str, Any] = {"format": NAMES.get(fmt, fmt), "file_size": size}
    if fmt in PARSERS:
        parser = parser_for(fmt, name, limits)
        problems += run_on_file(parser, stream, size)
        info.update(parser.info)
        info["format"] = NAMES[fmt]
        if fmt == RAW:
            info["partition_table"] = partition_table(head) or "none"
    elif fmt == VMDK:
        info.update(vmdk_facts(head))
    elif fmt == VMDK_DESCRIPTOR:
        info["subformat"] = _create_type(head)
        info["risky_features"] = ["extent files named by a text descriptor"]
    return info, problems


def vmdk_facts(head: bytes) -> dict[str, Any]:
    """What a VMDK sparse header says (parsed by the ``ovf`` adapter's VMDK module)."""
    from ..ovf.vmdk import SECTOR, Header

    if len(head) < SECTOR:
        return {}
    h = Header.parse(head[:SECTOR])
    facts: dict[str, Any] = {
        "version": h.version,
        "subformat": "streamOptimized" if h.compressed and h.markers else "monolithicSparse",
        "virtual_size": h.capacity * SECTOR,
        "cluster_size": h.grain_size * SECTOR,
        "risky_features": [],
    }
    return facts


def _vmdk_checker(name: str, limits: Limits) -> Any:
    from ..ovf.vmdk import VmdkChecker

    return VmdkChecker(name, max_descriptor=min(limits.descriptor_bytes, 16 << 20))


def vmdk_check(name: str, limits: Limits) -> StreamCheck:
    """The ``ovf`` adapter's VMDK checker on a whole read of the file (a source that
    cannot seek)."""
    from ..ovf.vmdk import VmdkCheck

    return VmdkCheck(_vmdk_checker(name, limits))


#: What the gaps between a VMDK's metadata are fed as (the checker never looks at them;
#: it only counts their bytes).
_ZEROS = bytes(1 << 20)
#: What one small read is charged against ``disk_metadata_bytes``: a page, what the
#: system reads for it at least.
READ_COST = 4096
#: A table (or descriptor) is read with what follows it, up to this many bytes: producers
#: write their tables next to one another (qemu-img: every grain table of the capacity).
READ_AHEAD = 64 << 10


class VmdkMetadataCheck(ReaderCheck):
    """A VMDK checked from its metadata only, with seeks and small reads.

    The ``ovf`` adapter's checker is fed the file's real bytes where it looks
    at them (:meth:`~validator_plugins.ovf.vmdk.VmdkChecker.needs`): the
    header, the embedded descriptor, the grain directory and every grain table
    it names, the footer, and for a streamOptimized disk each marker of its
    walk (16 bytes at the start of each grain) and the bytes after the
    end-of-stream marker; the bytes between them (compressed grain data, the
    data clusters of a monolithicSparse disk) are fed as zeros, which it only
    counts.  The same verdict as a whole read, at the cost of the metadata.

    The reads are bounded by ``disk_metadata_bytes``, each read charged at
    least :data:`READ_COST`: past it (a disk of some 65,000 grains or more,
    with the default limit) the rest of the file is read whole, the cost of
    the whole read and the same verdict.  A table is read with up to
    :data:`READ_AHEAD` bytes after it (more real bytes change nothing), so the
    tables qemu-img writes side by side take one read per 64 KiB.
    """

    label = "vmdk"

    def __init__(self, name: str, limits: Limits) -> None:
        self.name = name
        self.limits = limits
        #: Bytes read (metadata and markers) and reads done, after :meth:`run`.
        self.bytes_read = 0
        self.reads = 0

    def run(self, stream: BinaryIO, size: int, report: Reporter) -> None:
        checker = _vmdk_checker(self.name, self.limits)
        budget = self.limits.disk_metadata_bytes
        charged = 0
        pos = 0
        while pos < size:
            span = checker.needs() if charged <= budget else (pos, size)
            start, end = (size, size) if span is None else span
            start = min(max(start, pos), size)
            while pos < start:
                n = min(start - pos, len(_ZEROS))
                checker.feed(memoryview(_ZEROS)[:n])
                pos += n
            if pos >= size:
                break
            if end - start > 16:  # a region, not a marker: its neighbours in the same read
                end = max(end, pos + READ_AHEAD)
            end = min(max(end, pos + 1), size, pos + len(_ZEROS))
            stream.seek(pos)
            data = stream.read(end - pos)
            if not data:
                break  # the file shrank: the checker counts what it got
            self.reads += 1
            self.bytes_read += len(data)
            charged += max(len(data), READ_COST)
            checker.feed(data)
            pos += len(data)
        for message_id, args in checker.close():
            report.error(self.name, message_id, *args)


#: The name this check had when it read monolithicSparse disks only.
VmdkSparseCheck = VmdkMetadataCheck


def vmdk_markers(head: bytes) -> bool:
    """Whether a VMDK header announces stream markers (streamOptimized)."""
    from ..ovf.vmdk import FLAG_MARKERS

    return len(head) >= 12 and bool(int.from_bytes(head[8:12], "little") & FLAG_MARKERS)


class DiskStreamCheck(StreamCheck):
    """A disk of an OVF package whose format URI names ``fmt``, fed the disk's content."""

    label = "disk"

    def __init__(
        self, name: str, fmt: str, capacity: int | None, disk_id: str, limits: Limits
    ) -> None:
        self.name = name
        self.fmt = fmt
        self.capacity = capacity
        self.disk_id = disk_id
        self.parser = parser_for(fmt, name, limits)
        self.fetch = StreamFetch(self.parser)
        self.parser.fetch = self.fetch
        self.parser.start()

    def update(self, data: memoryview) -> None:
        self.fetch.feed(data)

    def finish(self, report: Reporter) -> None:
        size = self.fetch.close()
        head = bytes(self.fetch.prefix[:HEAD_BYTES])
        found = sniff(head, bytes(self.fetch.tail))
        if found != self.fmt:
            report.error(
                self.name,
                "validator.disk.format_mismatch",
                self.name,
                NAMES[self.fmt],
                NAMES.get(found, found),
            )
            for message_id, args in format_problems("", found, head)[:1]:
                if message_id != "validator.disk.name_mismatch":
                    report.error(self.name, message_id, self.name, *args[1:])
            return
        for message_id, args in self.parser.close(size):
            report.error(self.name, message_id, *args)
        virtual = self.parser.info.get("virtual_size")
        if self.capacity is not None and isinstance(virtual, int) and virtual > self.capacity:
            report.error(
                self.name,
                "validator.disk.capacity_exceeds_declared",
                self.name,
                virtual,
                self.capacity,
                self.disk_id,
            )
