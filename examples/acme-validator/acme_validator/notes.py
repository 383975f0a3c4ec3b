"""A third-party type adapter: item type ``notes``, a library item of plain-text notes.

Rules: a ``README.txt`` is required; every file must be a ``.txt`` file in UTF-8.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable
from importlib.resources import files

from validator.checks import CheckContext, ItemType, Reporter, StreamCheck
from validator.hookspecs import hookimpl
from validator.messages import CatalogSource
from validator.session import Session, SessionFile


class NotesItemType(ItemType):
    name = "notes"
    summary = "Plain-text notes: README.txt plus .txt files in UTF-8"

    def detect(self, session: Session) -> int:
        names = session.names()
        return 50 if names and all(n.endswith(".txt") for n in names) else 0


class Utf8Check(StreamCheck):
    """Fed the file's bytes in the engine's single pass; decodes incrementally."""

    label = "utf-8"

    def __init__(self, name: str) -> None:
        self.name = name
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.offset = 0
        self.bad_at: int | None = None

    def update(self, data: memoryview) -> None:
        if self.bad_at is not None:
            return
        try:
            self.decoder.decode(bytes(data))
        except UnicodeDecodeError as exc:
            self.bad_at = self.offset + exc.start
        self.offset += len(data)

    def finish(self, report: Reporter) -> None:
        if self.bad_at is None:
            try:
                self.decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                self.bad_at = self.offset
        if self.bad_at is not None:
            report.error(self.name, "acme.notes.not_utf8", self.name, self.bad_at)


@hookimpl
def validator_item_types() -> Iterable[ItemType]:
    return [NotesItemType()]


@hookimpl
def validator_message_catalogs() -> Iterable[CatalogSource]:
    return [CatalogSource("acme.notes", files("acme_validator") / "catalogs" / "notes")]


@hookimpl
def validator_required_files(item_type: str) -> Iterable[str] | None:
    return ["README.txt"] if item_type == "notes" else None


@hookimpl
def validator_prepare_session(item_type: str, session: Session, report: Reporter) -> None:
    if item_type != "notes":
        return
    for name in session.names():
        if not name.endswith(".txt"):
            report.error(name, "acme.notes.not_txt", name)


@hookimpl
def validator_file_checks(
    item_type: str, file: SessionFile, ctx: CheckContext
) -> Iterable[StreamCheck] | None:
    if item_type != "notes" or not file.name.endswith(".txt"):
        return None
    return [Utf8Check(file.name)]
