"""Disk files of an OVF package: which checks read them, through a pluggable hook.

Every ``DiskSection/Disk`` with an ``ovf:fileRef`` names the file that holds
its content and the format of that content (``ovf:format``).  The checks for a
format come from the ``validator_disk_checks`` hook (see
:mod:`validator.hookspecs`), so a third-party plugin adds qcow2, VHD or raw
checks; this adapter answers it for VMDK (:func:`vmdk_disk_checks`).  A disk
whose format no plugin claims is reported (``validator.ovf.disk.unsupported_format``),
never guessed.

:func:`attach_disk_checks` (called in ``validator_prepare_session``) puts the
checks downstream of the reference's logical stream (:mod:`.stream`), so they
see the disk's *content*: the stored bytes themselves for a plain file, the
chunks joined and gzip decompressed otherwise, in the engine's single read.
"""

from __future__ import annotations

from collections.abc import Iterable

from validator import calls
from validator.checks import CheckContext, Reporter, StreamCheck
from validator.session import Session

from .descriptor import Descriptor, Disk
from .vmdk import VmdkCheck, VmdkChecker

HOOK = "validator_disk_checks"
VMDK_BASES = (
    "http://www.vmware.com/interfaces/specifications/vmdk.html",
    # OVF 0.9 packages name the same specification without "interfaces/".
    "http://www.vmware.com/specifications/vmdk.html",
)
#: Fragments of the VMDK URI whose disks are sparse extents this adapter reads.
VMDK_VARIANTS = {
    "streamOptimized": "streamOptimized",
    "monolithicSparse": "monolithicSparse",
    "sparse": "sparse",
    # VMware's OVF 0.9 name for streamOptimized.
    "compressed": "streamOptimized",
}

Problem = tuple[str, tuple[object, ...]]

#: ``-o ovf.inflate=true``: inflate every compressed grain of a streamOptimized disk (the
#: deep grain check of :class:`~.vmdk.VmdkChecker`); off by default, it costs about ten
#: times the hashing of the disk (docs/performance.md).
INFLATE_OPTION = "ovf.inflate"
FLAG_TRUE = ("true", "yes", "on", "1")
FLAG_FALSE = ("false", "no", "off", "0", "")


class ProblemCheck(StreamCheck):
    """Reports problems known before the file is read (ignores the bytes)."""

    label = "disk"

    def __init__(
        self, name: str, problems: Iterable[Problem], warnings: Iterable[Problem] = ()
    ) -> None:
        self.name = name
        self.problems = list(problems)
        self.warnings = list(warnings)

    def update(self, data: memoryview) -> None:
        return None

    def finish(self, report: Reporter) -> None:
        for message_id, args in self.problems:
            report.error(self.name, message_id, *args)
        for message_id, args in self.warnings:
            report.warning(self.name, message_id, *args)


class DiskFile:
    """A disk's file as the descriptor declares it."""

    __slots__ = ("disk", "href")

    def __init__(self, href: str, disk: Disk) -> None:
        self.href = href
        self.disk = disk


def disk_files(desc: Descriptor) -> dict[str, DiskFile]:
    """Disk files by href (the first Disk that uses a file wins)."""
    refs = desc.file_by_id()
    out: dict[str, DiskFile] = {}
    for disk in desc.disks:
        ref = refs.get(disk.file_ref) if disk.file_ref is not None else None
        if ref is None or not ref.usable or ref.href in out:
            continue
        out[ref.href] = DiskFile(ref.href, disk)
    return out


def vmdk_variant(disk_format: str) -> tuple[bool, str | None]:
    """``(is a VMDK URI, variant)``: the variant is ``None`` for a VMDK kind not allowed."""
    base, sep, fragment = disk_format.partition("#")
    if base not in VMDK_BASES:
        return False, None
    return True, VMDK_VARIANTS.get(fragment) if sep else None


def vmdk_disk_checks(
    name: str, disk_format: str, capacity: int | None, disk_id: str, ctx: CheckContext
) -> list[StreamCheck] | None:
    """This adapter's answer to ``validator_disk_checks``: the VMDK formats."""
    is_vmdk, variant = vmdk_variant(disk_format)
    if not is_vmdk:
        return None
    if variant is None:
        return [ProblemCheck(name, [("validator.ovf.vmdk.bad_variant", (name, disk_format))])]
    inflate = option_flag(ctx.options.get(INFLATE_OPTION))
    checker = VmdkChecker(
        name,
        declared_capacity=capacity,
        disk_id=disk_id,
        variant=variant,
        max_descriptor=min(ctx.limits.descriptor_bytes, 16 << 20),
        inflate=bool(inflate),
    )
    if inflate is None:
        value = ctx.options[INFLATE_OPTION]
        bad = ("validator.ovf.option.bad_flag", (name, INFLATE_OPTION, str(value)))
        return [VmdkCheck(checker), ProblemCheck(name, [bad])]
    return [VmdkCheck(checker)]


def option_flag(value: object) -> bool | None:
    """A yes/no plugin option: ``None`` (not given) is no; ``None`` back: not a yes or no."""
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in FLAG_TRUE:
        return True
    if text in FLAG_FALSE:
        return False
    return None


class CheckConsumer:
    """A plugin's :class:`~validator.checks.StreamCheck` as a consumer of a logical stream.

    Isolated by the engine's gateway (:class:`validator.calls.IsolatedCheck`): a
    check that raises is dropped and reported with its own plugin's name and
    label (``validator.core.check.failed``), the other consumers go on.
    """

    def __init__(self, check: StreamCheck, plugin: str = "ovf") -> None:
        # The stream names the file, so no name here.
        self._isolated = calls.IsolatedCheck(check, plugin, "")

    def feed(self, data: memoryview, /) -> None:
        self._isolated.update(data)

    def close(self) -> list[Problem]:
        report = Reporter()
        self._isolated.finish(report)
        return [(p.message_id, p.args) for p in report.problems]


def _budget(ctx: CheckContext) -> float:
    """Seconds one disk-format hook call may take.

    The hook runs inside this adapter's ``validator_prepare_session``, which
    the engine bounds by ``limits.plugin_seconds``: half of it, so that a
    plugin that hangs is reported under its own name before the adapter's
    prepare is.
    """
    return ctx.limits.plugin_seconds / 2


#: A Disk without ``ovf:format``: a warning (DSP0243 says a non-empty disk
#: "shall" declare it, but the format is never guessed, so nothing reads it).
NO_FORMAT: Problem = ("validator.ovf.disk.no_format", ())


def checks_for_disk(
    session: Session, ctx: CheckContext, found: DiskFile
) -> tuple[list[tuple[str, StreamCheck]], list[Problem]]:
    """Every plugin's checks for one disk's content, and the problems of asking for them.

    Every plugin's ``validator_disk_checks`` is asked on its own: one that
    raises is reported and the others still run.  A disk without a format
    gives only the :data:`NO_FORMAT` marker problem (a warning).
    """
    disk = found.disk
    href = found.href
    if not disk.format:
        return [], [(NO_FORMAT[0], (href, disk.id))]
    kwargs = {
        "item_type": ctx.item_type,
        "session": session,
        "name": href,
        "disk_format": disk.format,
        "capacity": disk.capacity_bytes,
        "disk_id": disk.id,
        "ctx": ctx,
    }
    checks: list[tuple[str, StreamCheck]] = []
    problems: list[Problem] = []
    claimed = False
    if ctx.registry is None:
        found_checks = vmdk_disk_checks(href, disk.format, disk.capacity_bytes, disk.id, ctx)
        claimed = found_checks is not None
        checks = [("ovf", check) for check in found_checks or []]
    else:
        # Through the engine's gateway: bounded in time, return types checked, a failure
        # mapped to its validator.core.plugin.* message naming plugin and hook.
        for reply in calls.call_each(
            ctx.registry.pm, HOOK, kwargs, seconds=_budget(ctx), accept=StreamCheck
        ):
            claimed = claimed or not reply.declined or bool(reply.failures)
            checks.extend((reply.plugin, check) for check in reply.values)
            problems.extend(failure.message() for failure in reply.failures)
    if not claimed:
        problems.append(("validator.ovf.disk.unsupported_format", (href, disk.id, disk.format)))
    return checks, problems


def attach_disk_checks(
    desc: Descriptor, session: Session, ctx: CheckContext, report: Reporter
) -> None:
    """In ``validator_prepare_session``: put every disk's checks downstream of its stream.

    Disks whose file is not (completely) in the session are left to
    ``missing_files``.  In a sequential session (an archive on a pipe) the
    disks have not arrived yet: the first call attaches the checks to every
    disk's stream and keeps the problems of asking for them; the second (at
    the end, when the ``ovf`` adapter reports what prepare found) reports them
    for the disks whose stream turned out complete, as a file would.
    """
    from .stream import logical_stream

    refs = {r.href: r for r in desc.files if r.usable}
    kept: dict[str, list[Problem]] | None = None
    setup = False
    if session.sequential:
        setup = _SEQUENTIAL_KEY not in ctx.store
        kept = ctx.store.setdefault(_SEQUENTIAL_KEY, {})
    for href, found in disk_files(desc).items():
        stream = logical_stream(session, ctx, refs[href])
        if stream is None:
            continue
        if kept is not None and not setup:
            problems = kept.get(href)
            if problems is None or not stream.complete:
                continue
        else:
            if kept is None and not stream.complete:
                continue
            checks, problems = checks_for_disk(session, ctx, found)
            for plugin, check in checks:
                stream.attach(CheckConsumer(check, plugin))
            if kept is not None:
                kept[href] = problems
                continue
        for message_id, args in problems:
            if message_id == NO_FORMAT[0]:
                report.warning(stream.name, message_id, *args)
            else:
                report.error(stream.name, message_id, *args)


_SEQUENTIAL_KEY = "ovf.disks.sequential"
