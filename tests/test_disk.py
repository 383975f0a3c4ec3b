"""The ``disk`` item type: detection from content, the CLI, ``validator info``, limits,
the same parsers on a stream (OVF disks), and metadata-only reading."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from validator.checks import ItemType, Reporter
from validator.hookspecs import hookimpl
from validator.registry import Registry
from validator.session import Session

from .conftest import SAMPLES, CliResult, ids, validate
from .disks import ovf_text, qemu_img

MiB = 1 << 20
QCOW2_URI = "http://www.gnome.org/~markmc/qcow-image-format.html"
VHD_URI = "http://technet.microsoft.com/en-us/virtualserver/bb676673.aspx#monolithic_sparse"
VHDX_URI = "http://www.microsoft.com/en-us/download/details.aspx?id=34750"


def make(folder: Path, name: str, fmt: str, *options: str, size: str = "4M") -> Path:
    """An image made by qemu-img convert from 1 MiB of data (then zeros)."""
    src = folder / f"{name}.src"
    with open(src, "wb") as fh:
        fh.write(bytes(range(256)) * 4096)
        fh.truncate(int(size.rstrip("M")) * MiB if size.endswith("M") else 4 * MiB)
    out = folder / name
    subprocess.run(
        [qemu_img(), "convert", "-q", "-f", "raw", "-O", fmt, *options, str(src), str(out)],
        check=True,
    )
    src.unlink()
    return out


def test_a_lone_qcow2_is_a_disk_item(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    disk = make(tmp_path, "disk.qcow2", "qcow2")
    result = cli(disk)
    assert result.code == 0, result.out + result.err
    assert "valid disk item" in result.out


def test_the_type_comes_from_the_content_not_the_name(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    disk = make(tmp_path, "disk.bin", "vpc")  # no disk suffix: the footer says VHD
    result = cli("--format", "json", disk)
    assert result.code == 0 and result.json()["value"]["has_errors"] is False
    lie = make(tmp_path, "lie.vmdk", "qcow2")
    result = cli("--format", "json", lie)
    assert result.code == 1
    errors = result.json()["value"]["invalid_files"]
    assert [e["error_message"]["id"] for e in errors] == ["validator.disk.name_mismatch"]
    assert errors[0]["error_message"]["args"] == ["lie.vmdk", "VMDK", "qcow2"]


def test_a_file_that_is_no_disk_is_still_no_item(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    result = cli(path)
    assert result.code == 2 and "item type" in result.err


def test_iso_and_ovf_keep_their_types(tmp_path: Path) -> None:
    if shutil.which("genisoimage") is None:
        pytest.skip("genisoimage is not installed")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a\n")
    iso = tmp_path / "image.iso"
    subprocess.run(["genisoimage", "-quiet", "-o", str(iso), str(tmp_path / "src")], check=True)
    assert validate(iso).item_type == "iso"
    assert validate(SAMPLES / "vm.ovf").item_type == "ovf"
    # The same ISO image under a disk name is a disk item that says what it is.
    img = tmp_path / "image.img"
    shutil.copy(iso, img)
    result = validate(img)
    assert result.item_type == "disk"
    assert ids(result) == ["validator.disk.iso_image"]


def test_info_text_and_json(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    disk = make(tmp_path, "disk.qcow2", "qcow2", "-o", "cluster_size=128k")
    text = cli("info", disk)
    assert text.code == 0
    assert "format: qcow2" in text.out and "cluster_size: 131072" in text.out
    facts = cli("info", "--format", "json", disk).json()
    assert facts["item_type"] == "disk"
    assert facts["virtual_size"] == 4 * MiB
    assert facts["allocated_bytes"] == 1 * MiB  # one 128 KiB cluster per 128 KiB of data
    assert facts["risky_features"] == [] and facts["problems"] == []
    base = tmp_path / "base.qcow2"
    shutil.copy(disk, base)
    child = tmp_path / "child.qcow2"
    subprocess.run(
        [qemu_img(), "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", str(child)],
        check=True,
    )
    facts = cli("info", "--format", "json", child).json()
    assert facts["risky_features"] == ["backing file"]
    assert facts["backing_file"] == "base.qcow2"
    assert facts["problems"] == ["validator.disk.backing_file"]


def test_the_virtual_size_limit_is_declared(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    assert "disk_virtual_bytes=70368744177664" in cli("limits").out
    disk = make(tmp_path, "disk.vhdx", "vhdx")
    result = cli("--format", "json", "--limit", f"disk_virtual_bytes={4 * MiB - 1}", disk)
    errors = result.json()["value"]["invalid_files"]
    assert [e["error_message"]["id"] for e in errors] == ["validator.disk.virtual_size_limit"]


def test_a_10_gib_sparse_qcow2_costs_what_a_small_one_does(tmp_path: Path) -> None:
    from validator_plugins.disk.check import inspect

    from validator.limits import Limits

    read = {}
    for size in ("1M", "10G"):
        path = tmp_path / f"{size}.qcow2"
        subprocess.run([qemu_img(), "create", "-q", "-f", "qcow2", str(path), size], check=True)
        with path.open("rb") as fh:
            info, problems = inspect(path.name, fh, path.stat().st_size, Limits())
        assert problems == []
        read[size] = info["bytes_read"]
    assert read["10G"] < 2 * read["1M"] < 200_000


def test_a_10_gib_stream_vmdk_is_read_from_its_metadata(tmp_path: Path) -> None:
    """4 MiB of data in a 10 GiB streamOptimized disk: its tables (640 KiB, one per 32 MiB
    of capacity) and a marker per grain are read, not the data."""
    import os

    from validator_plugins.disk.check import VmdkMetadataCheck

    from validator.limits import Limits

    from .disks import qemu_convert, raw_image

    writes = [(i * (10 << 30) // 8, os.urandom(512 << 10)) for i in range(8)]
    raw = raw_image(tmp_path / "big.raw", 10 << 30, writes)
    disk = qemu_convert(raw, tmp_path / "big.vmdk")
    raw.unlink()
    size = disk.stat().st_size
    assert size > 4 * MiB
    check = VmdkMetadataCheck(disk.name, Limits())
    report = Reporter()
    with disk.open("rb") as fh:
        check.run(fh, size, report)
    assert report.problems == []
    # 64 grains of data: 64 markers, 640 KiB of tables read 64 KiB at a time
    assert check.bytes_read < MiB and check.reads < 100, (check.bytes_read, check.reads)
    assert ids(validate(disk)) == []


def test_vmdk_is_checked_by_the_ovf_adapters_checker(tmp_path: Path) -> None:
    from validator_plugins import disk as plugin
    from validator_plugins.disk.check import VmdkMetadataCheck

    from validator.checks import CheckContext
    from validator.limits import Limits
    from validator.session import Session, file_from_path

    def checks(path: Path) -> list[object]:
        session = Session(origin=str(path))
        session.offer(file_from_path(path))
        ctx = CheckContext(item_type="disk", limits=Limits())
        return list(plugin.validator_file_checks("disk", session, session.files[0], ctx) or [])

    stream = make(tmp_path, "stream.vmdk", "vmdk", "-o", "subformat=streamOptimized")
    sparse = make(tmp_path, "sparse.vmdk", "vmdk", "-o", "subformat=monolithicSparse")
    # both from their metadata (seek and read), a streamOptimized disk's markers too
    assert any(isinstance(c, VmdkMetadataCheck) for c in checks(stream))
    assert any(isinstance(c, VmdkMetadataCheck) for c in checks(sparse))
    assert ids(validate(sparse)) == []
    assert ids(validate(stream)) == []


def _vmdk_damages(data: bytes) -> dict[str, bytes]:
    import struct

    from validator_plugins.ovf.vmdk import SECTOR, Header

    h = Header.parse(data[:SECTOR])
    out = {"genuine": data, "cut": data[: len(data) // 2], "header-only": data[:SECTOR]}
    gd = bytearray(data)
    struct.pack_into("<I", gd, h.gd_offset * SECTOR, len(data) // SECTOR + 100)
    out["gt-outside"] = bytes(gd)
    gt = bytearray(data)
    first_gt = struct.unpack_from("<I", data, h.gd_offset * SECTOR)[0]
    struct.pack_into("<I", gt, first_gt * SECTOR, len(data) // SECTOR + 100)
    out["grain-outside"] = bytes(gt)
    desc = bytearray(data)
    at = h.descriptor_offset * SECTOR
    desc[at : at + 40] = b"# Disk DescriptorFile\nparentCID=12345678\n"[:40]
    out["descriptor"] = bytes(desc)
    capacity = bytearray(data)
    struct.pack_into("<Q", capacity, 12, 0)
    out["zero-capacity"] = bytes(capacity)
    far = bytearray(data)
    struct.pack_into("<Q", far, 28, len(data) // SECTOR + 10)  # descriptorOffset
    out["descriptor-past-the-end"] = bytes(far)  # once a ValueError (tests/test_disk_fuzz.py)
    return out


def test_a_sparse_vmdk_read_from_its_metadata_gets_the_whole_reads_verdict(
    tmp_path: Path,
) -> None:
    """VmdkSparseCheck (seek and read) against the ovf adapter's checker fed every byte."""
    from validator_plugins.disk.check import VmdkSparseCheck
    from validator_plugins.ovf.vmdk import VmdkChecker

    from validator.limits import Limits

    path = make(tmp_path, "sparse.vmdk", "vmdk", "-o", "subformat=monolithicSparse", size="8M")
    for label, data in _vmdk_damages(path.read_bytes()).items():
        whole = VmdkChecker("sparse.vmdk")
        for at in range(0, len(data), 65536):
            whole.feed(data[at : at + 65536])
        expected = [(m, tuple(str(a) for a in args)) for m, args in whole.close()]
        damaged = tmp_path / "damaged.vmdk"
        damaged.write_bytes(data)
        report = Reporter()
        with damaged.open("rb") as fh:
            VmdkSparseCheck("sparse.vmdk", Limits()).run(fh, len(data), report)
        got = [(p.message_id, p.args) for p in report.problems]
        assert got == expected, label
        assert (label == "genuine") == (not got), label


def _whole_and_metadata(
    name: str, data: bytes, folder: Path, budget: int = 256 << 20
) -> tuple[list[object], list[object], int]:
    """The ovf adapter's checker fed every byte, and VmdkMetadataCheck (seek and read)."""
    from validator_plugins.disk.check import VmdkMetadataCheck
    from validator_plugins.ovf.vmdk import VmdkChecker

    from validator.limits import Limits

    whole = VmdkChecker(name)
    for at in range(0, len(data), 65536):
        whole.feed(data[at : at + 65536])
    expected: list[object] = [(m, tuple(str(a) for a in args)) for m, args in whole.close()]
    damaged = folder / "damaged.vmdk"
    damaged.write_bytes(data)
    report = Reporter()
    check = VmdkMetadataCheck(name, Limits(disk_metadata_bytes=budget))
    with damaged.open("rb") as fh:
        check.run(fh, len(data), report)
    got: list[object] = [(p.message_id, p.args) for p in report.problems]
    return expected, got, check.bytes_read


def _stream_spots(data: bytes) -> dict[str, int]:
    """Where a streamOptimized disk's metadata lies: header fields, descriptor, directory,
    tables, and the first bytes of every marker (walked here as a reader does)."""
    import struct

    from validator_plugins.ovf.vmdk import GD_AT_END, SECTOR, Header

    h = Header.parse(data[:SECTOR])
    spots = {"magic": 0, "version": 4, "flags": 9, "flags-hi": 10, "capacity": 12,
             "grain": 20, "desc-offset": 28, "desc-size": 36, "gtes": 44, "gd-offset": 56,
             "overhead": 64, "newline": 73, "compress": 77,
             "descriptor": h.descriptor_offset * SECTOR + 30}  # fmt: skip
    at, n = h.overhead * SECTOR, 0
    while at + 16 <= len(data) and n < 400:
        val, size, kind = struct.unpack_from("<QII", data, at)
        tag = "grain" if size else {0: "eos", 1: "gt", 2: "gd", 3: "footer"}.get(kind, "?")
        if n < 3 or tag != "grain":
            spots[f"{tag}{n}-lba"] = at
            spots[f"{tag}{n}-size"] = at + 8
            spots[f"{tag}{n}-kind"] = at + 12
            if tag in ("gt", "gd", "footer"):
                spots[f"{tag}{n}-body"] = at + SECTOR + 1
        if tag == "eos" or tag == "?":
            break
        at += -(-(12 + size) // SECTOR) * SECTOR if size else SECTOR + val * SECTOR
        n += 1
    gd = h.gd_offset if h.gd_offset != GD_AT_END else Header.parse(data[-1024:-512]).gd_offset
    if 0 < gd * SECTOR < len(data) - 4:
        spots["gd-entry"] = gd * SECTOR
        gt = struct.unpack_from("<I", data, gd * SECTOR)[0]
        if 0 < gt * SECTOR < len(data) - 4:
            spots["gt-entry"] = gt * SECTOR
            spots["gt-entry-hi"] = gt * SECTOR + 3
    return spots


def _stream_damages(data: bytes) -> dict[str, bytes]:
    import random

    from validator_plugins.ovf.vmdk import SECTOR

    out = {"genuine": data}
    for cut in (SECTOR, len(data) // 2, len(data) - 1, len(data) - SECTOR, len(data) - 1024,
                len(data) - 16, 129 * SECTOR + 5):  # fmt: skip
        if 0 < cut < len(data):
            out[f"cut-{cut}"] = data[:cut]
    for spot, at in _stream_spots(data).items():
        for value in (0x00, 0xFF, data[at] ^ 0x01):
            if at < len(data) and value != data[at]:
                flipped = bytearray(data)
                flipped[at] = value
                out[f"{spot}={value:02x}"] = bytes(flipped)
    rng = random.Random(len(data))
    for i in range(20):
        flipped = bytearray(data)
        flipped[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        out[f"random-{i}"] = bytes(flipped)
    out["appended-zeros"] = data + bytes(3 * SECTOR)
    out["appended-data"] = data + bytes(SECTOR) + b"x"
    return out


def _stream_disks(folder: Path) -> dict[str, bytes]:
    from .disks import (
        VMDKSTREAM,
        open_vmdk_stream,
        qemu_convert,
        raw_image,
        vmdkstream,
        vmware_stream,
    )

    raw = raw_image(folder / "in.raw", 3 * MiB + 12 * 1024,
                    [(0, bytes(range(256)) * 600), (2 * MiB + 7, b"end" * 4000)])  # fmt: skip
    disks = {}
    for option in ("", "compat6=on", "adapter_type=ide", "hwversion=4", "zeroed_grain=on",
                   "toolsversion=12345"):  # fmt: skip
        out = qemu_convert(raw, folder / "q.vmdk", "streamOptimized", *([option] if option else []))
        disks[f"qemu {option or 'default'}"] = out.read_bytes()
    vmware = vmware_stream(folder / "v.vmdk", "generated-stream.vmdk", grains=5)
    disks["vmware"] = vmware.read_bytes()
    disks["vmware-no-footer"] = vmware_stream(folder / "n.vmdk", "x", footer=False).read_bytes()
    disks["open-vmdk"] = open_vmdk_stream(folder / "o.vmdk", raw.read_bytes()).read_bytes()
    if VMDKSTREAM.is_file():  # python3-vmdkstream (in the README's apt line)
        disks["vmdkstream"] = vmdkstream(raw, folder / "s.vmdk").read_bytes()
    return disks


def test_a_stream_vmdk_read_from_its_metadata_gets_the_whole_reads_verdict(
    tmp_path: Path,
) -> None:
    """Every producer's streamOptimized layout, whole and damaged (cuts, flipped bytes in the
    header, descriptor, directory, tables, markers, footer, end-of-stream marker, random
    bits, bytes appended): VmdkMetadataCheck's problems are the whole read's, and a genuine
    disk is read in a few KiB."""
    disks = _stream_disks(tmp_path)
    assert {"qemu default", "vmware", "open-vmdk"} <= disks.keys()
    checked = 0
    for disk, data in disks.items():
        for label, damaged in _stream_damages(data).items():
            expected, got, read = _whole_and_metadata("s.vmdk", damaged, tmp_path)
            assert got == expected, (disk, label)
            checked += 1
            if label == "genuine":
                assert got == [] or disk == "vmware-no-footer", disk
                # metadata (read 64 KiB at a time), 16 bytes a grain, and qemu-img's zero
                # padding of its last grain's cluster (up to 64 KiB, read to see it is zeros)
                assert read < 160 * 1024, (disk, read)
            if label == "genuine" or label.startswith("cut-"):
                # past disk_metadata_bytes (each read charged 4 KiB) the rest is read whole
                expected, got, read = _whole_and_metadata("s.vmdk", damaged, tmp_path, 4096)
                assert got == expected, (disk, label, "budget")
                assert label != "genuine" or read > len(damaged) // 2, (disk, read)
    assert checked > 500


# -- the same parsers on a stream --------------------------------------------------


STREAMED = [
    ("q.qcow2", "qcow2", ()),
    ("q2.qcow2", "qcow2", ("-o", "compat=0.10")),
    ("qc.qcow2", "qcow2", ("-c",)),
    ("qe.qcow2", "qcow2", ("-o", "extended_l2=on")),
    ("d.vhd", "vpc", ()),
    ("f.vhd", "vpc", ("-o", "subformat=fixed")),
    ("x.vhdx", "vhdx", ()),
    ("v.vdi", "vdi", ()),
]


@pytest.mark.parametrize(("name", "fmt", "options"), STREAMED)
@pytest.mark.parametrize("damage", ["none", "cut", "flip"])
def test_a_stream_finds_what_a_seek_finds(
    tmp_path: Path, name: str, fmt: str, options: tuple[str, ...], damage: str
) -> None:
    from validator_plugins.disk.check import DiskStreamCheck, inspect

    from validator.limits import Limits

    path = make(tmp_path, name, fmt, *options)
    data = bytearray(path.read_bytes())
    if damage == "cut":
        del data[len(data) * 2 // 3 :]
    elif damage == "flip":
        data[70] ^= 0xFF
    path.write_bytes(bytes(data))
    with path.open("rb") as fh:
        _, problems = inspect(name, fh, len(data), Limits())
    seek = [(m, a) for m, a in problems if m != "validator.disk.name_mismatch"]
    kind = "vhd" if fmt == "vpc" else fmt
    for chunk in (4096, 65536 + 7, 1 << 20):
        check = DiskStreamCheck(name, kind, None, "d1", Limits())
        for at in range(0, len(data), chunk):
            check.update(memoryview(data)[at : at + chunk])
        report = Reporter()
        check.finish(report)
        streamed = [(p.message_id, p.args) for p in report.problems]
        if streamed and streamed[0][0] == "validator.disk.format_mismatch":
            # the damage made it another format: the file check says so its way
            assert len(seek) < len(problems) or seek[0][0] == "validator.disk.bad_signature"
            continue
        assert streamed == [(m, tuple(str(x) for x in a)) for m, a in seek], chunk


# -- inside OVF packages ------------------------------------------------------------


def virtual_size(disk: Path) -> int:
    info = subprocess.run(
        [qemu_img(), "info", "--output=json", str(disk)], check=True, capture_output=True
    )
    size: int = json.loads(info.stdout)["virtual-size"]
    return size


def bundle(folder: Path, disk: Path, uri: str, compression: str | None = None) -> Path:
    folder.mkdir()
    capacity = virtual_size(disk)
    href = disk.name + (".gz" if compression else "")
    data = disk.read_bytes()
    if compression:
        data = gzip.compress(data)
    (folder / href).write_bytes(data)
    (folder / "vm.ovf").write_text(
        ovf_text(href, len(data), capacity, uri, compression=compression), encoding="utf-8"
    )
    return folder


def test_ovf_packages_get_the_disk_checks(tmp_path: Path) -> None:
    qcow2 = make(tmp_path, "disk.qcow2", "qcow2")
    assert ids(validate(bundle(tmp_path / "q", qcow2, QCOW2_URI))) == []
    assert ids(validate(bundle(tmp_path / "qz", qcow2, QCOW2_URI, "gzip"))) == []
    vhd = make(tmp_path, "disk.vhd", "vpc")
    assert ids(validate(bundle(tmp_path / "v", vhd, VHD_URI))) == []
    vhdx = make(tmp_path, "disk.vhdx", "vhdx")
    assert ids(validate(bundle(tmp_path / "x", vhdx, VHDX_URI))) == []
    # the declared format is not the content's
    result = validate(bundle(tmp_path / "m", vhd, QCOW2_URI))
    assert ids(result) == ["validator.disk.format_mismatch"]
    assert result.invalid_files[0].error_message.args == ("disk.vhd", "qcow2", "VHD")


def test_an_ovf_qcow2_with_a_backing_file_is_refused(tmp_path: Path) -> None:
    base = make(tmp_path, "base.qcow2", "qcow2")
    child = tmp_path / "disk.qcow2"
    subprocess.run(
        [qemu_img(), "create", "-q", "-f", "qcow2", "-b", base.name, "-F", "qcow2", str(child)],
        check=True,
        cwd=tmp_path,
    )
    result = validate(bundle(tmp_path / "b", child, QCOW2_URI))
    assert ids(result) == ["validator.disk.backing_file"]
    assert result.invalid_files[0].error_message.args == ("disk.qcow2", "qcow2", "base.qcow2")


def test_an_ovf_disk_larger_than_declared(tmp_path: Path) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    disk = make(tmp_path, "disk.qcow2", "qcow2", size="8M")
    shutil.copy(disk, folder / "disk.qcow2")
    size = disk.stat().st_size
    (folder / "vm.ovf").write_text(ovf_text("disk.qcow2", size, 4 * MiB, QCOW2_URI))
    assert ids(validate(folder)) == ["validator.disk.capacity_exceeds_declared"]


def test_format_uris(tmp_path: Path) -> None:
    from validator_plugins.disk import uri_format

    assert uri_format("http://people.gnome.org/~markmc/qcow-image-format.html") == "qcow2"
    assert uri_format("https://www.gnome.org/~markmc/qcow-image-format.html#x") == "qcow2"
    assert uri_format(VHD_URI) == "vhd"
    assert uri_format(VHDX_URI) == "vhdx"
    # left to others: the OVF adapter's VMDK, and URIs nobody claims
    assert (
        uri_format("http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized")
        is None
    )
    assert uri_format("https://www.qemu.org/docs/master/interop/qcow2.html") is None


def test_a_fat_boot_sector_is_no_partition_table(tmp_path: Path) -> None:
    """A floppy or partition image ends its first sector in 55 AA too; its boot code is
    not read as MBR partitions (which would lie far past its end)."""
    head = bytearray(1 << 20)
    head[0:3] = b"\xeb\x3c\x90"
    head[3:11] = b"mkfs.fat"
    head[54:62] = b"FAT12   "
    head[446:510] = bytes(range(64))  # boot code
    head[510:512] = b"\x55\xaa"
    image = tmp_path / "floppy.img"
    image.write_bytes(bytes(head))
    result = validate(image)
    assert result.item_type == "disk" and ids(result) == []


class _Plain(ItemType):
    """An item type whose plugin has no ``validator_describe``."""

    name = "plain"
    summary = "text files"

    def detect(self, session: Session) -> int:
        return 10 if any(n.endswith(".txt") for n in session.names()) else 0


class _PlainPlugin:
    @hookimpl
    def validator_item_types(self) -> list[ItemType]:
        return [_Plain()]


def test_info_without_a_description(
    tmp_path: Path, cli: Callable[..., CliResult], make_registry: Callable[..., Registry]
) -> None:
    make_registry(("plain", _PlainPlugin()))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("hello\n")
    result = cli("info", tmp_path / "notes")
    assert result.code == 2 and "no plugin describes items of type plain" in result.err
    result = cli("info", tmp_path / "missing.qcow2")
    assert result.code == 2 and result.err.startswith("validator: ")


def test_an_ova_on_standard_input_gets_the_qcow2_checks(tmp_path: Path) -> None:
    import io
    import os
    import tarfile

    from .conftest import run_module

    base = make(tmp_path, "base.qcow2", "qcow2")
    child = tmp_path / "disk.qcow2"
    subprocess.run(
        [qemu_img(), "create", "-q", "-f", "qcow2", "-b", base.name, "-F", "qcow2", str(child)],
        check=True,
        cwd=tmp_path,
    )
    ovf = ovf_text("disk.qcow2", child.stat().st_size, virtual_size(child), QCOW2_URI).encode()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in (("vm.ovf", ovf), ("disk.qcow2", child.read_bytes())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    env = {**os.environ, "VALIDATOR_LOAD_PLUGINS": ""}
    proc = run_module("--format", "json", "-", env=env, input=archive.getvalue())
    errors = json.loads(proc.stdout)["value"]["invalid_files"]
    assert [(e["name"], e["error_message"]["id"]) for e in errors] == [
        ("disk.qcow2", "validator.disk.backing_file")
    ]
