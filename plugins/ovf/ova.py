"""OVA archives: an OVF package in one tar file, validated without extracting it.

A strict, minimal tar reader (ustar, GNU and pax headers, checksums checked)
walks the archive's headers; nothing is ever written to disk and no member
name is ever used as a path.

- A seekable ``.ova``: every regular member becomes a
  :class:`~validator.session.SessionFile` whose source is its byte range of
  the archive (:class:`~validator.session.RangeSource`), so the engine reads
  members in place and in parallel, exactly like the files of a folder.
- A remote ``.ova`` (a URL): the same, with headers and members read by
  range requests (:func:`open_remote_archive`, :mod:`validator.remote`).
- ``-`` (standard input): a ``sequential`` session read in one pass.  The
  leading metadata members (descriptor, manifest, certificate) are read into
  memory first (bounded by the descriptor and manifest limits) so the
  descriptor can be parsed before the pass; the other members are handed to
  the engine one by one as they arrive.

Members must be regular files with plain names: links, devices, FIFOs,
directories, absolute or ``..`` names and duplicates are refused (each an
``invalid_files`` entry), the descriptor must be the first member.  A file
that is not a tar archive, a damaged header, an archive cut short, one that
cannot be read or that has more members than ``archive_members`` is a
:class:`~validator.session.DamagedInput`: the result's only ``invalid_files``
entry, on the archive (its file name, ``-`` on standard input), exit status 1,
whether the damage is found while the archive is listed (a file) or during
the single pass (standard input).
"""

from __future__ import annotations

import io
import os
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, cast

from validator.limits import Limits
from validator.session import (
    ByteSource,
    DamagedInput,
    MemorySource,
    RangeSource,
    Rejected,
    Session,
    SessionError,
    SessionFile,
    is_plain_name,
)

from .opened import ArchiveProblem, opened

if TYPE_CHECKING:
    from validator.remote import RemoteLocation

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
#: Bytes of one pax extended header or GNU long name we accept.
META_LIMIT = 1 << 20
REGULAR_TYPES = ("0", "\0", "7")
#: Types whose header carries no data, whatever the size field says.
NO_DATA_TYPES = ("1", "2", "3", "4", "5", "6")
METADATA_SUFFIXES = (".ovf", ".mf", ".cert")
#: Message id of a refused member, by tar type flag.
TYPE_MESSAGES = {
    "1": "validator.ovf.ova.member_link",
    "2": "validator.ovf.ova.member_link",
    "3": "validator.ovf.ova.member_device",
    "4": "validator.ovf.ova.member_device",
    "5": "validator.ovf.ova.member_directory",
    "6": "validator.ovf.ova.member_fifo",
}


class _Input(Protocol):
    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; fewer only at the end of the input."""

    def skip(self, n: int) -> int:
        """Skip up to ``n`` bytes; returns how many were skipped (fewer at the end)."""


@dataclass(slots=True)
class Member:
    name: str
    type: str
    size: int  # bytes of data that follow the header
    offset: int  # where the data starts in the archive
    header_at: int

    @property
    def regular(self) -> bool:
        return self.type in REGULAR_TYPES


def _padded(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


def _octal(field: bytes) -> int | None:
    text = field.replace(b"\0", b" ").strip()
    if not text or any(c not in b"01234567" for c in text):
        return None
    return int(text, 8)


def _number(field: bytes) -> int | None:
    """A numeric header field: octal text, or GNU base-256 (first byte 0x80)."""
    if field and field[0] == 0x80:
        return int.from_bytes(field[1:], "big")
    if field and field[0] & 0x80:
        return None  # negative base-256
    return _octal(field)


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def damaged(name: str, message_id: str, *args: object) -> DamagedInput:
    """A finding about the archive ``name`` itself (see the module docstring)."""
    return DamagedInput(name, "ovf", message_id, name, *args)


class TarWalker:
    """Walks the headers of a tar archive; the caller consumes or skips each member's data.

    ``origin`` is the archive's name in findings (its file name, or ``-``).
    """

    def __init__(self, src: _Input, origin: str) -> None:
        self.src = src
        self.origin = origin
        self.pos = 0
        self.count = 0

    def _fail(self, message_id: str, *args: object) -> DamagedInput:
        return damaged(self.origin, message_id, *args)

    def read_exact(self, n: int, at: int) -> bytes:
        data = self.src.read(n)
        self.pos += len(data)
        if len(data) < n:
            raise self._fail("validator.ovf.ova.truncated", self.pos)
        return data

    def skip_data(self, member: Member, consumed: int = 0) -> None:
        """Skip what is left of ``member``'s data and its padding."""
        want = _padded(member.size) - consumed
        if want > 0:
            got = self.src.skip(want)
            self.pos += got
            if got < want:
                raise self._fail("validator.ovf.ova.truncated", self.pos)

    def _header(self, block: bytes, at: int) -> tuple[str, str, int]:
        first = self.count == 0
        stored = _octal(block[148:156])
        unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
        signed = sum(b - 256 if b > 127 else b for b in block[:148] + block[156:]) + 8 * 32
        magic = block[257:263]
        if (
            stored is None
            or stored not in (unsigned, signed)
            or magic not in (b"ustar\0", b"ustar ")
        ):
            raise self._fail(
                "validator.ovf.ova.not_tar" if first else "validator.ovf.ova.bad_header", at
            )
        name = _text(block[0:100])
        if magic == b"ustar\0":
            prefix = _text(block[345:500])
            if prefix:
                name = f"{prefix}/{name}"
        size = _number(block[124:136])
        if size is None:
            raise self._fail("validator.ovf.ova.bad_header", at)
        return name, chr(block[156]), size

    def _pax(self, data: bytes, at: int) -> dict[str, str]:
        out: dict[str, str] = {}
        pos = 0
        while pos < len(data):
            if data[pos] == 0:
                break
            space = data.find(b" ", pos)
            if space < 0 or not data[pos:space].isdigit():
                raise self._fail("validator.ovf.ova.bad_header", at)
            length = int(data[pos:space])
            record = data[space + 1 : pos + length]
            if length <= 0 or pos + length > len(data) or not record.endswith(b"\n"):
                raise self._fail("validator.ovf.ova.bad_header", at)
            key, eq, value = record[:-1].partition(b"=")
            if not eq:
                raise self._fail("validator.ovf.ova.bad_header", at)
            out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
            pos += length
        return out

    def next(self) -> Member | None:
        """The next member, or ``None`` at the end-of-archive blocks."""
        pax: dict[str, str] = {}
        long_name: str | None = None
        while True:
            at = self.pos
            block = self.src.read(BLOCK)
            self.pos += len(block)
            if len(block) < BLOCK:
                raise self._fail("validator.ovf.ova.truncated", self.pos)
            if block == ZERO_BLOCK:
                if self.count == 0:
                    raise self._fail("validator.ovf.ova.not_tar", at)
                return None
            name, kind, size = self._header(block, at)
            self.count += 1
            if kind in ("x", "g", "L", "K"):
                if size > META_LIMIT:
                    raise self._fail("validator.ovf.ova.bad_header", at)
                data = self.read_exact(_padded(size), at)[:size]
                if kind == "x":
                    pax.update(self._pax(data, at))
                elif kind == "L":
                    long_name = _text(data)
                continue  # a global header ("g") or a link name ("K") changes no member name
            if "path" in pax:
                name = pax["path"]
            elif long_name is not None:
                name = long_name
            if "size" in pax:
                if not pax["size"].isdigit():
                    raise self._fail("validator.ovf.ova.bad_header", at)
                size = int(pax["size"])
            if kind in NO_DATA_TYPES:
                size = 0
            return Member(name=name, type=kind, size=size, offset=self.pos, header_at=at)


def _refusal(member: Member, seen: set[str]) -> Rejected | None:
    """Why a member cannot be a session file (``None``: it can)."""
    name = member.name
    if not member.regular:
        message_id = TYPE_MESSAGES.get(member.type, "validator.ovf.ova.member_type")
        if message_id == "validator.ovf.ova.member_type":
            return Rejected(name, message_id, (name, member.type))
        return Rejected(name, message_id, (name,))
    if not is_plain_name(name):
        return Rejected(name, "validator.ovf.ova.member_bad_name", (name,))
    if name in seen:
        return Rejected(name, "validator.ovf.ova.duplicate_member", (name,))
    return None


def _first_problem(session: Session, first: str | None) -> None:
    """The descriptor must be the archive's first member."""
    descriptors = [n for n in session.names() if n.lower().endswith(".ovf")]
    if descriptors and first is not None and first != descriptors[0]:
        opened(session).problems.append(
            ArchiveProblem(
                descriptors[0], "validator.ovf.ova.descriptor_not_first", (descriptors[0], first)
            )
        )


# -- a seekable archive ---------------------------------------------------------


class _FileInput:
    """Header reads and data skips on an open archive (skips are seeks)."""

    def __init__(self, fh: BinaryIO, size: int) -> None:
        self.fh = fh
        self.size = size

    def read(self, n: int) -> bytes:
        return self.fh.read(n)

    def skip(self, n: int) -> int:
        here = self.fh.tell()
        step = max(0, min(n, self.size - here))
        self.fh.seek(here + step)
        return step


def open_archive(path: Path, limits: Limits) -> Session:
    """A session of the members of a seekable ``.ova``, read in place."""
    real = Path(os.path.realpath(path))
    try:
        if not stat.S_ISREG(os.stat(real).st_mode):
            raise SessionError("validator.core.input.not_regular", path)
        # O_NONBLOCK: a FIFO swapped in after the check cannot hang the open.
        flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(real, flags)
    except OSError as exc:
        raise SessionError("validator.core.input.unreadable", path, exc.strerror or exc) from exc
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise SessionError("validator.core.input.not_regular", path)
        session = Session(origin=str(path), item_type="ovf")
        opened(session, "ova-file")
        _index(
            _FileInput(fh, st.st_size),
            session,
            path.name,
            limits,
            lambda member: RangeSource(real, member.offset, member.size),
        )
    return session


def _index(
    src: _Input,
    session: Session,
    name: str,
    limits: Limits,
    source: Callable[[Member], ByteSource],
    unreadable: Callable[[OSError], SessionError] | None = None,
) -> None:
    """Walk the headers of a seekable archive: each member a file with ``source(member)``.

    ``name`` is the archive's name in findings; a read that fails is a finding
    (``validator.ovf.ova.read_error``) unless ``unreadable`` makes it another error
    (a remote archive: the server failed, the archive is not damaged).
    """
    walker = TarWalker(src, name)
    seen: set[str] = set()
    first: str | None = None
    try:
        while (member := walker.next()) is not None:
            if len(session.files) + len(session.rejected) >= limits.archive_members:
                raise damaged(name, "validator.ovf.ova.too_many_members", limits.archive_members)
            if first is None:
                first = member.name
            refused = _refusal(member, seen)
            if member.regular:
                seen.add(member.name)
            if refused is not None:
                session.rejected.append(refused)
            else:
                session.files.append(SessionFile(member.name, source(member)))
            walker.skip_data(member)
    except OSError as exc:
        if unreadable is not None:
            raise unreadable(exc) from exc
        raise damaged(name, "validator.ovf.ova.read_error", exc.strerror or exc) from exc
    _first_problem(session, first)


def open_remote_archive(location: RemoteLocation, limits: Limits) -> Session:
    """A session of the members of a remote ``.ova``: headers and members read by ranges.

    The headers are read with small range requests (one per member, each
    skip is a seek); every member is a range of the archive, read in place
    and in parallel by the engine like a local archive's.
    """
    whole = location.source()
    session = Session(origin=location.url, item_type="ovf")
    opened(session, "ova-remote")
    with whole.open() as fh:
        _index(
            _FileInput(fh, whole.size),
            session,
            location.name,
            limits,
            lambda member: whole.range(member.offset, member.size),
            location.fail,  # the server failed (exit 2); a damaged archive is a finding
        )
    return session


# -- a stream (standard input) ----------------------------------------------------


class _StreamInput:
    """Sequential reads from a binary stream; counts nothing, never seeks."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self._scratch = bytearray(1 << 20)

    def readinto(self, view: memoryview) -> int:
        n = self.raw.readinto(view)
        return int(n or 0)

    def read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.raw.read(n - len(out))
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def skip(self, n: int) -> int:
        done = 0
        view = memoryview(self._scratch)
        while done < n:
            got = self.readinto(view[: min(len(view), n - done)])
            if not got:
                break
            done += got
        return done


class _MemberReader(io.RawIOBase):
    """The data of the current member of a stream, read once."""

    def __init__(self, source: StreamMemberSource) -> None:
        super().__init__()
        self.source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        src = self.source
        left = src.length - src.consumed
        if left <= 0:
            return 0
        view = memoryview(buffer).cast("B")
        if len(view) > left:
            view = view[:left]
        # Fill the buffer (a pipe gives at most its capacity per read): fewer, larger
        # chunks for the checks.
        n = 0
        while n < len(view):
            got = src.input.readinto(view[n:])
            if not got:
                break
            n += got
        src.consumed += n
        return n


@dataclass(slots=True)
class StreamMemberSource:
    """A member of an archive on a pipe: opened once, in session order."""

    input: _StreamInput
    length: int
    consumed: int = 0
    opened: bool = False

    @property
    def size(self) -> int:
        return self.length

    @property
    def seekable(self) -> bool:
        return False

    def open(self) -> BinaryIO:
        if self.opened:
            raise OSError("a member of a stream can be read only once")
        self.opened = True
        return cast(BinaryIO, _MemberReader(self))


class StreamSession(Session):
    """A ``sequential`` session over an archive on a pipe (see :meth:`iter_sequential`)."""

    __slots__ = ("first", "limits", "pending", "seen", "walker")

    def __init__(self, origin: str, limits: Limits) -> None:
        super().__init__(origin, item_type="ovf", sequential=True)
        self.walker: TarWalker | None = None
        self.pending: Member | None = None
        self.first: str | None = None
        self.seen: set[str] = set()
        self.limits = limits

    def _count_check(self) -> None:
        if len(self.files) + len(self.rejected) + len(opened(self).problems) >= (
            self.limits.archive_members
        ):
            raise damaged(
                self.origin, "validator.ovf.ova.too_many_members", self.limits.archive_members
            )

    def _late_descriptor(self, name: str) -> None:
        """A descriptor after other members: it came too late to be read first."""
        if any(n.lower().endswith(".ovf") for n in self.names()):
            return
        opened(self).problems.append(
            ArchiveProblem(
                name, "validator.ovf.ova.descriptor_not_first", (name, self.first or "?")
            )
        )

    def iter_sequential(self) -> Iterator[SessionFile]:
        yield from list(self.files)  # the members read ahead, already in memory
        try:
            yield from self._arriving()
        except OSError as exc:  # standard input failed mid-way: a finding, like a cut
            raise damaged(self.origin, "validator.ovf.ova.read_error", exc.strerror or exc) from exc

    def _arriving(self) -> Iterator[SessionFile]:
        walker = self.walker
        if walker is None:
            return
        self.walker = None
        member = self.pending
        self.pending = None
        if member is None:
            member = walker.next()
        while member is not None:
            self._count_check()
            refused = _refusal(member, self.seen)
            if member.regular:
                self.seen.add(member.name)
            if refused is None and member.name.lower().endswith(".ovf"):
                self._late_descriptor(member.name)
            if refused is not None:
                self.rejected.append(refused)  # reported as a file's (the engine: after the pass)
                walker.skip_data(member)
            elif _small_metadata(member, self.limits):
                data = walker.read_exact(member.size, member.header_at)
                walker.skip_data(member, member.size)
                file = SessionFile(member.name, MemorySource(data))
                self.files.append(file)
                yield file
            else:
                assert isinstance(walker.src, _StreamInput)
                source = StreamMemberSource(walker.src, member.size)
                file = SessionFile(member.name, source)
                self.files.append(file)
                yield file
                walker.pos += source.consumed
                walker.skip_data(member, source.consumed)
            member = walker.next()


def _small_metadata(member: Member, limits: Limits) -> bool:
    limit = max(limits.descriptor_bytes, limits.manifest_bytes)
    return member.name.lower().endswith(METADATA_SUFFIXES) and member.size <= limit


def open_stream(raw: Any, origin: str, limits: Limits) -> Session:
    """A sequential session over an archive read from ``raw`` (standard input)."""
    walker = TarWalker(_StreamInput(raw), origin)
    session = StreamSession(origin, limits)
    opened(session, "ova-stream")
    first: str | None = None
    try:
        # Read ahead the leading metadata members so the descriptor can be parsed first.
        budget = 2 * max(limits.descriptor_bytes, limits.manifest_bytes)
        while True:
            member = walker.next()
            if member is None:
                break
            if first is None:
                first = member.name
            if not (member.regular and _small_metadata(member, limits)) or member.size > budget:
                session.pending = member
                break
            session._count_check()
            refused = _refusal(member, session.seen)
            session.seen.add(member.name)
            if refused is not None:
                session.rejected.append(refused)
                walker.skip_data(member)
                continue
            data = walker.read_exact(member.size, member.header_at)
            walker.skip_data(member, member.size)
            budget -= member.size
            session.files.append(SessionFile(member.name, MemorySource(data)))
        session.walker = walker
        session.first = first
    except OSError as exc:
        raise damaged(origin, "validator.ovf.ova.read_error", exc.strerror or exc) from exc
    _first_problem(session, first)
    return session


def _stdin() -> Any:
    stream = sys.stdin.buffer
    raw = getattr(stream, "raw", stream)
    try:  # a bigger pipe: fewer, larger reads (Linux only; harmless elsewhere)
        import fcntl

        fcntl.fcntl(raw.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (OSError, ValueError, AttributeError, ImportError):
        pass
    return raw


def open_ova(path: Path, limits: Limits) -> Session:
    """``-`` (standard input) or a ``.ova`` file."""
    if str(path) == "-":
        try:
            raw = _stdin()
        except (OSError, ValueError, AttributeError) as exc:
            raise SessionError("validator.ovf.ova.read_error", "-", exc) from exc
        return open_stream(raw, "-", limits)
    return open_archive(path, limits)
