"""What a disk image is, from its first bytes (and its last sector), never from its name.

:func:`sniff` looks at the magic numbers of every format QEMU, VMware,
VirtualBox and Hyper-V write, plus what may hide in a "disk" that is not one
this item type checks (an ISO image, a LUKS container, QED).  A file with no
magic at all is ``raw``; :func:`partition_table` says whether a raw image
starts with an MBR or a GPT (which are checked, not refused: every raw cloud
image carries one).  The file name only serves to spot a name that promises
another format than the content (:func:`suffix_format`).
"""

from __future__ import annotations

from pathlib import PurePosixPath

#: Bytes of the file's beginning that :func:`sniff` needs (the ISO 9660 volume
#: descriptor at 32 KiB is the farthest).
HEAD_BYTES = 32768 + 2048

QCOW2 = "qcow2"
QCOW1 = "qcow"
QED = "qed"
VMDK = "vmdk"
VMDK_DESCRIPTOR = "vmdk-descriptor"
VHD = "vhd"
VHDX = "vhdx"
VDI = "vdi"
LUKS = "luks"
ISO = "iso"
RAW = "raw"

#: Formats this item type checks.
SUPPORTED = (QCOW2, VMDK, VHD, VHDX, VDI, RAW)
#: Formats recognised and refused with a clear message.
UNSUPPORTED = {
    QCOW1: "qcow (version 1)",
    QED: "QED",
    LUKS: "LUKS",
    ISO: "ISO 9660/UDF image",
    VMDK_DESCRIPTOR: "VMDK text descriptor",
}

VDI_SIGNATURE = 0xBEDA107F

#: What a file name's suffix promises.  ``.img``, ``.bin``, ``.disk`` promise nothing
#: (cloud images named ``.img`` are qcow2 as often as raw).
SUFFIXES = {
    ".qcow2": QCOW2,
    ".qcow": QCOW2,
    ".qed": QED,
    ".vmdk": VMDK,
    ".vhd": VHD,
    ".vpc": VHD,
    ".vhdx": VHDX,
    ".avhdx": VHDX,
    ".vdi": VDI,
    ".raw": RAW,
    ".luks": LUKS,
    ".iso": ISO,
}
#: Suffixes under which a file without any magic is taken for a (raw) disk image.
DISK_SUFFIXES = frozenset({*SUFFIXES, ".img", ".disk", ".dsk"} - {".iso"})


def suffix_format(name: str) -> str | None:
    return SUFFIXES.get(PurePosixPath(name).suffix.lower())


def sniff(head: bytes, tail: bytes) -> str:
    """The format of a file from its first :data:`HEAD_BYTES` and its last 512 bytes."""
    if head[:4] == b"QFI\xfb":
        version = int.from_bytes(head[4:8], "big") if len(head) >= 8 else 0
        return QCOW1 if version == 1 else QCOW2
    if head[:4] == b"QED\x00":
        return QED
    if head[:4] == b"KDMV":
        return VMDK
    if head[:6] == b"LUKS\xba\xbe":
        return LUKS
    if head[:8] == b"vhdxfile":
        return VHDX
    if head[:8] == b"conectix" or tail[:8] == b"conectix":
        return VHD
    if len(head) >= 68 and int.from_bytes(head[64:68], "little") == VDI_SIGNATURE:
        return VDI
    if head[:64].lstrip().startswith(b"# Disk DescriptorFile"):
        return VMDK_DESCRIPTOR
    if head[32769:32774] in (b"CD001", b"BEA01"):
        return ISO
    return RAW


def partition_table(head: bytes) -> str | None:
    """``gpt``, ``mbr`` or ``None`` for the first sectors of a raw image."""
    if head[512:520] == b"EFI PART":
        return "gpt"
    if len(head) >= 512 and head[510:512] == b"\x55\xaa":
        # A FAT, exFAT or NTFS boot sector ends in 55 AA too (a floppy or a partition
        # image): its bytes 446-509 are boot code, not partition entries.
        if head[54:57] == b"FAT" or head[82:87] == b"FAT32" or head[3:11] in _BOOT_OEM:
            return None
        entries = [head[446 + 16 * i : 462 + 16 * i] for i in range(4)]
        used = [e for e in entries if e[4]]
        if (
            used
            and all(e[0] in (0x00, 0x80) for e in entries)
            and all(int.from_bytes(e[8:12], "little") >= 1 for e in used)
        ):
            return "mbr"
    return None


_BOOT_OEM = (b"NTFS    ", b"EXFAT   ")


def score(name: str, head: bytes, tail: bytes) -> int:
    """The ``disk`` item type's detection score for a lone file (see ``DiskItemType.detect``)."""
    fmt = sniff(head, tail)
    if fmt == ISO:
        return 10
    if fmt != RAW:
        return 70
    if partition_table(head) is not None:
        return 60
    return 50 if PurePosixPath(name).suffix.lower() in DISK_SUFFIXES else 0
