"""The logical content of one OVF file reference, decoded inside the engine's single pass.

A ``References/File`` is stored as one session file (``disk.vmdk``) or as
chunks (``disk.vmdk.000000000``, ``…001``, …), and its bytes may be gzip
compressed (``ovf:compression="gzip"``).  A :class:`LogicalStream` turns the
*stored* bytes the engine reads into the file's *logical* bytes, de-chunked
and decompressed, and hands them to downstream consumers, without a second
read and in constant memory::

    stored bytes (chunk 0, chunk 1, …)  →  [gunzip, bounded]  →  consumers

The engine sees one :class:`~validator.checks.StreamCheck` per reference:
``plugins/ovf/__init__.py`` returns the same instance from
``validator_file_checks`` for every chunk of the reference, and
``validator_file_groups`` makes one worker read the chunks in order, so the
instance receives them as one stream and is finished once, after the last.

For consumers (the VMDK check, or any check of a file's content)
------------------------------------------------------------------

A consumer is any object with ``feed(data)`` and ``close()`` (the
:class:`Consumer` protocol): ``feed`` receives consecutive pieces of the
logical content as a ``memoryview`` that is valid only during the call (copy
what you keep); ``close`` is called once after the last byte and returns the
problems found, as ``(message id, args)`` pairs.  They are reported on
:attr:`LogicalStream.name` (the reference's file, or its first chunk).

Attach consumers in ``validator_prepare_session``, before any file is read::

    from .stream import logical_stream

    desc = descriptor_of(session, ctx)
    for ref in desc.files:
        stream = logical_stream(session, ctx, ref)
        if stream is not None:
            stream.attach(MyChecker(stream.name, ref.href))

:func:`logical_stream` returns the one stream of a reference for this
validation (``None`` when its href cannot be a session file), so every caller
gets the same instance.  ``attach`` raises ``RuntimeError`` once the stream
has been handed to the engine (a consumer attached that late would miss
bytes).  A stream is read only when it has work (gzip to check or consumers):
attaching a consumer is what makes an uncompressed file part of the pass.

What a consumer can rely on:

- with no compression the consumer sees the stored bytes themselves (zero
  copy); with gzip it sees the decompressed bytes, in pieces of at most
  :data:`OUT_PIECE` bytes, never more than ``limits.gzip_decompressed_bytes``
  in all;
- if the logical content cannot be produced (a corrupt or truncated gzip
  stream, the decompression limit, a chunk missing from the session) the
  consumers are *dropped*: ``close`` is not called and they report nothing,
  because the stream's own message already says what is wrong;
- a consumer whose ``feed`` or ``close`` raises (anything the engine guards
  plugin code against, ``sys.exit()`` too) is dropped and reported
  (``validator.ovf.stream.consumer_failed``); the other consumers and the
  gzip check go on.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Protocol

from validator.checks import CheckContext, Reporter, StreamCheck
from validator.limits import Limits
from validator.registry import PLUGIN_ERRORS
from validator.session import Session

from .descriptor import FileRef, chunk_name

Problem = tuple[str, tuple[object, ...]]

#: Largest piece of decompressed output produced at once (bounds memory).
OUT_PIECE = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
#: Slices of stored bytes handed to zlib at once (see ``LogicalStream._gunzip``).
MIN_SLICE, MAX_SLICE = 512, 1 << 20
#: zlib ``wbits`` for a gzip wrapper (header and CRC32/ISIZE trailer checked).
GZIP_WBITS = 16 + zlib.MAX_WBITS

_KEY = "ovf.stream:"


class Consumer(Protocol):
    """Something that checks a file's logical content (see the module docstring)."""

    def feed(self, data: memoryview, /) -> None: ...

    def close(self) -> Iterable[Problem]: ...


def chunk_parts(ref: FileRef, session: Session, limits: Limits) -> list[str]:
    """The names a chunked reference is stored as, in order.

    With ``ovf:size`` known they follow from the size (every one of them is
    required); without it, the chunks present from ``…000000000`` on, in an
    unbroken run (at least the first one).
    """
    names = ref.chunk_names(limits.max_files)
    if names is not None:
        return names
    present = set(session.names())
    names = [chunk_name(ref.href, 0)]
    while len(names) < limits.max_files and chunk_name(ref.href, len(names)) in present:
        names.append(chunk_name(ref.href, len(names)))
    return names


def stored_parts(ref: FileRef, session: Session, limits: Limits) -> list[str]:
    """The session names holding a reference's bytes, in order (chunks or the file itself)."""
    if ref.chunk_size is None:
        return [ref.href]
    return chunk_parts(ref, session, limits)


class _Part:
    """One stored file of a reference: its name, where it starts in the stored bytes, size."""

    __slots__ = ("name", "size", "start")

    def __init__(self, name: str, start: int, size: int) -> None:
        self.name = name
        self.start = start
        self.size = size


class LogicalStream(StreamCheck):
    """One reference's stored bytes in, its logical bytes out to the attached consumers."""

    label = "ovf-stream"

    def __init__(
        self,
        ref: FileRef,
        parts: list[tuple[str, int | None]],
        limits: Limits,
        *,
        sequential: bool = False,
        growable: bool = False,
    ) -> None:
        self.ref = ref
        self.limits = limits
        #: A sequential session (an archive on a pipe): the parts' sizes are learnt as
        #: they arrive (:meth:`arrived`); ``growable``: a chunked file without
        #: ``ovf:size``, whose chunks are the unbroken run that arrives.
        self.sequential = sequential
        self.growable = growable
        self._sizes: list[int | None] = [size for _, size in parts]
        self._arrived = 0
        self._disordered = False
        self._parts: list[_Part] = []
        offset = 0
        for name, size in parts:
            self._parts.append(_Part(name, offset, size or 0))
            offset += size or 0
        #: The session file problems of the logical content are reported on.
        self.name = parts[0][0] if parts else ref.href
        self.consumers: list[Consumer] = []
        self.handed_out = False
        self.stored = 0  # stored bytes seen
        self.produced = 0  # logical bytes produced
        self._problems: list[tuple[str, str, tuple[object, ...]]] = []
        self._failed_consumers: list[tuple[Consumer, str]] = []
        self._broken = False  # the logical content cannot be produced
        # gzip state
        self._gzip = ref.compression == "gzip"
        self._inflate: zlib._Decompress | None = None
        self._members = 0
        self._head = bytearray()  # the first bytes of a member, until its magic is known
        self._trailing_at: int | None = None
        self._slice = MAX_SLICE

    # -- set-up ----------------------------------------------------------------
    @property
    def complete(self) -> bool:
        """Every stored part is in the session (else nothing is decoded and nothing reported).

        In a sequential session: every part arrived, in order (known only at the end).
        """
        if self.sequential:
            return bool(self._parts) and not self._disordered and self._arrived == len(self._parts)
        return bool(self._parts) and all(size is not None for size in self._sizes)

    @property
    def has_work(self) -> bool:
        """Whether reading the reference through this stream would check anything."""
        return self._gzip or bool(self.consumers)

    @property
    def needed(self) -> bool:
        """Whether reading the reference through this stream checks anything."""
        return self.complete and self.has_work

    def arrived(self, name: str, size: int) -> bool:
        """A sequential session: stored part ``name`` arrived with ``size`` bytes.

        ``True`` when it is the next part of this stream (feed it its bytes); a part
        out of order makes the stream incomplete, since its content can no longer
        be produced in one pass.
        """
        if self._disordered:
            return False
        at = self._arrived
        if at == len(self._parts) and self.growable and name == chunk_name(self.ref.href, at):
            self._parts.append(_Part(name, 0, 0))
            self._sizes.append(None)
        if at >= len(self._parts) or self._parts[at].name != name:
            if any(part.name == name for part in self._parts):
                self._disordered = True
            return False
        start = self._parts[at - 1].start + self._parts[at - 1].size if at else 0
        self._parts[at] = _Part(name, start, size)
        self._sizes[at] = size
        self._arrived += 1
        return True

    def attach(self, consumer: Consumer) -> Consumer:
        """Add a consumer of the logical content (before the engine reads any byte)."""
        if self.handed_out:
            raise RuntimeError(
                f"{self.ref.href}: attach stream consumers in validator_prepare_session"
            )
        self.consumers.append(consumer)
        return consumer

    def name_at(self, offset: int) -> str:
        """The stored part (chunk) that holds stored byte ``offset``."""
        for part in self._parts:
            if offset < part.start + part.size:
                return part.name
        return self._parts[-1].name if self._parts else self.ref.href

    # -- the engine's side -----------------------------------------------------
    def update(self, data: memoryview) -> None:
        start = self.stored
        self.stored += len(data)
        if self._broken or self._trailing_at is not None:
            return
        if self._gzip:
            self._gunzip(data, start)
        else:
            self._emit(data)

    def finish(self, report: Reporter) -> None:
        if not self.complete:
            return  # a part never came (sequential session): as if never read
        if self._gzip and not self._broken:
            self._gzip_end()
        for name, message_id, args in self._problems:
            report.error(name, message_id, *args)
        if not self._broken:
            for consumer in list(self.consumers):
                try:
                    problems = list(consumer.close())
                except PLUGIN_ERRORS as exc:
                    self._consumer_failed(consumer, exc)
                    continue
                for message_id, args in problems:
                    report.error(self.name, message_id, *args)
        for consumer, error in self._failed_consumers:
            report.error(
                self.name,
                "validator.ovf.stream.consumer_failed",
                self.name,
                type(consumer).__name__,
                error,
            )

    # -- consumers -----------------------------------------------------------
    def _emit(self, data: memoryview) -> None:
        if not data:
            return
        self.produced += len(data)
        for consumer in list(self.consumers):
            try:
                consumer.feed(data)
            except PLUGIN_ERRORS as exc:
                self._consumer_failed(consumer, exc)

    def _consumer_failed(self, consumer: Consumer, exc: BaseException) -> None:
        if consumer in self.consumers:
            self.consumers.remove(consumer)
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        self._failed_consumers.append((consumer, detail))

    def _problem(self, offset: int, message_id: str, *args: object, fatal: bool = True) -> None:
        """A gzip problem, on the chunk that holds ``offset``; fatal: no logical content."""
        name = self.name_at(offset)
        self._problems.append((name, message_id, (name, self.ref.href, *args)))
        if fatal:
            self._broken = True

    # -- gzip ----------------------------------------------------------------
    def _gunzip(self, data: memoryview, start: int) -> None:
        """Decompress one stored piece; members follow each other (multi-member gzip).

        The input is handed to zlib in slices: at a member's end zlib copies the
        rest of its input (``unused_data``), so after a member ended the slices
        start small and double while no member ends, which keeps a file of
        countless tiny members linear.
        """
        buf = data
        at = start
        while buf and not self._broken:
            if self._inflate is None:
                # A member starts here: its first two bytes must be the gzip magic.
                take = min(2 - len(self._head), len(buf))
                self._head += buf[:take]
                buf = buf[take:]
                at += take
                if len(self._head) < 2:
                    return
                if bytes(self._head) != GZIP_MAGIC:
                    if self._members == 0:
                        self._problem(at - 2, "validator.ovf.gzip.not_gzip")
                    else:
                        self._trailing_at = at - 2
                    return
                if self._members >= self.limits.gzip_members:
                    self._problem(
                        at - 2, "validator.ovf.gzip.too_many_members", self.limits.gzip_members
                    )
                    return
                self._inflate = zlib.decompressobj(GZIP_WBITS)
                self._inflate.decompress(bytes(self._head))  # two header bytes: no output
                self._head.clear()
                continue
            piece = buf[: self._slice]
            used = self._inflate_piece(piece, at)
            if used is None:
                return
            if used == len(piece):
                self._slice = min(self._slice * 2, MAX_SLICE)
            else:
                self._slice = MIN_SLICE  # a member ended inside the slice
            buf = buf[used:]
            at += used

    def _inflate_piece(self, piece: memoryview, at: int) -> int | None:
        """Feed stored bytes to the current member: how many it took (``None``: failed)."""
        inflate = self._inflate
        assert inflate is not None
        buf: memoryview | bytes = piece
        while True:
            try:
                out = inflate.decompress(buf, OUT_PIECE)
            except zlib.error as exc:
                self._problem(at, "validator.ovf.gzip.corrupt", at, _zlib_detail(exc))
                return None
            if out:
                if self.produced + len(out) > self.limits.gzip_decompressed_bytes:
                    limit = self.limits.gzip_decompressed_bytes
                    self._problem(at, "validator.ovf.gzip.too_large", limit)
                    return None
                self._emit(memoryview(out))
            if inflate.eof:
                self._members += 1
                self._inflate = None
                return len(piece) - len(inflate.unused_data)
            buf = inflate.unconsumed_tail
            if not buf and len(out) < OUT_PIECE:
                return len(piece)

    def _gzip_end(self) -> None:
        end = max(0, self.stored - 1)
        if self.stored == 0:
            self._problem(0, "validator.ovf.gzip.not_gzip")
        elif self._trailing_at is not None:
            # The content itself was complete: consumers still report.
            count = self.stored - self._trailing_at
            self._problem(self._trailing_at, "validator.ovf.gzip.trailing_data", count, fatal=False)
        elif self._inflate is not None:
            self._problem(end, "validator.ovf.gzip.truncated", self.stored)
        elif self._head:
            if self._members == 0:
                self._problem(end, "validator.ovf.gzip.not_gzip")
            else:
                self._problem(end, "validator.ovf.gzip.trailing_data", len(self._head), fatal=False)


def _zlib_detail(exc: zlib.error) -> str:
    text = str(exc)
    # "Error -3 while decompressing data: invalid block type" → "invalid block type"
    return text.split(": ", 1)[1] if ": " in text else text


def logical_stream(session: Session, ctx: CheckContext, ref: FileRef) -> LogicalStream | None:
    """The stream of one reference for this validation (one instance, shared by every caller).

    ``None`` when the href is not a name a session can hold.
    """
    if not ref.usable:
        return None

    def build() -> LogicalStream:
        parts: list[tuple[str, int | None]] = []
        for name in stored_parts(ref, session, ctx.limits):
            file = session.get(name)
            size = file.source.size if file is not None and file.source is not None else None
            parts.append((name, size))
        if not session.sequential:
            return LogicalStream(ref, parts, ctx.limits)
        # Built before the members arrive: a chunked file without ovf:size takes the
        # unbroken run of chunks that arrives, as chunk_parts takes those present.
        growable = ref.chunk_size is not None and ref.chunk_names(ctx.limits.max_files) is None
        if growable:
            parts = parts[:1]
        return LogicalStream(ref, parts, ctx.limits, sequential=True, growable=growable)

    return ctx.cached(_KEY + ref.href, build)
