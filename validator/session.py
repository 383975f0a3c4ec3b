"""The session model: the files of an update session and a way to read them.

A :class:`Session` is what the engine validates, whatever it was built from:
a bundle folder, a lone descriptor with the files it references beside it, an
archive, a session manifest (YAML/JSON, see ``docs/session-manifest.md``) or
a server's update session.  Each :class:`SessionFile` carries what the API
knows of a file (name, declared size, ``checksum_info``, transfer status) and,
when its bytes were received, a :class:`ByteSource` to read them.

Safety: a :class:`PathSource` opens its file with ``O_NOFOLLOW`` and checks
that it is still a regular file after opening, so a link swapped in later is
refused rather than followed.  Session builders never produce a source for a
name that is not a plain file name.
"""

from __future__ import annotations

import enum
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, Protocol, TypeVar, cast, runtime_checkable


class TransferStatus(enum.StrEnum):
    """``com.vmware.content.library.item.TransferStatus`` (REFERENCE §2)."""

    WAITING_FOR_TRANSFER = "WAITING_FOR_TRANSFER"
    TRANSFERRING = "TRANSFERRING"
    READY = "READY"
    VALIDATING = "VALIDATING"
    ERROR = "ERROR"


class ChecksumAlgorithm(enum.StrEnum):
    """``checksum_info.algorithm``; values are also ``hashlib`` names (lower-cased)."""

    SHA1 = "SHA1"
    MD5 = "MD5"
    SHA256 = "SHA256"
    SHA512 = "SHA512"

    @property
    def hashlib_name(self) -> str:
        return self.value.lower()


class ChecksumInfo(NamedTuple):
    algorithm: ChecksumAlgorithm
    checksum: str


class SessionError(Exception):
    """An input cannot be turned into a session: the CLI prints it on one line, exit 2.

    Carries a catalog ``message_id`` and its ``args`` like every message a user
    sees; ``str()`` is a plain English fallback for logs.
    """

    def __init__(self, message_id: str, *args: object) -> None:
        self.message_id = message_id
        self.args_ = tuple(str(a) for a in args)
        super().__init__(f"{message_id}: {', '.join(self.args_)}")


class DamagedInput(SessionError):
    """The input is an item, but a damaged one: a finding about it, not a usage error.

    An archive cut short (an interrupted download), a file that is not the
    archive its name says, a member that cannot be read.  Raised by a plugin
    while it opens the input (``validator_open_session``) or while a
    sequential session is read; the engine answers it with a
    ``ValidationResult`` whose ``invalid_files`` holds this one problem on
    ``name`` (the archive) and nothing else, since what was read of a damaged
    archive proves nothing (CLI exit status 1).
    """

    def __init__(self, name: str, item_type: str | None, message_id: str, *args: object) -> None:
        super().__init__(message_id, *args)
        self.name = name
        self.item_type = item_type


@runtime_checkable
class ByteSource(Protocol):
    """Where the bytes of a received file are.

    ``size`` is the size as stored.  ``open`` returns a new binary reader
    positioned at the start; a source with ``seekable`` false (a member of an
    archive read from a pipe) can be opened only once, in session order.
    """

    @property
    def size(self) -> int: ...

    @property
    def seekable(self) -> bool: ...

    def open(self) -> BinaryIO: ...


def is_plain_name(name: str) -> bool:
    """A plain relative file name: no directory part, not ``.``/``..``, no NUL or control,
    valid Unicode (a name from a folder that is not UTF-8 cannot be an API file name)."""
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return (
        bool(name)
        and name not in (".", "..")
        and "/" not in name
        and "\\" not in name
        and not any(ord(c) < 32 or ord(c) == 127 for c in name)
        and len(encoded) <= 255
    )


def display_name(name: str) -> str:
    """``name`` made printable on one line of any UTF-8 output: undecodable bytes and
    control characters as ``\\xNN`` (a name cannot forge a line of the text report)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        name = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(f"\\x{ord(c):02x}" if ord(c) < 32 or ord(c) == 127 else c for c in name)


def open_regular_file(path: Path) -> BinaryIO:
    """Open ``path`` for reading without following a final symbolic link.

    Raises ``OSError`` when it is a link, or not a regular file once opened.  Opened
    non-blocking, so a FIFO (named by a manifest, or swapped in after ``lstat``) is
    refused instead of blocking forever; a regular file is then read normally.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path.name}: not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


class PathSource(NamedTuple):
    """A regular file on disk (checked with ``lstat`` when the session is built)."""

    path: Path
    stored_size: int

    @property
    def size(self) -> int:
        return self.stored_size

    @property
    def seekable(self) -> bool:
        return True

    def open(self) -> BinaryIO:
        return open_regular_file(self.path)


class MemorySource(NamedTuple):
    """Bytes already in memory (a small archive member; a descriptor read to open a session)."""

    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def seekable(self) -> bool:
        return True

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data)


class SessionFile:
    """One file of the session (``File.Info`` of the API, plus its bytes)."""

    # Plain classes, here and for the other objects every run builds (Session,
    # CheckContext, Registry): a dataclass costs 0.5-1 ms of every start-up on
    # Python 3.11, which compiles its methods from source (bench/startup.py).
    __slots__ = ("checksum_info", "name", "size", "source", "status")

    def __init__(
        self,
        name: str,
        source: ByteSource | None = None,
        status: TransferStatus = TransferStatus.READY,
        size: int | None = None,
        checksum_info: ChecksumInfo | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self.status = status
        self.size = size
        self.checksum_info = checksum_info

    def __repr__(self) -> str:
        return (
            f"SessionFile({self.name!r}, source={self.source!r}, status={self.status.value},"
            f" size={self.size!r}, checksum_info={self.checksum_info!r})"
        )

    @property
    def received(self) -> bool:
        """Received correctly: READY, bytes present, and the declared size (if any) matches."""
        return (
            self.status in (TransferStatus.READY, TransferStatus.VALIDATING)
            and self.source is not None
            and (self.size is None or self.size == self.source.size)
        )

    @property
    def stored_size(self) -> int | None:
        return self.source.size if self.source is not None else None


class Rejected(NamedTuple):
    """An entry that was offered to the session but cannot be part of it (a link, a FIFO…).

    The engine turns it into an ``invalid_files`` entry with ``message_id``.
    """

    name: str
    message_id: str
    args: tuple[str, ...] = ()


_T = TypeVar("_T")


class Session:
    """The files to validate, in a stable order, and what they came from.

    ``origin`` is shown to users (the path given on the command line, or a
    server session id).  ``item_type`` is set when the input already says
    which type it is (a session manifest, ``--type``); otherwise the engine
    asks the registered item types.  ``sequential`` sessions (an archive on
    standard input) are read once, in order, through :meth:`iter_sequential`.
    What the plugin that built the session learned while opening it (a parsed
    descriptor, problems found while listing an archive) travels to its hooks as
    typed objects: :meth:`note` one, :meth:`noted` gets it back by its class
    (no string keys).  ``meta`` stays for plugins that kept a free-form
    dictionary; the built-in ones do not use it.  ``damage`` is set
    (by the engine) when the input turned out to be damaged
    (:class:`DamagedInput`): the validation then reports only that.
    """

    __slots__ = (
        "_index",
        "_indexed",
        "_indexed_list",
        "damage",
        "files",
        "item_type",
        "meta",
        "notes",
        "origin",
        "rejected",
        "sequential",
    )  # fmt: skip

    def __init__(
        self,
        origin: str,
        files: list[SessionFile] | None = None,
        item_type: str | None = None,
        rejected: list[Rejected] | None = None,
        sequential: bool = False,
        meta: dict[str, Any] | None = None,
        damage: DamagedInput | None = None,
        notes: dict[type, object] | None = None,
    ) -> None:
        self.origin = origin
        self.files: list[SessionFile] = [] if files is None else files
        self.item_type = item_type
        self.rejected: list[Rejected] = [] if rejected is None else rejected
        self.sequential = sequential
        self.meta: dict[str, Any] = {} if meta is None else meta
        self.damage = damage
        self.notes: dict[type, object] = {} if notes is None else notes
        # name → position in ``files``, kept up to date lazily: ``files`` may be
        # appended to directly (adapters build sessions that way); replace a file
        # through :meth:`add`.  Without it ``get`` per file made large sessions
        # quadratic (10,000 files: half of a 2.3 s validation).
        self._index: dict[str, int] = {}
        self._indexed = 0
        self._indexed_list: list[SessionFile] | None = None

    def __repr__(self) -> str:
        return (
            f"Session({self.origin!r}, files={self.names()!r}, item_type={self.item_type!r},"
            f" rejected={len(self.rejected)}, sequential={self.sequential})"
        )

    def names(self) -> list[str]:
        return [f.name for f in self.files]

    def note(self, value: object) -> None:
        """Keep what the opener learned for the hooks, under its class (one per class)."""
        self.notes[type(value)] = value

    def noted(self, cls: type[_T]) -> _T | None:
        """The object of class ``cls`` the opener kept (:meth:`note`), or ``None``."""
        value = self.notes.get(cls)
        return value if isinstance(value, cls) else None

    def _position(self, name: str) -> int | None:
        files = self.files
        if self._indexed_list is not files or self._indexed > len(files):
            # another list, or a shorter one: start again
            self._index.clear()
            self._indexed = 0
            self._indexed_list = files
        for at in range(self._indexed, len(files)):
            self._index.setdefault(files[at].name, at)  # the first of a name wins, as before
        self._indexed = len(files)
        found = self._index.get(name)
        if found is not None and files[found].name != name:  # replaced in place: rebuild
            self._index.clear()
            self._indexed = 0
            return self._position(name)
        return found

    def get(self, name: str) -> SessionFile | None:
        i = self._position(name)
        return self.files[i] if i is not None else None

    def add(self, file: SessionFile) -> None:
        """Add a file; re-adding a name replaces it (as ``File.add`` does)."""
        i = self._position(file.name)
        if i is not None:
            self.files[i] = file
        else:
            self.files.append(file)

    def offer(self, entry: SessionFile | Rejected) -> None:
        """Take what :func:`file_from_path` made: a file joins, a refused entry is recorded."""
        if isinstance(entry, Rejected):
            self.rejected.append(entry)
        else:
            self.files.append(entry)

    def iter_sequential(self) -> Iterator[SessionFile]:
        """Files in stream order for a ``sequential`` session; plain sessions list ``files``."""
        return iter(list(self.files))


def file_from_path(path: Path, name: str | None = None) -> SessionFile | Rejected:
    """A session file for a path inside a bundle, or why it cannot be one.

    Uses ``lstat``: a symbolic link is rejected, never followed.
    """
    name = path.name if name is None else name
    if not is_plain_name(name):
        shown = display_name(name)
        return Rejected(shown, "validator.core.file.bad_name", (shown,))
    try:
        st = os.lstat(path)
    except OSError as exc:
        return Rejected(name, "validator.core.file.unreadable", (name, exc.strerror or str(exc)))
    if stat.S_ISLNK(st.st_mode):
        return Rejected(name, "validator.core.file.link", (name,))
    if not stat.S_ISREG(st.st_mode):
        return Rejected(name, "validator.core.file.not_regular", (name,))
    return SessionFile(name=name, source=PathSource(path, st.st_size), size=None)


def session_from_directory(path: Path, limit: int) -> Session:
    """Every entry directly inside a folder, sorted by name; sub-folders are not part of it."""
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError as exc:
        raise SessionError(
            "validator.core.input.folder_unreadable", path, exc.strerror or exc
        ) from exc
    session = Session(origin=str(path))
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            continue
        if len(session.files) + len(session.rejected) >= limit:
            raise SessionError("validator.core.input.too_many_files", path, limit)
        session.offer(file_from_path(Path(entry.path), entry.name))
    return session


class _RangeReader(io.RawIOBase):
    """Reads ``[offset, offset + length)`` of an open file as if it were the whole file."""

    def __init__(self, raw: BinaryIO, offset: int, length: int) -> None:
        super().__init__()
        self._raw = raw
        self._offset = offset
        self._length = length
        self._pos = 0
        raw.seek(offset)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._length - self._pos
        if left <= 0:
            return 0
        view = memoryview(buffer).cast("B")
        if len(view) > left:
            view = view[:left]
        n = self._raw.readinto(view)  # type: ignore[attr-defined]
        if not n:
            return 0
        self._pos += n
        return int(n)

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = max(0, base + pos)
        self._raw.seek(self._offset + min(self._pos, self._length))
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


class RangeSource(NamedTuple):
    """A byte range of a regular file: a member of an archive, read in place.

    ``open`` gives a seekable reader of just that range (opened like a
    :class:`PathSource`, never following a link), so the engine reads
    members of a seekable archive in parallel exactly like a folder's files.
    """

    path: Path
    offset: int
    length: int

    @property
    def size(self) -> int:
        return self.length

    @property
    def seekable(self) -> bool:
        return True

    def open(self) -> BinaryIO:
        raw = open_regular_file(self.path)
        try:
            reader = _RangeReader(raw, self.offset, self.length)
        except BaseException:
            raw.close()
            raise
        return cast(BinaryIO, io.BufferedReader(reader, buffer_size=64 * 1024))
