"""Side by side: our verdict on real and damaged images, and pycdlib's, oslo.utils' and xorriso's.

    python bench/iso_compare.py [--keep DIR] [--json] [--only NAME,...]

Builds genuine images with the tools installed here (genisoimage, xorriso,
mkudffs from udftools; a missing tool leaves its images out), then damaged
copies of them (each damage finds its structure by parsing the copy, so it
does not depend on one tool version's layout), and prints one Markdown row
per image:

* **ours**: the message ids of `validator` (``validator.iso.`` left out),
  ``valid`` when there are none; warnings in brackets;
* **pycdlib**: ``opens`` or the exception ``PyCdlib().open()`` raises;
* **oslo**: what ``oslo_utils.imageutils.format_inspector`` says:
  ``detect_file_format`` (the format, or its exception, e.g. several formats
  matched), and for an ISO whether the inspector's virtual size is larger than
  the file (it never says so itself: we show it); needs ``pip install
  oslo.utils``, otherwise the column says so;
* **xorriso**: the worst problem ``xorriso -indev IMG -report_el_torito plain
  -report_system_area plain -check_media --`` reports (``ok`` when it reports
  nothing above NOTE).

docs/iso.md has the table observed here and our reasoning for each disagreement.
The build and damage functions are imported by tests/test_iso_compare.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTOR = 2048

# -- genuine images ----------------------------------------------------------------------


@dataclass(frozen=True)
class Build:
    name: str
    tool: str
    what: str
    argv: Callable[[Path, Path], list[str]]  # (inputs folder, output image) -> command


def _src(base: Path) -> Path:
    """The tree every image is made of: files, a long name, nested folders, boot images."""
    src = base / "src"
    if src.is_dir():
        return src
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "a.txt").write_text("hello\n")
    (src / "a long file name.txt").write_text("long name\n")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 20)
    (src / "sub" / "deeper" / "c.txt").write_text("c\n")
    (src / "boot").mkdir()
    (src / "boot" / "boot.img").write_bytes(b"\xeb\xfe" + bytes(2046))  # a no-emulation loader
    (src / "boot" / "floppy.img").write_bytes(b"\xeb\xfe" + bytes(1_474_560 - 2))
    (src / "boot" / "efi.img").write_bytes(bytes(720 * 1024))  # an EFI system partition image
    (base / "mbr.bin").write_bytes(bytes(432))  # stands in for syslinux's isohdpfx.bin
    return src


def _x(*args: str) -> Callable[[Path, Path], list[str]]:
    return lambda src, out: ["xorriso", "-as", "mkisofs", "-quiet", *args, "-o", str(out), str(src)]


def _g(*args: str) -> Callable[[Path, Path], list[str]]:
    return lambda src, out: ["genisoimage", "-quiet", *args, "-o", str(out), str(src)]


def _udf(*args: str) -> Callable[[Path, Path], list[str]]:
    return lambda src, out: ["mkudffs", "--new-file", *args, str(out), "4096"]


BOOT = ("-b", "boot/boot.img", "-c", "boot/boot.cat", "-no-emul-boot", "-boot-load-size", "4")
BUILDS = [
    Build("g-plain", "genisoimage", "ISO 9660 only", _g()),
    Build("g-jr", "genisoimage", "Joliet + Rock Ridge", _g("-J", "-R")),
    Build(
        "g-iso1999",
        "genisoimage",
        "ISO 9660:1999 (-iso-level 4), Rock Ridge",
        _g("-iso-level", "4", "-R"),
    ),
    Build("g-udf", "genisoimage", "UDF bridge (-udf -J -R)", _g("-udf", "-J", "-R")),
    Build(
        "g-boot",
        "genisoimage",
        "El Torito no-emulation + boot info table",
        _g("-J", "-R", *BOOT, "-boot-info-table"),
    ),
    Build(
        "g-floppy",
        "genisoimage",
        "El Torito 1.44 MB floppy emulation",
        _g("-R", "-b", "boot/floppy.img", "-c", "boot/boot.cat"),
    ),
    Build(
        "g-efi",
        "genisoimage",
        "El Torito BIOS + EFI (-e) entries",
        _g("-J", "-R", *BOOT, "-eltorito-alt-boot", "-e", "boot/efi.img", "-no-emul-boot"),
    ),
    Build(
        "g-hfs",
        "genisoimage",
        "ISO 9660 / HFS hybrid (Apple partition map)",
        _g("-J", "-R", "-hfs"),
    ),
    Build("x-jr", "xorriso", "-as mkisofs -J -R", _x("-J", "-R")),
    Build(
        "x-md5",
        "xorriso",
        "native mode, Rock Ridge, MD5 checksums",
        lambda src, out: [
            "xorriso",
            "-abort_on",
            "FAILURE",
            "-md5",
            "on",
            "-outdev",
            str(out),
            "-map",
            str(src),
            "/",
        ],
    ),
    Build(
        "x-boot",
        "xorriso",
        "El Torito no-emulation, boot info table",
        _x("-J", "-R", *BOOT, "-boot-info-table"),
    ),
    Build(
        "x-mbr",
        "xorriso",
        "MBR hybrid (--protective-msdos-label -partition_offset 16)",
        _x("-J", "-R", "--protective-msdos-label", "-partition_offset", "16"),
    ),
    Build(
        "x-isohybrid",
        "xorriso",
        "isohybrid MBR + GPT, BIOS + EFI El Torito (installer layout)",
        lambda src, out: _x(
            "-J",
            "-R",
            "-isohybrid-mbr",
            str(src.parent / "mbr.bin"),
            *BOOT,
            "-boot-info-table",
            "-eltorito-alt-boot",
            "-e",
            "boot/efi.img",
            "-no-emul-boot",
            "-isohybrid-gpt-basdat",
        )(src, out),
    ),
    Build(
        "x-gpt",
        "xorriso",
        "GPT with an appended EFI partition",
        lambda src, out: _x(
            "-J",
            "-R",
            "-append_partition",
            "2",
            "0xef",
            str(src / "boot" / "efi.img"),
            "-appended_part_as_gpt",
        )(src, out),
    ),
    Build(
        "x-efi",
        "xorriso",
        "EFI El Torito image in an appended partition",
        lambda src, out: _x(
            "-J",
            "-R",
            "-append_partition",
            "2",
            "0xef",
            str(src / "boot" / "efi.img"),
            "-e",
            "--interval:appended_partition_2:all::",
            "-no-emul-boot",
        )(src, out),
    ),
    Build(
        "x-ubuntu",
        "xorriso",
        "Ubuntu's layout: GPT, appended EFI partition as El Torito image, -partition_offset 16",
        lambda src, out: _x(
            "-r",
            "-J",
            "-joliet-long",
            "-c",
            "/boot.catalog",
            *BOOT[:2],
            *BOOT[4:],
            "-boot-info-table",
            "-eltorito-alt-boot",
            "-e",
            "--interval:appended_partition_2:::",
            "-no-emul-boot",
            "-append_partition",
            "2",
            "0xef",
            str(src / "boot" / "efi.img"),
            "-appended_part_as_gpt",
            "--grub2-mbr",
            str(src.parent / "mbr.bin"),
            "-partition_offset",
            "16",
            "--mbr-force-bootable",
            "-iso_mbr_part_type",
            "a2a0d0ebe5b9334487c068b6b72699c7",
        )(src, out),
    ),
    Build(
        "udf-cd",
        "mkudffs",
        "pure UDF 2.01, 2048-byte blocks (--media-type=cd)",
        _udf("--media-type=cd"),
    ),
    Build(
        "udf-hd",
        "mkudffs",
        "pure UDF 2.01, 512-byte blocks (--media-type=hd, the default for a file)",
        _udf("--media-type=hd"),
    ),
    Build(
        "udf-4k",
        "mkudffs",
        "pure UDF 2.01, 4096-byte blocks",
        _udf("--media-type=hd", "--blocksize=4096"),
    ),
    Build(
        "udf-cdrw", "mkudffs", "pure UDF 2.01 on CD-RW (sparing table)", _udf("--media-type=cdrw")
    ),
    Build(
        "udf-dvdr",
        "mkudffs",
        "pure UDF 2.01 on write-once media, open (VAT)",
        _udf("--media-type=dvdr"),
    ),
    Build(
        "udf-bdr",
        "mkudffs",
        "pure UDF 2.50 on BD-R, open (VAT, metadata partition)",
        _udf("--media-type=bdr"),
    ),
]


def build_genuine(base: Path, names: set[str] | None = None) -> dict[str, Path]:
    """Build every genuine image whose tool is installed; name -> path."""
    src = _src(base)
    out: dict[str, Path] = {}
    for b in BUILDS:
        if (names is not None and b.name not in names) or shutil.which(b.tool) is None:
            continue
        path = base / f"{b.name}.iso"
        path.unlink(missing_ok=True)
        subprocess.run(b.argv(src, path), check=True, capture_output=True, timeout=120, cwd=base)
        out[b.name] = path
    if "x-md5" in out and (names is None or "x-multi" in names):
        # A second session appended to the first (xorriso on an image file).
        multi = base / "x-multi.iso"
        shutil.copy(out["x-md5"], multi)
        (base / "more.txt").write_text("second session\n")
        cmd = ["xorriso", "-abort_on", "FAILURE", "-dev", str(multi)]
        subprocess.run(
            [*cmd, "-map", str(base / "more.txt"), "/more.txt"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        out["x-multi"] = multi
    return out


WHAT = {b.name: f"{b.tool}: {b.what}" for b in BUILDS} | {
    "x-multi": "xorriso: two sessions (a file added to x-md5 with -dev)"
}

# -- damaged copies ----------------------------------------------------------------------


def le32(d: bytes | bytearray, at: int) -> int:
    return int.from_bytes(d[at : at + 4], "little")


def both32(value: int) -> bytes:
    return value.to_bytes(4, "little") + value.to_bytes(4, "big")


def descriptor(d: bytes | bytearray, kind: int) -> int:
    """Byte offset of the first volume descriptor of a type (1 primary, 2 Joliet, 0 boot)."""
    for s in range(16, 80):
        at = s * SECTOR
        if d[at + 1 : at + 6] != b"CD001":
            break
        if d[at] == kind:
            return at
    raise LookupError(f"no volume descriptor of type {kind}")


def directory(d: bytes | bytearray, extent: int, size: int) -> dict[bytes, int]:
    """Offsets of the records of one directory, by raw name (version ``;1`` stripped)."""
    out: dict[bytes, int] = {}
    for s in range(-(-size // SECTOR)):
        at, end = (extent + s) * SECTOR, (extent + s + 1) * SECTOR
        while at < end and d[at]:
            out[bytes(d[at + 33 : at + 33 + d[at + 32]]).split(b";")[0]] = at
            at += d[at]
    return out


def root_dir(d: bytes | bytearray, kind: int = 1) -> dict[bytes, int]:
    root = descriptor(d, kind) + 156
    return directory(d, le32(d, root + 2), le32(d, root + 10))


def subdir_name(kind: int) -> bytes:
    return "sub".encode("utf-16-be") if kind == 2 else b"SUB"


def truncate_sector(d: bytearray) -> None:
    del d[-SECTOR:]


def truncate_half(d: bytearray) -> None:
    del d[len(d) // 2 :]


def zero_pvd(d: bytearray) -> None:
    at = descriptor(d, 1)
    d[at : at + SECTOR] = bytes(SECTOR)


def zero_terminator(d: bytearray) -> None:
    at = descriptor(d, 255)
    d[at : at + SECTOR] = bytes(SECTOR)


def endian_volume_size(d: bytearray) -> None:
    d[descriptor(d, 1) + 87] ^= 0x01  # the big-endian copy's low byte


def endian_file_extent(d: bytearray) -> None:
    d[root_dir(d)[b"A.TXT"] + 9] ^= 0x01  # the big-endian extent of /A.TXT


def root_beyond(d: bytearray) -> None:
    pvd = descriptor(d, 1)
    d[pvd + 156 + 2 : pvd + 156 + 10] = both32(le32(d, pvd + 80) + 100)


def file_beyond(d: bytearray) -> None:
    rec = root_dir(d)[b"A.TXT"]
    d[rec + 2 : rec + 10] = both32(le32(d, descriptor(d, 1) + 80) + 10)


def loop(kind: int) -> Callable[[bytearray], None]:
    def edit(d: bytearray) -> None:
        root = descriptor(d, kind) + 156
        sub = root_dir(d, kind)[subdir_name(kind)]
        d[sub + 2 : sub + 10] = both32(le32(d, root + 2))

    return edit


def zero_directory(d: bytearray) -> None:
    extent = le32(d, root_dir(d)[b"SUB"] + 2)
    d[extent * SECTOR : (extent + 1) * SECTOR] = bytes(SECTOR)


def catalog_outside(d: bytearray) -> None:
    at = descriptor(d, 0) + 71
    d[at : at + 4] = (10**6).to_bytes(4, "little")


def catalog_checksum(d: bytearray) -> None:
    d[le32(d, descriptor(d, 0) + 71) * SECTOR + 28] ^= 0x01


def udf_block_size(d: bytes | bytearray) -> int:
    for size in (2048, 512, 1024, 4096):
        if d[256 * size : 256 * size + 2] == b"\x02\x00":
            return size
    raise LookupError("no UDF anchor at sector 256")


def anchor_flip(d: bytearray) -> None:
    d[256 * udf_block_size(d) + 20] ^= 0x01  # the main sequence's location: covered by the CRC


def anchor_zero(d: bytearray) -> None:
    size = udf_block_size(d)
    d[256 * size : 257 * size] = bytes(size)


def gpt_header(d: bytearray) -> None:
    d[512 + 40] ^= 0x01


def mbr_partition(d: bytearray) -> None:
    """The first MBR partition that is not empty nor GPT-protective ends far beyond the file."""
    at = next(446 + 16 * i for i in range(4) if d[446 + 16 * i + 4] not in (0x00, 0xEE))
    d[at + 12 : at + 16] = (10**7).to_bytes(4, "little")


def pad(d: bytearray) -> None:
    d.extend(bytes(64 * SECTOR))


@dataclass(frozen=True)
class Damage:
    name: str
    what: str
    bases: tuple[str, ...]
    edit: Callable[[bytearray], None]


DAMAGES = [
    Damage(
        "trunc-1",
        "truncated by one sector",
        (
            "g-plain",
            "g-jr",
            "g-udf",
            "x-jr",
            "x-isohybrid",
            "x-gpt",
            "udf-cd",
            "udf-hd",
            "udf-dvdr",
        ),
        truncate_sector,
    ),
    Damage(
        "trunc-half",
        "truncated to half",
        ("g-jr", "g-udf", "x-jr", "x-gpt", "udf-cd", "udf-hd"),
        truncate_half,
    ),
    Damage(
        "padded", "128 KiB of zeros appended (not damage)", ("g-jr", "x-isohybrid", "udf-cd"), pad
    ),
    Damage("pvd-zero", "primary volume descriptor zeroed", ("g-plain", "g-jr", "g-udf"), zero_pvd),
    Damage(
        "no-term", "set terminator zeroed", ("g-plain", "g-jr", "g-udf", "x-jr"), zero_terminator
    ),
    Damage(
        "endian-vol",
        "volume space size: LE and BE copies differ",
        ("g-plain", "x-jr"),
        endian_volume_size,
    ),
    Damage(
        "endian-ext",
        "extent of /A.TXT: LE and BE copies differ",
        ("g-plain", "x-jr"),
        endian_file_extent,
    ),
    Damage(
        "root-beyond",
        "root directory extent beyond the volume",
        ("g-plain", "g-jr", "x-jr"),
        root_beyond,
    ),
    Damage("file-beyond", "extent of /A.TXT beyond the volume", ("g-plain", "x-jr"), file_beyond),
    Damage("loop", "directory /SUB points to the root", ("g-plain", "g-jr", "x-jr"), loop(1)),
    Damage("dir-zero", "the sector of directory /SUB zeroed", ("g-plain", "x-jr"), zero_directory),
    Damage(
        "loop-joliet", "Joliet directory /sub points to the Joliet root", ("g-jr", "x-jr"), loop(2)
    ),
    Damage(
        "cat-outside",
        "El Torito boot catalog outside the volume",
        ("g-boot", "x-boot", "x-isohybrid"),
        catalog_outside,
    ),
    Damage(
        "cat-checksum",
        "El Torito validation entry checksum wrong",
        ("g-boot", "x-isohybrid"),
        catalog_checksum,
    ),
    Damage(
        "anchor-flip",
        "UDF anchor (sector 256): one bit of the sequence location",
        ("g-udf", "udf-cd", "udf-hd"),
        anchor_flip,
    ),
    Damage(
        "anchor-zero",
        "UDF anchor (sector 256) zeroed",
        ("g-udf", "udf-cd", "udf-dvdr"),
        anchor_zero,
    ),
    Damage("gpt-crc", "GPT header: one bit flipped", ("x-isohybrid", "x-gpt"), gpt_header),
    Damage(
        "mbr-beyond", "an MBR partition ends beyond the file", ("x-mbr", "x-efi"), mbr_partition
    ),
]

#: Files that are no image at all.
NOT_IMAGES: dict[str, bytes] = {
    "all-zero": bytes(1 << 20),
    "random": b"".join(
        __import__("hashlib").sha512(i.to_bytes(4, "little")).digest() for i in range(16384)
    ),
    "empty": b"",
}


def build_damaged(base: Path, genuine: dict[str, Path]) -> dict[str, Path]:
    """Damaged copies: ``BASE~DAMAGE`` -> path; plus the files that are no image at all."""
    out: dict[str, Path] = {}
    for dmg in DAMAGES:
        for name in dmg.bases:
            if name not in genuine:
                continue
            data = bytearray(genuine[name].read_bytes())
            dmg.edit(data)
            path = base / f"{name}~{dmg.name}.iso"
            path.write_bytes(bytes(data))
            out[path.stem] = path
    for name, content in NOT_IMAGES.items():
        path = base / f"{name}.iso"
        path.write_bytes(content)
        out[name] = path
    return out


# -- verdicts ------------------------------------------------------------------------------


def ours(path: Path) -> tuple[list[str], list[str]]:
    """Our message ids (errors, warnings) for the image."""
    sys.path.insert(0, str(ROOT))
    from validator.engine import Engine

    engine = Engine()
    result = engine.validate(engine.open(path), item_type="iso")
    return (
        [e.error_message.id for e in result.invalid_files],
        [w.error_message.id for w in result.warnings],
    )


def pycdlib_verdict(path: Path) -> str:
    import pycdlib

    iso = pycdlib.PyCdlib()
    try:
        iso.open(str(path))
    except Exception as exc:  # every refusal is a verdict
        return f"{type(exc).__name__}: {' '.join(str(exc).split())[:90]}"
    iso.close()
    return "opens"


def oslo_verdict(path: Path) -> str:
    try:
        from oslo_utils.imageutils import format_inspector as fi
    except ImportError:
        return "(oslo.utils not installed)"
    try:
        found = fi.detect_file_format(str(path))
        detected = str(found)
    except Exception as exc:
        detected = f"{type(exc).__name__}: {exc}"
        head, sep, names = detected.partition("Multiple formats detected: ")
        if sep:  # the inspectors are a set: name them in a stable order
            detected = head + sep + ",".join(sorted(names.split(",")))
    iso = fi.ISOInspector()
    with path.open("rb") as fh:
        while not iso.complete and (chunk := fh.read(64 * 1024)):
            iso.eat_chunk(chunk)
    iso.finish()
    if not iso.complete or not iso.format_match:
        return detected
    size = path.stat().st_size
    note = ""
    if iso.virtual_size > size:
        note = f"; virtual size {iso.virtual_size} > file {size}"
    elif iso.virtual_size == 0:
        note = "; virtual size unknown"
    try:
        iso.safety_check()
    except Exception as exc:
        note += f"; unsafe: {exc}"
    return detected + note


#: xorriso loops on a directory loop: it is stopped after this long.
XORRISO_SECONDS = 15
SEVERITY = ("WARNING", "SORRY", "FAILURE", "FATAL", "ABORT")
LINE = re.compile(r"^(?:xorriso|libisofs|libisoburn|libburn)\s*:\s*([A-Z]+)\s*:\s*(.*)$")


def xorriso_verdict(path: Path) -> str:
    if shutil.which("xorriso") is None:
        return "(xorriso not installed)"
    cmd = [
        "xorriso", "-abort_on", "NEVER", "-return_with", "SORRY", "32", "-indev", str(path),
        "-report_el_torito", "plain", "-report_system_area", "plain", "-check_media", "--",
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=XORRISO_SECONDS)
    except subprocess.TimeoutExpired:
        return f"still running after {XORRISO_SECONDS} s (killed)"
    worst: tuple[int, str] | None = None
    for line in (proc.stdout + proc.stderr).splitlines():
        m = LINE.match(line.strip())
        if not m or m.group(1) not in SEVERITY:
            continue
        text = m.group(2).strip()
        if "-return_with" in text or "-abort_on" in text:
            continue
        rank = SEVERITY.index(m.group(1))
        if worst is None or rank > worst[0]:
            worst = (rank, f"{m.group(1)}: {text}")
    return "ok" if worst is None else worst[1][:110]


def short(ids: list[str]) -> str:
    return ", ".join(dict.fromkeys(i.removeprefix("validator.iso.") for i in ids))


def compare(paths: dict[str, Path]) -> list[dict[str, str]]:
    rows = []
    for name, path in paths.items():
        errors, warnings = ours(path)
        verdict = short(errors) or "valid"
        if warnings:
            verdict += f" [{short(warnings)}]"
        rows.append(
            {
                "image": name,
                "ours": verdict,
                "pycdlib": pycdlib_verdict(path),
                "oslo": oslo_verdict(path),
                "xorriso": xorriso_verdict(path),
            }
        )
    return rows


def describe(name: str) -> str:
    base, _, damage = name.partition("~")
    if not damage:
        return WHAT.get(name, "not an image")
    what = next(d.what for d in DAMAGES if d.name == damage)
    return f"{base}, {what}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build in (and keep) this folder")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead")
    parser.add_argument("--only", help="comma-separated image names (genuine or BASE~DAMAGE)")
    opts = parser.parse_args()
    base = opts.keep or Path(tempfile.mkdtemp(prefix="iso-compare-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        genuine = build_genuine(base)
        paths = genuine | build_damaged(base, genuine)
        if opts.only:
            wanted = set(opts.only.split(","))
            paths = {k: v for k, v in paths.items() if k in wanted}
        missing = [t for t in ("genisoimage", "xorriso", "mkudffs") if shutil.which(t) is None]
        if missing:
            print(
                f"not installed (their images are left out): {', '.join(missing)}", file=sys.stderr
            )
        rows = compare(paths)
        if opts.json:
            print(json.dumps(rows, indent=1))
            return 0
        print("| image | what | ours | pycdlib | oslo.utils format_inspector | xorriso |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            cells = [
                r["image"],
                describe(r["image"]),
                r["ours"],
                r["pycdlib"],
                r["oslo"],
                r["xorriso"],
            ]
            print("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        return 0
    finally:
        if opts.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
