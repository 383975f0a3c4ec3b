"""Pure UDF images as mkudffs (udftools) makes them, and UDF damage pycdlib found and we missed.

mkudffs writes an empty UDF file system into a file: 512-byte blocks for a
hard-disk image (its default for a file), 2048 for optical media, any block
size on request, and on write-once media an open volume with a virtual
allocation table (VAT) whose partition is as large as the blank disc.  Each
is genuine and must be valid; damaged copies are made here in code.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import ids, validate
from .test_iso import SECTOR, damaged, need

BUILDS = {
    "cd": ["--media-type=cd"],  # 2048-byte blocks, read-only partition, 3 anchors
    "hd": ["--media-type=hd"],  # 512-byte blocks
    "4k": ["--media-type=hd", "--blocksize=4096"],
    "cdrw": ["--media-type=cdrw"],  # sparable partition map
    "dvdr": ["--media-type=dvdr"],  # write-once, open: VAT, partition beyond the file
    "bdr": ["--media-type=bdr"],  # UDF 2.50 write-once: VAT and metadata partition
}


@pytest.fixture(scope="module")
def udf_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tool = shutil.which("mkudffs")
    if tool is None:
        pytest.skip("mkudffs is not installed (apt-get install udftools)")
    base = tmp_path_factory.mktemp("udf")
    out: dict[str, Path] = {}
    for name, args in BUILDS.items():
        path = base / f"{name}.iso"
        cmd = [tool, "--new-file", *args, str(path), "4096"]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        out[name] = path
    return out


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """genisoimage images: a UDF bridge and Joliet + Rock Ridge."""
    tool = need("genisoimage")
    base = tmp_path_factory.mktemp("bridge")
    src = base / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("hello\n")
    (src / "sub" / "b.txt").write_text("b\n")
    out = {"udf": base / "udf.iso", "jr": base / "jr.iso"}
    for args, path in ((["-udf", "-J", "-R"], out["udf"]), (["-J", "-R"], out["jr"])):
        cmd = [tool, "-quiet", *args, "-o", str(path), str(src)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return out


def block_size(d: bytes | bytearray) -> int:
    return next(s for s in (2048, 512, 1024, 4096) if d[256 * s : 256 * s + 2] == b"\x02\x00")


def le32(d: bytes | bytearray, at: int) -> int:
    return int.from_bytes(d[at : at + 4], "little")


@pytest.mark.parametrize("name", list(BUILDS))
def test_mkudffs_images_are_valid(udf_images: dict[str, Path], name: str) -> None:
    result = validate(udf_images[name])
    assert result.item_type == "iso"
    assert ids(result) == []
    # pycdlib needs an ISO 9660 primary descriptor: its refusal stays a warning.
    assert [w.error_message.id for w in result.warnings] == ["validator.iso.pycdlib.rejected"]


def test_block_sizes_are_found(udf_images: dict[str, Path]) -> None:
    from validator_plugins.iso.check import inspect
    from validator_plugins.iso.image import Image

    for name, size in (("cd", 2048), ("hd", 512), ("4k", 4096)):
        path = udf_images[name]
        with path.open("rb") as fh:
            img = Image(fh, path.stat().st_size)
            f = inspect(img, 1000, use_pycdlib=False)
        assert f.udf and f.udf_block_size == size, name
        assert img.bytes_read < 256 * 1024  # metadata only, the tail's anchors included


@pytest.mark.parametrize("name", ["cd", "hd", "4k", "cdrw"])
@pytest.mark.parametrize("cut", [1, 100, 300], ids=lambda n: f"{n}-blocks")
def test_truncated_pure_udf(
    udf_images: dict[str, Path], tmp_path: Path, name: str, cut: int
) -> None:
    """Losing the tail: the backup anchors at N and N-256 tell a one-block cut too."""
    data = udf_images[name].read_bytes()
    path = tmp_path / "cut.iso"
    path.write_bytes(data[: len(data) - cut * block_size(data)])
    assert ids(validate(path)) == ["validator.iso.image.truncated"]


def test_truncated_to_half(udf_images: dict[str, Path], tmp_path: Path) -> None:
    for name in ("cd", "hd"):
        data = udf_images[name].read_bytes()
        path = tmp_path / f"{name}.iso"
        path.write_bytes(data[: len(data) // 2])
        assert ids(validate(path)) == ["validator.iso.image.truncated"], name


@pytest.mark.parametrize("name", ["cd", "hd"])
def test_padding_after_a_pure_udf_image_is_fine(
    udf_images: dict[str, Path], tmp_path: Path, name: str
) -> None:
    for blocks in (1, 100, 1000):
        path = tmp_path / "padded.iso"
        data = udf_images[name].read_bytes()
        path.write_bytes(data + bytes(blocks * block_size(data)))
        assert ids(validate(path)) == [], blocks


@pytest.mark.parametrize("name", ["hd", "4k"])
def test_damaged_anchor_with_other_block_sizes(
    udf_images: dict[str, Path], tmp_path: Path, name: str
) -> None:
    def flip(d: bytearray) -> None:
        d[256 * block_size(d) + 20] ^= 0x01  # main sequence location: covered by the CRC

    assert ids(validate(damaged(tmp_path, udf_images[name], flip))) == [
        "validator.iso.udf.bad_tag_crc"
    ]


def test_open_write_once_volume_cut(udf_images: dict[str, Path], tmp_path: Path) -> None:
    """The VAT is in the last recorded sector: a cut (or padding) loses it from the end."""
    for name in ("dvdr", "bdr"):
        data = udf_images[name].read_bytes()
        for content in (data[:-SECTOR], data[: -20 * SECTOR], data + bytes(16 * SECTOR)):
            path = tmp_path / f"{name}.iso"
            path.write_bytes(content)
            assert ids(validate(path)) == ["validator.iso.udf.no_vat"], name
        path.write_bytes(data[: len(data) // 2])  # the anchor at sector 256 is gone too
        assert ids(validate(path)) == ["validator.iso.image.truncated"], name


def test_zeroed_anchor_of_a_write_once_volume(udf_images: dict[str, Path], tmp_path: Path) -> None:
    def zero(d: bytearray) -> None:
        d[256 * SECTOR : 257 * SECTOR] = bytes(SECTOR)

    assert ids(validate(damaged(tmp_path, udf_images["dvdr"], zero))) == [
        "validator.iso.udf.no_anchor"
    ]


# -- UDF bridge (genisoimage -udf): what only pycdlib noticed before ------------------------


def sequence_sectors(d: bytes | bytearray, which: int) -> range:
    """Sectors of the main (0) or reserve (1) volume descriptor sequence of a 2048 image."""
    anchor = 256 * SECTOR
    length, location = le32(d, anchor + 16 + 8 * which), le32(d, anchor + 20 + 8 * which)
    return range(location, location + length // SECTOR)


def test_damaged_reserve_sequence(bridge: dict[str, Path], tmp_path: Path) -> None:
    def edit(d: bytearray) -> None:
        first = sequence_sectors(d, 1)[0]
        d[first * SECTOR + 100] ^= 0x01

    result = validate(damaged(tmp_path, bridge["udf"], edit))
    assert ids(result) == ["validator.iso.udf.bad_tag_crc"]


def edit_file_set(edit: Callable[[bytearray, int], None]) -> Callable[[bytearray], None]:
    """Apply ``edit`` to the file set descriptor's sector (found through the LVD)."""

    def apply(d: bytearray) -> None:
        lvd = next(s for s in sequence_sectors(d, 0) if d[s * SECTOR] == 6) * SECTOR
        pd = next(s for s in sequence_sectors(d, 0) if d[s * SECTOR] == 5) * SECTOR
        edit(d, (le32(d, pd + 188) + le32(d, lvd + 252)) * SECTOR)

    return apply


def test_damaged_file_set_descriptor(bridge: dict[str, Path], tmp_path: Path) -> None:
    def flip(d: bytearray, at: int) -> None:
        d[at + 120] ^= 0x01  # the logical volume identifier: covered by the CRC

    result = validate(damaged(tmp_path, bridge["udf"], edit_file_set(flip)))
    assert ids(result) == ["validator.iso.udf.bad_tag_crc"]


def test_damaged_root_directory_entry(bridge: dict[str, Path], tmp_path: Path) -> None:
    def flip(d: bytearray, fsd: int) -> None:
        start = fsd - le32(d, fsd + 12) * SECTOR  # the partition's first byte
        d[start + le32(d, fsd + 404) * SECTOR + 5] ^= 0x01  # the root entry's tag checksum

    result = validate(damaged(tmp_path, bridge["udf"], edit_file_set(flip)))
    assert ids(result) == ["validator.iso.udf.bad_tag_checksum"]


# -- Rock Ridge continuation (CE) both-endian fields ----------------------------------------


def test_rock_ridge_continuation_endian_mismatch(bridge: dict[str, Path], tmp_path: Path) -> None:
    """The root's '.' record holds the SP and (genisoimage) a CE to the ER entry."""

    def edit(d: bytearray) -> None:
        pvd = 16 * SECTOR
        root = le32(d, pvd + 156 + 2) * SECTOR
        ce = d.index(b"CE\x1c\x01", root, root + d[root])
        d[ce + 12 + 4 + 3] ^= 0x01  # the big-endian copy of the continuation offset

    result = validate(damaged(tmp_path, bridge["jr"], edit))
    assert ids(result) == ["validator.iso.rockridge.endian_mismatch"]
    assert result.invalid_files[0].error_message.args[1] == "continuation offset"
