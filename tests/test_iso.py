"""The iso type adapter on real images (genisoimage, xorriso) and damaged copies of them.

Images are built once per module in a temporary folder; each damage is a
copy with a few bytes changed at a place found by parsing the copy, so the
tests do not depend on one tool version's layout.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from validator.engine import Engine
from validator.limits import Limits
from validator.results import ValidationResult

from .conftest import SAMPLES, ids, run_module, validate

SECTOR = 2048
TOOLS = ("genisoimage", "xorriso")


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (apt-get install {tool})")
    return path


def run(*cmd: str | Path) -> None:
    subprocess.run([str(c) for c in cmd], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Genuine images: plain, Joliet + Rock Ridge, UDF bridge, El Torito, hybrid MBR and GPT."""
    base = tmp_path_factory.mktemp("iso")
    src = base / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "a.txt").write_text("hello\n")
    (src / "a long file name.txt").write_text("long name\n")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 20)
    (src / "sub" / "deeper" / "c.txt").write_text("c\n")
    boot = base / "bootsrc"
    shutil.copytree(src, boot)
    (boot / "boot.img").write_bytes(b"\xeb\xfe" + bytes(2046))
    efi = base / "efi.img"
    efi.write_bytes(bytes(720 * 1024))
    out: dict[str, Path] = {}
    gen = need("genisoimage")
    builds: dict[str, list[str | Path]] = {
        "plain": [gen, "-quiet", "-o", base / "plain.iso", src],
        "jr": [gen, "-quiet", "-J", "-R", "-o", base / "jr.iso", src],
        "udf": [gen, "-quiet", "-udf", "-J", "-R", "-o", base / "udf.iso", src],
        "boot": [
            gen, "-quiet", "-b", "boot.img", "-no-emul-boot", "-boot-load-size", "4",
            "-o", base / "boot.iso", boot,
        ],
    }  # fmt: skip
    xorriso = shutil.which("xorriso")
    if xorriso is not None:
        builds["mbr"] = [
            xorriso, "-as", "mkisofs", "-quiet", "-J", "-R", "--protective-msdos-label",
            "-partition_offset", "16", "-o", base / "mbr.iso", src,
        ]  # fmt: skip
        builds["gpt"] = [
            xorriso, "-as", "mkisofs", "-quiet", "-J", "-R", "-append_partition", "2", "0xef",
            efi, "-appended_part_as_gpt", "-o", base / "gpt.iso", src,
        ]  # fmt: skip
        builds["efi"] = [
            xorriso, "-as", "mkisofs", "-quiet", "-J", "-R", "-append_partition", "2", "0xef",
            efi, "-e", "--interval:appended_partition_2:all::", "-no-emul-boot",
            "-o", base / "efi.iso", src,
        ]  # fmt: skip
        # Ubuntu's layout: the primary descriptor's volume counts the appended
        # partition, the Joliet descriptor's does not (-partition_offset 16).
        builds["ubuntu"] = [
            xorriso, "-as", "mkisofs", "-quiet", "-r", "-J", "-joliet-long", "-c", "/boot.catalog",
            "-b", "boot.img", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
            "-eltorito-alt-boot", "-e", "--interval:appended_partition_2:::", "-no-emul-boot",
            "-append_partition", "2", "0xef", efi, "-appended_part_as_gpt",
            "-partition_offset", "16", "--mbr-force-bootable",
            "-o", base / "ubuntu.iso", boot,
        ]  # fmt: skip
    for name, cmd in builds.items():
        run(*cmd)
        out[name] = base / f"{name}.iso"
    return out


def image(images: dict[str, Path], name: str) -> Path:
    if name not in images:
        pytest.skip("xorriso is not installed (apt-get install xorriso)")
    return images[name]


def check(path: Path, **kw: object) -> ValidationResult:
    result: ValidationResult = validate(path, **kw)  # type: ignore[arg-type]
    return result


# -- helpers that find structures in a copy --------------------------------------------


def le32(data: bytes | bytearray, at: int) -> int:
    return int.from_bytes(data[at : at + 4], "little")


def both32(value: int) -> bytes:
    return value.to_bytes(4, "little") + value.to_bytes(4, "big")


def records(data: bytes | bytearray, extent: int, size: int) -> dict[str, int]:
    """Offsets of the directory records of one directory, by name (ISO 9660 names)."""
    out: dict[str, int] = {}
    for s in range(-(-size // SECTOR)):
        at = (extent + s) * SECTOR
        end = at + SECTOR
        while at < end and data[at]:
            name = bytes(data[at + 33 : at + 33 + data[at + 32]])
            out[name.decode("latin-1").split(";")[0]] = at
            at += data[at]
    return out


def root_records(data: bytes | bytearray, pvd_sector: int = 16) -> dict[str, int]:
    root = pvd_sector * SECTOR + 156
    return records(data, le32(data, root + 2), le32(data, root + 10))


def damaged(
    tmp_path: Path, src: Path, edit: Callable[[bytearray], None], name: str | None = None
) -> Path:
    data = bytearray(src.read_bytes())
    edit(data)
    dest = tmp_path / (name or src.name)
    dest.write_bytes(bytes(data))
    return dest


def args_of(result: ValidationResult, message_id: str) -> tuple[str, ...]:
    for entry in result.invalid_files:
        if entry.error_message.id == message_id:
            return tuple(entry.error_message.args)
    raise AssertionError(f"{message_id} not in {ids(result)}")


# -- genuine images ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["plain", "jr", "udf", "boot", "mbr", "gpt", "efi", "ubuntu"])
def test_genuine_images_are_valid(images: dict[str, Path], name: str) -> None:
    result = check(image(images, name))
    assert result.item_type == "iso"
    assert ids(result) == []
    assert not result.has_errors
    assert [w.error_message.id for w in result.warnings] == []


def test_features_are_recognised(images: dict[str, Path]) -> None:
    from validator_plugins.iso.check import inspect
    from validator_plugins.iso.image import Image

    def findings(name: str):  # type: ignore[no-untyped-def]
        path = image(images, name)
        with path.open("rb") as fh:
            img = Image(fh, path.stat().st_size)
            return inspect(img, 1000), img

    f, img = findings("jr")
    assert f.joliet and f.rock_ridge and not f.udf and not f.eltorito
    assert img.bytes_read < 256 * 1024  # metadata only
    f, _ = findings("udf")
    assert f.udf and f.udf_partitions
    f, _ = findings("boot")
    assert f.eltorito
    assert findings("mbr")[0].hybrid == "MBR"
    assert findings("gpt")[0].hybrid == "GPT"


def test_cli_json_reports_a_valid_image(images: dict[str, Path]) -> None:
    proc = run_module("--format", "json", images["jr"])
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)["value"]
    assert body == {"has_errors": False, "invalid_files": [], "missing_files": []}


# -- not an ISO image ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "validator.iso.image.empty"),
        (bytes(1000), "validator.iso.image.too_small"),
        (bytes(1 << 20), "validator.iso.image.not_iso"),
        (hashlib.sha512(b"seed").digest() * 16384, "validator.iso.image.not_iso"),
    ],
    ids=["empty", "small", "zeros", "random"],
)
def test_not_an_iso_image(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "image.iso"
    path.write_bytes(content)
    proc = run_module("--format", "json", path)
    assert proc.returncode == 1, proc.stderr
    body = json.loads(proc.stdout)["value"]
    assert [e["error_message"]["id"] for e in body["invalid_files"]] == [expected]
    assert "not an ISO image" in body["invalid_files"][0]["error_message"]["default_message"]
    assert b"Traceback" not in proc.stderr


def test_truncated_image_says_how_many_bytes_are_missing(
    images: dict[str, Path], tmp_path: Path
) -> None:
    full = images["plain"].read_bytes()
    volume = le32(full, 16 * SECTOR + 80) * SECTOR
    cut = tmp_path / "cut.iso"
    cut.write_bytes(full[: len(full) // 2])
    result = check(cut)
    assert ids(result)[0] == "validator.iso.image.truncated"
    assert args_of(result, "validator.iso.image.truncated") == (
        str(volume),
        str(len(full) // 2),
        str(volume - len(full) // 2),
    )
    assert "are missing" in result.invalid_files[0].error_message.default_message


def test_truncated_inside_the_descriptor_set(images: dict[str, Path], tmp_path: Path) -> None:
    cut = tmp_path / "cut.iso"
    cut.write_bytes(images["plain"].read_bytes()[: 17 * SECTOR + 100])
    assert ids(check(cut)) == ["validator.iso.image.truncated"]


# -- volume descriptors ----------------------------------------------------------------------


def test_zeroed_primary_descriptor_is_not_an_iso(images: dict[str, Path], tmp_path: Path) -> None:
    def zero(d: bytearray) -> None:
        d[16 * SECTOR : 17 * SECTOR] = bytes(SECTOR)

    assert ids(check(damaged(tmp_path, images["plain"], zero))) == ["validator.iso.image.not_iso"]


def test_zeroed_terminator(images: dict[str, Path], tmp_path: Path) -> None:
    def zero(d: bytearray) -> None:
        d[17 * SECTOR : 18 * SECTOR] = bytes(SECTOR)  # plain: PVD at 16, terminator at 17

    assert ids(check(damaged(tmp_path, images["plain"], zero))) == [
        "validator.iso.descriptor.no_terminator"
    ]


def test_both_endian_volume_size_mismatch(images: dict[str, Path], tmp_path: Path) -> None:
    def edit(d: bytearray) -> None:
        d[16 * SECTOR + 87] ^= 0x01  # the big-endian copy's low byte

    result = check(damaged(tmp_path, images["plain"], edit))
    assert ids(result) == ["validator.iso.descriptor.endian_mismatch"]
    assert args_of(result, "validator.iso.descriptor.endian_mismatch")[:2] == (
        "volume space size",
        "16",
    )


def test_bad_block_size_and_version(images: dict[str, Path], tmp_path: Path) -> None:
    def edit(d: bytearray) -> None:
        d[16 * SECTOR + 128 : 16 * SECTOR + 132] = b"\x00\x03\x03\x00"  # 768, both copies
        d[17 * SECTOR + 6] = 7

    assert ids(check(damaged(tmp_path, images["plain"], edit))) == [
        "validator.iso.descriptor.bad_version",
        "validator.iso.descriptor.bad_block_size",
    ]


def test_supplementary_volume_sizes_may_differ(images: dict[str, Path]) -> None:
    data = image(images, "ubuntu").read_bytes()
    sizes = {data[s * SECTOR]: le32(data, s * SECTOR + 80) for s in (16, 17, 18, 19)}
    assert sizes[1] > sizes[2]  # the primary volume counts the appended partition
    assert ids(check(images["ubuntu"])) == []


def test_supplementary_block_size_must_agree(images: dict[str, Path], tmp_path: Path) -> None:
    def edit(d: bytearray) -> None:
        assert d[17 * SECTOR] == 2  # the Joliet descriptor
        d[17 * SECTOR + 128 : 17 * SECTOR + 132] = b"\x00\x02\x02\x00"  # 512, both copies

    assert ids(check(damaged(tmp_path, images["jr"], edit))) == [
        "validator.iso.descriptor.volume_mismatch"
    ]


def test_no_primary_descriptor(images: dict[str, Path], tmp_path: Path) -> None:
    def edit(d: bytearray) -> None:
        d[16 * SECTOR] = 3  # a volume partition descriptor instead

    assert ids(check(damaged(tmp_path, images["plain"], edit))) == [
        "validator.iso.descriptor.no_primary"
    ]


# -- path tables and directories -------------------------------------------------------------


def test_path_tables_disagree(images: dict[str, Path], tmp_path: Path) -> None:
    def edit(d: bytearray) -> None:
        m_table = int.from_bytes(d[16 * SECTOR + 148 : 16 * SECTOR + 152], "big")
        d[m_table * SECTOR + 10 + 8] ^= 0x20  # the second entry's identifier ("SUB")

    assert ids(check(damaged(tmp_path, images["plain"], edit))) == [
        "validator.iso.path_table.mismatch"
    ]


def test_path_table_outside_the_volume(images: dict[str, Path], tmp_path: Path) -> None:
    def edit(d: bytearray) -> None:
        d[16 * SECTOR + 140 : 16 * SECTOR + 144] = (10**6).to_bytes(4, "little")

    assert ids(check(damaged(tmp_path, images["plain"], edit))) == [
        "validator.iso.path_table.outside"
    ]


def test_directory_loop(images: dict[str, Path], tmp_path: Path) -> None:
    def edit(d: bytearray) -> None:
        root_extent = le32(d, 16 * SECTOR + 156 + 2)
        sub = root_records(d)["SUB"]
        d[sub + 2 : sub + 10] = both32(root_extent)

    result = check(damaged(tmp_path, images["plain"], edit))
    assert "validator.iso.directory.loop" in ids(result)
    assert args_of(result, "validator.iso.directory.loop")[0] == "/SUB"


def test_file_extent_beyond_the_volume(images: dict[str, Path], tmp_path: Path) -> None:
    def edit(d: bytearray) -> None:
        rec = root_records(d)["A.TXT"]
        d[rec + 2 : rec + 10] = both32(le32(d, 16 * SECTOR + 80) + 10)

    result = check(damaged(tmp_path, images["plain"], edit))
    assert ids(result) == ["validator.iso.directory.extent_outside"]
    assert args_of(result, "validator.iso.directory.extent_outside")[0] == "/A.TXT"


def test_directory_record_endian_mismatch(images: dict[str, Path], tmp_path: Path) -> None:
    def edit(d: bytearray) -> None:
        rec = root_records(d)["A.TXT"]
        d[rec + 17] ^= 0x04  # big-endian data length

    result = check(damaged(tmp_path, images["plain"], edit))
    assert ids(result) == ["validator.iso.directory.endian_mismatch"]
    assert args_of(result, "validator.iso.directory.endian_mismatch")[:2] == (
        "/A.TXT",
        "data length",
    )


def test_malformed_directory_record(images: dict[str, Path], tmp_path: Path) -> None:
    def edit(d: bytearray) -> None:
        d[root_records(d)["A.TXT"]] = 20  # shorter than a record can be

    assert ids(check(damaged(tmp_path, images["plain"], edit))) == [
        "validator.iso.directory.bad_record"
    ]


@pytest.mark.parametrize("which", ["root", "sub", "root-length", "joliet-root"])
def test_directory_without_any_record(images: dict[str, Path], tmp_path: Path, which: str) -> None:
    """A zeroed directory sector (or a length of 0) reads as an empty directory: files lost.

    pycdlib opens every one of these copies; a directory must begin with '.' and '..'.
    """

    def edit(d: bytearray) -> None:
        pvd = (17 if which == "joliet-root" else 16) * SECTOR
        extent = le32(d, pvd + 156 + 2)
        if which == "sub":
            extent = le32(d, root_records(d)["SUB"] + 2)
        if which == "root-length":
            d[pvd + 156 + 10 : pvd + 156 + 18] = both32(0)
        else:
            d[extent * SECTOR : (extent + 1) * SECTOR] = bytes(SECTOR)

    result = check(damaged(tmp_path, images["jr"], edit))
    assert ids(result) == ["validator.iso.directory.no_dot"]


def test_joliet_tree_is_walked(images: dict[str, Path], tmp_path: Path) -> None:
    def edit(d: bytearray) -> None:
        # The Joliet descriptor follows the primary one; damage a file record of its root.
        assert d[17 * SECTOR] == 2
        root = 17 * SECTOR + 156
        recs = records(d, le32(d, root + 2), le32(d, root + 10))
        name = next(n for n in recs if n.encode("latin-1").startswith(b"\x00a"))
        at = recs[name]
        d[at + 2 : at + 10] = both32(10**6)

    result = check(damaged(tmp_path, images["jr"], edit))
    assert ids(result) == ["validator.iso.directory.extent_outside"]
    assert args_of(result, "validator.iso.directory.extent_outside")[0].endswith("(Joliet)")


def test_rock_ridge_entry_overruns_its_area(images: dict[str, Path], tmp_path: Path) -> None:
    def edit(d: bytearray) -> None:
        rec = root_records(d)["A.TXT"]
        name_len = d[rec + 32]
        sua = rec + 33 + name_len + (0 if name_len & 1 else 1)
        assert d[sua : sua + 1].isalpha()
        d[sua + 2] = 250

    assert ids(check(damaged(tmp_path, images["jr"], edit))) == [
        "validator.iso.rockridge.bad_entry"
    ]


def test_record_limit(images: dict[str, Path]) -> None:
    result = check(images["jr"], limits=Limits(iso_directory_records=5))
    assert ids(result) == ["validator.iso.directory.too_many_records"]


# -- El Torito -------------------------------------------------------------------------------


def boot_catalog(d: bytearray) -> int:
    sector = next(
        s
        for s in range(16, 32)
        if d[s * SECTOR] == 0 and d[s * SECTOR + 1 : s * SECTOR + 6] == b"CD001"
    )
    return le32(d, sector * SECTOR + 71) * SECTOR


@pytest.mark.parametrize(
    ("offset", "value", "expected"),
    [
        (30, 0x00, "validator.iso.eltorito.bad_validation_entry"),
        (4, 0x41, "validator.iso.eltorito.bad_checksum"),
        (32, 0x42, "validator.iso.eltorito.bad_boot_indicator"),
        (33, 0x09, "validator.iso.eltorito.bad_media_type"),
        (43, 0x7F, "validator.iso.eltorito.image_outside"),
        (64, 0x33, "validator.iso.eltorito.bad_section_header"),
    ],
)
def test_broken_boot_catalog(
    images: dict[str, Path], tmp_path: Path, offset: int, value: int, expected: str
) -> None:
    def edit(d: bytearray) -> None:
        d[boot_catalog(d) + offset] = value

    assert ids(check(damaged(tmp_path, images["boot"], edit))) == [expected]


def test_boot_catalog_outside_the_volume(images: dict[str, Path], tmp_path: Path) -> None:
    def edit(d: bytearray) -> None:
        sector = boot_catalog(d) // SECTOR
        at = next(s for s in range(16, 32) if d[s * SECTOR] == 0) * SECTOR + 71
        assert le32(d, at) == sector
        d[at : at + 4] = (10**6).to_bytes(4, "little")

    assert ids(check(damaged(tmp_path, images["boot"], edit))) == [
        "validator.iso.eltorito.catalog_outside"
    ]


# -- UDF -------------------------------------------------------------------------------------


def test_corrupt_udf_anchor(images: dict[str, Path], tmp_path: Path) -> None:
    def crc(d: bytearray) -> None:
        d[256 * SECTOR + 20] ^= 0x01  # main sequence location: covered by the CRC

    def checksum(d: bytearray) -> None:
        d[256 * SECTOR + 6] ^= 0x01  # tag serial number: covered by the tag checksum

    def gone(d: bytearray) -> None:
        d[256 * SECTOR : 257 * SECTOR] = bytes(SECTOR)

    assert ids(check(damaged(tmp_path, images["udf"], crc))) == ["validator.iso.udf.bad_tag_crc"]
    assert ids(check(damaged(tmp_path, images["udf"], checksum))) == [
        "validator.iso.udf.bad_tag_checksum"
    ]
    assert ids(check(damaged(tmp_path, images["udf"], gone))) == ["validator.iso.udf.no_anchor"]


def test_udf_recognition_sequence_incomplete(images: dict[str, Path], tmp_path: Path) -> None:
    def edit(d: bytearray) -> None:
        tea = next(s for s in range(16, 40) if d[s * SECTOR + 1 : s * SECTOR + 6] == b"TEA01")
        d[tea * SECTOR : (tea + 1) * SECTOR] = bytes(SECTOR)

    assert ids(check(damaged(tmp_path, images["udf"], edit))) == [
        "validator.iso.udf.incomplete_vrs"
    ]


def test_pure_udf_image_is_accepted(images: dict[str, Path], tmp_path: Path) -> None:
    """A UDF-only image: no ISO 9660 descriptors, the recognition sequence at sector 16."""

    def edit(d: bytearray) -> None:
        for i, ident in enumerate((b"BEA01", b"NSR02", b"TEA01")):
            d[(16 + i) * SECTOR : (17 + i) * SECTOR] = b"\x00" + ident + b"\x01" + bytes(2041)
        d[19 * SECTOR : 22 * SECTOR] = bytes(3 * SECTOR)

    path = damaged(tmp_path, images["udf"], edit)
    result = check(path)
    assert ids(result) == []
    # pycdlib needs an ISO 9660 primary descriptor: a warning, never an error.
    assert [w.error_message.id for w in result.warnings] == ["validator.iso.pycdlib.rejected"]
    cut = tmp_path / "cut.iso"
    cut.write_bytes(path.read_bytes()[: 270 * SECTOR])
    assert ids(check(cut)) == ["validator.iso.image.truncated"]


# -- hybrid images ---------------------------------------------------------------------------


def test_corrupt_gpt_header(images: dict[str, Path], tmp_path: Path) -> None:
    def edit(d: bytearray) -> None:
        assert d[512:520] == b"EFI PART"
        d[512 + 40] ^= 0x01

    path = image(images, "gpt")
    assert ids(check(damaged(tmp_path, path, edit))) == ["validator.iso.hybrid.gpt_header_crc"]


def test_truncated_hybrid_tail(images: dict[str, Path], tmp_path: Path) -> None:
    data = image(images, "gpt").read_bytes()
    cut = tmp_path / "gpt.iso"
    cut.write_bytes(data[: len(data) - 64 * 1024])
    result = ids(check(cut))
    assert "validator.iso.hybrid.gpt_backup_outside" in result
    assert "validator.iso.hybrid.gpt_partition_outside" in result


def test_mbr_partition_beyond_the_image(images: dict[str, Path], tmp_path: Path) -> None:
    def edit(d: bytearray) -> None:
        assert d[510:512] == b"\x55\xaa" and d[446 + 4] != 0
        d[446 + 12 : 446 + 16] = (10**7).to_bytes(4, "little")

    path = image(images, "mbr")
    assert ids(check(damaged(tmp_path, path, edit))) == ["validator.iso.hybrid.partition_outside"]


# -- sessions --------------------------------------------------------------------------------


def test_folder_with_an_image_and_an_extra_file(images: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "item"
    folder.mkdir()
    shutil.copy(images["plain"], folder / "image.iso")
    shutil.copy(images["jr"], folder / "second.iso")
    (folder / "readme.txt").write_text("hi")
    result = check(folder)
    assert result.item_type == "iso"
    assert [(e.name, e.error_message.id) for e in result.invalid_files] == [
        ("readme.txt", "validator.iso.session.extra_file"),
        ("second.iso", "validator.iso.session.extra_file"),
    ]


def test_an_ovf_package_with_an_iso_stays_ovf(images: dict[str, Path], bundle: Path) -> None:
    shutil.copy(images["plain"], bundle / "tools.iso")
    assert check(bundle).item_type == "ovf"


def test_explicit_type_on_another_name(images: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "installer.img"
    shutil.copy(images["udf"], path)
    assert ids(check(path, item_type="iso")) == []


def manifest(tmp_path: Path, image: Path, checksum: str) -> Path:
    shutil.copy(image, tmp_path / "image.iso")
    path = tmp_path / "session.yaml"
    path.write_text(
        "validator-session: 1\nfiles:\n  - name: image.iso\n"
        f"    checksum_info: {{algorithm: SHA256, checksum: '{checksum}'}}\n"
    )
    return path


def test_manifest_with_a_checksum(images: dict[str, Path], tmp_path: Path) -> None:
    good = hashlib.sha256(images["boot"].read_bytes()).hexdigest()
    assert ids(check(manifest(tmp_path, images["boot"], good))) == []
    result = check(manifest(tmp_path, images["boot"], "0" * 64))
    assert ids(result) == ["validator.core.file.checksum_mismatch"]


def test_text_output_reads_well(images: dict[str, Path], tmp_path: Path) -> None:
    cut = tmp_path / "cut.iso"
    cut.write_bytes(images["plain"].read_bytes()[:100_000])
    proc = run_module(cut, env=None)
    text = proc.stdout.decode()
    assert proc.returncode == 1
    assert "The image is truncated" in text and "bytes are missing" in text


def test_german_message(images: dict[str, Path], tmp_path: Path) -> None:
    cut = tmp_path / "cut.iso"
    cut.write_bytes(images["plain"].read_bytes()[:100_000])
    engine = Engine(locale="de")
    result = engine.validate(engine.open(cut))
    localized = result.invalid_files[0].error_message.localized
    assert localized is not None and "abgeschnitten" in localized


def test_tools_are_known() -> None:
    assert all(isinstance(t, str) for t in TOOLS)
    assert SAMPLES.is_dir()


def test_rock_ridge_attributes_endian_mismatch(images: dict[str, Path], tmp_path: Path) -> None:
    def edit(d: bytearray) -> None:
        rec = root_records(d)["A.TXT"]
        end = rec + d[rec]
        px = d.index(b"PX", rec + 33, end)
        d[px + 4 + 4] ^= 0x01  # the big-endian copy of the file mode

    result = check(damaged(tmp_path, images["jr"], edit))
    assert ids(result) == ["validator.iso.rockridge.endian_mismatch"]
    assert args_of(result, "validator.iso.rockridge.endian_mismatch")[:2] == ("/A.TXT", "file mode")


def test_directory_sequence_number_endian_mismatch(images: dict[str, Path], tmp_path: Path) -> None:
    def edit(d: bytearray) -> None:
        d[root_records(d)["A.TXT"] + 31] ^= 0x02

    result = check(damaged(tmp_path, images["plain"], edit))
    assert ids(result) == ["validator.iso.directory.endian_mismatch"]
