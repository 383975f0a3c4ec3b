"""Fuzzing: hypothesis profiles, mutation strategies seeded from real samples, and targets.

A :class:`Target` is one parser (or the whole CLI) with a strategy that makes
its input as ``bytes`` and a ``run(data)`` that raises ``AssertionError`` when
a property fails (any other exception escaping is a crash).  The same targets
serve three purposes:

- ``tests/test_fuzz_*.py`` run each with the ``ci`` profile (bounded examples);
- ``tests/fuzz_campaign.py`` runs them with the ``campaign`` profile for as long
  as asked, and writes any failing input to ``tests/regressions/<target>/``;
- ``tests/test_fuzz_regressions.py`` replays every file kept there.

Properties every target checks: no exception other than the documented ones
(``SessionError``, ``XmlRejected``, ``NotAllowedInCurrentState``) escapes;
every message id reported is in the English catalog; the same input twice
gives the same result.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import struct
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from validator.engine import Engine
from validator.limits import Limits
from validator.results import NotAllowedInCurrentState, ValidationResult
from validator.session import SessionError

from .bundles import (
    SAMPLE_DISK,
    SAMPLE_MF,
    SAMPLE_OVF,
    SAMPLE_SESSION,
    Member,
    descriptor,
    disk_element,
    file_element,
    identity,
    tar_bytes,
)
from .util import CRASH_IDS, english_ids

ROOT = Path(__file__).resolve().parents[2]
REGRESSIONS = ROOT / "tests" / "regressions"

# -- profiles ---------------------------------------------------------------------
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "campaign",
    max_examples=10_000_000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: The profile of the fuzz tests: ``ci`` unless ``HYPOTHESIS_PROFILE`` names another.
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")


def fuzz_settings(**overrides: Any) -> settings:
    """Settings for one fuzz test: the active profile, never the global default."""
    return settings(settings.get_profile(PROFILE), **overrides)


#: Limits for fuzzing: small, so that limit paths are reached by small inputs.
FUZZ_LIMITS = Limits(
    max_files=64,
    descriptor_bytes=256 * 1024,
    descriptor_elements=2000,
    descriptor_depth=24,
    references=40,
    manifest_bytes=64 * 1024,
    manifest_lines=200,
    certificate_chain=4,
    archive_members=64,
    iso_directory_records=5000,
    gzip_decompressed_bytes=8 << 20,
    read_chunk_bytes=4096,
    threads=1,
    plugin_seconds=30,
)


# -- mutations ----------------------------------------------------------------------
XML_TOKENS = [
    b"../",
    b"..\\",
    b"/etc/passwd",
    b"file:///etc/passwd",
    b"http://127.0.0.1:9/x",
    b'<!DOCTYPE Envelope [<!ENTITY a "b">]>',
    b'<!DOCTYPE Envelope SYSTEM "/etc/passwd">',
    b"&a;",
    b"&#0;",
    b"&#x10FFFF;",
    b"<",
    b">",
    b'"',
    b"'",
    b"\x00",
    b"\xff\xfe",
    b"\xc3",
    b"<![CDATA[",
    b"]]>",
    b"<!--",
    b"-->",
    b"<?pi x?>",
    b"ovf:",
    b"xmlns=''",
    b"99999999999999999999999",
    b"-1",
    b"0",
    b"${prop}",
    b"byte * 2^64",
    b"byte * 2^999",
    file_element("f9", "vm-disk1.vmdk").encode(),
    file_element("file1", "x.vmdk", ' ovf:chunkSize="1" ovf:size="5"').encode(),
    file_element("file1", "x.vmdk", ' ovf:compression="gzip"').encode(),
    disk_element("vmdisk1", "nope").encode(),
    b'xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/2"',
    b'xmlns="http://www.vmware.com/schema/ovf/1/envelope"',
    b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="/etc/passwd"/>',
    b'<Section xsi:type="ovf:DiskSection_Type"><Info/></Section>',
    b'<VirtualSystemCollection ovf:id="c"><Info/></VirtualSystemCollection>',
    b"<a>" * 40,
]
TEXT_TOKENS = [
    b"\n",
    b"\r\n",
    b"\r",
    b" ",
    b"(",
    b")",
    b"=",
    b"= ",
    b"SHA1",
    b"SHA256",
    b"SHA512",
    b"MD5",
    b"../",
    b"/",
    b"\x00",
    b"\xff",
    b"\t",
    b"0" * 64,
    b"f" * 128,
    b"-----BEGIN CERTIFICATE-----\n",
    b"-----END CERTIFICATE-----\n",
    b"createType=",
    b"CREATETYPE=",
    b'"monolithicFlat"',
    b'RW 2048 FLAT "/etc/passwd" 0\n',
    b'RW 0 SPARSE "vm-disk1.vmdk"\n',
    b"parentCID=12345678\n",
    b'parentFileNameHint="/etc/passwd"\n',
    b": ",
    b"- ",
    b"[",
    b"{",
    b"&a",
    b"*a",
    b"!!python/object:os.system",
    b"~",
]
INTERESTING_INTS = [
    0,
    1,
    2,
    7,
    8,
    9,
    127,
    128,
    255,
    256,
    511,
    512,
    513,
    2047,
    2048,
    4096,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFF,
    1 << 32,
    (1 << 63) - 1,
    1 << 63,
    (1 << 64) - 1,
]


@st.composite
def mutations(
    draw: st.DrawFn,
    data: bytes,
    tokens: list[bytes],
    max_ops: int = 6,
    hot: tuple[tuple[int, int], ...] = ((0, 4096),),
) -> bytes:
    """``data`` with a few structure-aware edits: byte flips, token insertions and
    replacements, range deletions and duplications, truncation, integer overwrites
    (little- and big-endian), mostly near the start where headers are."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(0, max_ops))):
        n = len(buf)
        # A region, then a position in it (no one_of: hypothesis filters exhausted
        # branches of a one_of, which made generation inconsistent on tiny inputs).
        spans = [(min(a, n), min(b, n)) for a, b in hot] + [(0, n)]
        lo, hi = spans[draw(st.integers(0, len(spans) - 1))]
        pos = draw(st.integers(lo, hi))
        op = draw(
            st.sampled_from(
                ["flip", "insert", "replace", "delete", "dup", "truncate", "int", "byte"]
            )
        )
        if op == "flip" and n:
            at = min(pos, n - 1)
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte" and n:
            buf[min(pos, n - 1)] = draw(st.integers(0, 255))
        elif op == "insert":
            token = draw(st.one_of(st.sampled_from(tokens), st.binary(max_size=16)))
            buf[pos:pos] = token * draw(st.sampled_from([1, 1, 1, 2, 50]))
        elif op == "replace":
            token = draw(st.sampled_from(tokens))
            buf[pos : pos + len(token)] = token
        elif op == "delete":
            buf[pos : pos + draw(st.integers(1, 512))] = b""
        elif op == "dup":
            length = draw(st.integers(1, 1024))
            buf[pos:pos] = buf[pos : pos + length]
        elif op == "truncate":
            del buf[pos:]
        elif op == "int":
            value = draw(st.sampled_from(INTERESTING_INTS))
            width, fmt = draw(st.sampled_from([(2, "H"), (4, "I"), (8, "Q")]))
            order = draw(st.sampled_from("<>"))
            packed = struct.pack(order + fmt, value & ((1 << (8 * width)) - 1))
            buf[pos : pos + width] = packed
    return bytes(buf)


def seeded(
    seeds: list[bytes], tokens: list[bytes], hot: tuple[tuple[int, int], ...] = ((0, 4096),)
) -> st.SearchStrategy[bytes]:
    """A seed, mutated (sometimes not at all, so the valid path is covered too); edits
    favour the ``hot`` byte ranges, where the headers are."""
    return st.sampled_from(seeds).flatmap(lambda s: mutations(s, tokens, hot=hot))


# -- structured strategies ---------------------------------------------------------
HREFS = [
    "vm-disk1.vmdk",
    "other.vmdk",
    "../x",
    "/etc/passwd",
    "a/b",
    "C:\\x",
    "http://h/x",
    "",
    ".",
    "vm.ovf",
    "vm.mf",
    "x" * 300,
    "é.vmdk",
    "a b.vmdk",
]
NUMBERS = ["0", "1", "64", "65536", "-1", "1.5", "", "99999999999999999999", "${p}", " 7 ", "0x10"]
IDS = ["file1", "file2", "", "vmdisk1", "a" * 200]


@st.composite
def descriptors(draw: st.DrawFn) -> bytes:
    """A descriptor built from parts chosen to collide: shared ids and hrefs, odd numbers."""

    def attr(name: str, values: list[str]) -> str:
        value = draw(st.one_of(st.none(), st.sampled_from(values), st.text(max_size=12)))
        if value is None:
            return ""
        value = value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
        return f' ovf:{name}="{value}"'

    files = [
        "<File"
        + attr("id", IDS)
        + attr("href", HREFS)
        + attr("size", NUMBERS)
        + attr("chunkSize", NUMBERS)
        + attr("compression", ["gzip", "identity", "bzip2"])
        + "/>"
        for _ in range(draw(st.integers(0, 4)))
    ]
    disks = [
        "<Disk"
        + attr("diskId", IDS)
        + attr("fileRef", IDS)
        + attr("capacity", NUMBERS)
        + attr("capacityAllocationUnits", ["byte * 2^20", "byte * 2^99999", "bit", "byte*1024"])
        + attr("populatedSize", NUMBERS)
        + attr(
            "format",
            [
                "http://www.vmware.com/interfaces/specifications/vmdk.html#" + v
                for v in ("streamOptimized", "monolithicSparse", "flat", "")
            ],
        )
        + "/>"
        for _ in range(draw(st.integers(0, 3)))
    ]
    ns = draw(
        st.sampled_from(
            [
                "http://schemas.dmtf.org/ovf/envelope/1",
                "http://schemas.dmtf.org/ovf/envelope/2",
                "http://www.vmware.com/schema/ovf/1/envelope",
                "urn:nope",
            ]
        )
    )
    extra = draw(
        st.sampled_from(
            ["", "<Info>x</Info>", '<VirtualSystem ovf:id="vm"/>', "<a>" * 30 + "</a>" * 30]
        )
    )
    text = descriptor(files, disks, ns=ns, system_extra=extra, hardware=draw(st.booleans()))
    return draw(mutations(text.encode("utf-8"), XML_TOKENS, max_ops=2))


SESSION_VALUES = [
    "vm.ovf",
    "vm-disk1.vmdk",
    "../vm.ovf",
    "/etc/passwd",
    "bundle/vm.ovf",
    "link/x",
    "~root",
    "a\\b",
    "",
    "READY",
    "ERROR",
    "SHA256",
    "MD5",
    "crc",
    "0" * 64,
]


@st.composite
def session_manifests(draw: st.DrawFn) -> bytes:
    """A session manifest (YAML or JSON) with entries drawn to be odd, then mutated."""
    import json

    scalar = st.one_of(
        st.sampled_from(SESSION_VALUES),
        st.integers(-2, 1 << 70),
        st.none(),
        st.booleans(),
        st.floats(allow_nan=True),
        st.text(max_size=10),
    )
    entry = st.dictionaries(
        st.sampled_from(["name", "path", "size", "status", "checksum_info", "extra"]),
        st.one_of(
            scalar,
            st.dictionaries(st.sampled_from(["algorithm", "checksum", "x"]), scalar, max_size=3),
        ),
        max_size=5,
    )
    doc: dict[str, Any] = {"validator-session": draw(st.sampled_from([1, 1, 1, 2, "1"]))}
    if draw(st.booleans()):
        doc["item_type"] = draw(st.sampled_from(["ovf", "iso", "nope", 3]))
    doc["files"] = draw(st.lists(entry, max_size=5))
    as_json = draw(st.booleans())
    text = json.dumps(doc) if as_json else _yaml_dump(doc)
    prefix = b"J" if as_json else b"Y"
    return prefix + draw(mutations(text.encode("utf-8"), TEXT_TOKENS, max_ops=2))


def _yaml_dump(doc: Any) -> str:
    import yaml

    return str(yaml.safe_dump(doc, allow_unicode=True))


# -- targets -----------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    name: str
    strategy: Callable[[], st.SearchStrategy[bytes]]
    run: Callable[[bytes], None]
    doc: str = ""


def check_ids(ids: list[str], where: str) -> None:
    unknown = sorted(set(ids) - english_ids())
    assert not unknown, f"{where}: ids with no English catalog entry: {unknown}"


def _twice(fn: Callable[[], Any]) -> Any:
    first = fn()
    again = fn()
    assert first == again, f"not deterministic: {first!r} != {again!r}"
    return first


def run_descriptor(data: bytes) -> None:
    from validator_plugins.ovf.descriptor import read_descriptor

    def once() -> list[tuple[str, tuple[object, ...]]]:
        return read_descriptor("vm.ovf", data, FUZZ_LIMITS).problems

    problems = _twice(once)
    check_ids([p[0] for p in problems], "descriptor")


def run_xmlsafe(data: bytes) -> None:
    from validator.xmlsafe import XmlRejected, parse

    def once() -> str:
        try:
            tree = parse(data, max_elements=500, max_depth=20)
        except XmlRejected as exc:
            assert exc.kind in ("malformed", "doctype", "entity", "elements", "depth"), exc
            return f"rejected {exc.kind}"
        root = tree.getroot()
        assert tree.docinfo.doctype == ""
        return f"ok {root.tag}"

    _twice(once)


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="validator-fuzz-") as tmp:
        yield Path(tmp)


def _bundle(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vm.ovf").write_bytes(SAMPLE_OVF)
    (folder / "vm-disk1.vmdk").write_bytes(SAMPLE_DISK)
    (folder / "vm.mf").write_bytes(SAMPLE_MF)


def summarize(result: ValidationResult) -> tuple[Any, ...]:
    return (
        result.item_type,
        result.missing_files,
        tuple((e.name, e.error_message.id, e.error_message.args) for e in result.invalid_files),
        tuple((e.name, e.error_message.id, e.error_message.args) for e in result.warnings),
    )


def validate_path(path: Path, limits: Limits = FUZZ_LIMITS) -> tuple[Any, ...]:
    """Open and validate; the documented failures become a summary too."""
    engine = Engine(limits=limits)
    try:
        result = engine.validate(engine.open(path))
    except SessionError as exc:
        check_ids([exc.message_id], "SessionError")
        assert exc.message_id not in CRASH_IDS, f"a plugin failed to open it: {exc.args_}"
        return ("session-error", exc.message_id, exc.args_)
    except NotAllowedInCurrentState as exc:
        check_ids([m.id for m in exc.messages], "NotAllowedInCurrentState")
        return ("not-allowed", tuple(m.id for m in exc.messages))
    summary = summarize(result)
    check_ids([e[1] for e in summary[2] + summary[3]], "result")
    crash = [
        e
        for e in summary[2]
        if e[1].startswith(("validator.core.plugin.", "validator.core.check."))
    ]
    assert not crash, f"a built-in plugin failed: {crash}"
    return summary


def run_session_manifest(data: bytes) -> None:
    suffix = ".json" if data[:1] == b"J" else ".yaml"
    with workdir() as tmp:
        _bundle(tmp / "bundle")
        (tmp / "vm.ovf").write_bytes(SAMPLE_OVF)
        (tmp / "link").symlink_to("/etc", target_is_directory=True)
        path = tmp / ("session" + suffix)
        path.write_bytes(data[1:])
        _twice(lambda: validate_path(path))


def run_ovf_manifest(data: bytes) -> None:
    from validator_plugins.ovf.manifest import parse_manifest

    def once() -> tuple[Any, ...]:
        mf = parse_manifest("vm.mf", data, FUZZ_LIMITS)
        for name, entry in mf.entries.items():
            assert name.encode("utf-8") in data and entry.name == name
            assert all(c in "0123456789abcdef" for c in entry.digest)
        return (sorted(mf.entries), mf.problems, mf.unusable)

    result = _twice(once)
    check_ids([p[0] for p in result[1]], "manifest")


def _vmdk_verdict(data: bytes, step: int) -> list[Any]:
    """The verdict with the bytes fed in pieces of ``step``."""
    return _vmdk_verdict_cut(data, list(range(step, len(data), step)))


def _vmdk_verdict_cut(data: bytes, cuts: list[int]) -> list[Any]:
    """The verdict with the bytes cut at ``cuts`` (positions, ascending)."""
    from validator_plugins.ovf.vmdk import VmdkChecker

    checker = VmdkChecker(
        "vm-disk1.vmdk", declared_capacity=64 << 20, variant="streamOptimized", inflate=True
    )
    view = memoryview(data)
    prev = 0
    for at in [*cuts, len(data)]:
        checker.feed(view[prev:at])
        prev = at
    return list(checker.close())


def run_vmdk(data: bytes) -> None:
    """Header, embedded descriptor and marker walk: no crash, known ids, deterministic."""
    whole = _twice(lambda: _vmdk_verdict(data, max(1, len(data))))
    check_ids([p[0] for p in whole], "vmdk")
    check_ids([p[0] for p in _vmdk_verdict(data, 512)], "vmdk")


def run_vmdk_chunking(data: bytes) -> None:
    """The verdict (the same problems in the same order) does not depend on how the bytes
    are cut into chunks (the engine's ``read_chunk_bytes``, gzip's output pieces)."""
    import random

    whole = _vmdk_verdict(data, max(1, len(data)))
    for step in (1 + len(data) // 7, 511, 512, 513, 4093):
        assert _vmdk_verdict(data, step) == whole, f"chunked by {step}: a different verdict"
    # cuts anywhere (a seed from the bytes keeps it reproducible)
    rng = random.Random(hashlib.sha256(data).digest())
    for _ in range(2):
        cuts = {rng.randrange(len(data) + 1) for _ in range(rng.randrange(1, 40))}
        if rng.random() < 0.5:
            cuts.update(range(500, 530))  # 1-byte pieces across the header's end
        ordered = sorted(c for c in cuts if 0 < c < len(data))
        assert _vmdk_verdict_cut(data, ordered) == whole, f"cut at {ordered}: another verdict"


def run_certificate(data: bytes) -> None:
    """``MANIFEST\0CERT``: the signature line and PEM chain checked against the manifest."""
    from validator_plugins.ovf.certificate import _check

    from validator.checks import CheckContext, Reporter

    signed, _, cert = data.partition(b"\0")

    def once() -> list[tuple[str, tuple[str, ...], bool]]:
        report = Reporter()
        _check("vm.cert", "vm.mf", cert, signed, CheckContext("ovf", FUZZ_LIMITS), report)
        return [(p.message_id, p.args, p.warning) for p in report.problems]

    problems = _twice(once)
    check_ids([p[0] for p in problems], "certificate")


@cache
def certificate_seeds() -> list[bytes]:
    """``MANIFEST\0CERT`` from a real signed package (empty without openssl)."""
    with workdir() as tmp:
        _signed_bundle(tmp / "b")
        cert = tmp / "b" / "vm.cert"
        if not cert.exists():
            return [b"SHA256(vm.ovf)= 00\n\0SHA256(vm.mf)= 00\n"]
        mf = (tmp / "b" / "vm.mf").read_bytes()
        return [mf + b"\0" + cert.read_bytes()]


def run_ova(data: bytes) -> None:
    with workdir() as tmp:
        path = tmp / "vm.ova"
        path.write_bytes(data)
        _twice(lambda: validate_path(path))


def run_ova_stream(data: bytes) -> None:
    """The archive read from a pipe (``validator -``): one pass, never seeking."""
    from validator_plugins.ovf.ova import open_stream

    def once() -> tuple[Any, ...]:
        try:
            session = open_stream(io.BytesIO(data), "-", FUZZ_LIMITS)
        except SessionError as exc:
            check_ids([exc.message_id], "SessionError")
            return ("session-error", exc.message_id, exc.args_)
        engine = Engine(limits=FUZZ_LIMITS)
        try:
            result = engine.validate(session)
        except (SessionError, NotAllowedInCurrentState) as exc:
            return ("error", type(exc).__name__)
        summary = summarize(result)
        check_ids([e[1] for e in summary[2] + summary[3]], "result")
        crash = [
            e
            for e in summary[2]
            if e[1].startswith(("validator.core.plugin.", "validator.core.check."))
        ]
        assert not crash, f"a built-in plugin failed: {crash}"
        return summary

    _twice(once)


def run_iso(data: bytes) -> None:
    with workdir() as tmp:
        path = tmp / "image.iso"
        path.write_bytes(data)
        _twice(lambda: validate_path(path))


def _target_name(raw: bytes) -> str:
    """The file an input replaces: its name part if the file system can hold it."""
    name = os.fsdecode(raw)
    if not name or len(raw) > 200 or "/" in name or "\0" in name or name in (".", ".."):
        return "vm.ovf"
    return name


def run_bundle(data: bytes) -> None:
    """``NAME\\0CONTENT``: the signed sample bundle with one file replaced."""
    name, _, content = data.partition(b"\0")
    with workdir() as tmp:
        folder = tmp / "bundle"
        _signed_bundle(folder)
        target = _target_name(name)
        (folder / target).write_bytes(content)
        first = _twice(lambda: validate_path(folder))
        other = validate_path(folder, FUZZ_LIMITS.replace(read_chunk_bytes=1 << 16, threads=2))
        # The same problems in the same order (a damaged disk's came in the order the chunks
        # cut its bytes until plugins/ovf/vmdk.py ordered them by stream position).
        assert other == first, "the verdict depends on chunk size/threads"


def run_cli(data: bytes) -> None:
    """The CLI in-process on a damaged bundle: exit status 0, 1 or 2, parseable output,
    nothing escapes (stdout is strict UTF-8, as in a UTF-8 locale)."""
    import json

    from validator.cli import main

    name, _, content = data.partition(b"\0")
    with workdir() as tmp:
        folder = tmp / "bundle"
        _bundle(folder)
        target = _target_name(name)
        (folder / target).write_bytes(content)
        for args in (
            ["--format", "json", str(folder)],
            ["--format", "xml", str(folder / "vm.ovf")],
            ["--limit", "descriptor_elements=50", str(folder)],
        ):
            raw = io.BytesIO()
            out = io.TextIOWrapper(raw, encoding="utf-8", errors="strict")
            err = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(args)
            out.flush()
            assert code in (0, 1, 2), code
            assert "Traceback" not in err.getvalue()
            text = raw.getvalue().decode("utf-8")
            if args[:2] == ["--format", "json"] and code in (0, 1):
                doc = json.loads(text)
                assert doc["value"]["has_errors"] == (code == 1)
                check_ids([e["error_message"]["id"] for e in doc["value"]["invalid_files"]], "cli")


def _signed_bundle(folder: Path) -> None:
    """The sample bundle with a manifest of both files and, when openssl exists, a .cert."""
    import subprocess

    _bundle(folder)
    mf = "".join(
        f"SHA256({n})= {hashlib.sha256((folder / n).read_bytes()).hexdigest()}\n"
        for n in ("vm.ovf", "vm-disk1.vmdk")
    )
    (folder / "vm.mf").write_text(mf)
    ident = identity()
    if ident is None:
        return
    key = folder.parent / "key.pem"
    key.write_bytes(ident[0])
    sig = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(key), str(folder / "vm.mf")],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    key.unlink()
    (folder / "vm.cert").write_bytes(f"SHA256(vm.mf)= {sig.hex()}\n".encode() + ident[1])


@cache
def signed_seeds() -> list[bytes]:
    """``NAME\\0CONTENT`` seeds from a real signed bundle, one per file."""
    with workdir() as tmp:
        _signed_bundle(tmp / "b")
        return [
            n.encode() + b"\0" + (tmp / "b" / n).read_bytes() for n in sorted(os.listdir(tmp / "b"))
        ]


def tar_seeds() -> list[bytes]:
    import tarfile

    members = [
        Member("vm.ovf", SAMPLE_OVF),
        Member("vm.mf", SAMPLE_MF),
        Member("vm-disk1.vmdk", SAMPLE_DISK[:8192]),
    ]
    return [
        tar_bytes(members),
        tar_bytes([*members[:1], Member("x" * 120 + ".vmdk", b"abc")], fmt=tarfile.GNU_FORMAT),
        tar_bytes([*members[:1], Member("é" * 60, b"abc")], fmt=tarfile.PAX_FORMAT),
        tar_bytes([*members[:1], Member("link", kind=tarfile.SYMTYPE, linkname="/etc/passwd")]),
    ]


@cache
def iso_seeds() -> list[bytes]:
    from .bundles import have, iso_image

    if not (have("genisoimage") or have("xorriso")):
        return [bytes(64 * 1024)]
    with workdir() as tmp:
        seeds = [iso_image(tmp, tmp / "x.iso")]
        if have("genisoimage"):
            import subprocess

            src = tmp / "src"
            src.mkdir()
            (src / "A.TXT").write_text("a\n")
            (src / "boot.bin").write_bytes(b"\xeb\xfe" + bytes(2046))
            for extra in (["-udf"], ["-b", "boot.bin", "-no-emul-boot", "-boot-load-size", "4"]):
                out = tmp / "y.iso"
                subprocess.run(["genisoimage", "-quiet", "-J", "-R", *extra, "-o", str(out),
                                str(src)], check=True, capture_output=True, timeout=60)  # fmt: skip
                seeds.append(out.read_bytes())
        return seeds


def _mutated_seeds(
    seeds: Callable[[], list[bytes]],
    tokens: list[bytes],
    hot: tuple[tuple[int, int], ...] = ((0, 4096),),
) -> Callable[[], st.SearchStrategy[bytes]]:
    return lambda: seeded(seeds(), tokens, hot)


#: Where an ISO 9660 image keeps its metadata: the system area's partition tables, the
#: volume descriptors from sector 16, and the path tables and root directory after them.
ISO_HOT = ((0, 1024), (16 * 2048, 20 * 2048), (18 * 2048, 40 * 2048), (256 * 2048, 258 * 2048))


MANIFEST_SEEDS = [
    SAMPLE_MF,
    SAMPLE_MF.replace(b"\n", b"\r\n"),
    b"SHA1(vm.ovf)= " + b"a" * 40 + b"\nSHA512(vm-disk1.vmdk)= " + b"b" * 128 + b"\n",
]

TARGETS: dict[str, Target] = {
    t.name: t
    for t in [
        Target(
            "descriptor",
            lambda: st.one_of(
                seeded([SAMPLE_OVF, descriptor().encode()], XML_TOKENS), descriptors()
            ),
            run_descriptor,
            "plugins/ovf/descriptor.read_descriptor",
        ),
        Target(
            "xmlsafe",
            lambda: st.one_of(seeded([SAMPLE_OVF], XML_TOKENS), descriptors(), st.binary()),
            run_xmlsafe,
            "validator.xmlsafe.parse",
        ),
        Target(
            "session_manifest",
            lambda: st.one_of(seeded([b"Y" + SAMPLE_SESSION], TEXT_TOKENS), session_manifests()),
            run_session_manifest,
            "validator.session_manifest.session_from_manifest, through the engine",
        ),
        Target(
            "ovf_manifest",
            _mutated_seeds(lambda: MANIFEST_SEEDS, TEXT_TOKENS),
            run_ovf_manifest,
            "plugins/ovf/manifest.parse_manifest",
        ),
        Target(
            "certificate",
            _mutated_seeds(certificate_seeds, TEXT_TOKENS, ((0, 600), (600, 2400))),
            run_certificate,
            "plugins/ovf/certificate: the signature line, PEM chain and signature",
        ),
        Target(
            "vmdk",
            _mutated_seeds(lambda: [SAMPLE_DISK], TEXT_TOKENS),
            run_vmdk,
            "plugins/ovf/vmdk.VmdkChecker (header, embedded descriptor, markers)",
        ),
        Target(
            "vmdk_chunking",
            _mutated_seeds(lambda: [SAMPLE_DISK], TEXT_TOKENS),
            run_vmdk_chunking,
            "plugins/ovf/vmdk.VmdkChecker: the same verdict whatever the chunk size",
        ),
        Target(
            "ova",
            _mutated_seeds(tar_seeds, TEXT_TOKENS),
            run_ova,
            "plugins/ovf/ova (tar member reader), through the engine",
        ),
        Target(
            "ova_stream",
            _mutated_seeds(tar_seeds, TEXT_TOKENS),
            run_ova_stream,
            "plugins/ovf/ova.open_stream (an OVA on standard input), through the engine",
        ),
        Target(
            "iso",
            _mutated_seeds(iso_seeds, TEXT_TOKENS, ISO_HOT),
            run_iso,
            "plugins/iso (volume descriptors, directory records), through the engine",
        ),
        Target(
            "bundle",
            _mutated_seeds(signed_seeds, TEXT_TOKENS + XML_TOKENS),
            run_bundle,
            "a signed package with one file damaged (descriptor, manifest, certificate, "
            "disk), through the engine",
        ),
        Target(
            "cli",
            lambda: st.one_of(
                seeded([b"vm.ovf\0" + SAMPLE_OVF, b"vm.mf\0" + SAMPLE_MF], XML_TOKENS),
                seeded([b"vm-disk1.vmdk\0" + SAMPLE_DISK[:4096]], TEXT_TOKENS),
                st.tuples(
                    st.sampled_from([b"vm.ovf", b"x\xff.bin", b"a\nb", b"vm.cert"]),
                    st.binary(max_size=64),
                ).map(lambda pair: pair[0] + b"\0" + pair[1]),
            ),
            run_cli,
            "validator.cli.main in-process: exit status, strict UTF-8 output",
        ),
    ]
}


#: Targets whose property is known to fail in code owned elsewhere, with the bug: their
#: fuzz test and regression inputs are expected failures until it is fixed.  None at
#: present (``vmdk_chunking`` was: plugins/ovf/vmdk.py now gives one verdict for any cut).
KNOWN_BUGS: dict[str, str] = {}


def regression_path(target: str, data: bytes) -> Path:
    return REGRESSIONS / target / (hashlib.sha256(data).hexdigest()[:16] + ".bin")


def keep_regression(target: str, data: bytes) -> Path:
    """Write a failing input where ``tests/test_fuzz_regressions.py`` replays it."""
    path = regression_path(target, data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
