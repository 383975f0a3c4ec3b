"""What the ``ovf`` adapter's opener learned, handed to its hooks as a typed note.

``validator_open_session`` reads a lone ``.ovf`` (and parses it, to find the
files it references) or lists an ``.ova``; what it found travels on the
session as one :class:`Opened` object (``session.note`` / ``session.noted``),
not under string keys: the parse of the descriptor (reused by the
validation when the bytes and limits are the same) and the problems found
while listing the archive (reported by the adapter's prepare).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from validator.limits import Limits
    from validator.session import Session

    from .descriptor import Descriptor


@dataclass(slots=True)
class ParsedDescriptor:
    """A descriptor the opener read and parsed: its bytes, the limits, the parse."""

    data: bytes
    limits: Limits
    descriptor: Descriptor


@dataclass(slots=True)
class ArchiveProblem:
    """A problem found while listing an archive, reported on ``name`` in prepare."""

    name: str
    message_id: str
    args: tuple[object, ...]


@dataclass(slots=True)
class Opened:
    """The opener's findings for one session."""

    #: How the session was opened: a lone descriptor, an archive file, an archive stream.
    source: Literal["ovf", "ova-file", "ova-stream"] = "ovf"
    parsed: ParsedDescriptor | None = None
    problems: list[ArchiveProblem] = field(default_factory=list)

    def take_problems(self) -> list[ArchiveProblem]:
        """The archive's problems, once (a sequential session's prepare runs late)."""
        taken, self.problems = self.problems, []
        return taken


def opened(session: Session, source: Literal["ovf", "ova-file", "ova-stream"] = "ovf") -> Opened:
    """The session's :class:`Opened` note, made on first use."""
    found = session.noted(Opened)
    if found is None:
        found = Opened(source)
        session.note(found)
    return found
