"""VDI (VirtualBox Disk Image), version 1.1: normal (dynamic) and fixed images.

Read: the pre-header, the header and the block map.  Checked: the signature
and version, the header size, the image type (1 normal, 2 fixed; 3 undo and
4 differencing are refused: they need a parent), a parent UUID (refused), the
sector size (512), the block size, the geometry of the block map (blocks
enough for the disk size, allocated blocks not more than the blocks), the
block map and the data area inside the file and after the header, every
allocated block's index below the number of allocated blocks and its data
inside the file.
"""

from __future__ import annotations

import struct

from .base import Parser

SIGNATURE = 0xBEDA107F
NORMAL, FIXED, UNDO, DIFF = 1, 2, 3, 4
FREE, ZERO = 0xFFFFFFFF, 0xFFFFFFFE
MAX_BLOCKS = 1 << 26


class Vdi(Parser):
    fmt = "vdi"
    exclusive_kinds = frozenset({"block map"})

    def header_length(self) -> int:
        return 512

    def start(self) -> None:
        self.want(0, 512, self._header)

    def _header(self, h: bytes) -> None:
        if len(h) < 456:
            self.add("validator.disk.too_short", self.fmt, len(h), 512)
            self.dead = True
            return
        signature, version, header_size, kind, _flags = struct.unpack_from("<IIIII", h, 64)
        if signature != SIGNATURE:
            self.add("validator.disk.bad_signature", self.fmt, "header", h[64:68].hex())
            self.dead = True
            return
        if version >> 16 != 1:
            self.field("version", f"{version >> 16}.{version & 0xFFFF}", "1.x")
            self.dead = True
            return
        if header_size < 0x180:
            self.field("header size", header_size, "at least 384")
        offset_bmap, offset_data = struct.unpack_from("<II", h, 340)
        sector_size = struct.unpack_from("<I", h, 360)[0]
        disk_size, block_size, extra, blocks, allocated = struct.unpack_from("<QIIII", h, 368)
        parent = h[424:440]
        self.info["subformat"] = {NORMAL: "dynamic", FIXED: "static"}.get(kind, str(kind))
        if kind in (UNDO, DIFF) or any(parent):
            self.risk("differencing disk (parent)")
            self.add("validator.disk.differencing", self.fmt)
        elif kind not in (NORMAL, FIXED):
            self.field("image type", kind, "1 (normal) or 2 (fixed)")
            self.dead = True
            return
        self.virtual_size(disk_size)
        if sector_size != 512:
            self.field("sector size", sector_size, "512")
        if block_size < 512 or block_size & (block_size - 1):
            self.field("block size", block_size, "a power of two of 512 bytes or more")
            self.dead = True
            return
        self.info["cluster_size"] = block_size
        if blocks > MAX_BLOCKS:
            self.field("blocks in image", blocks, f"at most {MAX_BLOCKS}")
            self.dead = True
            return
        if blocks * block_size < disk_size:
            self.field("blocks in image", blocks, f"at least {-(-disk_size // block_size)}")
        if allocated > blocks:
            self.field("blocks allocated", allocated, f"at most {blocks}")
        if offset_bmap % 512 or offset_data % 512:
            self.add("validator.disk.table_misaligned", self.fmt, "block map", offset_bmap, 512)
            self.dead = True
            return
        self.extent("block map", offset_bmap, blocks * 4)
        if offset_data < offset_bmap + blocks * 4:
            self.add(
                "validator.disk.tables_overlap", self.fmt, "block map", "data area", offset_data
            )
        self.block = block_size + extra
        self.offset_data = offset_data
        self.allocated = allocated
        self.info["allocated_blocks"] = allocated
        self.info["allocated_bytes"] = allocated * block_size
        self.data_end = offset_data + allocated * self.block
        self.want(offset_bmap, blocks * 4, self._bmap)

    def _bmap(self, data: bytes) -> None:
        for entry in struct.unpack(f"<{len(data) // 4}I", data[: len(data) // 4 * 4]):
            if entry in (FREE, ZERO):
                continue
            if entry >= self.allocated:
                self.field("block map entry", entry, f"below {self.allocated} (blocks allocated)")
                continue
            self.data_end = max(self.data_end, self.offset_data + (entry + 1) * self.block)

    def end(self, size: int) -> None:
        end = getattr(self, "data_end", 0)
        if end > size:
            self.add("validator.disk.truncated", self.fmt, end, size)
