"""VHD (Microsoft's Virtual Hard Disk, QEMU's ``vpc``): fixed and dynamic disks.

Read: the footer (the file's last 512 bytes, and its copy in the first 512
for a dynamic disk), the dynamic disk header and the block allocation table.
Checked: the cookies, the footer's and the dynamic header's checksums (ones'
complement of the byte sum), the version fields, the disk type (fixed 2,
dynamic 3; differencing 4 is refused: it needs a parent), parent locators
(refused: they name other files), the block size, the table inside the file
and after the header, every allocated block (bitmap and data) inside the
file, a fixed disk's data as long as its size, the two footers agreeing.
"""

from __future__ import annotations

import struct

from .base import Parser, u

COOKIE = b"conectix"
DYN_COOKIE = b"cxsparse"
FIXED, DYNAMIC, DIFFERENCING = 2, 3, 4
NO_OFFSET = 0xFFFFFFFFFFFFFFFF
UNUSED = 0xFFFFFFFF
MAX_BAT_ENTRIES = 1 << 24
SECTOR = 512


def checksum(block: bytes, at: int) -> tuple[int, int]:
    """(stored, computed) checksum of a footer (at 64) or a dynamic header (at 36)."""
    stored = u(block, at, ">I")
    total = sum(block[:at]) + sum(block[at + 4 :])
    return stored, ~total & 0xFFFFFFFF


class Vhd(Parser):
    fmt = "vhd"
    exclusive_kinds = frozenset({"dynamic header", "block allocation table"})

    def header_length(self) -> int:
        return SECTOR if self.kind != FIXED else 0

    def start(self) -> None:
        self.kind = 0
        self.copy: bytes | None = None
        self.footer: bytes | None = None
        self.block_size = 0
        self.data_end = 0
        self.want(0, SECTOR, self._first)
        self.want_tail(SECTOR, self._last)

    def _first(self, data: bytes) -> None:
        if len(data) == SECTOR and data[:8] == COOKIE:
            self.copy = data
            self._footer(data, "footer copy")

    def _last(self, data: bytes) -> None:
        self.footer = data
        if self.copy is None:
            if len(data) < SECTOR or data[:8] != COOKIE:
                self.add("validator.disk.bad_signature", self.fmt, "footer", data[:8].hex())
                self.dead = True
                return
            self._footer(data, "footer")
        elif data != self.copy:
            if data[:8] == COOKIE:
                self.add("validator.disk.vhd.footer_mismatch")
            else:
                self.add("validator.disk.vhd.no_footer")

    def _footer(self, f: bytes, what: str) -> None:
        stored, computed = checksum(f, 64)
        if stored != computed:
            self.add(
                "validator.disk.bad_checksum", self.fmt, what, f"{stored:08x}", f"{computed:08x}"
            )
        _features, version, data_offset = struct.unpack_from(">IIQ", f, 8)
        current_size = u(f, 48, ">Q")
        kind = self.kind = u(f, 60, ">I")
        creator = f[28:32].decode("latin-1")
        self.info.update(
            subformat={FIXED: "fixed", DYNAMIC: "dynamic", DIFFERENCING: "differencing"}.get(
                kind, str(kind)
            ),
            creator=creator.strip("\0 "),
        )
        if version >> 16 != 1:
            self.field("file format version", f"0x{version:08x}", "0x00010000")
        self.virtual_size(current_size)
        if kind == DIFFERENCING:
            self.risk("differencing disk (parent)")
            self.add("validator.disk.differencing", self.fmt)
        elif kind not in (FIXED, DYNAMIC):
            self.field("disk type", kind, "2 (fixed) or 3 (dynamic)")
            self.dead = True
            return
        if kind == FIXED:
            if data_offset != NO_OFFSET:
                self.field("data offset", data_offset, "0xFFFFFFFFFFFFFFFF for a fixed disk")
            self.data_end = current_size + SECTOR  # the data, then the footer
            return
        if what == "footer" and self.copy is None:
            # a dynamic disk without its copy at byte 0: QEMU reads the header from there
            self.add("validator.disk.bad_signature", self.fmt, "footer copy", b"".hex())
            return
        if data_offset == NO_OFFSET or data_offset % SECTOR:
            self.field("data offset", data_offset, "a sector offset of the dynamic header")
            return
        self.extent("dynamic header", data_offset, 1024)
        self.want(data_offset, 1024, self._dynamic)

    def _dynamic(self, d: bytes) -> None:
        if len(d) < 1024:
            return  # past the end: the extent says so
        if d[:8] != DYN_COOKIE:
            self.add("validator.disk.bad_signature", self.fmt, "dynamic header", d[:8].hex())
            return
        stored, computed = checksum(d, 36)
        if stored != computed:
            self.add(
                "validator.disk.bad_checksum",
                self.fmt,
                "dynamic header",
                f"{stored:08x}",
                f"{computed:08x}",
            )
        _data_offset, table_offset, version, entries, block_size = struct.unpack_from(
            ">QQIII", d, 8
        )
        if version >> 16 != 1:
            self.field("header version", f"0x{version:08x}", "0x00010000")
        if block_size < SECTOR or block_size & (block_size - 1):
            self.field("block size", block_size, "a power of two of 512 bytes or more")
            return
        self.block_size = block_size
        self.info["cluster_size"] = block_size
        locators = []
        for i in range(8):
            code, space, _length, _res, offset = struct.unpack_from(">IIIIQ", d, 576 + 24 * i)
            if code:
                locators.append(d[576 + 24 * i : 580 + 24 * i].decode("latin-1").strip("\0 "))
                self.extent(f"parent locator {i}", offset, space)
        if locators or any(d[40:56]):
            self.risk("parent locator")
            self.add("validator.disk.parent_locator", self.fmt, ", ".join(locators) or "parent id")
        size = self.info.get("virtual_size", 0)
        needed = -(-size // block_size)
        if entries > MAX_BAT_ENTRIES:
            self.field("max table entries", entries, f"at most {MAX_BAT_ENTRIES}")
            return
        if entries < needed:
            self.field("max table entries", entries, f"at least {needed} for the virtual size")
        if table_offset % SECTOR:
            self.add(
                "validator.disk.table_misaligned",
                self.fmt,
                "block allocation table",
                table_offset,
                SECTOR,
            )
            return
        self.extent("block allocation table", table_offset, entries * 4)
        self.want(table_offset, entries * 4, self._bat)

    def _bat(self, data: bytes) -> None:
        bitmap = -(-(self.block_size // SECTOR) // 8)
        bitmap = -(-bitmap // SECTOR) * SECTOR
        allocated = 0
        for sector in struct.unpack(f">{len(data) // 4}I", data[: len(data) // 4 * 4]):
            if sector == UNUSED:
                continue
            allocated += 1
            offset = sector * SECTOR
            if offset < SECTOR:
                self.add("validator.disk.table_overlaps_header", self.fmt, "data block", offset)
                continue
            self.data_end = max(self.data_end, offset + bitmap + self.block_size)
        self.info["allocated_blocks"] = allocated
        self.info["allocated_bytes"] = allocated * self.block_size

    def end(self, size: int) -> None:
        if self.kind == FIXED:
            if self.data_end > size:
                self.add("validator.disk.truncated", self.fmt, self.data_end, size)
        elif self.data_end and self.data_end + SECTOR > size:
            # every block, then the footer
            self.add("validator.disk.truncated", self.fmt, self.data_end + SECTOR, size)
