"""Sizes, chunks and gzip compression of referenced files, and the logical stream pipeline.

Packages are built with real tools: the sample's streamOptimized disk (qemu-img),
``gzip -c`` and GNU ``split -b N -d -a 9`` (which names chunks exactly like OVF:
``HREF.000000000``…).
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest
from validator_plugins.ovf.descriptor import FileRef
from validator_plugins.ovf.stream import LogicalStream

from validator.checks import Reporter
from validator.limits import Limits

from .conftest import run_module
from .ovf_packages import (
    DISK,
    DISK_BYTES,
    check,
    file_xml,
    sample_package,
    write_manifest,
    write_ovf,
)

needs_tools = pytest.mark.skipif(
    not (shutil.which("gzip") and shutil.which("split")), reason="gzip and GNU split needed"
)


def split(path: Path, size: int) -> list[str]:
    subprocess.run(
        ["split", "-b", str(size), "-d", "-a", "9", path.name, path.name + "."],
        cwd=path.parent,
        check=True,
    )
    path.unlink()
    return sorted(p.name for p in path.parent.glob(path.name + ".*"))


def gzip_file(path: Path) -> None:
    data = subprocess.run(["gzip", "-c", "-9", str(path)], capture_output=True, check=True).stdout
    path.write_bytes(data)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("integrity")


def make(root: Path, name: str) -> Path:
    return sample_package(root / name, manifest=False)


# -- sizes -------------------------------------------------------------------------


def test_the_sample_is_valid(root: Path) -> None:
    out = check(sample_package(root / "sample"))
    assert (out.errors, out.missing, out.warnings) == ([], [], [])


def test_wrong_ovf_size(root: Path) -> None:
    d = make(root, "size")
    write_ovf(d, file_xml(size=65537))
    out = check(d)
    assert out.errors == [(DISK, "validator.ovf.size.mismatch")]
    assert out.args("validator.ovf.size.mismatch") == [(DISK, "65537", "65536")]


def test_no_ovf_size_is_fine(root: Path) -> None:
    d = make(root, "nosize")
    write_ovf(d, file_xml())
    assert check(d).errors == []


# -- chunks ------------------------------------------------------------------------


@needs_tools
def test_chunked_disk_is_valid_and_checked_as_one_stream(root: Path) -> None:
    d = make(root, "chunked")
    names = split(d / DISK, 20000)
    assert names == [f"{DISK}.00000000{i}" for i in range(4)]
    write_ovf(d, file_xml(size=65536, chunk=20000))
    write_manifest(d)
    out = check(d)
    assert (out.errors, out.missing) == ([], [])


@needs_tools
def test_chunked_without_size_takes_the_chunks_present(root: Path) -> None:
    d = make(root, "chunked-nosize")
    split(d / DISK, 20000)
    write_ovf(d, file_xml(chunk=20000))
    assert check(d).errors == []


@needs_tools
def test_missing_chunk_is_a_missing_file(root: Path) -> None:
    d = make(root, "chunk-missing")
    split(d / DISK, 20000)
    (d / f"{DISK}.000000002").unlink()
    write_ovf(d, file_xml(size=65536, chunk=20000))
    out = check(d)
    assert out.missing == [f"{DISK}.000000002"]
    assert out.errors == []  # no noise from the disk check of an incomplete stream


def write_chunks(d: Path, sizes: list[int]) -> list[str]:
    names, pos = [], 0
    data = DISK_BYTES + b"\0" * max(0, sum(sizes) - len(DISK_BYTES))
    for i, size in enumerate(sizes):
        name = f"{DISK}.{i:09d}"
        (d / name).write_bytes(data[pos : pos + size])
        names.append(name)
        pos += size
    (d / DISK).unlink(missing_ok=True)
    return names


def test_chunk_of_the_wrong_size(root: Path) -> None:
    d = make(root, "chunk-wrong")
    write_chunks(d, [20000, 25536, 20000])
    write_ovf(d, file_xml(size=65536, chunk=20000))
    out = check(d)
    assert ("validator.ovf.chunk.wrong_size") in out.ids
    assert out.args("validator.ovf.chunk.wrong_size") == [
        (f"{DISK}.000000001", DISK, "25536", "20000")
    ]
    assert dict(out.errors)[f"{DISK}.000000001"] == "validator.ovf.chunk.wrong_size"


def test_last_chunk_larger_than_chunk_size(root: Path) -> None:
    d = make(root, "chunk-last")
    write_chunks(d, [20000, 20000, 25536])
    write_ovf(d, file_xml(chunk=20000))
    out = check(d)
    assert (f"{DISK}.000000002", "validator.ovf.chunk.bad_last_size") in out.errors


def test_empty_last_chunk(root: Path) -> None:
    d = make(root, "chunk-empty")
    write_chunks(d, [32768, 32768, 0])
    write_ovf(d, file_xml(chunk=32768))
    out = check(d)
    assert (f"{DISK}.000000002", "validator.ovf.chunk.bad_last_size") in out.errors


def test_extra_chunk_and_chunked_size_mismatch(root: Path) -> None:
    d = make(root, "chunk-extra")
    write_chunks(d, [20000, 20000, 20000, 5536, 100])
    write_ovf(d, file_xml(size=65536, chunk=20000))
    out = check(d)
    assert (f"{DISK}.000000004", "validator.ovf.chunk.extra") in out.errors
    d2 = make(root, "chunk-total")
    write_chunks(d2, [20000, 20000, 20000, 5536])
    write_ovf(d2, file_xml(size=65000, chunk=20000))
    out2 = check(d2)
    assert (f"{DISK}.000000003", "validator.ovf.size.chunked_mismatch") in out2.errors
    assert out2.args("validator.ovf.size.chunked_mismatch") == [(DISK, "65000", "65536", "4")]


def test_too_many_chunks(root: Path) -> None:
    d = make(root, "chunk-many")
    write_chunks(d, [1] * 3)
    write_ovf(d, file_xml(size=10**12, chunk=1))
    out = check(d, limits=Limits().replace(max_files=100))
    assert ("vm.ovf", "validator.ovf.chunk.too_many") in out.errors


# -- gzip --------------------------------------------------------------------------


@needs_tools
def test_gzip_disk_is_valid(root: Path) -> None:
    d = make(root, "gzip")
    gzip_file(d / DISK)
    write_ovf(d, file_xml(size=(d / DISK).stat().st_size, compression="gzip"))
    write_manifest(d)
    out = check(d)
    assert (out.errors, out.missing) == ([], [])


@needs_tools
def test_gzip_and_chunked_disk_is_valid(root: Path) -> None:
    d = make(root, "gzip-chunked")
    gzip_file(d / DISK)
    size = (d / DISK).stat().st_size
    names = split(d / DISK, 100)
    assert len(names) > 3
    write_ovf(d, file_xml(size=size, chunk=100, compression="gzip"))
    write_manifest(d)
    out = check(d)
    assert (out.errors, out.missing) == ([], [])


@needs_tools
def test_truncated_gzip(root: Path) -> None:
    d = make(root, "gzip-cut")
    gzip_file(d / DISK)
    data = (d / DISK).read_bytes()
    (d / DISK).write_bytes(data[: len(data) // 2])
    write_ovf(d, file_xml(compression="gzip"))
    out = check(d)
    # Only the gzip problem: the disk check downstream is dropped, not fed half a disk.
    assert out.errors == [(DISK, "validator.ovf.gzip.truncated")]


@needs_tools
def test_truncated_gzip_in_the_last_chunk(root: Path) -> None:
    d = make(root, "gzip-cut-chunked")
    gzip_file(d / DISK)
    data = (d / DISK).read_bytes()
    (d / DISK).write_bytes(data[:-10])
    assert len(split(d / DISK, 100)) > 2
    write_ovf(d, file_xml(chunk=100, compression="gzip"))
    out = check(d)
    last = sorted(p.name for p in d.glob(f"{DISK}.*"))[-1]
    assert out.errors == [(last, "validator.ovf.gzip.truncated")]


def test_corrupt_gzip(root: Path) -> None:
    d = make(root, "gzip-corrupt")
    data = bytearray(gzip.compress(DISK_BYTES))
    for i in range(200, 260):
        data[i] ^= 0x5A
    (d / DISK).write_bytes(bytes(data))
    write_ovf(d, file_xml(compression="gzip"))
    out = check(d)
    assert out.errors == [(DISK, "validator.ovf.gzip.corrupt")]


def test_bad_crc_is_corrupt(root: Path) -> None:
    d = make(root, "gzip-crc")
    data = bytearray(gzip.compress(DISK_BYTES))
    data[-8] ^= 1  # CRC32 of the trailer
    (d / DISK).write_bytes(bytes(data))
    write_ovf(d, file_xml(compression="gzip"))
    assert check(d).errors == [(DISK, "validator.ovf.gzip.corrupt")]


def test_not_gzip_at_all(root: Path) -> None:
    d = make(root, "gzip-not")
    write_ovf(d, file_xml(compression="gzip"))
    out = check(d)
    assert out.errors == [(DISK, "validator.ovf.gzip.not_gzip")]


def test_trailing_data_after_gzip(root: Path) -> None:
    d = make(root, "gzip-trailing")
    (d / DISK).write_bytes(gzip.compress(DISK_BYTES) + b"garbage!")
    write_ovf(d, file_xml(compression="gzip"))
    out = check(d)
    assert out.errors == [(DISK, "validator.ovf.gzip.trailing_data")]
    assert out.args("validator.ovf.gzip.trailing_data") == [(DISK, DISK, "8")]


def test_multi_member_gzip_is_one_stream(root: Path) -> None:
    d = make(root, "gzip-members")
    half = len(DISK_BYTES) // 3
    (d / DISK).write_bytes(gzip.compress(DISK_BYTES[:half]) + gzip.compress(DISK_BYTES[half:]))
    write_ovf(d, file_xml(compression="gzip"))
    assert check(d).errors == []


def test_gzip_bomb_is_bounded(root: Path) -> None:
    d = make(root, "gzip-bomb")
    (d / "data.bin").write_bytes(gzip.compress(b"\0" * (8 << 20)))
    write_ovf(d, file_xml(), file_xml(href="data.bin", fid="file2", compression="gzip"))
    out = check(d, limits=Limits().replace(gzip_decompressed_bytes=1 << 20))
    assert out.errors == [("data.bin", "validator.ovf.gzip.too_large")]
    assert out.args("validator.ovf.gzip.too_large") == [("data.bin", "data.bin", str(1 << 20))]
    assert check(d).errors == []  # under the default limit: a valid compressed file


def test_cli_json_reports_the_ids(root: Path) -> None:
    d = make(root, "cli")
    write_ovf(d, file_xml(size=1))
    proc = run_module("--format", "json", d)
    assert proc.returncode == 1
    import json

    doc = json.loads(proc.stdout)
    assert [e["error_message"]["id"] for e in doc["value"]["invalid_files"]] == [
        "validator.ovf.size.mismatch"
    ]


# -- the stream pipeline, directly ------------------------------------------------


class Collect:
    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def feed(self, data: memoryview, /) -> None:
        self.data += data

    def close(self) -> Iterable[tuple[str, tuple[object, ...]]]:
        self.closed = True
        return [("validator.ovf.stream.consumer_failed", ("x", "Collect", str(len(self.data))))]


class Boom:
    def feed(self, data: memoryview, /) -> None:
        raise ValueError("boom")

    def close(self) -> list[tuple[str, tuple[object, ...]]]:
        return []


def run_stream(
    ref: FileRef, parts: list[tuple[str, bytes]], piece: int, limits: Limits | None = None
) -> tuple[LogicalStream, Collect, Reporter]:
    stream = LogicalStream(ref, [(n, len(b)) for n, b in parts], limits or Limits())
    sink = stream.attach(Collect())
    assert isinstance(sink, Collect)
    stored = b"".join(b for _, b in parts)
    for i in range(0, len(stored), piece):
        stream.update(memoryview(stored[i : i + piece]))
    report = Reporter()
    stream.finish(report)
    return stream, sink, report


@pytest.mark.parametrize("piece", [1, 7, 4096, 1 << 20])
def test_pipeline_joins_chunks_and_gunzips_any_piece_size(piece: int) -> None:
    payload = bytes(range(256)) * 2000
    stored = gzip.compress(payload[:1000]) + gzip.compress(payload[1000:])
    parts = [
        (f"f.{i:09d}", stored[i * 5000 : (i + 1) * 5000]) for i in range(-(-len(stored) // 5000))
    ]
    ref = FileRef(id="f", href="f", line=1, chunk_size=5000, compression="gzip")
    _, sink, report = run_stream(ref, parts, piece)
    assert bytes(sink.data) == payload
    assert sink.closed
    assert [p.message_id for p in report.problems] == ["validator.ovf.stream.consumer_failed"]
    assert report.problems[0].name == "f.000000000"  # consumers report on the first chunk


def test_pipeline_uncompressed_is_passed_through() -> None:
    ref = FileRef(id="f", href="f", line=1)
    _, sink, _ = run_stream(ref, [("f", b"abc" * 1000)], 100)
    assert bytes(sink.data) == b"abc" * 1000


def test_pipeline_drops_consumers_when_content_is_broken() -> None:
    ref = FileRef(id="f", href="f", line=1, compression="gzip")
    _, sink, report = run_stream(ref, [("f", gzip.compress(b"x" * 100000)[:-20])], 64)
    assert not sink.closed
    assert [p.message_id for p in report.problems] == ["validator.ovf.gzip.truncated"]


def test_pipeline_many_tiny_members_do_not_recurse() -> None:
    member = gzip.compress(b"")
    ref = FileRef(id="f", href="f", line=1, compression="gzip")
    _, _, report = run_stream(ref, [("f", member * 20000)], 1 << 20)
    assert [p.message_id for p in report.problems] == ["validator.ovf.stream.consumer_failed"]


def test_pipeline_output_is_bounded_in_pieces() -> None:
    sizes: list[int] = []

    class Sizes:
        def feed(self, data: memoryview, /) -> None:
            sizes.append(len(data))

        def close(self) -> list[tuple[str, tuple[object, ...]]]:
            return []

    ref = FileRef(id="f", href="f", line=1, compression="gzip")
    stream = LogicalStream(ref, [("f", 1)], Limits())
    stream.attach(Sizes())
    stream.update(memoryview(gzip.compress(b"\0" * (5 << 20))))
    stream.finish(Reporter())
    assert sum(sizes) == 5 << 20 and max(sizes) <= 1 << 20


def test_failing_consumer_is_reported_and_others_go_on() -> None:
    ref = FileRef(id="f", href="f", line=1)
    stream = LogicalStream(ref, [("f", 3)], Limits())
    stream.attach(Boom())
    sink = stream.attach(Collect())
    stream.update(memoryview(b"abc"))
    report = Reporter()
    stream.finish(report)
    assert isinstance(sink, Collect) and bytes(sink.data) == b"abc"
    failed = [p for p in report.problems if p.args[1] == "Boom"]
    assert failed and "boom" in failed[0].args[2]


class Quits:
    def __init__(self, where: str, exc: BaseException) -> None:
        self.where = where
        self.exc = exc

    def feed(self, data: memoryview, /) -> None:
        if self.where == "feed":
            raise self.exc

    def close(self) -> list[tuple[str, tuple[object, ...]]]:
        if self.where == "close":
            raise self.exc
        return []


@pytest.mark.parametrize(
    "exc", [SystemExit(0), GeneratorExit()], ids=["sys.exit(0)", "GeneratorExit"]
)
@pytest.mark.parametrize("where", ["feed", "close"])
def test_consumer_calling_sys_exit_is_dropped_and_others_go_on(
    where: str, exc: BaseException
) -> None:
    """Not only Exception: what escaped here was reported as the ovf-stream check's failure,
    and the other consumers (the VMDK check) reported nothing."""
    ref = FileRef(id="f", href="f", line=1)
    stream = LogicalStream(ref, [("f", 3)], Limits())
    stream.attach(Quits(where, exc))
    sink = stream.attach(Collect())
    stream.update(memoryview(b"abc"))
    report = Reporter()
    stream.finish(report)
    assert isinstance(sink, Collect) and bytes(sink.data) == b"abc" and sink.closed
    failed = [p for p in report.problems if p.args[1] == "Quits"]
    assert [p.message_id for p in failed] == ["validator.ovf.stream.consumer_failed"]
    assert failed[0].args[2].startswith(type(exc).__name__)


def test_attach_after_hand_out_is_refused() -> None:
    stream = LogicalStream(FileRef(id="f", href="f", line=1), [("f", 3)], Limits())
    stream.handed_out = True
    with pytest.raises(RuntimeError):
        stream.attach(Collect())


@needs_tools
def test_disk_check_sees_the_decompressed_joined_content(root: Path) -> None:
    """The VMDK check downstream of the pipeline gets the disk, not gzip bytes of chunks."""
    d = make(root, "gzip-chunked-bad-disk")
    (d / DISK).write_bytes(b"XXXX" + DISK_BYTES[4:])
    gzip_file(d / DISK)
    split(d / DISK, 100)
    write_ovf(d, file_xml(chunk=100, compression="gzip"))
    out = check(d)
    assert out.errors and all(name == f"{DISK}.000000000" for name, _ in out.errors)
    assert all(i.startswith("validator.ovf.vmdk.") for i in out.ids)


def test_pipeline_bounds_the_number_of_members() -> None:
    ref = FileRef(id="f", href="f", line=1, compression="gzip")
    _, sink, report = run_stream(
        ref, [("f", gzip.compress(b"") * 101)], 1 << 20, Limits(gzip_members=100)
    )
    assert [p.message_id for p in report.problems] == ["validator.ovf.gzip.too_many_members"]
    assert not sink.closed
