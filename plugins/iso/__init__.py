"""The ``iso`` type adapter: ISO 9660 / Joliet / Rock Ridge / El Torito / UDF images.

An ISO library item holds one image file.  The session's image is its first
``.iso`` file (or, when the type was given explicitly, its first file); it is
checked by one :class:`~.check.IsoImageCheck`, a reader check that seeks to
the metadata and never reads file data.  A checksum the session declares is
computed by the engine in its single stream pass (the core plugin asks for
it), so a large image is read in full only when a digest was declared.

Every other file in the session is an error (an ISO item holds exactly one
image).  See docs/iso.md for the checks and the decisions behind them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from validator.checks import (
    CheckContext,
    FileCheck,
    ItemType,
    Reporter,
    report_one_image,
)
from validator.hookspecs import hookimpl
from validator.limits import Limit
from validator.messages import CatalogSource
from validator.session import Session, SessionFile

ITEM_TYPE = "iso"
SUFFIX = ".iso"


def image_name(session: Session) -> str | None:
    """The session's image: its first ``.iso`` file, else its first file."""
    for name in session.names():
        if name.lower().endswith(SUFFIX):
            return name
    names = session.names()
    return names[0] if names else None


class IsoItemType(ItemType):
    name = ITEM_TYPE
    summary = "ISO image: ISO 9660 (Joliet, Rock Ridge, El Torito), UDF bridge or pure UDF"

    def detect(self, session: Session) -> int:
        # Below the OVF type's 90: an OVF package that carries an .iso stays OVF.
        return 80 if any(n.lower().endswith(SUFFIX) for n in session.names()) else 0

    def primary_file(self, session: Session) -> str | None:
        return image_name(session)


@hookimpl
def validator_item_types() -> Iterable[ItemType]:
    return [IsoItemType()]


#: The adapter's resource limits.
LIMITS: tuple[Limit, ...] = (
    Limit("iso_directory_records", 1_000_000, "Directory records walked in an ISO image."),
)


@hookimpl
def validator_limits() -> Iterable[Limit]:
    return LIMITS


@hookimpl
def validator_message_catalogs() -> Iterable[CatalogSource]:
    return [CatalogSource("validator.iso", Path(__file__).parent / "catalogs")]


@hookimpl
def validator_prepare_session(
    item_type: str, session: Session, ctx: CheckContext, report: Reporter
) -> None:
    if item_type != ITEM_TYPE:
        return
    report_one_image(
        session,
        report,
        image_name(session),
        "validator.iso.session.no_image",
        "validator.iso.session.extra_file",
    )


@hookimpl
def validator_file_checks(
    item_type: str, session: Session, file: SessionFile, ctx: CheckContext
) -> Iterable[FileCheck] | None:
    if item_type != ITEM_TYPE or file.name != image_name(session):
        return None
    # Imported here: the readers are only needed for ISO items, and the CLI's
    # start-up time is a feature (every other item type pays nothing for them).
    from .check import IsoImageCheck

    return [IsoImageCheck(file.name, ctx.limits.iso_directory_records)]


@hookimpl
def validator_describe(
    item_type: str, session: Session, ctx: CheckContext
) -> dict[str, Any] | None:
    """The image's volume ids, sizes, file systems, boot entries and hybrid partition table."""
    if item_type != ITEM_TYPE:
        return None
    image = image_name(session)
    file = session.get(image) if image is not None else None
    if file is None or file.source is None or not file.source.seekable:
        return None
    from .describe import describe
    from .image import Image

    with file.source.open() as fh:
        facts = describe(Image(fh, file.source.size), ctx.limits.iso_directory_records)
    return {"name": file.name, **facts}
