"""The OVF manifest ``<base>.mf``: a strict parser and the checks against the package.

Grammar (DSP0243, REFERENCE §4), one entry per line::

    ALG(file name)= hexdigest LF

- ``ALG`` is ``SHA1``, ``SHA256`` or ``SHA512`` (upper case, as ovftool and
  vCenter write and read it; OpenSSL 3's ``SHA2-256`` is refused with a hint);
- exactly one space after ``=``, nothing after the digest; a CR before the LF
  is accepted (seen in the wild), a missing LF on the last line too;
- a name with spaces around it is refused (vCenter refuses it), as are empty
  and duplicate names, a digest of the wrong length for its algorithm, and
  empty lines (except at the very end);
- the manifest lists the descriptor and every referenced file (each chunk of
  a chunked file) and nothing else.

Digests are never computed here: :func:`prepare` asks the engine for them
(``ctx.request_digest``), which computes them in its single read of each
file, and :func:`check` compares them after the pass.
"""

from __future__ import annotations

import hmac
import re
from typing import NamedTuple

from validator.checks import CheckContext, Reporter
from validator.limits import Limits
from validator.session import Session, SessionFile

from .descriptor import Descriptor
from .problems import PER_KIND, Tally
from .stream import stored_parts

#: Manifest algorithm → (hashlib name, hex digits).
ALGORITHMS = {"SHA1": ("sha1", 40), "SHA256": ("sha256", 64), "SHA512": ("sha512", 128)}
#: Bad lines (of any kind) reported one by one; the rest are counted.
MAX_LINE_PROBLEMS = PER_KIND

_LINE = re.compile(r"(?P<alg>[^()\s=]+)\((?P<name>.*)\)=(?P<rest>.*)", re.DOTALL)
_DIGEST = re.compile(r" (?P<hex>[0-9A-Fa-f]+)")
_KEY = "ovf.manifest"
DEFERRED_KEY = "ovf.manifest.deferred"

Problem = tuple[str, tuple[object, ...]]


class Entry(NamedTuple):
    algorithm: str  # SHA1 | SHA256 | SHA512
    name: str
    digest: str  # lower-case hex
    line: int

    @property
    def hashlib_name(self) -> str:
        return ALGORITHMS[self.algorithm][0]


class Manifest:
    """A parsed manifest: its entries by file name and its problems."""

    __slots__ = ("entries", "name", "problems", "unusable")

    def __init__(self, name: str, *, unusable: bool = False) -> None:
        self.name = name
        self.entries: dict[str, Entry] = {}
        self.problems: list[Problem] = []
        #: Whole-file problems (unreadable, too large): nothing was parsed.
        self.unusable = unusable


def excerpt(text: str, limit: int = 80) -> str:
    """A line as it can be shown: control characters escaped, cut to ``limit``."""
    if len(text) <= limit and text.isprintable():
        return text  # the usual case, without a generator step per character
    shown = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text[:limit])
    return shown + ("…" if len(text) > limit else "")


def parse_manifest(name: str, data: bytes, limits: Limits) -> Manifest:
    """Parse a manifest's bytes; problems are ``(message id, args)`` on the manifest."""
    mf = Manifest(name)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the LF that ends the last line
    while lines and lines[-1] in (b"", b"\r"):
        lines.pop()  # blank lines at the very end
    if len(lines) > limits.manifest_lines:
        mf.problems.append(("validator.ovf.manifest.too_many_lines", (name, limits.manifest_lines)))
        mf.unusable = True
        return mf
    bad_lines: Tally[str] = Tally(MAX_LINE_PROBLEMS)  # one kind: a bad line
    for number, raw in enumerate(lines, start=1):
        problem = _parse_line(mf, name, number, raw)
        if problem is not None and bad_lines.admit("line"):
            mf.problems.append(problem)
    for _, count in bad_lines.not_listed():
        mf.problems.append(("validator.ovf.manifest.more_problems", (name, count)))
    return mf


def _parse_line(mf: Manifest, name: str, number: int, raw: bytes) -> Problem | None:
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        shown = raw.decode("utf-8", "replace")
        return ("validator.ovf.manifest.malformed", (name, number, excerpt(shown)))
    m = _LINE.fullmatch(line)
    if m is None or "\r" in line:
        return ("validator.ovf.manifest.malformed", (name, number, excerpt(line)))
    alg, file_name, rest = m.group("alg"), m.group("name"), m.group("rest")
    digest = _DIGEST.fullmatch(rest)
    if digest is None or not file_name:
        return ("validator.ovf.manifest.malformed", (name, number, excerpt(line)))
    if alg not in ALGORITHMS:
        return ("validator.ovf.manifest.bad_algorithm", (name, excerpt(alg, 20), number))
    if file_name != file_name.strip():
        return ("validator.ovf.manifest.name_spaces", (name, excerpt(file_name), number))
    hexdigest = digest.group("hex").lower()
    want = ALGORITHMS[alg][1]
    if len(hexdigest) != want:
        return (
            "validator.ovf.manifest.bad_digest_length",
            (name, excerpt(file_name), alg, len(hexdigest), want, number),
        )
    first = mf.entries.get(file_name)
    if first is not None:
        return ("validator.ovf.manifest.duplicate", (name, excerpt(file_name), number, first.line))
    mf.entries[file_name] = Entry(alg, file_name, hexdigest, number)
    return None


def manifest_name(desc: Descriptor) -> str:
    return desc.name[: -len(".ovf")] + ".mf" if desc.name.lower().endswith(".ovf") else desc.name


def certificate_name(desc: Descriptor) -> str:
    """The certificate's name (here, so that a package without one need not import the
    certificate module and its X.509 machinery)."""
    return manifest_name(desc)[: -len(".mf")] + ".cert"


def load(session: Session, ctx: CheckContext, desc: Descriptor) -> Manifest | None:
    """The session's manifest, read and parsed once per validation (``None``: there is none)."""

    def read() -> Manifest | None:
        name = manifest_name(desc)
        file = session.get(name)
        if file is None or file.source is None:
            return None
        try:
            data = ctx.read_small(file, ctx.limits.manifest_bytes)
        except OSError as exc:
            mf = Manifest(name, unusable=True)
            reason = exc.strerror or str(exc)
            mf.problems.append(("validator.ovf.manifest.unreadable", (name, reason)))
            return mf
        if data is None:
            mf = Manifest(name, unusable=True)
            mf.problems.append(
                ("validator.ovf.manifest.too_large", (name, ctx.limits.manifest_bytes))
            )
            return mf
        return parse_manifest(name, data, ctx.limits)

    # Not cached while absent: in an archive read from a stream the manifest
    # can arrive after the files (see ``check``).
    found = ctx.store.get(_KEY)
    if isinstance(found, Manifest):
        return found
    mf = read()
    return ctx.cached(_KEY, lambda: mf) if mf is not None else None


def expected_names(desc: Descriptor, session: Session, limits: Limits) -> list[str]:
    """What the manifest must list: the descriptor, then every referenced file or chunk."""
    names = [desc.name]
    for ref in desc.files:
        if ref.usable:
            names.extend(stored_parts(ref, session, limits))
    return names


def prepare(desc: Descriptor, session: Session, ctx: CheckContext, report: Reporter) -> None:
    """Parse the manifest, report its problems and what it lists wrongly; request digests."""
    mf = load(session, ctx, desc)
    if mf is None:
        if session.sequential and desc.parsed:
            # An archive read from a stream may bring its manifest at the end,
            # after the files: their digests must be computed as they pass, in
            # every algorithm a manifest may use, and compared in ``check``.
            ctx.store[DEFERRED_KEY] = True
            for name in expected_names(desc, session, ctx.limits):
                for hashlib_name, _ in ALGORITHMS.values():
                    ctx.request_digest(name, hashlib_name)
        return
    _report(mf, desc, session, ctx, report)


def _report(
    mf: Manifest, desc: Descriptor, session: Session, ctx: CheckContext, report: Reporter
) -> None:
    for message_id, args in mf.problems:
        report.error(mf.name, message_id, *args)
    if mf.unusable:
        return
    metadata = {mf.name, mf.name[: -len(".mf")] + ".cert"}
    # ``session.get`` for each entry would scan the session's files once per line.
    received = {f.name for f in _first_of_each_name(session) if f.source is not None}
    for entry in mf.entries.values():
        # In a session read from a stream the files arrive after this: ask for all.
        present = session.sequential or entry.name in received
        if present and entry.name not in metadata:
            ctx.request_digest(entry.name, entry.hashlib_name)
    if not desc.parsed:
        return  # what the package references is unknown: only the digests are checked
    expected = expected_names(desc, session, ctx.limits)
    for name in dict.fromkeys(expected):
        if name not in mf.entries:
            report.error(mf.name, "validator.ovf.manifest.unlisted", mf.name, name)
    known = set(expected) | {ref.href for ref in desc.files}
    for entry in mf.entries.values():
        if entry.name not in known:
            report.error(
                mf.name,
                "validator.ovf.manifest.unreferenced",
                mf.name,
                excerpt(entry.name),
                entry.line,
            )


def _first_of_each_name(session: Session) -> list[SessionFile]:
    """The files ``session.get`` finds, one per name."""
    return list({f.name: f for f in reversed(session.files)}.values())


def check(desc: Descriptor, session: Session, ctx: CheckContext, report: Reporter) -> None:
    """After the pass: every listed file's digest against the one the engine computed."""
    mf = load(session, ctx, desc)
    if mf is None:
        return
    if ctx.store.pop(DEFERRED_KEY, False):
        _report(mf, desc, session, ctx, report)  # it arrived during the pass
    if mf.unusable:
        return
    for entry in mf.entries.values():
        actual = ctx.digest(entry.name, entry.hashlib_name)
        if actual is None:
            continue  # not in the session, not read, or unreadable (reported elsewhere)
        if not hmac.compare_digest(actual, entry.digest):
            report.error(
                entry.name,
                "validator.ovf.manifest.digest_mismatch",
                entry.name,
                entry.algorithm,
                entry.digest,
                actual,
                mf.name,
            )
