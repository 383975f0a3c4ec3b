"""ISO 9660 (ECMA-119) structure: the volume descriptor set, path tables and directory trees.

Everything here is our own code, not pycdlib's: these are the checks pycdlib
is known to skip (truncation) or to turn into a refusal of the whole image.
Every read is a seek plus a small read through :class:`.image.Image`; the
directory walk is bounded by ``limits.iso_directory_records`` and refuses to
enter a directory extent twice, so a loop ends as a message.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .image import SECTOR, Findings, Image, be16, be32, le16, le32

STANDARD_ID = b"CD001"
#: Identifiers of the volume recognition sequence (ECMA-167 part 2) that may follow the set.
VRS_IDS = (b"BEA01", b"NSR02", b"NSR03", b"TEA01", b"BOOT2", b"CDW02", STANDARD_ID)
TYPE_BOOT, TYPE_PRIMARY, TYPE_SUPPLEMENTARY, TYPE_PARTITION, TYPE_TERMINATOR = 0, 1, 2, 3, 255
#: Volume descriptors read before giving up on finding the set terminator.
MAX_DESCRIPTORS = 64
JOLIET_ESCAPES = (b"%/@", b"%/C", b"%/E")
EL_TORITO_ID = b"EL TORITO SPECIFICATION"
#: A path table larger than this is not read (a real one is a few kilobytes).
MAX_PATH_TABLE = 16 << 20
#: Both-endian fields of a Rock Ridge PX entry (POSIX attributes) and their offsets.
PX_FIELDS = (("file mode", 4), ("links", 12), ("user id", 20), ("group id", 28))
#: Both-endian fields of a SUSP CE entry (continuation area) and their offsets.
CE_FIELDS = (("continuation block", 4), ("continuation offset", 12), ("continuation length", 20))
#: Continuation areas (Rock Ridge CE) followed from one directory record.
MAX_CONTINUATIONS = 32


@dataclass
class VolumeDescriptor:
    sector: int
    type: int
    data: bytes

    @property
    def joliet(self) -> bool:
        return (
            self.type == TYPE_SUPPLEMENTARY
            and not self.data[7] & 1
            and self.data[88:91] in JOLIET_ESCAPES
        )


def is_iso9660(sector16: bytes) -> bool:
    return sector16[1:6] == STANDARD_ID


def both32(f: Findings, data: bytes, at: int, field: str, sector: int) -> int:
    """A both-endian 32-bit field of a volume descriptor; a mismatch is reported."""
    little, big = le32(data, at), be32(data, at + 4)
    if little != big:
        f.error("validator.iso.descriptor.endian_mismatch", field, sector, little, big)
    return little


def both16(f: Findings, data: bytes, at: int, field: str, sector: int) -> int:
    little, big = le16(data, at), be16(data, at + 2)
    if little != big:
        f.error("validator.iso.descriptor.endian_mismatch", field, sector, little, big)
    return little


def read_descriptor_set(image: Image, f: Findings) -> tuple[list[VolumeDescriptor], int]:
    """The descriptors from sector 16 to the terminator, and the sector after the set."""
    found: list[VolumeDescriptor] = []
    sector = 16
    while True:
        if sector - 16 >= MAX_DESCRIPTORS:
            f.error("validator.iso.descriptor.no_terminator", sector)
            return found, sector
        data = image.sector(sector)
        if len(data) < SECTOR:
            return found, sector  # the file ends inside the set: reported as truncation
        if data[1:6] != STANDARD_ID:
            f.error("validator.iso.descriptor.no_terminator", sector)
            return found, sector
        kind, version = data[0], data[6]
        if kind not in (TYPE_BOOT, TYPE_PRIMARY, TYPE_SUPPLEMENTARY, TYPE_PARTITION, 255):
            f.error("validator.iso.descriptor.bad_type", sector, kind)
        elif version != 1 and not (kind == TYPE_SUPPLEMENTARY and version == 2):
            # Version 2 is the enhanced descriptor of ISO 9660:1999 (type 2 only).
            f.error("validator.iso.descriptor.bad_version", sector, kind, version)
        found.append(VolumeDescriptor(sector, kind, data))
        sector += 1
        if kind == TYPE_TERMINATOR:
            return found, sector


@dataclass
class Volume:
    """The fields of a primary or supplementary descriptor the walk needs."""

    sector: int
    block_size: int
    blocks: int
    path_table_size: int
    path_tables: tuple[tuple[str, int, bool], ...]  # (L|M, block, required)
    root: bytes
    joliet: bool


def read_volume(f: Findings, vd: VolumeDescriptor) -> Volume:
    d, s = vd.data, vd.sector
    blocks = both32(f, d, 80, "volume space size", s)
    both16(f, d, 120, "volume set size", s)
    both16(f, d, 124, "volume sequence number", s)
    block_size = both16(f, d, 128, "logical block size", s)
    table_size = both32(f, d, 132, "path table size", s)
    tables = (
        ("L", le32(d, 140), True),
        ("L", le32(d, 144), False),
        ("M", be32(d, 148), True),
        ("M", be32(d, 152), False),
    )
    return Volume(s, block_size, blocks, table_size, tables, d[156:190], vd.joliet)


def check_primary(f: Findings, vol: Volume, descriptors: int) -> bool:
    """Block size and volume size of the primary descriptor; ``False`` stops the tree checks."""
    if vol.block_size not in (512, 1024, 2048):
        f.error("validator.iso.descriptor.bad_block_size", vol.sector, vol.block_size)
        return False
    f.block_size = vol.block_size
    f.volume_blocks = vol.blocks
    needed = (16 + descriptors) * SECTOR // vol.block_size
    if vol.blocks < needed:
        f.error("validator.iso.descriptor.bad_volume_size", vol.sector, vol.blocks, needed)
        return False
    f.extends_to(vol.blocks * vol.block_size)
    return True


# -- path tables -------------------------------------------------------------------------


def parse_path_table(
    data: bytes, big_endian: bool, limit: int
) -> tuple[list[tuple[bytes, int, int]], int | None]:
    """Entries (identifier, extent, parent) and the offset of a malformed entry (or ``None``)."""
    entries: list[tuple[bytes, int, int]] = []
    pos = 0
    u32 = be32 if big_endian else le32
    u16 = be16 if big_endian else le16
    while pos < len(data) and len(entries) < limit:
        length = data[pos]
        if length == 0:
            if any(data[pos:]):
                return entries, pos
            break  # padding after the last entry
        end = pos + 8 + length
        if end > len(data):
            return entries, pos
        entries.append((data[pos + 8 : end], u32(data, pos + 2), u16(data, pos + 6)))
        pos = end + (length & 1)
    return entries, None


def check_path_tables(image: Image, f: Findings, vol: Volume, root_extent: int) -> None:
    assert f.volume_blocks is not None
    size = vol.path_table_size
    if size > MAX_PATH_TABLE:
        f.error("validator.iso.path_table.too_large", vol.sector, size, MAX_PATH_TABLE)
        return
    parsed: dict[str, list[tuple[bytes, int, int]]] = {}
    for kind, block, required in vol.path_tables:
        if not required and block == 0:
            continue
        if not f.inside(block, size) or block == 0:
            f.error(
                "validator.iso.path_table.outside", kind, vol.sector, block, size, f.volume_blocks
            )
            continue
        data = image.read(block * vol.block_size, size)
        if len(data) < size:
            continue  # past the end of a truncated file: reported once, as truncation
        entries, bad = parse_path_table(data, kind == "M", f.records_left())
        if bad is not None:
            f.error("validator.iso.path_table.malformed", kind, vol.sector, bad)
            continue
        if required:
            parsed[kind] = entries
        for number, (_name, extent, parent) in enumerate(entries, start=1):
            if parent < 1 or parent > number:
                f.error("validator.iso.path_table.bad_parent", kind, vol.sector, number, parent)
                break
            if not f.inside(extent, 1):
                f.error(
                    "validator.iso.path_table.extent_outside",
                    kind,
                    vol.sector,
                    number,
                    extent,
                    f.volume_blocks,
                )
                break
        if required and entries and entries[0][1] != root_extent:
            root_at = entries[0][1]
            mismatch = "validator.iso.path_table.root_mismatch"
            f.error(mismatch, kind, vol.sector, root_at, root_extent)
    little, big = parsed.get("L"), parsed.get("M")
    if little is not None and big is not None and little != big:
        index = next(
            (i for i, (a, b) in enumerate(zip(little, big, strict=False), 1) if a != b),
            min(len(little), len(big)) + 1,
        )
        f.error("validator.iso.path_table.mismatch", vol.sector, index)


# -- directory records -------------------------------------------------------------------


@dataclass
class Record:
    extent: int
    length: int
    flags: int
    name: bytes
    system_use: bytes

    @property
    def is_dir(self) -> bool:
        return bool(self.flags & 2)


class Walker:
    """Walks one directory tree (the primary one or Joliet), breadth first, bounded."""

    def __init__(self, image: Image, f: Findings, vol: Volume, label: str) -> None:
        self.image = image
        self.f = f
        self.vol = vol
        self.label = label
        self.susp_skip: int | None = None  # Rock Ridge / SUSP: bytes to skip in system use

    def path(self, parent: str, name: bytes) -> str:
        if self.vol.joliet:
            text = name.decode("utf-16-be", "replace")
        else:
            text = name.decode("ascii", "replace")
            text = text.split(";")[0]
        full = (parent.rstrip("/") + "/" + text) if parent else "/"
        return full if not self.label else f"{full} ({self.label})"

    def record(self, data: bytes, at: int, where: str, parent: str | None = None) -> Record | None:
        """Decode a directory record; a malformed one is reported and gives ``None``."""
        f = self.f
        length = data[at]
        name_len = data[at + 32] if at + 32 < len(data) else 0
        if length < 34 or at + length > len(data) or 33 + name_len > length:
            f.error("validator.iso.directory.bad_record", where, at, length, name_len)
            return None
        r = data[at : at + length]
        extent, extent_be = le32(r, 2), be32(r, 6)
        size, size_be = le32(r, 10), be32(r, 14)
        name = r[33 : 33 + name_len]
        if name not in (b"\x00", b"\x01") and parent is not None:
            where = self.path(parent, name)
        pairs = (
            ("extent", extent, extent_be),
            ("data length", size, size_be),
            ("volume sequence number", le16(r, 28), be16(r, 30)),
        )
        for field, little, big in pairs:
            if little != big:
                f.error("validator.iso.directory.endian_mismatch", where, field, little, big)
        use_at = 33 + name_len + (0 if name_len & 1 else 1)
        return Record(extent + r[1], size, r[25], name, r[use_at:])

    def check_extent(self, rec: Record, where: str) -> bool:
        if rec.length == 0 and not rec.is_dir:
            return True
        if self.f.inside(rec.extent, rec.length):
            return True
        assert self.f.volume_blocks is not None
        self.f.error(
            "validator.iso.directory.extent_outside",
            where,
            rec.extent,
            rec.length,
            self.f.volume_blocks,
        )
        return False

    def walk(self) -> None:
        f, vol = self.f, self.vol
        root_where = self.path("", b"")
        root = self.record(vol.root, 0, root_where)
        if root is None:
            return
        if not root.is_dir:
            f.error("validator.iso.directory.root_not_directory", root_where, vol.sector)
            return
        if not self.check_extent(root, root_where):
            return
        check_path_tables(self.image, f, vol, root.extent)
        seen: dict[int, str] = {root.extent: root_where}
        queue: deque[tuple[str, Record]] = deque([(root_where, root)])
        is_root = True
        while queue and not f.walk_stopped:
            where, directory = queue.popleft()
            for child_where, child in self.children(where, directory, is_root):
                if not child.is_dir:
                    continue
                if child.extent in seen:
                    first_seen = seen[child.extent]
                    f.error("validator.iso.directory.loop", child_where, child.extent, first_seen)
                    continue
                seen[child.extent] = child_where
                queue.append((child_where, child))
            is_root = False

    def children(self, where: str, directory: Record, is_root: bool) -> list[tuple[str, Record]]:
        f, bs = self.f, self.vol.block_size
        out: list[tuple[str, Record]] = []
        parent_path = where.removesuffix(f" ({self.label})") if self.label else where
        index = 0
        sectors = -(-directory.length // bs)
        for s in range(sectors):
            if not f.count_record():
                break  # every sector counts, so an empty huge directory is bounded too
            data = self.image.read((directory.extent + s) * bs, bs)
            if len(data) < bs:
                return out  # past the end of a truncated file (reported once)
            at = 0
            while at < bs and data[at] != 0:
                rec = self.record(data, at, where, parent_path)
                if rec is None:
                    index = max(index, 2)  # reported as a bad record, not again as no '.'
                    break
                at += data[at]
                if not f.count_record():
                    break
                if index == 0:
                    if rec.name != b"\x00":
                        f.error("validator.iso.directory.no_dot", where)
                        return out
                    if is_root:
                        self.detect_susp(rec)
                elif index == 1 and rec.name != b"\x01":
                    f.error("validator.iso.directory.no_dot", where)
                    return out
                index += 1
                child_where = self.path(parent_path, rec.name) if index > 2 else where
                if self.susp_skip is not None:
                    # The root's "." holds the SP entry itself: nothing to skip there.
                    skip = 0 if is_root and index == 1 else self.susp_skip
                    self.check_system_use(rec.system_use[skip:], child_where)
                if index <= 2:
                    continue
                if self.check_extent(rec, child_where):
                    out.append((child_where, rec))
        if index < 2 and not f.walk_stopped:
            # No '.' and '..' at all: a zeroed directory sector, or a length of 0.  ECMA-119
            # readers see an empty directory, so every file in it is lost.
            f.error("validator.iso.directory.no_dot", where)
        return out

    # -- Rock Ridge (SUSP) ---------------------------------------------------------------

    def detect_susp(self, dot: Record) -> None:
        """The SP entry of the root's ``.`` record announces SUSP (and so Rock Ridge)."""
        su = dot.system_use
        if self.vol.joliet or len(su) < 7 or su[0:2] != b"SP" or su[4:6] != b"\xbe\xef":
            return
        self.susp_skip = su[6]
        self.f.rock_ridge = True

    def check_system_use(self, area: bytes, where: str) -> None:
        f = self.f
        for _ in range(MAX_CONTINUATIONS + 1):
            following = self.entries(area, where)
            if following is None:
                return
            block, offset, length = following
            if not f.inside(block, offset + length) or offset + length > self.vol.block_size:
                assert f.volume_blocks is not None
                f.error(
                    "validator.iso.rockridge.continuation_outside",
                    where,
                    block,
                    offset,
                    length,
                    f.volume_blocks,
                )
                return
            area = self.image.read(block * self.vol.block_size + offset, length)
            if len(area) < length:
                return  # truncated file
        f.error("validator.iso.rockridge.too_many_continuations", where, MAX_CONTINUATIONS)

    def entries(self, area: bytes, where: str) -> tuple[int, int, int] | None:
        """Check the SUSP entries of one area; the continuation (CE) it points to, if any."""
        at = 0
        following: tuple[int, int, int] | None = None
        while at + 4 <= len(area):
            sig, length = area[at : at + 2], area[at + 2]
            if sig == b"\x00\x00" or sig == b"ST":
                break  # padding, or the explicit terminator
            if length < 4 or at + length > len(area):
                self.f.error(
                    "validator.iso.rockridge.bad_entry",
                    where,
                    sig.decode("latin-1"),
                    at,
                    length,
                    len(area),
                )
                return None
            if sig == b"CE" and length >= 28:
                if self.both_endian(area, at, CE_FIELDS, where):
                    following = (le32(area, at + 4), le32(area, at + 12), le32(area, at + 20))
            elif sig == b"PX" and length >= 36:
                self.both_endian(area, at, PX_FIELDS, where)
            at += length
        return following

    def both_endian(
        self, area: bytes, at: int, fields: tuple[tuple[str, int], ...], where: str
    ) -> bool:
        """The both-endian 32-bit fields of one SUSP entry; ``False`` if a pair disagrees."""
        agree = True
        for field, pos in fields:
            little, big = le32(area, at + pos), be32(area, at + pos + 4)
            if little != big:
                self.f.error("validator.iso.rockridge.endian_mismatch", where, field, little, big)
                agree = False
        return agree


def find_boot_catalog(f: Findings, descriptors: list[VolumeDescriptor]) -> int | None:
    """The El Torito boot catalog's block, from the boot record descriptor (if any)."""
    for vd in descriptors:
        if vd.type == TYPE_BOOT and vd.data[7:39].rstrip(b"\x00") == EL_TORITO_ID:
            f.eltorito = True
            return le32(vd.data, 71)
    return None
