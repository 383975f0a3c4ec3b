"""The ``ovf`` type adapter: OVF packages (descriptor, manifest, certificate, disks).

Inputs: a bundle folder, a lone ``.ovf`` (with the files it references, its
``.mf`` and ``.cert`` beside it), or a session manifest; a lone ``.ovf`` or an
``.ova`` at a URL too (``validator_open_remote``, read in place by ranges).  The descriptor is
parsed once per validation (``ctx.cached``) and shared by every hook below.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from validator.checks import CheckContext, FileCheck, ItemType, Reporter, StreamCheck
from validator.hookspecs import hookimpl
from validator.limits import Limit, Limits
from validator.messages import CatalogSource
from validator.session import (
    MemorySource,
    Rejected,
    Session,
    SessionError,
    SessionFile,
    file_from_path,
    is_plain_name,
)

# The adapter's modules (lxml among their imports) are imported by the hooks that
# need them, after the hook has seen that the session is an OVF one: validating
# an ISO, or listing plugins, does not pay for them.
if TYPE_CHECKING:
    import pluggy

    from validator.remote import RemoteLocation

    from .descriptor import Descriptor

DESCRIPTOR_SUFFIX = ".ovf"
#: What an OVF package checks but does not keep: the manifest and the certificate.
METADATA_SUFFIXES = (".mf", ".cert")
OVA_SUFFIX = ".ova"
_CACHE_KEY = "ovf.descriptor"


def descriptors(session: Session) -> list[str]:
    return [n for n in session.names() if n.lower().endswith(DESCRIPTOR_SUFFIX)]


def metadata_names(descriptor: str) -> tuple[str, str]:
    """The manifest and certificate names that go with a descriptor."""
    base = descriptor[: -len(DESCRIPTOR_SUFFIX)]
    return base + ".mf", base + ".cert"


class OvfItemType(ItemType):
    name = "ovf"
    summary = "OVF package: descriptor, manifest, certificate and the files it references"

    def detect(self, session: Session) -> int:
        return 90 if descriptors(session) else 0

    def primary_file(self, session: Session) -> str | None:
        found = descriptors(session)
        return found[0] if found else super().primary_file(session)

    def kept_in_storage(self, name: str) -> bool:
        """A manifest (``.mf``) or certificate (``.cert``) is checked, not kept (REFERENCE §3)."""
        return not name.lower().endswith(METADATA_SUFFIXES)

    def refuse_addition(
        self, name: str, present: Sequence[str]
    ) -> tuple[str, tuple[str, ...]] | None:
        """As vCenter does: a manifest or certificate may not be added once a descriptor is
        in the session (they come first: a client's upload order keys on the descriptor)."""
        if not name.lower().endswith(METADATA_SUFFIXES):
            return None
        first = next((n for n in present if n.lower().endswith(DESCRIPTOR_SUFFIX)), None)
        if first is None:
            return None
        return "validator.ovf.session.metadata_after_descriptor", (name, first)


@hookimpl
def validator_add_hookspecs(pluginmanager: pluggy.PluginManager) -> None:
    """The adapter's own hook: ``validator_disk_checks`` (disk formats, :mod:`.hookspecs`)."""
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


@hookimpl
def validator_item_types() -> Iterable[ItemType]:
    return [OvfItemType()]


@hookimpl
def validator_limits() -> Iterable[Limit]:
    """The limits of the adapter's parsers (descriptor, manifest, certificate, OVA, gzip)."""
    from .limits import LIMITS

    return LIMITS


@hookimpl
def validator_message_catalogs() -> Iterable[CatalogSource]:
    return [CatalogSource("validator.ovf", Path(__file__).parent / "catalogs")]


@hookimpl
def validator_option_keys() -> Iterable[str]:
    """``-o ovf.trust_store=PEM-FILE``: the CA certificates a signed package is checked
    against (``certificate.TRUST_STORE_OPTION``); ``-o ovf.inflate=true``: inflate every
    compressed grain of a streamOptimized disk (``disks.INFLATE_OPTION``). Named here so
    that listing the keys imports neither module."""
    return ["ovf.trust_store", "ovf.inflate"]


def descriptor_of(session: Session, ctx: CheckContext) -> Descriptor | None:
    """The session's parsed descriptor (the first ``.ovf``), parsed once per validation."""

    def load() -> Descriptor | None:
        names = descriptors(session)
        if not names:
            return None
        file = session.get(names[0])
        if file is None or file.source is None:
            return None
        data = ctx.read_small(file, ctx.limits.descriptor_bytes)
        from .descriptor import read_descriptor
        from .opened import Opened

        note = session.noted(Opened)
        parsed = note.parsed if note is not None else None
        if parsed is not None and parsed.data == data and parsed.limits == ctx.limits:
            return parsed.descriptor  # the parse validator_open_session made of these bytes
        return read_descriptor(file.name, data, ctx.limits)

    return ctx.cached(_CACHE_KEY, load)


# -- inputs --------------------------------------------------------------------


@hookimpl
def validator_open_session(path: Path, limits: Limits) -> Session | None:
    """A lone ``.ovf`` (with the files it references beside it), an ``.ova``, or ``-``."""
    if str(path) == "-" or (path.suffix.lower() == OVA_SUFFIX and not path.is_dir()):
        from .ova import open_ova

        return open_ova(path, limits)
    if path.suffix.lower() != DESCRIPTOR_SUFFIX:
        return None
    try:
        st = os.stat(path)
    except OSError as exc:
        raise SessionError("validator.core.input.unreadable", path, exc.strerror or exc) from exc
    if not stat.S_ISREG(st.st_mode):
        return None
    from .descriptor import read_descriptor

    folder = Path(os.path.realpath(path)).parent
    session = Session(origin=str(path), item_type=None)
    first = file_from_path(Path(os.path.realpath(path)), path.name)
    if isinstance(first, Rejected):
        session.rejected.append(first)
        return session
    session.files.append(first)
    assert first.source is not None
    with first.source.open() as fh:
        data = fh.read(limits.descriptor_bytes + 1)
    small = len(data) <= limits.descriptor_bytes
    desc = read_descriptor(path.name, data if small else None, limits)
    if small:
        # Read and parsed once: the validation hashes these bytes and reuses the parse.
        first.source = MemorySource(data)
        from .opened import ParsedDescriptor, opened

        opened(session).parsed = ParsedDescriptor(data, limits, desc)
    wanted = _wanted(path.name, desc, limits, lambda name: os.path.lexists(folder / name))
    for name in wanted:
        if len(session.files) + len(session.rejected) >= limits.max_files:
            raise SessionError("validator.core.input.too_many_files", path, limits.max_files)
        candidate = folder / name
        if not is_plain_name(name) or not os.path.lexists(candidate) or session.get(name):
            continue
        session.offer(file_from_path(candidate, name))
    return session


def _wanted(
    name: str, desc: Descriptor, limits: Limits, exists: Callable[[str], bool]
) -> list[str]:
    """The names a lone descriptor brings into its session: its manifest and certificate,
    and the files it references (chunks of unknown size: those ``exists`` finds, in order)."""
    from .descriptor import chunk_name

    wanted: list[str] = list(metadata_names(name))
    for ref in desc.files:
        if not ref.usable:
            continue
        if ref.chunk_size is None:
            wanted.append(ref.href)
            continue
        names = ref.chunk_names(limits.max_files)
        if names is None:  # size unknown: take the chunks that are there, in order
            names = []
            while len(names) < limits.max_files and exists(chunk_name(ref.href, len(names))):
                names.append(chunk_name(ref.href, len(names)))
        wanted.extend(names)
    return wanted


@hookimpl
def validator_open_remote(location: RemoteLocation, limits: Limits) -> Session | None:
    """A remote ``.ova`` (read by ranges) or lone ``.ovf`` (its files fetched beside it).

    The same rules as for a local path: only plain names, looked up in the
    descriptor's own folder at the server, one request each.
    """
    if location.suffix == OVA_SUFFIX:
        from .ova import open_remote_archive

        location.stat()
        return open_remote_archive(location, limits)
    if location.suffix != DESCRIPTOR_SUFFIX or location.stat().directory:
        return None
    from .descriptor import read_descriptor

    source = location.source()
    session = Session(origin=location.url, item_type=None)
    if not is_plain_name(location.name):
        raise SessionError("validator.core.input.unreadable", location.url, "no file name")
    first = SessionFile(location.name, source)
    session.files.append(first)
    try:
        with source.open() as fh:
            data = fh.read(limits.descriptor_bytes + 1)
    except OSError as exc:
        raise location.fail(exc) from exc
    small = len(data) <= limits.descriptor_bytes
    desc = read_descriptor(location.name, data if small else None, limits)
    if small:
        first.source = MemorySource(data)
        from .opened import ParsedDescriptor, opened

        opened(session).parsed = ParsedDescriptor(data, limits, desc)
    found: dict[str, SessionFile | None] = {}

    def lookup(name: str) -> SessionFile | None:
        if name not in found:
            where = location.sibling(name)
            try:
                info = where.info()
            except OSError as exc:
                raise where.fail(exc) from exc
            if info is None or info.directory or info.size is None:
                found[name] = None
            else:
                found[name] = SessionFile(name, where.source())
        return found[name]

    def exists(name: str) -> bool:
        return is_plain_name(name) and lookup(name) is not None

    for name in _wanted(location.name, desc, limits, exists):
        if len(session.files) + len(session.rejected) >= limits.max_files:
            raise SessionError(
                "validator.core.input.too_many_files", location.url, limits.max_files
            )
        if not is_plain_name(name) or session.get(name):
            continue
        file = lookup(name)
        if file is not None:
            session.files.append(file)
    return session


# -- checks --------------------------------------------------------------------


@hookimpl
def validator_prepare_session(
    item_type: str, session: Session, ctx: CheckContext, report: Reporter
) -> None:
    if item_type != "ovf":
        return
    if session.sequential:
        _prepare_sequential(session, ctx, report)
        return
    from .problems import CappedReporter

    with CappedReporter(report) as capped:  # at most PER_KIND of a kind on a file
        _prepare_session(session, ctx, capped)


#: ctx.store: the prepare reporter of a sequential session, reported into at the end.
_PREPARE_REPORT = "ovf.prepare_report"


def _prepare_sequential(session: Session, ctx: CheckContext, report: Reporter) -> None:
    """An archive on a pipe: set the pass up now, report what prepare finds at the end.

    What prepare reports depends on the members (their names and sizes) and
    they arrive only during the pass.  So here only what the pass needs is
    done (the descriptor parsed, every disk's checks attached to its stream,
    the manifest's digests requested), and :func:`_prepare_late` runs the very
    prepare of a file at the end, with every member known, into this same
    reporter (the engine collects a sequential session's prepare problems after
    the pass): the verdict of a file, in the order of a file.
    """
    ctx.store[_PREPARE_REPORT] = report
    desc = descriptor_of(session, ctx)
    if desc is None:
        return
    from . import manifest
    from .disks import attach_disk_checks

    scratch = Reporter()  # reported at the end, with every member known
    attach_disk_checks(desc, session, ctx, scratch)
    manifest.prepare(desc, session, ctx, scratch)


def _prepare_late(session: Session, ctx: CheckContext) -> None:
    """A sequential session, after the pass: the prepare of a file, into prepare's reporter."""
    report = ctx.store.pop(_PREPARE_REPORT, None)
    if not isinstance(report, Reporter):
        return
    from . import certificate, manifest
    from .problems import CappedReporter

    if ctx.store.get(_CACHE_KEY) is None:
        ctx.store.pop(_CACHE_KEY, None)  # a descriptor that came after other members
    ctx.store.pop(manifest.DEFERRED_KEY, None)  # reported here, not again in manifest.check
    ctx.store.pop(certificate.DEFERRED_KEY, None)
    ctx.store[certificate.LATE_KEY] = True  # every member is there: check it now
    with CappedReporter(report) as capped:
        _prepare_session(session, ctx, capped)


def _prepare_session(session: Session, ctx: CheckContext, report: Reporter) -> None:
    from .opened import Opened

    note = session.noted(Opened)
    for problem in note.take_problems() if note is not None else ():
        # found while listing the archive
        report.error(problem.name, problem.message_id, *problem.args)
    names = descriptors(session)
    if not names:
        report.error(session.origin, "validator.ovf.session.no_descriptor")
        return
    for extra in names[1:]:
        report.error(extra, "validator.ovf.session.multiple_descriptors", extra, names[0])
    desc = descriptor_of(session, ctx)
    if desc is None:
        return
    from . import integrity, manifest
    from .disks import attach_disk_checks

    for message_id, args in desc.problems:
        report.error(desc.name, message_id, *args)
    if desc.parsed:  # a descriptor that cannot be read says nothing about the other files
        referenced = referenced_names(desc, session, ctx)
        allowed = {desc.name, *metadata_names(desc.name), *names[1:]}
        for name in session.names():
            if name not in referenced and name not in allowed:
                report.error(name, "validator.ovf.file.unreferenced", name, desc.name)
    attach_disk_checks(desc, session, ctx, report)
    # Sizes, chunks, manifest and certificate: metadata only, before the pass
    # (the manifest asks for the digests the pass computes).
    integrity.check_sizes(desc, session, ctx, report)
    manifest.prepare(desc, session, ctx, report)
    # Read from a stream, the certificate may still come (certificate.check defers it).
    if session.sequential or session.get(manifest.certificate_name(desc)) is not None:
        from . import certificate

        certificate.check(desc, session, ctx, report)


_CHUNK = re.compile(r"^(?P<href>.+)\.(?P<index>[0-9]{9})$")


def referenced_names(desc: Descriptor, session: Session, ctx: CheckContext) -> set[str]:
    """Every session name the descriptor references (chunks included)."""
    names: set[str] = set()
    chunked = {ref.href for ref in desc.files if ref.usable and ref.chunk_size is not None}
    for ref in desc.files:
        if ref.usable and ref.chunk_size is None:
            names.add(ref.href)
    for name in session.names():
        m = _CHUNK.match(name)
        if m and m.group("href") in chunked:
            names.add(name)
    names.update(required_chunks(desc, session, ctx))
    return names


def required_chunks(desc: Descriptor, session: Session, ctx: CheckContext) -> set[str]:
    from .descriptor import chunk_name

    out: set[str] = set()
    present = set(session.names())
    for ref in desc.files:
        if not ref.usable or ref.chunk_size is None:
            continue
        names = ref.chunk_names(ctx.limits.max_files)
        if names is None:
            names = [chunk_name(ref.href, 0)]
            while chunk_name(ref.href, len(names)) in present:
                names.append(chunk_name(ref.href, len(names)))
        out.update(names)
    return out


@hookimpl
def validator_required_files(
    item_type: str, session: Session, ctx: CheckContext
) -> Iterable[str] | None:
    if item_type != "ovf":
        return None
    desc = descriptor_of(session, ctx)
    if desc is None:
        return None
    required = {ref.href for ref in desc.files if ref.usable and ref.chunk_size is None}
    required.update(required_chunks(desc, session, ctx))
    return sorted(required)


# -- disks (see disks.py) --------------------------------------------------------


@hookimpl
def validator_disk_checks(
    name: str, disk_format: str, capacity: int | None, disk_id: str, ctx: CheckContext
) -> Iterable[StreamCheck] | None:
    """VMDK sparse disks (streamOptimized, monolithicSparse): :mod:`.vmdk`."""
    from .disks import vmdk_disk_checks

    return vmdk_disk_checks(name, disk_format, capacity, disk_id, ctx)


@hookimpl
def validator_check_session(
    item_type: str, session: Session, ctx: CheckContext, report: Reporter
) -> None:
    if item_type != "ovf":
        return
    from .problems import CappedReporter

    if session.sequential:
        _prepare_late(session, ctx)
    with CappedReporter(report) as capped:  # at most PER_KIND of a kind on a file
        _check_session(session, ctx, capped)


def _check_session(session: Session, ctx: CheckContext, report: Reporter) -> None:
    found = descriptor_of(session, ctx)
    if found is not None:
        from . import manifest

        manifest.check(found, session, ctx, report)  # digests of the pass vs the manifest
        if session.sequential:  # only a stream defers its certificate to the end
            from . import certificate

            certificate.check_late(found, session, ctx, report)  # one that came after the files


# -- the logical streams of references (see stream.py, integrity.py) -------------


@hookimpl
def validator_file_checks(
    item_type: str, session: Session, file: SessionFile, ctx: CheckContext
) -> Iterable[FileCheck] | None:
    """A referenced file's (or chunk's) bytes go through its logical stream when it has work."""
    if item_type != "ovf":
        return None
    desc = descriptor_of(session, ctx)
    if desc is None:
        return None
    from . import integrity
    from .problems import capped_check

    checks: list[FileCheck] = list(integrity.file_checks(desc, session, file, ctx))
    return [capped_check(check, ctx) for check in checks]  # PER_KIND of a kind on a file


@hookimpl
def validator_file_groups(
    item_type: str, session: Session, ctx: CheckContext
) -> Iterable[Sequence[str]] | None:
    """The chunks of a reference are read in order by one worker, as one stream."""
    if item_type != "ovf":
        return None
    desc = descriptor_of(session, ctx)
    if desc is None:
        return None
    from . import integrity

    return integrity.file_groups(desc, session, ctx)


# -- validator info (see describe.py) --------------------------------------------


@hookimpl
def validator_describe(
    item_type: str, session: Session, ctx: CheckContext
) -> dict[str, Any] | None:
    """The package's systems, hardware, disks, networks, properties, EULAs and signer."""
    if item_type != "ovf":
        return None
    from .describe import describe

    return describe(session, ctx)
