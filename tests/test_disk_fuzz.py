"""Mutated disk images (qemu-img's, with random bytes changed or cut): the ``disk``
parsers end in problems, never in an exception, on a file (seek) and on a stream alike,
and every id they give is in the English catalog."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from validator.checks import Reporter
from validator.limits import Limits

from .conftest import ROOT
from .disks import qemu_img

FORMATS = {
    "q.qcow2": ("qcow2", ("-o", "compat=1.1")),
    "q2.qcow2": ("qcow2", ("-o", "compat=0.10")),
    "d.vhd": ("vpc", ()),
    "f.vhd": ("vpc", ("-o", "subformat=fixed")),
    "x.vhdx": ("vhdx", ()),
    "v.vdi": ("vdi", ()),
    "s.vmdk": ("vmdk", ("-o", "subformat=monolithicSparse")),
    "o.vmdk": ("vmdk", ("-o", "subformat=streamOptimized")),
}
KNOWN = set(
    tomllib.loads((ROOT / "plugins" / "disk" / "catalogs" / "en.toml").read_text("utf-8"))
) | set(tomllib.loads((ROOT / "plugins" / "ovf" / "catalogs" / "en.toml").read_text("utf-8")))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    base = tmp_path_factory.mktemp("disk-fuzz")
    src = base / "src.raw"
    with open(src, "wb") as fh:
        fh.write(bytes(range(256)) * 1024)
        fh.truncate(2 << 20)
    out = {}
    for name, (fmt, options) in FORMATS.items():
        subprocess.run(
            [qemu_img(), "convert", "-q", "-f", "raw", "-O", fmt, *options, str(src), name],
            check=True,
            cwd=base,
        )
        out[name] = (base / name).read_bytes()
    return out


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    out = bytearray(data)
    for position, value in edits:
        # most edits in the metadata (the first 512 KiB and the last sector), where parsers look
        at = position % min(len(out), 512 << 10) if position % 4 else len(out) - 1 - position % 512
        out[at] = value
    if cut is not None:
        del out[cut % (len(out) + 1) :]
    return bytes(out)


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    name=st.sampled_from(sorted(FORMATS)),
    edits=st.lists(st.tuples(st.integers(0, 1 << 24), st.integers(0, 255)), max_size=8),
    cut=st.none() | st.integers(0, 1 << 24),
)
def test_mutated_images_end_in_problems(
    images: dict[str, bytes],
    tmp_path: Path,
    name: str,
    edits: list[tuple[int, int]],
    cut: int | None,
) -> None:
    from validator_plugins.disk.check import DiskStreamCheck, VmdkMetadataCheck, inspect
    from validator_plugins.ovf.vmdk import VmdkChecker

    data = mutate(images[name], edits, cut)
    path = tmp_path / name
    path.write_bytes(data)
    with path.open("rb") as fh:
        info, problems = inspect(name, fh, len(data), Limits())
    ids = [m for m, _ in problems]
    if name.endswith(".vmdk"):
        report = Reporter()
        with path.open("rb") as fh:
            VmdkMetadataCheck(name, Limits()).run(fh, len(data), report)
        ids += [p.message_id for p in report.problems]
        # read from its metadata, the whole read's verdict (the ovf adapter's checker)
        whole = VmdkChecker(name)
        for at in range(0, len(data), 65536):
            whole.feed(data[at : at + 65536])
        expected = [(m, tuple(str(a) for a in args)) for m, args in whole.close()]
        assert [(p.message_id, p.args) for p in report.problems] == expected
    else:
        kind = {"qcow2": "qcow2", "vhd": "vhd", "vhdx": "vhdx", "vdi": "vdi"}[name.split(".")[1]]
        check = DiskStreamCheck(name, kind, None, "d", Limits())
        for at in range(0, len(data), 65536):
            check.update(memoryview(data)[at : at + 65536])
        report = Reporter()
        check.finish(report)
        ids += [p.message_id for p in report.problems]
    assert set(ids) <= KNOWN, set(ids) - KNOWN
    assert isinstance(info["format"], str)
