"""Hook specifications: the plugin API of the validator.

A plugin is a module (or object) with functions named like the hooks below
and decorated with :data:`hookimpl`; it is found through the entry-point
group ``validator.plugins`` (see :mod:`validator.registry`).  A hook
implementation may accept any subset of the arguments of its spec.

The engine calls every implementation of a check hook separately: one that
raises is reported (with the plugin's name) as an ``invalid_files`` entry of
id ``validator.core.plugin.failed`` and the rest of the validation goes on.

Validation runs in this order, for a session of item type ``item_type``:

1. :func:`validator_prepare_session` – whole-session checks that need no
   file data beyond small metadata files (parse a descriptor);
2. :func:`validator_required_files` – names the item needs (→ ``missing_files``);
3. :func:`validator_file_groups` – files to read in order as one stream
   (chunks); :func:`validator_file_checks` – per file, the checks to run on
   its bytes; all stream checks of a file share one read, files (and groups)
   are read in parallel;
4. :func:`validator_check_session` – whole-session checks that use what the
   file pass found (digests against a manifest).

Item types may define hooks of their own, called from their checks through
``ctx.registry``: :func:`validator_disk_checks` (disk formats, called by ``ovf``).
``validator info PATH`` calls :func:`validator_describe` outside a validation.

These docstrings are the reference documentation (``validator hooks`` prints
them); a test checks that every hook is documented in the README.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from validator.checks import CheckContext, FileCheck, ItemType, Reporter, StreamCheck
    from validator.limits import Limits
    from validator.messages import CatalogSource
    from validator.session import Session, SessionFile

PROJECT = "validator"
#: The entry-point group plugins (built-in adapters included) are found through.
ENTRY_POINT_GROUP = "validator.plugins"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def validator_item_types() -> Iterable[ItemType]:
    """Declare the item types this plugin adapts.

    :return: :class:`~validator.checks.ItemType` instances.  Called once when
        the registry is built.  Every name must be unique across plugins: a
        second declaration of a name is refused and reported with both
        plugins' names, and the first one stays.
    """


@hookspec
def validator_message_catalogs() -> Iterable[CatalogSource]:
    """Contribute message catalogs.

    :return: :class:`~validator.messages.CatalogSource` objects, each naming
        the id namespace the plugin owns (``acme.policy``) and a folder with
        one ``<locale>.toml`` per language (``en.toml`` is mandatory).  Every
        message id a plugin reports must be in its catalogs.
    """


@hookspec(firstresult=True)
def validator_open_session(path: Path, limits: Limits) -> Session | None:
    """Turn an input path (a command-line argument) into a session.

    :param path: the path as given (not resolved; it may not exist).
    :param limits: the resource limits in force.
    :return: a :class:`~validator.session.Session`, or ``None`` if this plugin
        does not handle such a path.  The first non-``None`` result wins;
        the built-in fallbacks (a folder, a session manifest, any single
        file) are registered ``trylast``.  Raise
        :class:`~validator.session.SessionError` with a one-line reason for
        an input that is unreadable; it is shown as it stands, exit status 2.
    """


@hookspec
def validator_prepare_session(
    item_type: str, session: Session, ctx: CheckContext, report: Reporter
) -> None:
    """Check the session as a whole before any file is read in full.

    Called for every session; return at once if ``item_type`` is not yours.
    Read small metadata files with ``ctx.read_small`` and keep what you parse
    in ``ctx.cached``; request the digests you will need with
    ``ctx.request_digest``.  Problems go to ``report.error(name, id, *args)``.
    """


@hookspec
def validator_required_files(
    item_type: str, session: Session, ctx: CheckContext
) -> Iterable[str] | None:
    """Name the files an item of ``item_type`` needs.

    :return: file names, or ``None`` if ``item_type`` is not yours.  The union
        over all plugins, less the files the session holds, is
        ``missing_files``.
    """


@hookspec
def validator_file_checks(
    item_type: str, session: Session, file: SessionFile, ctx: CheckContext
) -> Iterable[FileCheck] | None:
    """Give the checks to run over one received file's bytes.

    :return: :class:`~validator.checks.StreamCheck` and
        :class:`~validator.checks.ReaderCheck` instances, or ``None``.  All
        plugins' checks for a file run together: reader checks first, then
        one sequential read feeds every stream check.  Files are processed in
        parallel threads, so a check must not share mutable state with the
        checks of other files (except through ``ctx``, which is thread-safe).
    """


@hookspec
def validator_file_groups(
    item_type: str, session: Session, ctx: CheckContext
) -> Iterable[Sequence[str]] | None:
    """Name files that must be read one after another, in order, by one worker.

    :return: groups of file names (for example the chunks ``disk.vmdk.000000000``,
        ``…001`` of one chunked file), or ``None``.  A check object that
        ``validator_file_checks`` returns for several files of a group is fed
        their bytes as one stream and finished once, after the last of them;
        each file still gets its own digests.  A file named by two groups
        stays in the first.  Files of different groups, and files in no group,
        are read in parallel.
    """


@hookspec
def validator_check_session(
    item_type: str, session: Session, ctx: CheckContext, report: Reporter
) -> None:
    """Check the session as a whole after every file was read.

    Digests requested earlier are available from ``ctx.digest``; state kept
    in ``ctx.store`` by your file checks is complete.  Problems go to
    ``report``.
    """


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


@hookspec(firstresult=True)
def validator_describe(
    item_type: str, session: Session, ctx: CheckContext
) -> dict[str, Any] | None:
    """Describe an item for ``validator info PATH``, from its metadata only.

    Called once, outside a validation, with the item type the engine detected
    (or ``--type``); return at once with ``None`` if ``item_type`` is not
    yours.  The first non-``None`` result wins.

    :return: a JSON-serialisable ``dict`` of facts (for a disk image: ``format``,
        ``virtual_size``, ``cluster_size``, ``allocated_bytes``,
        ``risky_features``…); ``validator info`` prints it as ``key: value``
        lines, or as a JSON object with ``--format json``.
    """
