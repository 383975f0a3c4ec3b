"""What every disk-format parser shares: problems, metadata extents and two ways to read.

A parser (:class:`Parser`) never reads a file itself.  It asks for byte
regions with :meth:`Fetch.want` and is called back with their bytes; the same
parser then runs

- on a file it may seek in (:class:`SeekFetch`, used by the ``disk`` item
  type's :class:`~validator.checks.ReaderCheck`): each region is read with one
  seek and one read, in offset order, and nothing else of the file is read;
- on a stream of the disk's content (:class:`StreamFetch`, used inside an OVF
  package, where the ``validator_disk_checks`` hook gives stream checks): the
  regions are copied as the bytes stream past, and only they (plus the first
  :data:`PREFIX` bytes) are kept in memory.

Both hand a region that runs past the end of the file over *short*, as a read
would, so the parser's logic is the same in both modes.  In a stream, a region
asked for after its bytes went past (outside the kept prefix and the piece
being fed) cannot be
read any more: it is counted in :attr:`Parser.unread` (shown by ``validator
info``) and left unchecked, never reported as a problem of the disk.

All regions together are at most ``budget`` bytes (``--limit
disk_metadata_bytes``): past it a parser reports
``validator.disk.metadata_limit`` once, checks what fits and counts the rest
in :attr:`Parser.unread`.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from itertools import pairwise
from typing import Any, BinaryIO, NamedTuple

#: Bytes of the beginning of a stream that are kept (headers and the tables
#: near them are asked for after the bytes that say where they are).
PREFIX = 1 << 20
#: Bytes of the end of a stream that are kept (a VHD footer).
TAIL = 512
#: Problems of one message id listed per disk; the rest are counted.
PER_KIND = 20
NOT_LISTED = "validator.disk.not_listed"

Callback = Callable[[bytes], None]
Problem = tuple[str, tuple[object, ...]]


class Extent(NamedTuple):
    """A metadata structure of the image: where it is and how long it is."""

    kind: str
    offset: int
    length: int


class Parser:
    """Base of the format parsers: collects problems, extents and the ``info`` facts.

    ``name`` is the file problems are about (the first argument of every
    message).  Subclasses implement :meth:`start` (ask for the header) and
    :meth:`end` (checks that need the file's size, which a stream knows only
    at its end).
    """

    #: The format's short name (``qcow2``…), the second argument of most messages.
    fmt = ""

    def __init__(self, name: str, *, max_virtual: int, budget: int) -> None:
        self.name = name
        self.max_virtual = max_virtual
        self.budget = budget
        self.limit = budget
        self.over_budget = False
        self.problems: list[Problem] = []
        self._counts: dict[str, int] = {}
        self.extents: list[Extent] = []
        #: Facts for ``validator info``: format, virtual size, cluster size…
        self.info: dict[str, Any] = {"format": self.fmt}
        self.risks: list[str] = []
        self.unread = 0
        self.fetch: Fetch | None = None
        self.size: int | None = None
        #: The header is broken beyond use: the rest is not looked at.
        self.dead = False

    # -- problems ---------------------------------------------------------
    def add(self, message_id: str, *args: object) -> None:
        count = self._counts.get(message_id, 0) + 1
        self._counts[message_id] = count
        if count <= PER_KIND:
            self.problems.append((message_id, (self.name, *args)))

    def risk(self, what: str) -> None:
        """A risky feature, listed by ``validator info`` (each is also a problem)."""
        if what not in self.risks:
            self.risks.append(what)

    def field(self, field: str, value: object, allowed: str) -> None:
        self.add("validator.disk.field_range", self.fmt, field, value, allowed)

    def virtual_size(self, size: int) -> None:
        self.info["virtual_size"] = size
        if size > self.max_virtual:
            self.add("validator.disk.virtual_size_limit", self.fmt, size, self.max_virtual)

    # -- reading ----------------------------------------------------------
    def want(self, offset: int, length: int, done: Callback) -> None:
        """Ask for ``length`` bytes at ``offset``; ``done`` gets them (short past the end)."""
        assert self.fetch is not None
        if length <= 0:
            return
        if length > self.budget:
            self.unread += 1
            if not self.over_budget:
                self.over_budget = True
                self.add("validator.disk.metadata_limit", self.fmt, self.limit)
            return
        self.budget -= length
        self.fetch.want(offset, length, done)

    def want_tail(self, length: int, done: Callback) -> None:
        """Ask for the file's last ``length`` bytes (at most :data:`TAIL`); a stream gives
        them at its end."""
        assert self.fetch is not None
        self.fetch.want_tail(length, done)

    def extent(self, kind: str, offset: int, length: int) -> None:
        """Record a metadata structure: checked against the file's end and the header."""
        self.extents.append(Extent(kind, offset, length))

    # -- the parser's parts ---------------------------------------------------
    def start(self) -> None:
        raise NotImplementedError

    def end(self, size: int) -> None:
        """The file's size is known: what needs it (tables past the end…)."""

    def header_length(self) -> int:
        """Bytes at the start that only the header may use (0: no such rule)."""
        return 0

    def close(self, size: int) -> list[Problem]:
        self.size = size
        self.info.setdefault("file_size", size)
        if not self.dead:
            self.end(size)
            self._check_extents(size)
        if self.unread:
            self.info["metadata_not_read"] = self.unread
        self.info["risky_features"] = list(self.risks)
        problems = list(self.problems)
        for message_id, count in self._counts.items():
            if count > PER_KIND:
                problems.append((NOT_LISTED, (self.name, count - PER_KIND, message_id, PER_KIND)))
        return problems

    def _check_extents(self, size: int) -> None:
        head = self.header_length()
        cut = False
        for ext in self.extents:
            end = ext.offset + ext.length
            if head and ext.offset < head:
                self.add("validator.disk.table_overlaps_header", self.fmt, ext.kind, ext.offset)
            elif end > size and not cut:
                self.add("validator.disk.table_outside", self.fmt, ext.kind, ext.offset, end, size)
                cut = True  # one message says the file is cut short
        # Top-level tables that share bytes (two tables cannot be one another's data).
        spans = sorted(
            (e for e in self.extents if e.length and e.kind in self.exclusive_kinds),
            key=lambda e: (e.offset, e.length),
        )
        for a, b in pairwise(spans):
            if b.offset < a.offset + a.length:
                self.add("validator.disk.tables_overlap", self.fmt, a.kind, b.kind, b.offset)

    #: Kinds of :class:`Extent` that may not share bytes with one another.
    exclusive_kinds: frozenset[str] = frozenset()


class Fetch:
    """Serves a parser's regions; see the module's docstring."""

    def want(self, offset: int, length: int, done: Callback) -> None:
        raise NotImplementedError

    def want_tail(self, length: int, done: Callback) -> None:
        raise NotImplementedError


class SeekFetch(Fetch):
    """Regions read with seek and read, in offset order (callbacks may ask for more)."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self.stream = stream
        self.size = size
        self._queue: list[tuple[int, int, int, Callback]] = []
        self._seq = 0
        self.bytes_read = 0

    def want(self, offset: int, length: int, done: Callback) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (offset, self._seq, length, done))

    def want_tail(self, length: int, done: Callback) -> None:
        start = max(0, self.size - length)
        self.want(start, self.size - start, done)

    def run(self) -> None:
        while self._queue:
            offset, _, length, done = heapq.heappop(self._queue)
            take = max(0, min(length, self.size - offset))
            data = b""
            if take:
                self.stream.seek(offset)
                data = self.stream.read(take)
                self.bytes_read += len(data)
            done(data)


def run_on_file(parser: Parser, stream: BinaryIO, size: int) -> list[Problem]:
    """Check a seekable file: metadata only."""
    fetch = SeekFetch(stream, size)
    parser.fetch = fetch
    parser.size = size
    parser.start()
    fetch.run()
    parser.info["bytes_read"] = fetch.bytes_read
    return parser.close(size)


class _Region:
    __slots__ = ("buf", "done", "length", "offset")

    def __init__(self, offset: int, length: int, done: Callback) -> None:
        self.offset = offset
        self.length = length
        self.done = done
        self.buf = bytearray()


class StreamFetch(Fetch):
    """Regions copied from a stream of the disk's content as it goes past.

    ``feed`` takes the next bytes (pieces of any size); ``close`` hands every
    region still waiting its bytes so far (short) and returns the total size.
    """

    def __init__(self, parser: Parser) -> None:
        self.parser = parser
        self.pos = 0
        self.prefix = bytearray()
        self._waiting: list[tuple[int, int, _Region]] = []
        self._active: list[_Region] = []
        self._ready: list[_Region] = []
        self._seq = 0
        self._closed = False
        self.tail = bytearray()
        self._tails: list[tuple[int, Callback]] = []
        # the piece being fed, while the callbacks it completes run
        self._view: memoryview | None = None
        self._view_start = 0

    def want_tail(self, length: int, done: Callback) -> None:
        self._tails.append((min(length, TAIL), done))

    def want(self, offset: int, length: int, done: Callback) -> None:
        end = offset + length
        region = _Region(offset, length, done)
        view, start = self._view, self._view_start
        if view is not None and start <= offset and end <= self.pos:
            # a region inside the piece being fed (a table's items right after it)
            region.buf += view[offset - start : end - start]
            self._ready.append(region)
            return
        if offset < self.pos:
            kept = len(self.prefix)
            if offset >= kept or (end > kept and kept < self.pos):
                self.parser.unread += 1  # streamed past: not checkable in one pass
                return
            region.buf += self.prefix[offset : min(end, self.pos)]
            if end <= self.pos or self._closed:
                self._ready.append(region)
            else:
                self._active.append(region)
            return
        if self._closed:
            self._ready.append(region)  # past the end of the stream: empty
            return
        self._seq += 1
        heapq.heappush(self._waiting, (offset, self._seq, region))

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B") if not isinstance(data, memoryview) else data
        n = len(view)
        if not n:
            return
        start = self.pos
        end = start + n
        if start < PREFIX:
            self.prefix += view[: PREFIX - start]
        self.pos = end
        if n >= TAIL:
            self.tail[:] = view[n - TAIL :]
        else:
            self.tail += view
            del self.tail[: max(0, len(self.tail) - TAIL)]
        waiting = self._waiting
        while waiting and waiting[0][0] < end:
            self._active.append(heapq.heappop(waiting)[2])
        still: list[_Region] = []
        for region in self._active:
            have = region.offset + len(region.buf)
            hi = min(region.offset + region.length, end)
            if have < hi:
                region.buf += view[max(have, start) - start : hi - start]
            if region.offset + region.length <= end:
                self._ready.append(region)
            else:
                still.append(region)
        self._active = still
        self._view, self._view_start = view, start
        try:
            self._drain()
        finally:
            self._view = None

    def _drain(self) -> None:
        while self._ready:
            ready = sorted(self._ready, key=lambda r: r.offset)
            self._ready = []
            for region in ready:
                region.done(bytes(region.buf))

    def close(self) -> int:
        self._closed = True
        rest = [r for _, _, r in self._waiting] + self._active
        self._waiting = []
        self._active = []
        self._ready.extend(rest)
        self._drain()
        for length, done in self._tails:
            done(bytes(self.tail[len(self.tail) - min(length, len(self.tail)) :]))
        self._drain()
        return self.pos


def u(data: bytes, offset: int, fmt: str) -> int:
    """One integer of ``struct`` format ``fmt`` at ``offset`` (0 when ``data`` is short)."""
    import struct

    size = struct.calcsize(fmt)
    if len(data) < offset + size:
        return 0
    value: int = struct.unpack_from(fmt, data, offset)[0]
    return value
