"""What plugins build and receive: item types, file checks, the reporter and the context.

These are the public types of the plugin API (with :mod:`validator.hookspecs`).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from validator.limits import Limits
from validator.results import Finding
from validator.session import Session, SessionFile

if TYPE_CHECKING:
    from validator.registry import Registry

T = TypeVar("T")


class ItemType(ABC):
    """A library item type a plugin adapts (``ovf``, ``iso``, …).

    Subclasses set :attr:`name` (unique across all plugins: a second item
    type of the same name is refused and reported) and :attr:`summary`.
    """

    #: The type name, as in the API's ``LibraryItem.type`` (lower case).
    name: str = ""
    #: One line for ``validator plugins``.
    summary: str = ""

    @abstractmethod
    def detect(self, session: Session) -> int:
        """How sure this type is that the session is one of its items: 0 (not mine) to 100.

        Only looks at names and sizes; the engine picks the highest score and
        refuses a tie.
        """

    def primary_file(self, session: Session) -> str | None:
        """The file that problems of the whole item are reported on (a descriptor)."""
        return session.files[0].name if session.files else None

    # What an update-session server asks (``validator serve``), so that it knows no item
    # type: both are called through the gateway (a failure is logged with the plugin's
    # name and the default answer is taken).

    def kept_in_storage(self, name: str) -> bool:
        """Whether a file of this name becomes part of the item when a session completes
        (the API's ``keep_in_storage``); ``False`` for a file that is only checked on
        the way in (an OVF manifest or certificate). Default: every file is kept."""
        return True

    def refuse_addition(
        self, name: str, present: Sequence[str]
    ) -> tuple[str, tuple[str, ...]] | None:
        """Why ``name`` may not be added to an update session that already holds the
        files ``present`` (in the order they were added): a catalog message id and its
        arguments, which the server answers with ``invalid_argument``; ``None`` (the
        default) to accept it. The OVF type refuses a manifest or certificate once the
        descriptor is in, as vCenter does."""
        return None


class Reporter:
    """Collects the problems one check finds.

    ``error`` adds an ``invalid_files`` entry for ``name`` with the catalog
    message ``message_id`` and its positional ``args``; ``warning`` adds a
    preview warning that does not make the item invalid.
    """

    def __init__(self, order: tuple[Any, ...] = ()) -> None:
        self._order = order
        self.problems: list[Finding] = []

    def error(self, name: str, message_id: str, *args: object) -> None:
        self._add(name, message_id, args, warning=False)

    def warning(self, name: str, message_id: str, *args: object) -> None:
        self._add(name, message_id, args, warning=True)

    def _add(self, name: str, message_id: str, args: tuple[object, ...], warning: bool) -> None:
        self.problems.append(
            Finding(
                name=str(name),
                message_id=str(message_id),
                args=tuple(str(a) for a in args),
                warning=warning,
                order=(*self._order, len(self.problems)),
            )
        )


def report_one_image(
    session: Session, report: Reporter, image: str | None, no_image: str, extra_file: str
) -> None:
    """The rule of an item that is one image file (``iso``, ``disk``): ``no_image`` (a
    message id, no argument) on the session's origin when there is none, else
    ``extra_file`` (arguments: the file, the image) on every other file."""
    if image is None:
        report.error(session.origin, no_image)
        return
    for name in session.names():
        if name != image:
            report.error(name, extra_file, name, image)


class FileCheck(ABC):  # noqa: B024 - a marker base: use StreamCheck or ReaderCheck
    """Base of the checks returned by ``validator_file_checks``; use a subclass."""

    #: Shown when the check fails to run (defaults to the class name).
    label: str = ""


class StreamCheck(FileCheck):
    """A check fed the file's bytes in order, in the engine's single pass.

    ``update`` receives consecutive chunks (a ``memoryview`` valid only for
    the call); ``finish`` is called once after the last byte and reports.
    Every stream check of a file shares one read of it, and independent
    files are read in parallel threads.
    """

    @abstractmethod
    def update(self, data: memoryview) -> None: ...

    @abstractmethod
    def finish(self, report: Reporter) -> None: ...


class ReaderCheck(FileCheck):
    """A check that reads only the parts of a file it needs (headers, metadata).

    ``run`` gets a seekable binary file and the stored size.  It runs before
    the stream pass, and is reported as not runnable on a sequential session
    (an archive on standard input).
    """

    @abstractmethod
    def run(self, stream: BinaryIO, size: int, report: Reporter) -> None: ...


class CheckContext:
    """Shared by every hook call of one validation.

    ``locale`` is the locale asked for (``None``: English only).  ``store``
    holds state a plugin computes once per validation (a parsed descriptor):
    use :meth:`cached`.  Digests are computed by the engine in the single
    stream pass: ask with :meth:`request_digest` before files are read (in
    ``validator_prepare_session`` or ``validator_file_checks``) and read them
    with :meth:`digest` in ``validator_check_session``.
    """

    def __init__(
        self,
        item_type: str,
        limits: Limits,
        locale: str | None = None,
        options: dict[str, Any] | None = None,
        store: dict[str, Any] | None = None,
        registry: Registry | None = None,
    ) -> None:
        self.item_type = item_type
        self.limits = limits
        self.locale = locale
        self.options: dict[str, Any] = {} if options is None else options
        self.store: dict[str, Any] = {} if store is None else store
        #: The plugins of this validation, for item types that call hooks of their own
        #: (``ovf`` calls ``validator_disk_checks``); ``None`` outside an engine.
        self.registry = registry
        self._digest_requests: dict[str, set[str]] = {}
        self._digests: dict[str, dict[str, str]] = {}
        self._lock = threading.RLock()
        #: What ``read_small`` read, by file name (``None``: larger than its limit).
        self._small: dict[str, bytes | None] = {}

    def cached(self, key: str, compute: Callable[[], T]) -> T:
        """``store[key]``, computed once (thread-safe) by ``compute``."""
        with self._lock:
            if key not in self.store:
                self.store[key] = compute()
            value: T = self.store[key]
            return value

    def request_digest(self, name: str, algorithm: str) -> None:
        """Ask for the ``hashlib`` digest ``algorithm`` (``sha256``…) of file ``name``."""
        with self._lock:
            self._digest_requests.setdefault(name, set()).add(algorithm.lower())

    def requested_digests(self, name: str) -> set[str]:
        with self._lock:
            return set(self._digest_requests.get(name, ()))

    def set_digest(self, name: str, algorithm: str, hexdigest: str) -> None:
        with self._lock:
            self._digests.setdefault(name, {})[algorithm] = hexdigest

    def digest(self, name: str, algorithm: str) -> str | None:
        """The hex digest computed in the stream pass, or ``None`` if the file was not read."""
        with self._lock:
            return self._digests.get(name, {}).get(algorithm.lower())

    def small_content(self, name: str) -> bytes | None:
        """The bytes ``read_small`` already read of file ``name``, if it did."""
        with self._lock:
            return self._small.get(name)

    def read_small(self, file: SessionFile, limit: int) -> bytes | None:
        """The whole content of a small file (``None`` if larger than ``limit`` bytes).

        For descriptors and manifests that must be parsed before the stream
        pass.  Raises ``OSError`` if it cannot be read.
        """
        if file.source is None:
            raise OSError(f"{file.name}: not received")
        with self._lock:
            if file.name in self._small:
                return self._small[file.name]
        if file.source.size > limit:
            return None
        with file.source.open() as fh:
            raw = fh.read(limit + 1)
        data = raw if len(raw) <= limit else None
        with self._lock:
            self._small[file.name] = data
        return data
