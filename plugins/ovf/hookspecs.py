"""Hook specifications the ``ovf`` adapter adds (``validator_add_hookspecs``).

The adapter calls them itself, through :func:`validator.calls.call_each`; a
third-party plugin implements them with :data:`validator.hookspecs.hookimpl`
like any other hook.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from validator.hookspecs import hookspec

if TYPE_CHECKING:
    from validator.checks import CheckContext, StreamCheck
    from validator.session import Session


@hookspec
def validator_disk_checks(
    item_type: str,
    session: Session,
    name: str,
    disk_format: str,
    capacity: int | None,
    disk_id: str,
    ctx: CheckContext,
) -> Iterable[StreamCheck] | None:
    """Give the checks for the content of one virtual disk, by its format.

    Called by an item type that knows disks (``ovf``: once per file a
    ``DiskSection/Disk`` uses) so that disk formats are pluggable: a plugin
    adds qcow2, VHD or raw checks without touching the OVF adapter.

    :param name: the disk's file name in the package (an OVF ``File`` href);
        problems are reported on it.
    :param disk_format: the format URI as the package declares it (OVF
        ``ovf:format``, e.g.
        ``http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized``).
    :param capacity: the capacity the package declares, in bytes (``None``:
        not known, e.g. a ``${property}``).
    :param disk_id: the disk's id in the package (``ovf:diskId``).
    :return: :class:`~validator.checks.StreamCheck` instances, or ``None`` if
        the format is not yours.  They are fed the disk's *content*: the bytes
        after the package's own encodings are undone (chunks joined, gzip
        decompressed), in order, in the file's single read.  A disk whose
        format no plugin claims is reported as unsupported, never guessed.
    """
