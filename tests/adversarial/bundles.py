"""Builders for real bundles, made at test time (no committed binaries).

Descriptors are string templates (no XML library writes them, so anything
hostile can be expressed); archives are written with :mod:`tarfile`; disks come
from the sample or from ``qemu-img``; images from ``genisoimage``/``xorriso``;
signatures from ``openssl``.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
OVF1 = "http://schemas.dmtf.org/ovf/envelope/1"
VMDK_FORMAT = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"

SAMPLE_OVF = (SAMPLES / "vm.ovf").read_bytes()
SAMPLE_DISK = (SAMPLES / "vm-disk1.vmdk").read_bytes()
SAMPLE_MF = (SAMPLES / "vm.mf").read_bytes()
SAMPLE_SESSION = (SAMPLES / "vm.session.yaml").read_bytes()


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def file_element(fid: str, href: str, extra: str = "") -> str:
    return f'<File ovf:id="{fid}" ovf:href="{href}"{extra}/>'


def disk_element(disk_id: str = "vmdisk1", file_ref: str | None = "file1", extra: str = "") -> str:
    ref = f' ovf:fileRef="{file_ref}"' if file_ref is not None else ""
    return (
        f'<Disk ovf:diskId="{disk_id}"{ref} ovf:capacity="64" '
        f'ovf:capacityAllocationUnits="byte * 2^20" ovf:format="{VMDK_FORMAT}"{extra}/>'
    )


def descriptor(
    files: Iterable[str] = (file_element("file1", "vm-disk1.vmdk"),),
    disks: Iterable[str] = (disk_element(),),
    *,
    prolog: str = "",
    ns: str = OVF1,
    info: str = "A small virtual machine",
    system_extra: str = "",
    root_attrs: str = "",
    hardware: bool = True,
) -> str:
    """An OVF 1.x descriptor: References, a DiskSection, one VirtualSystem."""
    disks = list(disks)
    disk_section = (
        "<DiskSection><Info>Disks</Info>" + "".join(disks) + "</DiskSection>" if disks else ""
    )
    host = (
        "<VirtualHardwareSection><Info>hw</Info><Item>"
        "<rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>"
        "<rasd:InstanceID>4</rasd:InstanceID><rasd:ResourceType>17</rasd:ResourceType>"
        "</Item></VirtualHardwareSection>"
        if hardware and disks
        else "<VirtualHardwareSection><Info>hw</Info></VirtualHardwareSection>"
        if hardware
        else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"{prolog}"
        f'<Envelope xmlns="{ns}" xmlns:ovf="{ns}" '
        'xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/'
        'CIM_ResourceAllocationSettingData" '
        f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"{root_attrs}>\n'
        "<References>" + "".join(files) + "</References>\n"
        f"{disk_section}\n"
        f'<VirtualSystem ovf:id="vm"><Info>{info}</Info>{system_extra}{host}</VirtualSystem>\n'
        "</Envelope>\n"
    )


def write(folder: Path, files: dict[str, bytes | str]) -> None:
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def package(
    folder: Path,
    ovf: str | bytes | None = None,
    *,
    disk: bytes | None = SAMPLE_DISK,
    disk_name: str = "vm-disk1.vmdk",
    name: str = "vm.ovf",
    extra: dict[str, bytes | str] | None = None,
) -> Path:
    """A package folder: the descriptor (default: a template like the sample) and its disk."""
    files: dict[str, bytes | str] = {name: descriptor() if ovf is None else ovf}
    if disk is not None:
        files[disk_name] = disk
    files.update(extra or {})
    write(folder, files)
    return folder / name


def manifest_text(folder: Path, names: Iterable[str], alg: str = "SHA256") -> str:
    lines = []
    for n in names:
        digest = hashlib.new(alg.lower(), (folder / n).read_bytes()).hexdigest()
        lines.append(f"{alg}({n})= {digest}\n")
    return "".join(lines)


# -- archives -------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One tar member: a regular file unless ``kind`` says otherwise."""

    name: str
    data: bytes = b""
    kind: bytes = tarfile.REGTYPE
    linkname: str = ""


def tar_bytes(members: Iterable[Member], *, fmt: int = tarfile.USTAR_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.type = m.kind
            info.linkname = m.linkname
            info.mode = 0o644
            if m.kind == tarfile.REGTYPE:
                info.size = len(m.data)
                tar.addfile(info, io.BytesIO(m.data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def sample_members(ovf: bytes | None = None) -> list[Member]:
    return [Member("vm.ovf", ovf or descriptor().encode()), Member("vm-disk1.vmdk", SAMPLE_DISK)]


# -- tools ----------------------------------------------------------------------


def run(*cmd: str | Path, cwd: Path | None = None) -> None:
    subprocess.run([str(c) for c in cmd], check=True, capture_output=True, cwd=cwd, timeout=60)


def qemu_vmdk(path: Path, size: str = "1M", subformat: str = "streamOptimized") -> bytes:
    run("qemu-img", "create", "-q", "-f", "vmdk", "-o", f"subformat={subformat}", path, size)
    return path.read_bytes()


def iso_image(work: Path, out: Path) -> bytes:
    src = work / "iso-src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "README.TXT").write_text("hello\n")
    if have("genisoimage"):
        run("genisoimage", "-quiet", "-J", "-R", "-V", "TESTISO", "-o", out, src)
    else:
        run("xorriso", "-as", "mkisofs", "-quiet", "-J", "-R", "-V", "TESTISO", "-o", out, src)
    shutil.rmtree(src)
    return out.read_bytes()


def openssl_identity(work: Path) -> tuple[Path, Path]:
    """A private key and a self-signed certificate (PEM)."""
    key, cert = work / "key.pem", work / "cert.pem"
    run(
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
        "-out", cert, "-days", "1", "-subj", "/CN=adversarial",
    )  # fmt: skip
    return key, cert


def sign(key: Path, data_path: Path, alg: str = "sha256") -> str:
    out = subprocess.run(
        ["openssl", "dgst", f"-{alg}", "-sign", str(key), str(data_path)],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    return out.hex()


def symlink(target: str | Path, link: Path) -> None:
    os.symlink(target, link)


@cache
def identity() -> tuple[bytes, bytes] | None:
    """A private key and self-signed certificate (PEM), made once per process (None
    without openssl)."""
    import tempfile

    if not have("openssl"):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        key, cert = openssl_identity(Path(tmp))
        return key.read_bytes(), cert.read_bytes()


def signed(folder: Path, names: Iterable[str] = ("vm.ovf", "vm-disk1.vmdk"),
           *, cert_extra: bytes = b"") -> None:  # fmt: skip
    """Write ``vm.mf`` (SHA256 of ``names``) and ``vm.cert`` (its signature and the
    certificate) into ``folder``; the key is kept outside it only while signing."""
    import tempfile

    write(folder, {"vm.mf": manifest_text(folder, names)})
    ident = identity()
    assert ident is not None, "needs openssl"
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "key.pem"
        key.write_bytes(ident[0])
        signature = sign(key, folder / "vm.mf")
    write(folder, {"vm.cert": f"SHA256(vm.mf)= {signature}\n".encode() + ident[1] + cert_extra})


VMDK_DESCRIPTOR_AT = 512
VMDK_DESCRIPTOR_BYTES = 20 * 512


def vmdk_descriptor() -> str:
    raw = SAMPLE_DISK[VMDK_DESCRIPTOR_AT : VMDK_DESCRIPTOR_AT + VMDK_DESCRIPTOR_BYTES]
    return raw.rstrip(b"\0").decode("ascii")


def vmdk_with_descriptor(text: str, disk: bytes = SAMPLE_DISK) -> bytes:
    """The sample disk with another embedded descriptor (same 20-sector area)."""
    raw = text.encode("utf-8")
    assert len(raw) <= VMDK_DESCRIPTOR_BYTES
    out = bytearray(disk)
    out[VMDK_DESCRIPTOR_AT : VMDK_DESCRIPTOR_AT + VMDK_DESCRIPTOR_BYTES] = raw.ljust(
        VMDK_DESCRIPTOR_BYTES, b"\0"
    )
    return bytes(out)
