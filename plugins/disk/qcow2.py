"""qcow2 (versions 2 and 3), after QEMU's docs/interop/qcow2.txt.

Read: the header, its extensions (in the first cluster), the L1 table and the
L2 tables it names, the refcount table and its blocks, the snapshot table and
each snapshot's L1 table (not the snapshots' L2 tables).  Never read: data
clusters, and nothing a header names outside the file (a backing file, an
external data file) is ever opened.

Refused as unsafe: a backing file, an external data file (the header extension
or the incompatible bit), encryption (AES or LUKS), unknown incompatible
feature bits, the dirty and corrupt bits.  Checked: every field against the
range QEMU accepts, every table aligned to a cluster, inside the file and not
over the header cluster, top-level tables not overlapping one another, every
L2 table and refcount block inside the file, every data cluster starting
inside the file.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from .base import Parser, u

MAGIC = b"QFI\xfb"
V2_HEADER = 72
#: QEMU's bounds (block/qcow2.h).
MIN_CLUSTER_BITS, MAX_CLUSTER_BITS = 9, 21
MAX_L1_BYTES = 32 << 20
MAX_REFTABLE_BYTES = 8 << 20
MAX_SNAPSHOTS = 65536
MAX_SNAPSHOT_TABLE_BYTES = 64 << 20
MAX_BACKING_NAME = 1023

INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_COMPRESSION = 1 << 3
INCOMPAT_EXTL2 = 1 << 4
KNOWN_INCOMPAT = (
    INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2
)
COMPAT_LAZY_REFCOUNTS = 1 << 0

EXT_END = 0
EXT_BACKING_FORMAT = 0xE2792ACA
EXT_FEATURE_TABLE = 0x6803F857
EXT_BITMAPS = 0x23852875
EXT_CRYPTO = 0x0537BE77
EXT_DATA_FILE = 0x44415441

OFFSET_MASK = 0x00FFFFFFFFFFFE00
L2_COMPRESSED = 1 << 62
CRYPT = {1: "AES", 2: "LUKS"}


class Qcow2(Parser):
    fmt = "qcow2"
    exclusive_kinds = frozenset({"L1 table", "refcount table", "snapshot table"})

    def header_length(self) -> int:
        return self.cluster if self.cluster else 0

    def start(self) -> None:
        self.cluster = 0
        self.want(0, 4096, self._header)

    def _header(self, h: bytes) -> None:
        if len(h) < V2_HEADER or h[:4] != MAGIC:
            self.add("validator.disk.too_short", self.fmt, len(h), V2_HEADER)
            self.dead = True
            return
        (
            _magic,
            version,
            backing_offset,
            backing_size,
            cluster_bits,
            size,
            crypt,
            l1_size,
            l1_offset,
            rt_offset,
            rt_clusters,
            nb_snapshots,
            snapshots_offset,
        ) = struct.unpack_from(">4sIQIIQIIQQIIQ", h)
        info = self.info
        info["version"] = version
        if version not in (2, 3):
            self.field("version", version, "2 or 3")
            self.dead = True
            return
        if not MIN_CLUSTER_BITS <= cluster_bits <= MAX_CLUSTER_BITS:
            self.field("cluster_bits", cluster_bits, f"{MIN_CLUSTER_BITS}-{MAX_CLUSTER_BITS}")
            self.dead = True
            return
        cluster = self.cluster = 1 << cluster_bits
        info["cluster_size"] = cluster
        self.virtual_size(size)
        header_len = V2_HEADER
        incompat = compat = 0
        refcount_order = 4
        if version == 3:
            if len(h) < 104:
                self.add("validator.disk.too_short", self.fmt, len(h), 104)
                self.dead = True
                return
            incompat, compat, _autoclear, refcount_order, header_len = struct.unpack_from(
                ">QQQII", h, 72
            )
            if header_len < 104 or header_len % 8 or header_len > min(cluster, len(h)):
                self.field("header_length", header_len, "104 or more, a multiple of 8")
                header_len = max(104, min(header_len, len(h)) // 8 * 8)
            if refcount_order > 6:
                self.field("refcount_order", refcount_order, "0-6")
            if incompat & INCOMPAT_COMPRESSION:
                kind = h[104] if header_len > 104 else 0
                info["compression_type"] = {0: "zlib", 1: "zstd"}.get(kind, kind)
                if kind not in (0, 1):
                    self.field("compression_type", kind, "0 (zlib) or 1 (zstd)")
        info["refcount_bits"] = 1 << min(refcount_order, 6)
        info["compat"] = "1.1" if version == 3 else "0.10"
        features = []
        if compat & COMPAT_LAZY_REFCOUNTS:
            features.append("lazy_refcounts")
        if incompat & INCOMPAT_EXTL2:
            features.append("extended_l2")
        info["features"] = features
        self.extended_l2 = bool(incompat & INCOMPAT_EXTL2)
        if incompat & ~KNOWN_INCOMPAT:
            self.add("validator.disk.unknown_incompatible", self.fmt, f"0x{incompat:016x}")
        if incompat & INCOMPAT_DIRTY:
            self.add("validator.disk.qcow2.dirty")
        if incompat & INCOMPAT_CORRUPT:
            self.add("validator.disk.qcow2.corrupt")
        if incompat & INCOMPAT_DATA_FILE:
            self.risk("external data file")
            self._data_file_bit = True
        else:
            self._data_file_bit = False
        self._data_file_name: str | None = None
        if crypt:
            self.risk(f"encryption ({CRYPT.get(crypt, crypt)})")
            self.add("validator.disk.encrypted", self.fmt, CRYPT.get(crypt, f"method {crypt}"))
        if backing_offset:
            self.risk("backing file")
            name = ""
            if backing_size > MAX_BACKING_NAME:
                self.field("backing_file_size", backing_size, f"at most {MAX_BACKING_NAME}")
            elif backing_offset + backing_size <= len(h):
                raw = h[backing_offset : backing_offset + backing_size]
                name = raw.decode("utf-8", "replace")
            self.add("validator.disk.backing_file", self.fmt, _printable(name))
            info["backing_file"] = _printable(name)
        # Header extensions: from the header's end to the backing file name (or the cluster).
        ext_end = min(cluster, len(h))
        if backing_offset and header_len < backing_offset < ext_end:
            ext_end = backing_offset
        self._extensions(h, header_len, ext_end)
        if self._data_file_bit or self._data_file_name is not None:
            name = self._data_file_name or ""
            info["data_file"] = name
            self.risk("external data file")
            self.add("validator.disk.data_file", self.fmt, name)
        # The L1 table.
        l2_entries = cluster // (16 if self.extended_l2 else 8)
        self.l2_entries = l2_entries
        needed = -(-size // (cluster * l2_entries)) if size else 0
        info["l1_entries"] = l1_size
        if l1_size * 8 > MAX_L1_BYTES:
            self.field("l1_size", l1_size, f"at most {MAX_L1_BYTES // 8}")
        elif l1_size < needed:
            self.field("l1_size", l1_size, f"at least {needed} for the virtual size")
        elif l1_size and self._aligned("L1 table", l1_offset):
            self.extent("L1 table", l1_offset, l1_size * 8)
            self.want(l1_offset, l1_size * 8, self._l1)
        # The refcount table.
        if rt_clusters == 0:
            self.field("refcount_table_clusters", 0, "at least 1")
        elif rt_clusters * cluster > MAX_REFTABLE_BYTES:
            self.field(
                "refcount_table_clusters", rt_clusters, f"at most {MAX_REFTABLE_BYTES // cluster}"
            )
        elif self._aligned("refcount table", rt_offset):
            self.extent("refcount table", rt_offset, rt_clusters * cluster)
            self.want(rt_offset, rt_clusters * cluster, self._reftable)
        # Snapshots.
        info["snapshots"] = nb_snapshots
        if nb_snapshots > MAX_SNAPSHOTS:
            self.field("nb_snapshots", nb_snapshots, f"at most {MAX_SNAPSHOTS}")
        elif nb_snapshots and self._aligned("snapshot table", snapshots_offset):
            self._snapshots_left = nb_snapshots
            self.want(
                snapshots_offset,
                min(MAX_SNAPSHOT_TABLE_BYTES, 65536),
                self._snapshots_at(snapshots_offset, nb_snapshots),
            )
        self.allocated_clusters = 0
        self.compressed_clusters = 0
        self._l2_seen: set[int] = set()
        self._far: tuple[str, int] = ("", 0)

    def _aligned(self, kind: str, offset: int) -> bool:
        if offset % self.cluster:
            self.add("validator.disk.table_misaligned", self.fmt, kind, offset, self.cluster)
            return False
        return True

    def _extensions(self, h: bytes, at: int, end: int) -> None:
        names: list[str] = []
        while at + 8 <= end:
            kind, length = struct.unpack_from(">II", h, at)
            if kind == EXT_END:
                break
            data_at = at + 8
            if data_at + length > end:
                self.field(
                    f"header extension 0x{kind:08x}",
                    f"{length} bytes at {at}",
                    "inside the header cluster",
                )
                break
            data = h[data_at : data_at + length]
            if kind == EXT_DATA_FILE:
                self._data_file_name = _printable(data.decode("utf-8", "replace"))
            elif kind == EXT_BACKING_FORMAT:
                self.info["backing_format"] = _printable(data.decode("utf-8", "replace"))
            elif kind == EXT_CRYPTO and length >= 16:
                offset, size = struct.unpack_from(">QQ", data)
                self.risk("encryption (LUKS)")
                self.extent("encryption header", offset, size)
            elif kind == EXT_BITMAPS:
                names.append("bitmaps")
            at = data_at + (length + 7) // 8 * 8
        if names:
            self.info["extensions"] = names

    # -- tables ----------------------------------------------------------
    def _l1(self, data: bytes) -> None:
        cluster = self.cluster
        entries = struct.unpack(f">{len(data) // 8}Q", data[: len(data) // 8 * 8])
        l2_size = self.l2_entries * (16 if self.extended_l2 else 8)
        for index, entry in enumerate(entries):
            offset = entry & OFFSET_MASK
            if not offset:
                continue
            if offset % cluster:
                self.add(
                    "validator.disk.table_misaligned",
                    self.fmt,
                    f"L2 table {index}",
                    offset,
                    cluster,
                )
                continue
            self._farthest(f"L2 table {index}", offset)
            if offset not in self._l2_seen:  # a table named twice is read once
                self._l2_seen.add(offset)
                self.want(offset, l2_size, self._l2)

    def _farthest(self, kind: str, offset: int) -> None:
        """An L2 table or refcount block: over the header, or the farthest one so far.

        (Not an extent each: a hostile L1 table names millions of them.)"""
        if offset < self.cluster:
            self.add("validator.disk.table_overlaps_header", self.fmt, kind, offset)
        elif offset >= self._far[1]:
            self._far = (kind, offset)

    def _l2(self, data: bytes) -> None:
        step = 16 if self.extended_l2 else 8
        count = len(data) // step
        values = struct.unpack(f">{count * step // 8}Q", data[: count * step])
        entries = values[::2] if step == 16 else values
        cluster_bits = self.cluster.bit_length() - 1
        x = 62 - (cluster_bits - 8)
        low = self.cluster  # nothing but the header lives in the first cluster
        for entry in entries:
            if entry & L2_COMPRESSED:
                offset = entry & ((1 << x) - 1)
                self.compressed_clusters += 1
                self._data(offset, 1, low)
            else:
                offset = entry & OFFSET_MASK
                if offset:
                    self.allocated_clusters += 1
                    self._data(offset, self.cluster, low)

    def _data(self, offset: int, length: int, low: int) -> None:
        if self._data_file_bit:
            return  # offsets into the external data file, not into this one
        if offset < low:
            self.add("validator.disk.table_overlaps_header", self.fmt, "data cluster", offset)
        else:
            self.data_end = max(getattr(self, "data_end", 0), offset + 1)

    def _reftable(self, data: bytes) -> None:
        cluster = self.cluster
        entries = struct.unpack(f">{len(data) // 8}Q", data[: len(data) // 8 * 8])
        for index, entry in enumerate(entries):
            offset = entry & ~0x1FF
            if not offset:
                continue
            if offset % cluster:
                self.add(
                    "validator.disk.table_misaligned",
                    self.fmt,
                    f"refcount block {index}",
                    offset,
                    cluster,
                )
                continue
            self._farthest(f"refcount block {index}", offset)

    def _snapshots_at(self, start: int, count: int) -> Callable[[bytes], None]:
        """The snapshot table: entries of variable length, read a piece at a time."""

        def parse(data: bytes) -> None:
            at = used = 0
            index = 0
            table = data
            while index < count:
                if at + 40 > len(table):
                    break
                l1_offset, l1_size, id_len, name_len = struct.unpack_from(">QIHH", table, at)
                extra = u(table, at + 36, ">I")
                length = 40 + extra + id_len + name_len
                if at + length > len(table):
                    break
                used = at + length  # the last entry's padding may be missing (qemu-img)
                length = (length + 7) // 8 * 8
                if self.info.get("version") == 3 and extra < 16:
                    self.field(f"snapshot {index} extra_data_size", extra, "at least 16")
                name = table[at + 40 + extra + id_len : at + 40 + extra + id_len + name_len]
                self.info.setdefault("snapshot_names", []).append(
                    _printable(name.decode("utf-8", "replace"))
                )
                if l1_size * 8 > MAX_L1_BYTES:
                    self.field(f"snapshot {index} l1_size", l1_size, f"at most {MAX_L1_BYTES // 8}")
                elif l1_size and self._aligned(f"snapshot {index} L1 table", l1_offset):
                    self.extent(f"snapshot {index} L1 table", l1_offset, l1_size * 8)
                at += length
                index += 1
            if index == count:
                self.extent("snapshot table", start, used)
                return
            if len(table) < MAX_SNAPSHOT_TABLE_BYTES and len(table) == want_len[0]:
                # the table is longer than what was read: read it again, longer
                want_len[0] = min(MAX_SNAPSHOT_TABLE_BYTES, len(table) * 4)
                self.want(start, want_len[0], parse)
                return
            if len(table) < want_len[0]:
                self.extent("snapshot table", start, want_len[0])  # cut short: past the end
            else:
                self.field(
                    "snapshot table",
                    f"{count} entries",
                    f"at most {MAX_SNAPSHOT_TABLE_BYTES} bytes",
                )

        want_len = [min(MAX_SNAPSHOT_TABLE_BYTES, 65536)]
        return parse

    def end(self, size: int) -> None:
        kind, offset = getattr(self, "_far", ("", 0))
        if kind:
            self.extent(kind, offset, self.cluster)
        self.info["allocated_clusters"] = self.allocated_clusters
        self.info["compressed_clusters"] = self.compressed_clusters
        if self.compressed_clusters:
            self.info.setdefault("features", []).append("compressed clusters")
        self.info["allocated_bytes"] = self.allocated_clusters * self.cluster
        data_end = getattr(self, "data_end", 0)
        if data_end > size:
            self.add("validator.disk.truncated", self.fmt, data_end, size)


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text[:1024])
