"""Real VMDK disks (made by qemu-img), damaged copies of them, and OVF bundles around them."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from collections.abc import Sequence
from pathlib import Path

import pytest

SECTOR = 512
STREAM = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
SPARSE = "http://www.vmware.com/interfaces/specifications/vmdk.html#monolithicSparse"
HEADER = struct.Struct("<4sIIQQQQIQQQB4sH")


def qemu_img() -> str:
    path = shutil.which("qemu-img")
    if path is None:
        pytest.skip("qemu-img is not installed (apt-get install qemu-utils)")
    return path


def make_vmdk(
    folder: Path, name: str, subformat: str, size: int = 4 << 20, data: bool = True
) -> Path:
    """A real VMDK of ``size`` bytes made by qemu-img; ``data``: half of it random."""
    raw = folder / f"{name}.raw"
    with open(raw, "wb") as fh:
        fh.truncate(size)
        if data:
            fh.seek(0)
            fh.write(os.urandom(size // 2))
    out = folder / name
    subprocess.run(
        [
            qemu_img(),
            "convert",
            "-q",
            "-f",
            "raw",
            "-O",
            "vmdk",
            "-o",
            f"subformat={subformat}",
            str(raw),
            str(out),
        ],
        check=True,
    )
    raw.unlink()
    return out


def ovf_text(
    href: str,
    size: int,
    capacity: int,
    disk_format: str | None = STREAM,
    compression: str | None = None,
    chunk_size: int | None = None,
) -> str:
    extra = f' ovf:compression="{compression}"' if compression else ""
    extra += f' ovf:chunkSize="{chunk_size}"' if chunk_size else ""
    fmt = f' ovf:format="{disk_format}"' if disk_format is not None else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References>
    <File ovf:id="file1" ovf:href="{href}" ovf:size="{size}"{extra}/>
  </References>
  <DiskSection>
    <Info>Virtual disks</Info>
    <Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="{capacity}"{fmt}/>
  </DiskSection>
  <VirtualSystem ovf:id="vm">
    <Info>A virtual machine</Info>
    <VirtualHardwareSection>
      <Info>Virtual hardware</Info>
      <Item>
        <rasd:ElementName>Hard Disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"""


def bundle(
    folder: Path,
    disk: Path,
    *,
    capacity: int | None = None,
    disk_format: str | None = STREAM,
    href: str = "disk.vmdk",
) -> Path:
    """A bundle folder: vm.ovf referencing a copy of ``disk`` named ``href``."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(disk, folder / href)
    size = (folder / href).stat().st_size
    cap = capacity if capacity is not None else header(folder / href)[3] * SECTOR
    (folder / "vm.ovf").write_text(ovf_text(href, size, cap, disk_format), encoding="utf-8")
    return folder


def header(path: Path) -> tuple:  # type: ignore[type-arg]
    with open(path, "rb") as fh:
        return HEADER.unpack(fh.read(HEADER.size))


def patch_header(path: Path, **fields: int | bytes) -> None:
    names = [
        "magic",
        "version",
        "flags",
        "capacity",
        "grain_size",
        "descriptor_offset",
        "descriptor_size",
        "gtes",
        "rgd_offset",
        "gd_offset",
        "overhead",
        "unclean",
        "newline",
        "compress",
    ]
    values = list(header(path))
    for key, value in fields.items():
        values[names.index(key)] = value
    with open(path, "r+b") as fh:
        fh.write(HEADER.pack(*values))


def edit_descriptor(path: Path, old: str, new: str) -> None:
    """Replace text in the embedded descriptor, in place (the area stays the same size)."""
    h = header(path)
    start, length = h[5] * SECTOR, h[6] * SECTOR
    with open(path, "r+b") as fh:
        fh.seek(start)
        area = fh.read(length)
        text = area.split(b"\0", 1)[0].decode()
        assert old in text, text
        data = text.replace(old, new).encode()
        assert len(data) <= length
        fh.seek(start)
        fh.write(data + bytes(length - len(data)))


def truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(size)


def vmware_stream(
    path: Path, name: str, grains: int = 3, capacity_sectors: int = 8192, footer: bool = True
) -> Path:
    """A streamOptimized disk laid out as VMware writes it: grain directory at the end.

    Header (gdOffset = 0xFFFFFFFFFFFFFFFF), descriptor, grains with markers, a
    grain table marker and table, a grain directory marker and directory, a
    footer marker, the footer (the header with the real gdOffset), an
    end-of-stream marker.
    """
    grain = 128
    overhead = 128
    desc = (
        "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n"
        'createType="streamOptimized"\n\n# Extent description\n'
        f'RW {capacity_sectors} SPARSE "{name}"\n\n# The Disk Data Base\n#DDB\n'
        'ddb.adapterType = "lsilogic"\n'
    ).encode()

    def head(gd: int) -> bytes:
        block = HEADER.pack(
            b"KDMV",
            3,
            0x30001,
            capacity_sectors,
            grain,
            1,
            20,
            512,
            0,
            gd,
            overhead,
            0,
            b"\n \r\n",
            1,
        )
        return block + bytes(SECTOR - len(block))

    out = bytearray(head(0xFFFFFFFFFFFFFFFF))
    out += desc + bytes(20 * SECTOR - len(desc))
    out += bytes(overhead * SECTOR - len(out))
    table = [0] * 512
    for i in range(grains):
        table[i] = len(out) // SECTOR
        data = zlib.compress(os.urandom(grain * SECTOR))
        marker = struct.pack("<QI", i * grain, len(data)) + data
        out += marker + bytes(-len(marker) % SECTOR)
    gt_at = len(out) // SECTOR + 1
    out += struct.pack("<QII", 4, 0, 1) + bytes(SECTOR - 16)
    out += struct.pack("<512I", *table)
    gd_entries = -(-capacity_sectors // grain // 512) or 1
    gd_at = len(out) // SECTOR + 1
    out += struct.pack("<QII", 1, 0, 2) + bytes(SECTOR - 16)
    gd = struct.pack(f"<{gd_entries}I", gt_at, *([0] * (gd_entries - 1)))
    out += gd + bytes(-len(gd) % SECTOR)
    if footer:
        out += struct.pack("<QII", 1, 0, 3) + bytes(SECTOR - 16)
        out += head(gd_at)
        out += bytes(SECTOR)  # end-of-stream marker
    path.write_bytes(bytes(out))
    return path


def raw_image(path: Path, size: int, writes: Sequence[tuple[int, bytes]] = ()) -> Path:
    """A raw image of ``size`` bytes, zero but for ``writes`` (offset, bytes)."""
    with open(path, "wb") as fh:
        fh.truncate(size)
        for at, data in writes:
            fh.seek(at)
            fh.write(data)
    return path


def qemu_convert(
    src: Path, out: Path, subformat: str | None = "streamOptimized", *options: str,
    src_format: str = "raw",
) -> Path:  # fmt: skip
    """``qemu-img convert -f SRC_FORMAT -O vmdk -o subformat=…,OPTIONS src out``."""
    opts = ",".join([*([f"subformat={subformat}"] if subformat else []), *options])
    command = [qemu_img(), "convert", "-q", "-f", src_format, "-O", "vmdk"]
    if opts:
        command += ["-o", opts]
    subprocess.run([*command, str(src), str(out)], check=True)
    return out


#: Debian's python3-vmdkstream: VMDKstream, the streamOptimized writer of Red Hat's Image
#: Factory and Ubuntu's cloud images (VMware's layout: grain tables and directory after
#: the grains, footer, end-of-stream marker; extent "call-me-stream.vmdk", RDONLY).
VMDKSTREAM = Path("/usr/lib/python3/dist-packages/VMDKstream.py")


def vmdkstream(raw: Path, out: Path) -> Path:
    """``VMDKstream.convert_to_stream(raw, out)``: a real VMware-layout stream producer."""
    if not VMDKSTREAM.is_file():
        pytest.skip("VMDKstream is not installed (apt-get install python3-vmdkstream)")
    import importlib.util

    spec = importlib.util.spec_from_file_location("VMDKstream", VMDKSTREAM)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.convert_to_stream(str(raw), str(out))
    return out


def open_vmdk_stream(path: Path, data: bytes, name: str = "disk") -> Path:
    """A streamOptimized disk laid out as open-vmdk's ``vmdk-convert`` writes it.

    open-vmdk is not packaged in Debian 12, so its layout is built here from what its
    writer (``vmdk/sparse.c``) does: header (version 3, flags 0x30001, grains of 128
    sectors), the descriptor at sector 1 (20 sectors, ``encoding="UTF-8"``, the extent
    named after the output file, by default ``disk``), the grain directory right after
    it (a real ``gdOffset``) and every grain table after that, then the non-zero grains
    (deflate level 9; the last one only as long as the capacity's rest, in sectors), then
    an end-of-stream marker.  No grain table or directory markers, no footer: the
    directory and tables are written in place at the end, by seeking back.
    """
    grain = 128
    grain_bytes = grain * SECTOR
    capacity = -(-len(data) // SECTOR)
    last_nr, last_size = capacity // grain, capacity % grain * SECTOR
    gtes = last_nr + (last_size != 0)
    gts = -(-gtes // 512)
    gd_sectors = -(-gts * 4 // SECTOR)
    gd_at = 1 + 20
    gt_base = gd_at + gd_sectors
    overhead = gt_base + gts * 4
    table = [0] * (gts * 512)
    out = bytearray(overhead * SECTOR)
    for nr in range(gtes):
        length = grain_bytes if nr < last_nr else last_size
        chunk = data[nr * grain_bytes : nr * grain_bytes + length].ljust(length, b"\0")
        if not any(chunk):
            continue
        table[nr] = len(out) // SECTOR
        packed = zlib.compress(chunk, 9)
        record = struct.pack("<QI", nr * grain, len(packed)) + packed
        out += record + bytes(-len(record) % SECTOR)
    out += bytes(SECTOR)  # end-of-stream marker
    gd = struct.pack(f"<{gts}I", *(gt_base + 4 * i for i in range(gts)))
    out[gd_at * SECTOR : gd_at * SECTOR + len(gd)] = gd
    tables = struct.pack(f"<{len(table)}I", *table)
    out[gt_base * SECTOR : gt_base * SECTOR + len(tables)] = tables
    cylinders = min(65535, -(-capacity // (255 * 63)))
    desc = (
        '# Disk DescriptorFile\nversion=1\nencoding="UTF-8"\nCID=5d3a1c2b\nparentCID=ffffffff\n'
        f'createType="streamOptimized"\n\n# Extent description\nRW {capacity} SPARSE "{name}"\n\n'
        '# The Disk Data Base\n#DDB\n\nddb.longContentID = "0123456789abcdef0123456789abcdef"\n'
        f'ddb.virtualHWVersion = "4"\nddb.geometry.cylinders = "{cylinders}"\n'
        'ddb.geometry.heads = "255"\nddb.geometry.sectors = "63"\n'
        'ddb.adapterType = "lsilogic"\nddb.toolsVersion = "2147483647"\n'
    ).encode()
    out[SECTOR : SECTOR + len(desc)] = desc
    block = HEADER.pack(b"KDMV", 3, 0x30001, capacity, grain, 1, 20, 512, 0, gd_at, overhead, 0,
                        b"\n \r\n", 1)  # fmt: skip
    out[: len(block)] = block
    path.write_bytes(bytes(out))
    return path
