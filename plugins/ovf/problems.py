"""At most :data:`PER_KIND` problems of one kind on one file; the rest are counted.

A hostile (or merely broken) package can hold one problem per line or element:
a manifest of 99,000 lines naming files the package does not have, a descriptor
of 100,000 ``VirtualSystem`` siblings.  Listing each would make a result of
megabytes that takes seconds to build and says nothing the first few entries do
not.  So the ``ovf`` adapter reports the first :data:`PER_KIND` problems of each
kind (message id) on each file, in their usual order, and then one
:data:`NOT_LISTED` problem on that file with how many more there were.

Problems on *different* files are never merged: each names a file that is
invalid (a digest mismatch, a chunk of the wrong size), and their number is
already bounded by ``max_files`` or ``archive_members``.

One mechanism, used in two places:

- :class:`Tally` decides which problems of a kind are kept, and counts the rest.
  Models that collect problems while parsing (the descriptor) use it directly,
  so the problems they hold stay bounded too;
- :class:`CappedReporter` wraps the :class:`~validator.checks.Reporter` of the
  adapter's session hooks, so every problem they report (the manifest's, the
  sizes', the disks') goes through a tally keyed by file and message id;
- :class:`CappedCheck` does the same for the checks the adapter hands to the
  engine's pass (a reference's logical stream with its gzip and disk checks,
  the disk checks of an archive on a pipe): a VMDK whose embedded descriptor
  is a megabyte of bad lines gave 524,242 problems.

The manifest's grammar problems are capped as one group (:data:`PER_KIND` bad
lines of any kind, then ``validator.ovf.manifest.more_problems``), as they were
before this module existed.
"""

from __future__ import annotations

from collections.abc import Hashable
from types import TracebackType
from typing import Generic, TypeVar

from validator.checks import CheckContext, FileCheck, Reporter, StreamCheck

#: Problems of one kind on one file that are listed; the rest are counted.
PER_KIND = 20
#: The problem that says how many of a kind were not listed: args are the file,
#: the number not listed, the kind's message id and :data:`PER_KIND`.
NOT_LISTED = "validator.ovf.problems.not_listed"

K = TypeVar("K", bound=Hashable)
_Kind = tuple[str, str, bool]  # file, message id, is a warning


class Tally(Generic[K]):
    """Counts problems by kind and keeps the first ``per_kind`` of each."""

    __slots__ = ("_counts", "per_kind")

    def __init__(self, per_kind: int = PER_KIND) -> None:
        self.per_kind = per_kind
        self._counts: dict[K, int] = {}

    def admit(self, kind: K) -> bool:
        """Count one problem of ``kind``: ``True`` while it is among the first ``per_kind``."""
        count = self._counts.get(kind, 0) + 1
        self._counts[kind] = count
        return count <= self.per_kind

    def not_listed(self) -> list[tuple[K, int]]:
        """``(kind, how many were not admitted)`` for each kind that had more, first seen first."""
        return [(k, n - self.per_kind) for k, n in self._counts.items() if n > self.per_kind]


class CappedReporter(Reporter):
    """A reporter that passes the first ``per_kind`` problems of each (file, message id)
    on to ``report`` and counts the rest; :meth:`close` (or leaving the ``with`` block
    without an exception) adds one :data:`NOT_LISTED` problem per kind that had more.

    A warning's summary is a warning: it must not make a valid item invalid.
    Summaries made before (the descriptor's) pass through: there is at most
    one per message id.
    """

    def __init__(self, report: Reporter, per_kind: int = PER_KIND) -> None:
        super().__init__()
        self._report = report
        self._tally: Tally[_Kind] = Tally(per_kind)

    def error(self, name: str, message_id: str, *args: object) -> None:
        if message_id == NOT_LISTED or self._tally.admit((name, message_id, False)):
            self._report.error(name, message_id, *args)

    def warning(self, name: str, message_id: str, *args: object) -> None:
        if message_id == NOT_LISTED or self._tally.admit((name, message_id, True)):
            self._report.warning(name, message_id, *args)

    def close(self) -> None:
        """Report what was not listed (once: the counts are then cleared)."""
        per_kind = self._tally.per_kind
        for (name, message_id, warning), count in self._tally.not_listed():
            emit = self._report.warning if warning else self._report.error
            emit(name, NOT_LISTED, name, count, message_id, per_kind)
        self._tally = Tally[_Kind](per_kind)

    def __enter__(self) -> CappedReporter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:  # a hook that failed is reported as failed, nothing else
            self.close()


class CappedCheck(StreamCheck):
    """A stream check whose ``finish`` reports through a :class:`CappedReporter`.

    It is the check to the engine: same label, so a failure is reported as
    the wrapped check's would be.  Use :func:`capped_check`, which gives a
    check shared by several files (the stream of a chunked file) one wrapper.
    """

    def __init__(self, check: StreamCheck, per_kind: int = PER_KIND) -> None:
        self.check = check
        self.per_kind = per_kind
        self.label = check.label or type(check).__name__

    def update(self, data: memoryview) -> None:
        self.check.update(data)

    def finish(self, report: Reporter) -> None:
        with CappedReporter(report, self.per_kind) as capped:
            self.check.finish(capped)


def capped_check(check: FileCheck, ctx: CheckContext) -> FileCheck:
    """``check`` wrapped in a :class:`CappedCheck`, one wrapper per check and validation."""
    if not isinstance(check, StreamCheck):
        return check
    wrap = CappedCheck(check)  # the store keeps it, and so ``check`` and its id, alive
    return ctx.cached(f"ovf.capped_check:{id(check)}", lambda: wrap)
