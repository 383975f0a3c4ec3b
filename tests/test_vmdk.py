"""VMDK disks in OVF packages: real qemu-img disks, and damaged copies of them."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from validator_plugins.ovf.vmdk import VmdkChecker

from .conftest import ids, validate
from .disks import (
    SPARSE,
    STREAM,
    bundle,
    edit_descriptor,
    make_vmdk,
    ovf_text,
    patch_header,
    truncate,
    vmware_stream,
)

MiB = 1 << 20


@pytest.fixture(scope="module")
def disks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    def one(kind: str, subformat: str, data: bool = True) -> Path:
        # qemu-img writes the file's own name in the extent line: always disk.vmdk
        return make_vmdk(tmp_path_factory.mktemp(kind), "disk.vmdk", subformat, data=data)

    return {
        "stream": one("stream", "streamOptimized"),
        "sparse": one("sparse", "monolithicSparse"),
        "empty": one("empty", "streamOptimized", data=False),
    }


@pytest.fixture
def damaged(disks: dict[str, Path], tmp_path: Path) -> Callable[..., Path]:
    """A bundle with a copy of a disk, named disk.vmdk, to damage in place."""

    def make(kind: str = "stream", **kwargs: object) -> Path:
        fmt = SPARSE if kind == "sparse" else STREAM
        kwargs.setdefault("disk_format", fmt)
        folder = bundle(tmp_path / "b", disks[kind], **kwargs)  # type: ignore[arg-type]
        return folder

    return make


def fix_size(folder: Path, capacity: int = 4 * MiB, disk_format: str = STREAM) -> None:
    size = (folder / "disk.vmdk").stat().st_size
    (folder / "vm.ovf").write_text(ovf_text("disk.vmdk", size, capacity, disk_format))


# -- good disks -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["stream", "sparse", "empty"])
def test_real_disks_are_valid(damaged: Callable[..., Path], kind: str) -> None:
    result = validate(damaged(kind))
    assert ids(result) == [], result.invalid_files


def test_declared_capacity_may_exceed_the_disk(damaged: Callable[..., Path]) -> None:
    assert ids(validate(damaged("stream", capacity=8 * MiB))) == []


def test_vmware_layout_with_footer_is_valid(tmp_path: Path) -> None:
    disk = vmware_stream(tmp_path / "src.vmdk", "disk.vmdk")
    assert ids(validate(bundle(tmp_path / "b", disk))) == []


def test_fed_in_any_piece_size(disks: dict[str, Path]) -> None:
    data = disks["stream"].read_bytes()
    for piece in (1, 511, 4096, 1 << 20):
        checker = VmdkChecker("disk.vmdk")
        for i in range(0, min(len(data), 200_000) if piece == 1 else len(data), piece):
            checker.feed(data[i : i + piece])
        if piece == 1:
            checker.feed(data[200_000:])
        assert checker.close() == []


# -- damaged disks ----------------------------------------------------------------


def test_truncated_stream(damaged: Callable[..., Path]) -> None:
    folder = damaged("stream")
    disk = folder / "disk.vmdk"
    truncate(disk, disk.stat().st_size - 10_000)
    fix_size(folder)
    assert ids(validate(folder)) == ["validator.ovf.vmdk.truncated"]


def test_truncated_sparse(damaged: Callable[..., Path]) -> None:
    folder = damaged("sparse")
    disk = folder / "disk.vmdk"
    truncate(disk, disk.stat().st_size // 2)
    fix_size(folder, disk_format=SPARSE)
    assert ids(validate(folder)) == ["validator.ovf.vmdk.grain_outside"]


def test_vmware_layout_cut_short_has_no_footer(tmp_path: Path) -> None:
    disk = vmware_stream(tmp_path / "src.vmdk", "disk.vmdk")
    truncate(disk, disk.stat().st_size - 1536)
    assert ids(validate(bundle(tmp_path / "b", disk))) == ["validator.ovf.vmdk.no_footer"]


def test_footer_must_match_header(tmp_path: Path) -> None:
    disk = vmware_stream(tmp_path / "src.vmdk", "disk.vmdk")
    data = bytearray(disk.read_bytes())
    footer = len(data) - 1024
    data[footer + 12 : footer + 20] = (4096).to_bytes(8, "little")  # capacity
    disk.write_bytes(bytes(data))
    assert ids(validate(bundle(tmp_path / "b", disk))) == ["validator.ovf.vmdk.footer_mismatch"]


def test_not_a_vmdk(damaged: Callable[..., Path]) -> None:
    folder = damaged("stream")
    patch_header(folder / "disk.vmdk", magic=b"QFI\xfb")
    assert ids(validate(folder)) == ["validator.ovf.vmdk.not_vmdk"]


def test_zero_capacity(damaged: Callable[..., Path]) -> None:
    folder = damaged("empty")
    patch_header(folder / "disk.vmdk", capacity=0)
    assert ids(validate(folder)) == [
        "validator.ovf.vmdk.zero_capacity",
        "validator.ovf.vmdk.extent_size_mismatch",
    ]


def test_header_fields(damaged: Callable[..., Path]) -> None:
    folder = damaged("empty")
    patch_header(folder / "disk.vmdk", version=7, grain_size=100, gtes=256, newline=b"\n \n\n")
    assert ids(validate(folder)) == [
        "validator.ovf.vmdk.bad_version",
        "validator.ovf.vmdk.bad_grain_size",
        "validator.ovf.vmdk.bad_gtes_per_gt",
        "validator.ovf.vmdk.bad_newline_bytes",
    ]


def test_capacity_larger_than_declared(damaged: Callable[..., Path]) -> None:
    result = validate(damaged("stream", capacity=1 * MiB))
    assert ids(result) == ["validator.ovf.vmdk.capacity_exceeds_declared"]
    assert result.invalid_files[0].error_message.args == (
        "disk.vmdk",
        str(4 * MiB),
        str(1 * MiB),
        "vmdisk1",
    )


def test_cve_2022_47951_create_type_case(damaged: Callable[..., Path]) -> None:
    folder = damaged("stream")
    edit_descriptor(
        folder / "disk.vmdk",
        'createType="streamOptimized"',
        'CREATETYPE="streamOptimized"\ncreateType="monolithicFlat"',
    )
    assert ids(validate(folder)) == [
        "validator.ovf.vmdk.descriptor_key_case",
        "validator.ovf.vmdk.bad_create_type",
    ]


def test_duplicate_key(damaged: Callable[..., Path]) -> None:
    folder = damaged("stream")
    edit_descriptor(folder / "disk.vmdk", "parentCID=ffffffff", "parentCID=ffffffff\nCID=1")
    assert ids(validate(folder)) == ["validator.ovf.vmdk.descriptor_duplicate_key"]


def test_flat_extent(damaged: Callable[..., Path]) -> None:
    folder = damaged("stream")
    edit_descriptor(folder / "disk.vmdk", 'SPARSE "disk.vmdk"', 'FLAT "disk.vmdk" 0')
    assert ids(validate(folder)) == ["validator.ovf.vmdk.bad_extent_type"]


def test_second_extent(damaged: Callable[..., Path]) -> None:
    folder = damaged("stream")
    edit_descriptor(
        folder / "disk.vmdk",
        'RW 8192 SPARSE "disk.vmdk"',
        'RW 8192 SPARSE "disk.vmdk"\nRW 8192 VMFS "/vmfs/volumes/x/flat.vmdk"',
    )
    assert ids(validate(folder)) == [
        "validator.ovf.vmdk.extent_count",
        "validator.ovf.vmdk.bad_extent_type",
    ]


def test_parent(damaged: Callable[..., Path]) -> None:
    folder = damaged("stream")
    edit_descriptor(
        folder / "disk.vmdk",
        "parentCID=ffffffff",
        'parentCID=1234abcd\nparentFileNameHint="base.vmdk"',
    )
    assert ids(validate(folder)) == ["validator.ovf.vmdk.has_parent"] * 2


@pytest.mark.parametrize("target", ["other.vmdk", "generated-stream.vmdk", "disk", "/etc/passwd"])
def test_the_name_of_the_one_sparse_extent_does_not_matter(
    damaged: Callable[..., Path], target: str
) -> None:
    """A single-file disk is its own extent: readers never open the name it carries."""
    folder = damaged("stream")
    edit_descriptor(folder / "disk.vmdk", 'SPARSE "disk.vmdk"', f'SPARSE "{target}"')
    assert ids(validate(folder)) == []


def test_a_sparse_extent_without_a_file_name(damaged: Callable[..., Path]) -> None:
    folder = damaged("stream")
    edit_descriptor(folder / "disk.vmdk", 'SPARSE "disk.vmdk"', "SPARSE")
    assert ids(validate(folder)) == ["validator.ovf.vmdk.descriptor_bad_line"]


def test_extent_size_must_be_the_capacity(damaged: Callable[..., Path]) -> None:
    folder = damaged("stream")
    edit_descriptor(folder / "disk.vmdk", "RW 8192 SPARSE", "RW 4096 SPARSE")
    assert ids(validate(folder)) == ["validator.ovf.vmdk.extent_size_mismatch"]


def test_create_type_must_match_header_and_format(damaged: Callable[..., Path]) -> None:
    folder = damaged("stream")
    edit_descriptor(folder / "disk.vmdk", '"streamOptimized"', '"monolithicSparse"')
    assert ids(validate(folder)) == [
        "validator.ovf.vmdk.create_type_mismatch",
        "validator.ovf.vmdk.format_mismatch",
    ]


def test_grain_directory_outside(damaged: Callable[..., Path]) -> None:
    folder = damaged("sparse")
    patch_header(folder / "disk.vmdk", gd_offset=1 << 30)
    assert ids(validate(folder)) == ["validator.ovf.vmdk.gd_outside"]


def test_gzip_disk_is_checked_on_its_content(disks: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "gz"
    folder.mkdir()
    data = bytearray(disks["stream"].read_bytes())
    data[:4] = b"XXXX"
    packed = gzip.compress(bytes(data), compresslevel=1)
    (folder / "disk.vmdk").write_bytes(packed)
    (folder / "vm.ovf").write_text(
        ovf_text("disk.vmdk", len(packed), 4 * MiB, STREAM, compression="gzip")
    )
    assert ids(validate(folder)) == ["validator.ovf.vmdk.not_vmdk"]
    shutil.copy(disks["stream"], tmp_path / "plain")
    (folder / "disk.vmdk").write_bytes(gzip.compress((tmp_path / "plain").read_bytes()))
    (folder / "vm.ovf").write_text(
        ovf_text(
            "disk.vmdk", (folder / "disk.vmdk").stat().st_size, 4 * MiB, STREAM, compression="gzip"
        )
    )
    assert ids(validate(folder)) == []


def test_unknown_vmdk_variant_and_format(damaged: Callable[..., Path]) -> None:
    flat = "http://www.vmware.com/interfaces/specifications/vmdk.html#monolithicFlat"
    assert ids(validate(damaged("stream", disk_format=flat))) == ["validator.ovf.vmdk.bad_variant"]


def test_hostile_bytes_never_raise() -> None:
    import random

    rng = random.Random(7)
    for _ in range(300):
        head = bytearray(b"KDMV" + bytes(rng.randrange(256) for _ in range(1020)))
        checker = VmdkChecker("x.vmdk")
        checker.feed(bytes(head))
        checker.feed(bytes(rng.randrange(256) for _ in range(rng.randrange(4096))))
        checker.close()


def test_huge_grain_directory_is_bounded(damaged: Callable[..., Path]) -> None:
    folder = damaged("sparse", capacity=1 << 60)
    patch_header(folder / "disk.vmdk", capacity=1 << 45)
    assert ids(validate(folder)) == [
        "validator.ovf.vmdk.limit_grain_directory",
        "validator.ovf.vmdk.extent_size_mismatch",
    ]
