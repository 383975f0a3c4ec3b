"""OVA archives: validated in place (seekable) or in one pass (standard input), never extracted."""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from validator.engine import Engine
from validator.session import RangeSource, SessionError

from .conftest import SAMPLES, ids, run_module, validate
from .disks import STREAM, make_vmdk, ovf_text

MiB = 1 << 20
SAMPLE_NAMES = ("vm.ovf", "vm.mf", "vm-disk1.vmdk")


def member(
    name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    if kind == tarfile.SYMTYPE or kind == tarfile.LNKTYPE:
        info.linkname = "vm.ovf"
    return info, data


def sample(name: str) -> tuple[tarfile.TarInfo, bytes]:
    return member(name, (SAMPLES / name).read_bytes())


def write_ova(
    path: Path, members: list[tuple[tarfile.TarInfo, bytes]], fmt: int = tarfile.PAX_FORMAT
) -> Path:
    with tarfile.open(path, "w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


@pytest.fixture
def ova(tmp_path: Path) -> Callable[..., Path]:
    def make(*members: tuple[tarfile.TarInfo, bytes], fmt: int = tarfile.PAX_FORMAT) -> Path:
        return write_ova(tmp_path / "vm.ova", list(members), fmt)

    return make


def good_members() -> list[tuple[tarfile.TarInfo, bytes]]:
    return [sample(n) for n in SAMPLE_NAMES]


def stdin(path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return run_module("-", "--format", "json", *args, input=path.read_bytes())


def stdin_ids(path: Path) -> list[str]:
    proc = stdin(path)
    assert proc.returncode in (0, 1), proc.stderr
    import json

    value = json.loads(proc.stdout)["value"]
    return [e["error_message"]["id"] for e in value["invalid_files"]]


# -- good archives -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_python_tarfile_archives(ova: Callable[..., Path], fmt: int) -> None:
    path = ova(*good_members(), fmt=fmt)
    assert ids(validate(path)) == []
    assert stdin_ids(path) == []


@pytest.mark.parametrize("fmt", ["gnu", "ustar", "pax"])
def test_gnu_tar_archives(tmp_path: Path, fmt: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in SAMPLE_NAMES:
        shutil.copy(SAMPLES / name, src / name)
    path = tmp_path / "vm.ova"
    subprocess.run(
        ["tar", f"--format={fmt}", "-cf", str(path), "-C", str(src), *SAMPLE_NAMES], check=True
    )
    assert ids(validate(path)) == []
    assert stdin_ids(path) == []


def test_members_are_read_in_place(ova: Callable[..., Path]) -> None:
    path = ova(*good_members())
    session = Engine().open(path)
    assert session.names() == list(SAMPLE_NAMES)
    data = path.read_bytes()
    for f in session.files:
        assert isinstance(f.source, RangeSource)
        with f.source.open() as fh:
            assert fh.read() == (SAMPLES / f.name).read_bytes()
        assert (
            data[f.source.offset : f.source.offset + f.source.length]
            == (SAMPLES / f.name).read_bytes()
        )


def test_long_names_are_read(ova: Callable[..., Path]) -> None:
    long = "d" * 150 + ".vmdk"
    disk = (SAMPLES / "vm-disk1.vmdk").read_bytes()
    ovf = (SAMPLES / "vm.ovf").read_text().replace("vm-disk1.vmdk", long).encode()
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        path = ova(member("vm.ovf", ovf), member(long, disk), fmt=fmt)
        session = Engine().open(path)
        assert session.names() == ["vm.ovf", long]


def test_same_checks_as_a_folder(tmp_path: Path) -> None:
    """A damaged disk inside an archive gets the folder's message, on both paths."""
    disk = make_vmdk(tmp_path, "disk.vmdk", "streamOptimized", size=1 * MiB)
    data = bytearray(disk.read_bytes())
    data[:4] = b"XXXX"
    ovf = ovf_text("disk.vmdk", len(data), 1 * MiB, STREAM).encode()
    path = write_ova(
        tmp_path / "bad.ova", [member("vm.ovf", ovf), member("disk.vmdk", bytes(data))]
    )
    assert ids(validate(path)) == ["validator.ovf.vmdk.not_vmdk"]
    assert stdin_ids(path) == ["validator.ovf.vmdk.not_vmdk"]


# -- hostile archives ------------------------------------------------------------------


def test_descriptor_not_first(ova: Callable[..., Path]) -> None:
    members = good_members()
    path = ova(members[2], members[0], members[1])
    assert ids(validate(path)) == ["validator.ovf.ova.descriptor_not_first"]
    got = stdin_ids(path)
    assert "validator.ovf.ova.descriptor_not_first" in got


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        (tarfile.SYMTYPE, "validator.ovf.ova.member_link"),
        (tarfile.LNKTYPE, "validator.ovf.ova.member_link"),
        (tarfile.CHRTYPE, "validator.ovf.ova.member_device"),
        (tarfile.BLKTYPE, "validator.ovf.ova.member_device"),
        (tarfile.FIFOTYPE, "validator.ovf.ova.member_fifo"),
        (tarfile.DIRTYPE, "validator.ovf.ova.member_directory"),
    ],
)
def test_special_members_are_refused(ova: Callable[..., Path], kind: bytes, message: str) -> None:
    path = ova(*good_members(), member("extra", kind=kind))
    assert ids(validate(path)) == [message]
    assert stdin_ids(path) == [message]


@pytest.mark.parametrize("name", ["../evil.vmdk", "/etc/evil.vmdk", "sub/evil.vmdk"])
def test_names_with_paths_are_refused(ova: Callable[..., Path], name: str) -> None:
    path = ova(*good_members(), member(name, b"x"))
    result = validate(path)
    assert ids(result) == ["validator.ovf.ova.member_bad_name"]
    assert result.invalid_files[0].name == name
    assert stdin_ids(path) == ["validator.ovf.ova.member_bad_name"]


def test_duplicate_member(ova: Callable[..., Path]) -> None:
    path = ova(*good_members(), sample("vm-disk1.vmdk"))
    assert ids(validate(path)) == ["validator.ovf.ova.duplicate_member"]
    assert stdin_ids(path) == ["validator.ovf.ova.duplicate_member"]


def damage(result) -> list[tuple[str, str, tuple[str, ...]]]:  # type: ignore[no-untyped-def]
    """(name, id, args) of every invalid file: a damaged archive has exactly one."""
    return [(e.name, e.error_message.id, e.error_message.args) for e in result.invalid_files]


def stdin_damage(path: Path) -> list[tuple[str, str, tuple[str, ...]]]:
    import json

    proc = stdin(path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == b""
    value = json.loads(proc.stdout)["value"]
    assert value["has_errors"] is True and value["missing_files"] == []
    return [
        (e["name"], e["error_message"]["id"], tuple(e["error_message"]["args"]))
        for e in value["invalid_files"]
    ]


@pytest.mark.parametrize("cut", [100, 700, 3000, -1100])
def test_truncated_archive_is_a_finding(ova: Callable[..., Path], cut: int) -> None:
    """An interrupted download: a result naming the archive (exit 1), on both paths."""
    path = ova(*good_members())
    data = path.read_bytes()
    end = len(data.rstrip(b"\0"))
    path.write_bytes(data[:cut] if cut > 0 else data[: end + cut])
    found = damage(validate(path))
    assert len(found) == 1
    name, message_id, args = found[0]
    assert name == "vm.ova" and args[0] == "vm.ova"
    assert message_id in ("validator.ovf.ova.truncated", "validator.ovf.ova.not_tar")
    assert stdin_damage(path) == [("-", message_id, ("-", *args[1:]))]


def test_truncated_stream_says_so(ova: Callable[..., Path]) -> None:
    path = ova(*good_members())
    path.write_bytes(path.read_bytes()[:30_000])
    assert stdin_damage(path) == [("-", "validator.ovf.ova.truncated", ("-", "30000"))]
    proc = run_module("-", input=path.read_bytes())
    assert proc.returncode == 1
    assert proc.stdout.decode().splitlines()[1] == (
        "  -: -: the archive is cut short at byte 30000. Download or export it again"
        " (an interrupted download is the usual cause). [validator.ovf.ova.truncated]"
    )


def test_not_a_tar(tmp_path: Path) -> None:
    path = tmp_path / "vm.ova"
    path.write_bytes(b"PK\x03\x04" + bytes(2000))
    expected = ("validator.ovf.ova.not_tar", "0")
    assert [(n, i, a[1]) for n, i, a in damage(validate(path))] == [("vm.ova", *expected)]
    assert stdin_damage(path) == [("-", expected[0], ("-", "0"))]


def test_bad_checksum(ova: Callable[..., Path]) -> None:
    path = ova(*good_members())
    data = bytearray(path.read_bytes())
    second = data.find(b"vm.mf")
    data[second] ^= 1
    path.write_bytes(bytes(data))
    found = damage(validate(path))
    assert [i for _, i, _ in found] == ["validator.ovf.ova.bad_header"]
    assert stdin_damage(path) == [("-", "validator.ovf.ova.bad_header", ("-", *found[0][2][1:]))]


def test_member_limit(ova: Callable[..., Path]) -> None:
    from validator.limits import Limits

    path = ova(*good_members())
    found = damage(validate(path, limits=Limits(archive_members=2)))
    assert found == [("vm.ova", "validator.ovf.ova.too_many_members", ("vm.ova", "2"))]


def test_unreadable_archive_is_still_exit_2(tmp_path: Path) -> None:
    """What cannot be validated at all (no such file) stays a usage-level error."""
    import json

    proc = run_module("-f", "json", tmp_path / "nope.ova")
    assert proc.returncode == 2
    body = json.loads(proc.stdout)
    assert body["type"] == "com.vmware.vapi.std.errors.not_found"
    assert body["value"]["messages"][0]["id"] == "validator.core.input.unreadable"


def test_nothing_is_written(ova: Callable[..., Path], tmp_path: Path) -> None:
    path = ova(*good_members(), member("../escape.txt", b"x"), member("link", kind=tarfile.SYMTYPE))
    before = sorted(p.name for p in tmp_path.parent.rglob("*"))
    validate(path)
    stdin(path)
    assert sorted(p.name for p in tmp_path.parent.rglob("*")) == before


def test_mutated_archives_never_raise_anything_else(ova: Callable[..., Path]) -> None:
    import random

    from validator.results import VapiError

    path = ova(*good_members())
    data = path.read_bytes()
    rng = random.Random(3)
    for _ in range(150):
        mutated = bytearray(data)
        for _ in range(rng.randrange(1, 6)):
            at = rng.randrange(0, 3 * 512)  # headers of the first members
            mutated[at] = rng.randrange(256)
        path.write_bytes(bytes(mutated[: rng.choice([len(mutated), rng.randrange(len(mutated))])]))
        with contextlib.suppress(SessionError, VapiError):
            validate(path)


def test_progress_line_is_erased_before_a_result_and_not_redrawn() -> None:
    import time

    from validator.cli import _ProgressLine

    out = io.StringIO()
    line = _ProgressLine(out)  # type: ignore[arg-type]
    line.start -= 5  # as if it had been running for a while
    with line:
        line(64 << 20)
        time.sleep(0.8)
        assert "64 MiB read" in out.getvalue()
        line.clear()  # what the CLI does before printing a result
        cleared = out.getvalue()
        assert cleared.endswith("\r\033[K")
        time.sleep(0.8)  # nothing new was read: the line stays erased
        assert out.getvalue() == cleared


def test_gnu_tar_hostile_members(tmp_path: Path) -> None:
    """GNU tar itself writes the links, FIFOs and absolute names (-P keeps them)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in SAMPLE_NAMES:
        shutil.copy(SAMPLES / name, src / name)
    (src / "link.vmdk").symlink_to("vm-disk1.vmdk")
    import os

    os.mkfifo(src / "pipe")
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    path = tmp_path / "vm.ova"
    subprocess.run(
        [
            "tar",
            "--format=gnu",
            "-P",
            "-cf",
            str(path),
            "-C",
            str(src),
            *SAMPLE_NAMES,
            "link.vmdk",
            "pipe",
            str(outside),
        ],
        check=True,
    )
    expected = [
        "validator.ovf.ova.member_bad_name",
        "validator.ovf.ova.member_fifo",
        "validator.ovf.ova.member_link",
    ]
    assert sorted(ids(validate(path))) == expected
    assert sorted(stdin_ids(path)) == expected


def test_unreferenced_member_on_both_paths(ova: Callable[..., Path]) -> None:
    path = ova(*good_members(), member("notes.txt", b"hello"))
    assert ids(validate(path)) == ["validator.ovf.file.unreferenced"]
    assert stdin_ids(path) == ["validator.ovf.file.unreferenced"]
