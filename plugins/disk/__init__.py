"""The ``disk`` type adapter: virtual disk images (qcow2, VMDK, VHD, VHDX, VDI, raw).

A disk library item holds one image file.  Its type is told from the file's
*content* (magic numbers, :mod:`.sniff`), never from its name alone; a name
that promises another format than the content is an error.  The image is
checked by a :class:`~.check.DiskImageCheck`, a reader check that seeks to the
metadata and never reads data clusters (so a 10 GiB sparse qcow2 costs what a
1 MiB one does).  A VMDK is checked by the ``ovf`` adapter's VMDK checker, the
one implementation both item types share, fed the metadata only
(:class:`~.check.VmdkMetadataCheck`: header, descriptor, grain directory and
tables, and a streamOptimized disk's markers, by seeking; a 10 GiB
streamOptimized disk with a few MiB of data costs what a 1 MiB one does).

The plugin also answers ``validator_disk_checks`` for the qcow2, VHD, VHDX and
VDI format URIs an OVF package may declare (oVirt, XenServer, VirtualBox
exports), and ``validator_describe`` for ``validator info``.  See docs/disk.md.
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
    StreamCheck,
    report_one_image,
)
from validator.hookspecs import hookimpl
from validator.limits import Limit
from validator.messages import CatalogSource
from validator.session import Session, SessionFile

ITEM_TYPE = "disk"

#: ``ovf:format`` URIs (scheme, ``www.`` and fragment ignored) → format.  qcow2:
#: the URI of Mark McLoughlin's format description that oVirt's OVA export and
#: DMTF's OVF examples write; VHD: Microsoft's specification page that
#: XenServer/Citrix exports write (``#monolithic_sparse``, ``#monolithic_flat``)
#: and its fwlink; VHDX: Microsoft's specification download; VDI: the
#: VirtualBox forum page its OVF tooling names.
FORMAT_URIS = {
    "gnome.org/~markmc/qcow-image-format.html": "qcow2",
    "people.gnome.org/~markmc/qcow-image-format.html": "qcow2",
    "technet.microsoft.com/en-us/virtualserver/bb676673.aspx": "vhd",
    "technet.microsoft.com/en-us/library/bb676673.aspx": "vhd",
    "technet.microsoft.com/en-us/virtualization/bb676673.aspx": "vhd",
    "go.microsoft.com/fwlink/?linkid=137171": "vhd",
    "microsoft.com/en-us/download/details.aspx?id=34750": "vhdx",
    "forums.virtualbox.org/viewtopic.php?t=8046": "vdi",
}


def uri_format(disk_format: str) -> str | None:
    """The format an OVF ``ovf:format`` URI names, if it is one this plugin checks."""
    text = disk_format.strip().split("#", 1)[0].lower()
    for scheme in ("https://", "http://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
            break
    else:
        return None
    text = text.removeprefix("www.")
    return FORMAT_URIS.get(text)


def image_name(session: Session) -> str | None:
    """The session's image: its only file, or its first file with a disk-image suffix."""
    from .sniff import DISK_SUFFIXES

    names = session.names()
    for name in names:
        if Path(name).suffix.lower() in DISK_SUFFIXES:
            return name
    return names[0] if names else None


class DiskItemType(ItemType):
    name = ITEM_TYPE
    summary = "Virtual disk image: qcow2, VMDK, VHD, VHDX, VDI or raw (one file)"

    def detect(self, session: Session) -> int:
        """From the content of a session's only file: 70 for a disk format's magic
        (below the ``iso`` type's 80 for a ``.iso`` name and the ``ovf`` type's 90),
        60 for a raw image with a partition table, 50 for a raw image whose name says
        it is a disk image (``.raw``, ``.img``…), 10 for an ISO image not named
        ``.iso`` (to say so), else 0."""
        if len(session.files) != 1 or session.sequential:
            return 0
        file = session.files[0]
        if file.source is None or not file.source.seekable:
            return 0
        from .check import read_ends
        from .sniff import score

        try:
            with file.source.open() as fh:
                head, tail = read_ends(fh, file.source.size)
        except (OSError, ValueError):  # unreadable, or shorter than its recorded size
            return 0
        return score(file.name, head, tail)

    def primary_file(self, session: Session) -> str | None:
        return image_name(session)


#: The adapter's resource limits (read by its checks on ``disk`` items and on the
#: qcow2/VHD/VHDX/VDI disks of an OVF package).
LIMITS: tuple[Limit, ...] = (
    Limit(
        "disk_virtual_bytes",
        64 << 40,
        "Virtual size of a disk image, in bytes (64 TiB, above vSphere's largest virtual disk).",
    ),
    Limit(
        "disk_metadata_bytes", 256 << 20, "Metadata (tables) read from one disk image, in bytes."
    ),
)


@hookimpl
def validator_item_types() -> Iterable[ItemType]:
    return [DiskItemType()]


@hookimpl
def validator_limits() -> Iterable[Limit]:
    return LIMITS


@hookimpl
def validator_message_catalogs() -> Iterable[CatalogSource]:
    return [CatalogSource("validator.disk", Path(__file__).parent / "catalogs")]


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
        "validator.disk.session.no_image",
        "validator.disk.session.extra_file",
    )


@hookimpl
def validator_file_checks(
    item_type: str, session: Session, file: SessionFile, ctx: CheckContext
) -> Iterable[FileCheck] | None:
    if item_type != ITEM_TYPE or file.name != image_name(session) or file.source is None:
        return None
    # Imported here: only disk items pay for the parsers.
    from .check import DiskImageCheck, VmdkMetadataCheck, vmdk_check

    checks: list[FileCheck] = [DiskImageCheck(file.name, ctx.limits)]
    head = _head(file)
    if head[:4] == b"KDMV":
        # Checked from its metadata (a streamOptimized disk's markers too), by seeking;
        # a source that cannot seek is read whole.
        if file.source.seekable:
            checks.append(VmdkMetadataCheck(file.name, ctx.limits))
        else:
            checks.append(vmdk_check(file.name, ctx.limits))
    return checks


def _head(file: SessionFile) -> bytes:
    assert file.source is not None
    try:
        with file.source.open() as fh:
            data: bytes = fh.read(512)
            return data
    except OSError:
        return b""


@hookimpl
def validator_disk_checks(
    name: str, disk_format: str, capacity: int | None, disk_id: str, ctx: CheckContext
) -> Iterable[StreamCheck] | None:
    fmt = uri_format(disk_format)
    if fmt is None:
        return None
    from .check import DiskStreamCheck

    return [DiskStreamCheck(name, fmt, capacity, disk_id, ctx.limits)]


@hookimpl
def validator_describe(
    item_type: str, session: Session, ctx: CheckContext
) -> dict[str, Any] | None:
    if item_type != ITEM_TYPE:
        return None
    image = image_name(session)
    file = session.get(image) if image is not None else None
    if file is None or file.source is None or not file.source.seekable:
        return None
    from .check import inspect

    with file.source.open() as fh:
        info, problems = inspect(file.name, fh, file.source.size, ctx.limits)
    return {"name": file.name, **info, "problems": [p[0] for p in problems]}
