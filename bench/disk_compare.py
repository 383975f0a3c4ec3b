"""Side by side: our ``disk`` verdict, oslo.utils' format_inspector, qemu-img info and check.

Builds genuine images with ``qemu-img`` (every format and subformat it makes
here), damaged copies of them (one per check of the ``disk`` item type, each
finding its structure by parsing the copy), and prints one row per file::

    python bench/disk_compare.py            # --json, --only NAME,…, --keep DIR

``ours`` is our message ids (``validator.disk.`` left out), ``valid`` when
none; ``expect`` is what tests/test_disk_compare.py asserts for that row.
oslo.utils is in the ``test`` extra only, never imported by the validator.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20


def qemu_img() -> str:
    path = shutil.which("qemu-img")
    if path is None:
        raise RuntimeError("qemu-img is not installed (apt-get install qemu-utils)")
    return path


def _run(*argv: str, cwd: Path) -> None:
    subprocess.run([qemu_img(), *argv], check=True, capture_output=True, timeout=120, cwd=cwd)


def _source(base: Path) -> Path:
    """8 MiB raw: 3 MiB of pseudo-random data, then zeros (so images are sparse)."""
    src = base / "source.raw"
    if not src.exists():
        data = b"".join(
            zlib.crc32(i.to_bytes(4, "little")).to_bytes(4, "little") * 16
            for i in range(3 * MiB // 64)
        )
        with open(src, "wb") as fh:
            fh.write(data)
            fh.truncate(8 * MiB)
    return src


SECRET = ["--object", "secret,id=s0,data=secret-passphrase"]


@dataclass(frozen=True)
class Build:
    name: str
    what: str
    argv: Callable[[Path, Path], list[list[str]]]
    expect: tuple[str, ...] = ()


def convert(fmt: str, *options: str) -> Callable[[Path, Path], list[list[str]]]:
    def argv(src: Path, out: Path) -> list[list[str]]:
        return [["convert", "-q", "-f", "raw", "-O", fmt, *options, str(src), out.name]]

    return argv


def create(fmt: str, *options: str, size: str = "8M") -> Callable[[Path, Path], list[list[str]]]:
    def argv(src: Path, out: Path) -> list[list[str]]:
        return [["create", "-q", "-f", fmt, *options, out.name, size]]

    return argv


def with_snapshots(src: Path, out: Path) -> list[list[str]]:
    return [
        *convert("qcow2")(src, out),
        ["snapshot", "-c", "first", out.name],
        ["snapshot", "-c", "second", out.name],
    ]


def with_backing(src: Path, out: Path) -> list[list[str]]:
    return [
        ["convert", "-q", "-f", "raw", "-O", "qcow2", str(src), "base.qcow2"],
        ["create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", out.name],
    ]


BUILDS = [
    Build("qcow2-v2", "qcow2 compat=0.10 (version 2)", convert("qcow2", "-o", "compat=0.10")),
    Build("qcow2-v3", "qcow2 compat=1.1 (version 3)", convert("qcow2", "-o", "compat=1.1")),
    Build("qcow2-lazy", "qcow2 lazy_refcounts=on", convert("qcow2", "-o", "lazy_refcounts=on")),
    Build("qcow2-extl2", "qcow2 extended_l2=on", convert("qcow2", "-o", "extended_l2=on")),
    Build("qcow2-zlib", "qcow2 compressed (-c, zlib)", convert("qcow2", "-c")),
    Build(
        "qcow2-zstd",
        "qcow2 compressed (-c, compression_type=zstd)",
        convert("qcow2", "-c", "-o", "compression_type=zstd"),
    ),
    Build(
        "qcow2-512",
        "qcow2 cluster_size=512, refcount_bits=64",
        convert("qcow2", "-o", "cluster_size=512,refcount_bits=64"),
    ),
    Build("qcow2-empty", "qcow2 created empty, 10 GiB", create("qcow2", size="10G")),
    Build(
        "qcow2-prealloc",
        "qcow2 preallocation=metadata",
        create("qcow2", "-o", "preallocation=metadata"),
    ),
    Build("qcow2-snap", "qcow2 with two internal snapshots", with_snapshots),
    Build("qcow2-backing", "qcow2 with a backing file", with_backing, ("backing_file",)),
    Build(
        "qcow2-datafile",
        "qcow2 with an external data file",
        create("qcow2", "-o", "data_file=external.raw"),
        ("data_file",),
    ),
    Build(
        "qcow2-luks",
        "qcow2 encrypted (encrypt.format=luks)",
        create(
            "qcow2", *SECRET, "-o", "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10"
        ),
        ("encrypted",),
    ),
    Build("vpc-dynamic", "VHD dynamic (vpc)", convert("vpc")),
    Build("vpc-fixed", "VHD fixed (vpc subformat=fixed)", convert("vpc", "-o", "subformat=fixed")),
    Build("vhdx-dynamic", "VHDX dynamic", convert("vhdx")),
    Build("vhdx-fixed", "VHDX fixed", convert("vhdx", "-o", "subformat=fixed")),
    Build("vdi-dynamic", "VDI dynamic", convert("vdi")),
    Build("vdi-static", "VDI static", convert("vdi", "-o", "static=on")),
    Build(
        "vmdk-stream", "VMDK streamOptimized", convert("vmdk", "-o", "subformat=streamOptimized")
    ),
    Build(
        "vmdk-sparse", "VMDK monolithicSparse", convert("vmdk", "-o", "subformat=monolithicSparse")
    ),
    Build(
        "vmdk-flat",
        "VMDK monolithicFlat (descriptor + flat extent)",
        convert("vmdk", "-o", "subformat=monolithicFlat"),
        ("vmdk.descriptor_only",),
    ),
    Build(
        "vmdk-2gb",
        "VMDK twoGbMaxExtentSparse (descriptor + extents)",
        convert("vmdk", "-o", "subformat=twoGbMaxExtentSparse"),
        ("vmdk.descriptor_only",),
    ),
    Build("raw", "raw", convert("raw")),
    Build(
        "luks",
        "LUKS container",
        create("luks", *SECRET, "-o", "key-secret=s0,iter-time=10"),
        ("encrypted",),
    ),
    Build("qed", "QED", convert("qed"), ("unsupported_format",)),
]
SUFFIX = {
    "qcow2": ".qcow2",
    "vpc": ".vhd",
    "vhdx": ".vhdx",
    "vdi": ".vdi",
    "vmdk": ".vmdk",
    "raw": ".raw",
    "luks": ".luks",
    "qed": ".qed",
}


def suffix(name: str) -> str:
    return SUFFIX[name.split("-")[0]]


def gpt_image(path: Path, size: int = 8 * MiB) -> None:
    """A raw image with a protective MBR and a GPT of one partition, as sgdisk writes it."""
    sectors = size // 512
    entries = bytearray(128 * 128)
    entries[0:16] = uuid.UUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4").bytes_le
    entries[16:32] = uuid.UUID(int=1).bytes_le
    entries[32:48] = struct.pack("<QQ", 2048, sectors - 34)
    entries[56 : 56 + 8] = "root".encode("utf-16-le")

    def header(current: int, backup: int, table: int) -> bytes:
        h = bytearray(
            struct.pack(
                "<8sIIIIQQQQ16sQIII",
                b"EFI PART",
                0x10000,
                92,
                0,
                0,
                current,
                backup,
                34,
                sectors - 34,
                uuid.UUID(int=2).bytes_le,
                table,
                128,
                128,
                zlib.crc32(entries),
            )
        )
        h[16:20] = struct.pack("<I", zlib.crc32(h))
        return bytes(h) + bytes(512 - len(h))

    mbr = bytearray(512)
    mbr[446:462] = bytes([0, 0, 2, 0, 0xEE, 0xFF, 0xFF, 0xFF]) + struct.pack(
        "<II", 1, min(sectors - 1, 0xFFFFFFFF)
    )
    mbr[510:512] = b"\x55\xaa"
    with open(path, "wb") as fh:
        fh.write(mbr + header(1, sectors - 1, 2) + entries)
        fh.truncate(size)
        fh.seek(size - 33 * 512)
        fh.write(entries + header(sectors - 1, 1, sectors - 33))


def build_genuine(base: Path, names: set[str] | None = None) -> dict[str, Path]:
    src = _source(base)
    out: dict[str, Path] = {}
    for b in BUILDS:
        if names is not None and b.name not in names:
            continue
        path = base / f"{b.name}{suffix(b.name)}"
        for _attempt in range(2):  # LUKS key derivation has failed once under heavy load
            try:
                for argv in b.argv(src, path):
                    _run(*argv, cwd=base)
            except subprocess.CalledProcessError:
                path.unlink(missing_ok=True)
                continue  # this qemu-img cannot make it (zstd not built in…)
            out[b.name] = path
            break
    if names is None or "raw-gpt" in names:
        gpt_image(base / "raw-gpt.raw")
        out["raw-gpt"] = base / "raw-gpt.raw"
    return out


# -- damaged copies ---------------------------------------------------------------


def be(fmt: str, d: bytearray, at: int) -> int:
    value: int = struct.unpack_from(">" + fmt, d, at)[0]
    return value


def put(fmt: str, d: bytearray, at: int, value: int) -> None:
    struct.pack_into(fmt, d, at, value)


def vhd_fix(d: bytearray, at: int, where: int) -> None:
    """Recompute a VHD checksum (footer: field at 64; dynamic header: at 36)."""
    size = 512 if where == 64 else 1024
    block = d[at : at + size]
    block[where : where + 4] = bytes(4)
    put(">I", d, at + where, ~sum(block) & 0xFFFFFFFF)


def vhd_set_type(kind: int) -> Callable[[bytearray], None]:
    def edit(d: bytearray) -> None:
        for at in (0, len(d) - 512):
            put(">I", d, at + 60, kind)
            vhd_fix(d, at, 64)

    return edit


def vhd_bat_far(d: bytearray) -> None:
    dyn = be("Q", d, 16)
    put(">Q", d, dyn + 16, len(d) * 4)
    vhd_fix(d, dyn, 36)


def vhdx_file_parameters(d: bytearray) -> int:
    """Offset of the VHDX file parameters item (found through the region and metadata tables)."""
    table = 192 * 1024
    meta_guid = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E").bytes_le
    params = uuid.UUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B").bytes_le
    for i in range(struct.unpack_from("<I", d, table + 8)[0]):
        at = table + 16 + 32 * i
        if d[at : at + 16] == meta_guid:
            meta = struct.unpack_from("<Q", d, at + 16)[0]
            for j in range(struct.unpack_from("<H", d, meta + 10)[0]):
                e = meta + 32 + 32 * j
                if d[e : e + 16] == params:
                    return int(meta + struct.unpack_from("<I", d, e + 16)[0])
    raise LookupError("no file parameters item")


def vhdx_header(d: bytearray) -> int:
    """Offset of the current VHDX header (the higher sequence number)."""
    return max((64 * 1024, 128 * 1024), key=lambda at: struct.unpack_from("<Q", d, at + 8)[0])


def crc32c_fix(d: bytearray, at: int, length: int) -> None:
    import google_crc32c

    d[at + 4 : at + 8] = bytes(4)
    put("<I", d, at + 4, google_crc32c.value(bytes(d[at : at + length])))


def vhdx_log_guid(d: bytearray) -> None:
    """A log GUID in the header and an empty log (as Hyper-V leaves it): nothing to replay."""
    at = vhdx_header(d)
    d[at + 48 : at + 64] = uuid.UUID(int=7).bytes_le
    crc32c_fix(d, at, 4096)


def vhdx_log_entry(d: bytearray) -> None:
    """A log GUID and a valid log entry of that GUID at the log's start: a log to replay."""
    vhdx_log_guid(d)
    at = vhdx_header(d)
    log = struct.unpack_from("<Q", d, at + 72)[0]
    entry = bytearray(4096)
    entry[0:4] = b"loge"
    struct.pack_into("<IIQII", entry, 8, 4096, 4096, 1, 0, 0)
    entry[32:48] = uuid.UUID(int=7).bytes_le
    d[log : log + 4096] = entry
    crc32c_fix(d, log, 4096)


def vhdx_parent(d: bytearray) -> None:
    d[vhdx_file_parameters(d) + 4] |= 2


def flip(at: int) -> Callable[[bytearray], None]:
    def edit(d: bytearray) -> None:
        d[at] ^= 0x01

    return edit


def flip_end(back: int) -> Callable[[bytearray], None]:
    def edit(d: bytearray) -> None:
        d[len(d) - back] ^= 0x01

    return edit


def cut(fraction: float) -> Callable[[bytearray], None]:
    def edit(d: bytearray) -> None:
        del d[int(len(d) * fraction) :]

    return edit


def cut_tail(n: int) -> Callable[[bytearray], None]:
    def edit(d: bytearray) -> None:
        del d[-n:]

    return edit


def field8(at: int, value: int) -> Callable[[bytearray], None]:
    return lambda d: put(">Q", d, at, value)


def field4(at: int, value: int) -> Callable[[bytearray], None]:
    return lambda d: put(">I", d, at, value)


def le4(at: int, value: int) -> Callable[[bytearray], None]:
    return lambda d: put("<I", d, at, value)


def qcow2_l1_is_reftable(d: bytearray) -> None:
    put(">Q", d, 40, be("Q", d, 48))


def qcow2_l1_far(d: bytearray) -> None:
    put(">Q", d, 40, (len(d) // 65536 + 16) * 65536)


def qcow2_snapshots_far(d: bytearray) -> None:
    put(">Q", d, 64, (len(d) // 65536 + 16) * 65536)


def both(*edits: Callable[[bytearray], None]) -> Callable[[bytearray], None]:
    def edit(d: bytearray) -> None:
        for e in edits:
            e(d)

    return edit


@dataclass(frozen=True)
class Damage:
    name: str
    what: str
    bases: tuple[str, ...]
    edit: Callable[[bytearray], None]
    expect: tuple[str, ...] = field(default=())


DAMAGES = [
    Damage(
        "incompat",
        "qcow2: unknown incompatible feature bit 10",
        ("qcow2-v3",),
        field8(72, 1 << 10),
        ("unknown_incompatible",),
    ),
    Damage("dirty", "qcow2: dirty bit set", ("qcow2-v3",), field8(72, 1), ("qcow2.dirty",)),
    Damage("corrupt", "qcow2: corrupt bit set", ("qcow2-v3",), field8(72, 2), ("qcow2.corrupt",)),
    Damage(
        "databit",
        "qcow2: external data file bit, no name",
        ("qcow2-v3",),
        field8(72, 4),
        ("data_file",),
    ),
    Damage("aes", "qcow2: crypt_method 1 (AES)", ("qcow2-v3",), field4(32, 1), ("encrypted",)),
    Damage("version", "qcow2: version 4", ("qcow2-v3",), field4(4, 4), ("field_range",)),
    Damage("cluster", "qcow2: cluster_bits 30", ("qcow2-v3",), field4(20, 30), ("field_range",)),
    Damage("hdrlen", "qcow2: header_length 100", ("qcow2-v3",), field4(100, 100), ("field_range",)),
    Damage(
        "l1-far",
        "qcow2: L1 table past the end",
        ("qcow2-v3", "qcow2-v2"),
        qcow2_l1_far,
        ("table_outside",),
    ),
    Damage(
        "l1-odd",
        "qcow2: L1 table not cluster-aligned",
        ("qcow2-v3",),
        lambda d: put(">Q", d, 40, be("Q", d, 40) + 8),
        ("table_misaligned",),
    ),
    Damage(
        "l1-rt",
        "qcow2: L1 table on the refcount table",
        ("qcow2-v3",),
        qcow2_l1_is_reftable,
        ("tables_overlap",),
    ),
    Damage(
        "rt-zero",
        "qcow2: refcount table at offset 0 (the header)",
        ("qcow2-v3",),
        field8(48, 0),
        ("table_overlaps_header",),
    ),
    Damage(
        "snap-far",
        "qcow2: snapshot table past the end",
        ("qcow2-snap",),
        qcow2_snapshots_far,
        ("table_outside",),
    ),
    Damage(
        "huge",
        "qcow2: virtual size 2^60",
        ("qcow2-v3",),
        field8(24, 1 << 60),
        ("virtual_size_limit", "field_range"),
    ),
    Damage(
        "cut",
        "cut to half",
        ("qcow2-v3", "qcow2-zlib", "vpc-dynamic", "vhdx-dynamic", "vdi-dynamic", "vdi-static"),
        cut(0.5),
        ("truncated", "table_outside", "vhd.no_footer"),
    ),
    # A fixed VHD is raw data and a footer: without the footer it is raw data named .vhd.
    Damage("cut", "cut to half", ("vpc-fixed",), cut(0.5), ("name_mismatch",)),
    Damage(
        "vhd-sum",
        "VHD: a byte of the footer flipped",
        ("vpc-fixed",),
        flip_end(512 - 70),
        ("bad_checksum",),
    ),
    Damage(
        "vhd-diff",
        "VHD: disk type 4 (differencing)",
        ("vpc-dynamic",),
        vhd_set_type(4),
        ("differencing",),
    ),
    Damage(
        "vhd-nofoot",
        "VHD dynamic: last 512 bytes (the footer) cut",
        ("vpc-dynamic",),
        cut_tail(512),
        ("vhd.no_footer",),
    ),
    Damage(
        "vhd-bat",
        "VHD dynamic: BAT past the end",
        ("vpc-dynamic",),
        vhd_bat_far,
        ("table_outside",),
    ),
    Damage(
        "vhdx-h1",
        "VHDX: a byte of the first header flipped",
        ("vhdx-dynamic",),
        flip(64 * 1024 + 100),
        ("bad_checksum",),
    ),
    Damage(
        "vhdx-hh",
        "VHDX: a byte of both headers flipped",
        ("vhdx-dynamic",),
        both(flip(64 * 1024 + 100), flip(128 * 1024 + 100)),
        ("bad_checksum", "vhdx.no_header"),
    ),
    Damage(
        "vhdx-rt",
        "VHDX: a byte of both region tables flipped",
        ("vhdx-dynamic",),
        both(flip(192 * 1024 + 40), flip(256 * 1024 + 40)),
        ("bad_checksum", "vhdx.no_region_table"),
    ),
    Damage(
        "vhdx-logguid",
        "VHDX: a log GUID, an empty log (not damage)",
        ("vhdx-dynamic",),
        vhdx_log_guid,
    ),
    Damage(
        "vhdx-log",
        "VHDX: a valid log entry to replay",
        ("vhdx-dynamic",),
        vhdx_log_entry,
        ("vhdx.log_replay",),
    ),
    Damage(
        "vhdx-parent",
        "VHDX: file parameters say 'has parent'",
        ("vhdx-dynamic",),
        vhdx_parent,
        ("differencing",),
    ),
    Damage(
        "vdi-diff",
        "VDI: image type 4 (differencing)",
        ("vdi-dynamic",),
        le4(76, 4),
        ("differencing",),
    ),
    Damage(
        "vdi-sig",
        "VDI: signature zeroed (named .vdi)",
        ("vdi-dynamic",),
        le4(64, 0),
        ("name_mismatch",),
    ),
    Damage(
        "vdi-bmap",
        "VDI: block map entry past the allocated blocks",
        ("vdi-dynamic",),
        lambda d: put("<I", d, struct.unpack_from("<I", d, 340)[0], 1000),
        ("field_range",),
    ),
    Damage(
        "gpt-crc",
        "raw GPT: a byte of the GPT header flipped",
        ("raw-gpt",),
        flip(512 + 40),
        ("bad_checksum",),
    ),
    Damage("gpt-cut", "raw GPT: cut to half", ("raw-gpt",), cut(0.5), ("partition_outside",)),
    Damage("vmdk-cut", "VMDK monolithicSparse: cut to half", ("vmdk-sparse",), cut(0.5), ("*",)),
]


def build_damaged(base: Path, genuine: dict[str, Path]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for dmg in DAMAGES:
        for name in dmg.bases:
            if name not in genuine:
                continue
            data = bytearray(genuine[name].read_bytes())
            dmg.edit(data)
            path = base / f"{name}~{dmg.name}{genuine[name].suffix}"
            path.write_bytes(bytes(data))
            out[f"{name}~{dmg.name}"] = path
    if "qcow2-v3" in genuine:
        # A name that promises another format than the content.
        path = base / "qcow2-v3~named-vmdk.vmdk"
        shutil.copy(genuine["qcow2-v3"], path)
        out["qcow2-v3~named-vmdk"] = path
    return out


def expected(name: str) -> tuple[str, ...]:
    """The ids (``validator.disk.`` left out) one of which we must give; () = valid."""
    base, _, damage = name.partition("~")
    if damage == "named-vmdk":
        return ("name_mismatch",)
    if damage:
        return next(d.expect for d in DAMAGES if d.name == damage and base in d.bases)
    return next((b.expect for b in BUILDS if b.name == base), ())


# -- verdicts ----------------------------------------------------------------------


def ours(path: Path, limits: dict[str, int] | None = None) -> list[str]:
    sys.path.insert(0, str(ROOT))
    from validator.engine import Engine
    from validator.limits import Limits

    engine = Engine(limits=Limits(**(limits or {})))
    session = engine.open(path)
    result = engine.validate(session)
    assert result.item_type == "disk", (path, result.item_type)
    return [e.error_message.id for e in result.invalid_files]


def oslo_verdict(path: Path) -> str:
    try:
        from oslo_utils.imageutils import format_inspector as fi
    except ImportError:
        return "(oslo.utils not installed)"
    try:
        found = fi.detect_file_format(str(path))
    except Exception as exc:
        return f"{type(exc).__name__}: {' '.join(str(exc).split())[:80]}"
    try:
        found.safety_check()
    except Exception as exc:
        return f"{found}; unsafe: {' '.join(str(exc).split())[:80]}"
    return str(found)


def qemu_verdict(path: Path, command: str) -> str:
    argv = [qemu_img(), command, "-U", "--output=json", str(path)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=path.parent)
    except subprocess.TimeoutExpired:
        return "timed out"
    proc.stderr = proc.stderr.replace(f"{path.parent}/", "")
    if command == "info":
        if proc.returncode:
            return "error: " + " ".join(proc.stderr.split())[:90]
        info = json.loads(proc.stdout)
        notes = [info.get("format", "?")]
        if "backing-filename" in info:
            notes.append("backing file")
        if info.get("encrypted"):
            notes.append("encrypted")
        if (info.get("format-specific") or {}).get("data", {}).get("data-file"):
            notes.append("data file")
        return "; ".join(notes)
    if proc.returncode == 63:
        return "check not supported"
    if proc.returncode == 0:
        return "ok"
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return f"exit {proc.returncode}: " + " ".join(proc.stderr.split())[:80]
    counts = [f"{k}={report[k]}" for k in ("corruptions", "leaks", "check-errors") if report.get(k)]
    return f"exit {proc.returncode}: " + (", ".join(counts) or " ".join(proc.stderr.split())[:80])


def short(ids: list[str]) -> str:
    return ", ".join(dict.fromkeys(i.removeprefix("validator.disk.") for i in ids)) or "valid"


def describe(name: str) -> str:
    base, _, damage = name.partition("~")
    what = next(
        (b.what for b in BUILDS if b.name == base), "raw with a GPT" if base == "raw-gpt" else base
    )
    if not damage:
        return what
    if damage == "named-vmdk":
        return f"{base} named .vmdk"
    return f"{base}, " + next(d.what for d in DAMAGES if d.name == damage and base in d.bases)


def compare(paths: dict[str, Path]) -> list[dict[str, str]]:
    rows = []
    for name, path in paths.items():
        exp = expected(name)
        rows.append(
            {
                "image": name,
                "what": describe(name),
                "expect": " or ".join(exp) if exp else "valid",
                "ours": short(ours(path)),
                "oslo": oslo_verdict(path),
                "info": qemu_verdict(path, "info"),
                "check": qemu_verdict(path, "check"),
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build in (and keep) this folder")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead")
    parser.add_argument("--only", help="comma-separated image names (genuine or BASE~DAMAGE)")
    opts = parser.parse_args()
    base = opts.keep or Path(tempfile.mkdtemp(prefix="disk-compare-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        genuine = build_genuine(base)
        paths = genuine | build_damaged(base, genuine)
        if opts.only:
            wanted = set(opts.only.split(","))
            paths = {k: v for k, v in paths.items() if k in wanted}
        rows = compare(paths)
        if opts.json:
            print(json.dumps(rows, indent=1))
            return 0
        print(
            "| image | what | ours | oslo.utils format_inspector | qemu-img info | qemu-img check |"
        )
        print("|---|---|---|---|---|---|")
        for r in rows:
            cells = [r["image"], r["what"], r["ours"], r["oslo"], r["info"], r["check"]]
            print("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        return 0
    finally:
        if opts.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
