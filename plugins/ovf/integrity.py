"""Sizes, chunks and compression of the files an OVF descriptor references.

- ``ovf:size`` must equal the stored size (the sum over the chunks of a
  chunked file; the compressed size of a compressed one);
- a chunked file (``ovf:chunkSize``) is stored as ``HREF.000000000``,
  ``…001``, …: every chunk ``chunkSize`` bytes except the last, which holds
  the rest (1 to ``chunkSize`` bytes); a chunk the size does not account for
  is reported; a missing chunk is in ``missing_files`` (``required_chunks`` in
  ``__init__``);
- the chunks are read in order by one worker as one stream
  (:func:`file_groups`), through the reference's
  :class:`~.stream.LogicalStream`, which also checks a gzip-compressed file
  (:func:`file_checks`).

Sizes are metadata (the engine knows every stored size before reading), so
they are checked in ``validator_prepare_session`` without reading a byte.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from validator.checks import CheckContext, FileCheck, Reporter
from validator.session import Session, SessionFile

from .descriptor import Descriptor, FileRef
from .stream import LogicalStream, chunk_parts, logical_stream, stored_parts

_INDEX_KEY = "ovf.stream_index"
_CHUNK = re.compile(r"^(?P<href>.+)\.(?P<index>[0-9]{9})$")


def _stored_sizes(session: Session) -> dict[str, int | None]:
    """Name → stored size (``None``: not received) of the file ``session.get`` finds.

    Built once: ``session.get`` per reference and chunk scanned the session's
    files each time (10,000 chunked references in a folder of 10,000 files
    took 50 s).
    """
    sizes: dict[str, int | None] = {}
    for f in session.files:
        sizes.setdefault(f.name, f.source.size if f.source is not None else None)
    return sizes


def _chunks_in_session(session: Session) -> dict[str, list[str]]:
    """Href → the session's names that look like its chunks (``HREF.NNNNNNNNN``), in order."""
    found: dict[str, list[str]] = {}
    for name in session.names():
        m = _CHUNK.match(name)
        if m:
            found.setdefault(m.group("href"), []).append(name)
    return found


def check_sizes(desc: Descriptor, session: Session, ctx: CheckContext, report: Reporter) -> None:
    """``ovf:size`` against the stored sizes, and the size of every chunk."""
    sizes = _stored_sizes(session)
    chunks: dict[str, list[str]] | None = None
    for ref in desc.files:
        if not ref.usable:
            continue
        if ref.chunk_size is None:
            stored = sizes.get(ref.href)
            if stored is not None and ref.size is not None and stored != ref.size:
                report.error(ref.href, "validator.ovf.size.mismatch", ref.href, ref.size, stored)
            continue
        if chunks is None:
            chunks = _chunks_in_session(session)
        present = chunks.get(ref.href, [])
        _check_chunks(desc, ref, ref.chunk_size, sizes, present, session, ctx, report)


def _check_chunks(
    desc: Descriptor,
    ref: FileRef,
    chunk_size: int,
    stored_sizes: dict[str, int | None],
    present: list[str],
    session: Session,
    ctx: CheckContext,
    report: Reporter,
) -> None:
    if ref.size is not None and -(-ref.size // chunk_size) > ctx.limits.max_files:
        report.error(
            desc.name,
            "validator.ovf.chunk.too_many",
            ref.href,
            ref.size,
            chunk_size,
            ctx.limits.max_files,
        )
        return
    if ref.over_chunk_budget:
        report.error(
            desc.name,
            "validator.ovf.chunk.too_many_total",
            ref.href,
            ref.size,
            chunk_size,
            ctx.limits.max_files,
        )
        return
    names = chunk_parts(ref, session, ctx.limits)
    sizes = [stored_sizes.get(n) for n in names]
    last = len(names) - 1
    for i, (name, size) in enumerate(zip(names, sizes, strict=True)):
        if size is None:
            continue
        if i < last and size != chunk_size:
            report.error(name, "validator.ovf.chunk.wrong_size", name, ref.href, size, chunk_size)
        elif i == last and not 0 < size <= chunk_size:
            report.error(
                name, "validator.ovf.chunk.bad_last_size", name, ref.href, size, chunk_size
            )
    expected = set(names)
    for name in present:
        if name not in expected:
            report.error(name, "validator.ovf.chunk.extra", name, ref.href, len(names))
    if ref.size is not None and all(s is not None for s in sizes):
        total = sum(s or 0 for s in sizes)
        if total != ref.size:
            report.error(
                names[-1],
                "validator.ovf.size.chunked_mismatch",
                ref.href,
                ref.size,
                total,
                len(names),
            )


def _index(desc: Descriptor, session: Session, ctx: CheckContext) -> dict[str, LogicalStream]:
    """Session name → the logical stream of the reference it stores (built once)."""

    def build() -> dict[str, LogicalStream]:
        index: dict[str, LogicalStream] = {}
        for ref in desc.files:
            stream = logical_stream(session, ctx, ref)
            if stream is None:
                continue
            for name in stored_parts(ref, session, ctx.limits):
                index.setdefault(name, stream)
        return index

    return ctx.cached(_INDEX_KEY, build)


def file_groups(desc: Descriptor, session: Session, ctx: CheckContext) -> list[Sequence[str]]:
    """The chunks of every chunked reference, in order: one stream each."""
    groups: list[Sequence[str]] = []
    for ref in desc.files:
        if ref.usable and ref.chunk_size is not None:
            groups.append(chunk_parts(ref, session, ctx.limits))
    return groups


def file_checks(
    desc: Descriptor, session: Session, file: SessionFile, ctx: CheckContext
) -> list[FileCheck]:
    """The logical stream of the reference ``file`` stores, when it has work to do.

    In a sequential session (an archive on a pipe) the streams were built
    before any member arrived: each arriving part gives its stream its size
    (:meth:`~.stream.LogicalStream.arrived`), and a stream whose parts do not
    all arrive, in order, reports nothing (as a file never reads it).
    """
    stream = _index(desc, session, ctx).get(file.name)
    if not session.sequential:
        if stream is None:
            return []
        stream.handed_out = True
        return [stream] if stream.needed else []
    if stream is None:
        m = _CHUNK.match(file.name)
        ref = next(
            (
                r
                for r in desc.files
                if m and r.usable and r.chunk_size is not None and r.href == m.group("href")
            ),
            None,
        )
        stream = logical_stream(session, ctx, ref) if ref is not None else None
    if stream is None or file.source is None or not stream.arrived(file.name, file.source.size):
        return []
    stream.handed_out = True
    return [stream] if stream.has_work else []
