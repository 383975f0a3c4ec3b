"""An OVA on standard input gets the very verdict of the same ``.ova`` as a file.

``validator - < g.ova`` reads the archive once, as it arrives, where ``validator
g.ova`` lists it first and reads the members in place: the two must agree on
everything — ids, file names, args and order of ``invalid_files``, warnings,
``missing_files`` — or a gate that pipes downloads into the validator would
pass what a gate on files refuses (a gzip disk cut short did).

Every package fixture the suite builds is gathered here: the adversarial
corpus (``tests/adversarial/cases.py``: its folders, descriptors and archives),
the packages of the integrity, manifest and disk tests (built with the helpers
of ``tests/ovf_packages.py`` and ``tests/disks.py``, with the real ``gzip``,
``split`` and ``qemu-img``), and ``samples/``.  A folder is packed as an OVA
(descriptor first, then the folder's order); each archive is validated as a
file and on standard input, in process (``open_stream`` over the archive's
bytes), and a selection through ``python -m validator -`` in a subprocess.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from validator_plugins.ovf import ova

from validator.engine import Engine
from validator.limits import Limits
from validator.results import NotAllowedInCurrentState, ValidationResult
from validator.session import SessionError

from .adversarial.cases import CASES
from .conftest import SAMPLES, run_module
from .disks import STREAM, make_vmdk, ovf_text, patch_header, truncate
from .ovf_packages import DISK, DISK_BYTES, file_xml, sample_package, write_manifest, write_ovf

Verdict = tuple[object, ...]


@dataclass
class Fixture:
    name: str
    build: Callable[[Path], Path]  # returns a folder, a descriptor or an archive
    limits: dict[str, int] = field(default_factory=dict)
    tools: tuple[str, ...] = ()


def verdict(result: ValidationResult, *archive: str) -> Verdict:
    """Everything a result says, with the archive's own name and path written ``-`` (as on
    standard input)."""

    def shown(value: str) -> str:
        return "-" if value in archive else value

    def entries(errors: tuple) -> list[tuple[str, str, tuple[str, ...]]]:  # type: ignore[type-arg]
        return [
            (shown(e.name), e.error_message.id, tuple(shown(a) for a in e.error_message.args))
            for e in errors
        ]

    return (
        "result",
        result.item_type,
        entries(result.invalid_files),
        entries(result.warnings),
        list(result.missing_files),
    )


def run(engine: Engine, open_session: Callable[[], object], *archive: str) -> Verdict:
    try:
        session = open_session()
        return verdict(engine.validate(session), *archive)  # type: ignore[arg-type]
    except SessionError as exc:
        return ("session_error", exc.message_id)
    except NotAllowedInCurrentState as exc:
        return ("not_allowed", [m.id for m in exc.messages])


def as_archive(path: Path, work: Path) -> Path:
    """An ``.ova`` of a fixture: itself, or its folder packed descriptor first."""
    if path.suffix.lower() == ".ova":
        return path
    folder = path if path.is_dir() else path.parent
    names = sorted(p.name for p in folder.iterdir() if not p.is_dir() or p.is_symlink())
    names.sort(key=lambda n: not n.lower().endswith(".ovf"))  # stable: descriptor(s) first
    out = work / "packed.ova"
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            p = folder / name
            if p.is_fifo():
                info = tarfile.TarInfo(name)
                info.type = tarfile.FIFOTYPE
                tar.addfile(info)
            else:
                tar.add(p, arcname=name, recursive=False)
    return out


def both(path: Path, limits: Limits, monkeypatch: pytest.MonkeyPatch) -> tuple[Verdict, Verdict]:
    """The verdicts of ``validator ARCHIVE`` and ``validator - < ARCHIVE``, in process."""
    engine = Engine(limits=limits)
    as_file = run(engine, lambda: engine.open(path), path.name, str(path))
    monkeypatch.setattr(ova, "_stdin", lambda: io.BytesIO(path.read_bytes()))
    on_stdin = run(engine, lambda: engine.open(Path("-")), "-")
    return as_file, on_stdin


# -- the fixtures ------------------------------------------------------------------


def _pkg(d: Path, *files: str, manifest: bool = False) -> Path:
    sample_package(d, manifest=False)
    write_ovf(d, *files)
    if manifest:
        write_manifest(d)
    return d


def _gz(d: Path, data: bytes) -> int:
    (d / DISK).write_bytes(data)
    return len(data)


def _chunks(d: Path, data: bytes, size: int) -> int:
    (d / DISK).unlink(missing_ok=True)
    for i in range(0, max(1, -(-len(data) // size))):
        (d / f"{DISK}.{i:09d}").write_bytes(data[i * size : (i + 1) * size])
    return len(data)


def _gzip_package(d: Path, data: bytes, *, chunk: int | None = None, size: bool = True) -> Path:
    sample_package(d, manifest=False)
    total = _chunks(d, data, chunk) if chunk else _gz(d, data)
    write_ovf(d, file_xml(size=total if size else None, chunk=chunk, compression="gzip"))
    write_manifest(d)
    return d


GZ = gzip.compress(DISK_BYTES, mtime=0)


def _corrupt(data: bytes) -> bytes:
    out = bytearray(data)
    for i in range(40, 60):
        out[i] ^= 0x5A
    return bytes(out)


def _chunked(d: Path) -> Path:
    _chunks(sample_package(d, manifest=False), DISK_BYTES, 20000)
    write_ovf(d, file_xml(size=65536, chunk=20000))
    write_manifest(d)
    return d


def _sized_chunks(sizes: list[int]) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        sample_package(d, manifest=False)
        (d / DISK).unlink()
        data = DISK_BYTES + b"\0" * max(0, sum(sizes) - len(DISK_BYTES))
        pos = 0
        for i, n in enumerate(sizes):
            (d / f"{DISK}.{i:09d}").write_bytes(data[pos : pos + n])
            pos += n
        write_ovf(d, file_xml(size=65536, chunk=20000))
        return d

    return build


def _vmdk(
    edit: Callable[[Path], None] | None = None, compression: bool = False
) -> Callable[..., Path]:
    def build(d: Path) -> Path:
        d.mkdir(parents=True, exist_ok=True)
        disk = make_vmdk(d, "disk.vmdk", "streamOptimized", size=1 << 20)
        if edit is not None:
            edit(disk)
        data = disk.read_bytes()
        if compression:
            data = gzip.compress(data, mtime=0)
            disk.write_bytes(data)
        text = ovf_text("disk.vmdk", len(data), 1 << 20, STREAM)
        if compression:
            text = text.replace(
                'ovf:href="disk.vmdk"', 'ovf:href="disk.vmdk" ovf:compression="gzip"'
            )
        (d / "vm.ovf").write_text(text, encoding="utf-8")
        return d

    return build


def _samples(name: str) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        ignore = shutil.ignore_patterns("broken", "*.yaml")
        shutil.copytree(SAMPLES / name if name else SAMPLES, d, ignore=ignore)
        return d

    return build


OWN: list[Fixture] = [
    Fixture("sample", _samples("")),
    Fixture("sample-broken-bad-references", _samples("broken/bad-references")),
    Fixture("sample-broken-missing-disk", _samples("broken/missing-disk")),
    Fixture("sample-broken-hostile", _samples("broken/hostile")),
    Fixture("size-mismatch", lambda d: _pkg(d, file_xml(size=65537))),
    Fixture("manifest-ok", lambda d: _pkg(d, file_xml(size=65536), manifest=True)),
    Fixture("chunked", _chunked),
    Fixture("chunk-wrong-size", _sized_chunks([20000, 25536, 20000])),
    Fixture("chunk-last-too-big", _sized_chunks([20000, 20000, 25536])),
    Fixture("chunk-extra", _sized_chunks([20000, 20000, 20000, 5536, 100])),
    Fixture("chunk-total", _sized_chunks([20000, 20000, 20000, 5000])),
    Fixture("gzip", lambda d: _gzip_package(d, GZ)),
    Fixture("gzip-no-size", lambda d: _gzip_package(d, GZ, size=False)),
    Fixture("gzip-truncated", lambda d: _gzip_package(d, GZ[: len(GZ) // 2])),
    Fixture("gzip-truncated-no-size", lambda d: _gzip_package(d, GZ[: len(GZ) // 2], size=False)),
    Fixture("gzip-corrupt", lambda d: _gzip_package(d, _corrupt(GZ))),
    Fixture("gzip-trailing", lambda d: _gzip_package(d, GZ + b"garbage!")),
    Fixture("gzip-not-gzip", lambda d: _gzip_package(d, DISK_BYTES)),
    Fixture("gzip-chunked", lambda d: _gzip_package(d, GZ, chunk=100)),
    Fixture("gzip-chunked-truncated", lambda d: _gzip_package(d, GZ[:-10], chunk=100)),
    Fixture("vmdk-ok", _vmdk(), tools=("qemu-img",)),
    Fixture(
        "vmdk-not-vmdk",
        _vmdk(lambda p: p.write_bytes(b"XXXX" + p.read_bytes()[4:])),
        tools=("qemu-img",),
    ),
    Fixture(
        "vmdk-truncated", _vmdk(lambda p: truncate(p, p.stat().st_size - 700)), tools=("qemu-img",)
    ),
    Fixture("vmdk-bad-version", _vmdk(lambda p: patch_header(p, version=9)), tools=("qemu-img",)),
    Fixture("vmdk-gzip", _vmdk(compression=True), tools=("qemu-img",)),
    Fixture(
        "vmdk-gzip-bad-version",
        _vmdk(lambda p: patch_header(p, version=9), True),
        tools=("qemu-img",),
    ),
]


def _adversarial() -> list[Fixture]:
    out = []
    for case in CASES:
        if case.area in ("iso", "session-manifest") or case.known_bug:
            continue

        def build(d: Path, case=case) -> Path:  # type: ignore[no-untyped-def]
            outside = d.parent / "outside"
            outside.mkdir(exist_ok=True)
            d.mkdir()
            return case.build(d, outside)

        out.append(Fixture(f"adversarial-{case.name}", build, case.limits, case.tools))
    return out


FIXTURES = OWN + _adversarial()


def test_every_kind_of_fixture_is_gathered() -> None:
    assert len(FIXTURES) >= 100
    assert sum(f.name.startswith("adversarial-ova") for f in FIXTURES) >= 15


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.name)
def test_stdin_gives_the_verdict_of_the_file(
    fixture: Fixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = [t for t in fixture.tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    built = fixture.build(tmp_path / "fixture")
    archive = as_archive(built, tmp_path)
    if archive.is_fifo():
        pytest.skip("a FIFO is not an archive")
    as_file, on_stdin = both(archive, Limits().replace(**fixture.limits), monkeypatch)
    assert on_stdin == as_file


@pytest.mark.parametrize(
    "name", ["gzip-truncated", "gzip-chunked", "chunk-wrong-size", "adversarial-ova-truncated"]
)
def test_a_real_pipe_gives_the_verdict_of_the_file(name: str, tmp_path: Path) -> None:
    """``validator - < g.ova`` and ``validator g.ova``: same exit status, same document."""
    fixture = next(f for f in FIXTURES if f.name == name)
    archive = as_archive(fixture.build(tmp_path / "fixture"), tmp_path)
    g = tmp_path / "g.ova"
    archive.rename(g)
    by_file = run_module("-f", "json", g)
    by_pipe = run_module("-f", "json", "-", input=g.read_bytes())
    assert by_pipe.returncode == by_file.returncode, by_pipe.stderr
    assert by_file.returncode == (0 if name == "gzip-chunked" else 1)
    assert by_pipe.stderr == by_file.stderr == b""
    # The archive's own name is "-" on standard input: in names, args and messages.
    text = by_file.stdout.decode().replace(str(g), "-").replace("g.ova", "-")
    assert json.loads(by_pipe.stdout) == json.loads(text)
