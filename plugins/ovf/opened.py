"""What the ``ovf`` adapter's opener learned, handed to its hooks as a typed note.

``validator_open_session`` reads a lone ``.ovf`` (and parses it, to find the
files it references) or lists an ``.ova``; what it found travels on the
session as one :class:`Opened` object (``session.note`` / ``session.noted``),
not under string keys: the parse of the descriptor (reused by the
validation when the bytes and limits are the same) and the problems found
while listing the archive (reported by the adapter's prepare).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, NamedTuple

from validator.limits import Limits

if TYPE_CHECKING:
    from validator.session import Session

    from .descriptor import Descriptor

# Slotted classes and a NamedTuple rather than dataclasses: this module is imported on
# every OVF run, and a dataclass costs 0.6-0.9 ms to define (README, "Performance").


class ParsedDescriptor:
    """A descriptor the opener read and parsed: its bytes, the limits, the parse.

    (Never compared, so a plain class: a NamedTuple costs 0.2 ms more to define.)
    """

    __slots__ = ("data", "descriptor", "limits")

    def __init__(self, data: bytes, limits: Limits, descriptor: Descriptor) -> None:
        self.data = data
        self.limits = limits
        self.descriptor = descriptor


class ArchiveProblem(NamedTuple):
    """A problem found while listing an archive, reported on ``name`` in prepare."""

    name: str
    message_id: str
    args: tuple[object, ...]


#: How a session was opened: a lone descriptor (local or remote), an archive file, a
#: remote archive read by ranges, an archive stream.
Source = Literal["ovf", "ova-file", "ova-remote", "ova-stream"]


class Opened:
    """The opener's findings for one session.

    ``source``: how the session was opened (a lone descriptor, an archive file, an
    archive stream); ``parsed``: the descriptor it parsed; ``problems``: what
    listing the archive found.
    """

    __slots__ = ("parsed", "problems", "source")

    def __init__(self, source: Source = "ovf") -> None:
        self.source = source
        self.parsed: ParsedDescriptor | None = None
        self.problems: list[ArchiveProblem] = []

    def take_problems(self) -> list[ArchiveProblem]:
        """The archive's problems, once (a sequential session's prepare runs late)."""
        taken, self.problems = self.problems, []
        return taken


def opened(session: Session, source: Source = "ovf") -> Opened:
    """The session's :class:`Opened` note, made on first use."""
    found = session.noted(Opened)
    if found is None:
        found = Opened(source)
        session.note(found)
    return found
