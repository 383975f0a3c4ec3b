"""Raw images: no header, so no header to check, except a partition table if there is one.

A raw image is the disk's bytes.  When it starts with an MBR or a GPT (as
every raw cloud image does), the table is checked: the GPT header's and
entry array's CRC-32 (the standard library's ``zlib.crc32``, the CRC GPT
uses), its sizes, the partitions and the backup header inside the file; MBR
partitions inside the file.  A partition that ends past the end of the file
means the file was cut short.
"""

from __future__ import annotations

import struct
import zlib

from .base import Parser
from .sniff import partition_table

SECTOR = 512
MAX_GPT_ENTRIES_BYTES = 1 << 20
PROTECTIVE = 0xEE


class Raw(Parser):
    fmt = "raw"

    def start(self) -> None:
        self.want(0, 2 * SECTOR, self._head)

    def _head(self, head: bytes) -> None:
        table = partition_table(head)
        self.info["partition_table"] = table or "none"
        self.ends: list[tuple[str, int]] = []
        if table is None:
            return
        for i in range(4):
            e = head[446 + 16 * i : 462 + 16 * i]
            kind = e[4]
            start, count = struct.unpack_from("<II", e, 8)
            if kind and kind != PROTECTIVE and count:
                self.ends.append((f"MBR partition {i + 1}", (start + count) * SECTOR))
        if table == "gpt":
            self._gpt(head[SECTOR : 2 * SECTOR])

    def _gpt(self, h: bytes) -> None:
        if len(h) < SECTOR:
            self.add("validator.disk.too_short", self.fmt, len(h) + SECTOR, 2 * SECTOR)
            return
        size = struct.unpack_from("<I", h, 12)[0]
        if not 92 <= size <= SECTOR:
            self.field("GPT header size", size, "92-512")
            return
        stored = struct.unpack_from("<I", h, 16)[0]
        computed = zlib.crc32(h[:16] + b"\0\0\0\0" + h[20:size])
        if stored != computed:
            self.add(
                "validator.disk.bad_checksum",
                self.fmt,
                "GPT header",
                f"{stored:08x}",
                f"{computed:08x}",
            )
            return
        alternate, _first, last = struct.unpack_from("<QQQ", h, 32)
        entries_lba, count, entry_size, entries_crc = struct.unpack_from("<QIII", h, 72)
        self.ends.append(("GPT backup header", (alternate + 1) * SECTOR))
        self.ends.append(("GPT last usable sector", (last + 1) * SECTOR))
        if entry_size < 128 or entry_size % 8 or count * entry_size > MAX_GPT_ENTRIES_BYTES:
            self.field(
                "GPT partition entries",
                f"{count} x {entry_size}",
                "128-byte entries, at most 1 MiB",
            )
            return

        def entries(data: bytes) -> None:
            if len(data) < count * entry_size:
                return  # past the end: the extent says so
            if zlib.crc32(data) != entries_crc:
                self.add(
                    "validator.disk.bad_checksum",
                    self.fmt,
                    "GPT partition entries",
                    f"{entries_crc:08x}",
                    f"{zlib.crc32(data):08x}",
                )
                return
            for i in range(count):
                e = data[i * entry_size : (i + 1) * entry_size]
                if not any(e[:16]):
                    continue
                _lo, hi = struct.unpack_from("<QQ", e, 32)
                self.ends.append((f"GPT partition {i + 1}", (hi + 1) * SECTOR))

        self.extent("GPT partition entries", entries_lba * SECTOR, count * entry_size)
        self.want(entries_lba * SECTOR, count * entry_size, entries)

    def end(self, size: int) -> None:
        self.info["virtual_size"] = size
        if size > self.max_virtual:
            self.add("validator.disk.virtual_size_limit", self.fmt, size, self.max_virtual)
        for what, end in getattr(self, "ends", []):
            if end > size:
                self.add("validator.disk.partition_outside", what, end, size)
                break
