"""VHDX (Microsoft's [MS-VHDX] v1.0): headers, region table, metadata, BAT.

Read: the file type identifier, both headers (64 KiB and 128 KiB), both region
tables (192 KiB and 256 KiB), the metadata region's table and items, the BAT.
Checked: signatures; the CRC-32C of every header and region table (with
``google-crc32c``); the current header (the valid one with the higher
sequence number) and its version; a log that still needs replaying (the image
was not closed cleanly: refused, QEMU would have to write to it); regions
aligned to 1 MiB, inside the file, after the header area and apart; an
unknown region or metadata item marked required; the file parameters (block
size), the virtual size and logical sector size; a parent (``has parent``
flag, parent locator item: differencing disks are refused); every present
payload block and sector bitmap inside the file.
"""

from __future__ import annotations

import struct

from .base import Callback, Parser


def guid(raw: bytes) -> str:
    """A GUID as Microsoft stores it (the first three fields little-endian), upper case.

    (Not ``uuid.UUID``: importing ``uuid`` costs 10 ms of the CLI's start.)"""
    a, b, c = struct.unpack_from("<IHH", raw)
    d = raw[8:16].hex().upper()
    return f"{a:08X}-{b:04X}-{c:04X}-{d[:4]}-{d[4:]}"


KiB = 1024
MiB = 1 << 20
HEADER_AREA = 1 * MiB
HEADERS = (64 * KiB, 128 * KiB)
REGION_TABLES = (192 * KiB, 256 * KiB)
REGION_TABLE_SIZE = 64 * KiB
MAX_ENTRIES = 2047

BAT_GUID = "2DC27766-F623-4200-9D64-115E9BFD4A08"
METADATA_GUID = "8B7CA206-4790-4B9A-B8FE-575F050F886E"
FILE_PARAMETERS = "CAA16737-FA36-4D43-B3B6-33F0AA44E76B"
VIRTUAL_DISK_SIZE = "2FA54224-CD1B-4876-B211-5DBED83BF4B8"
PAGE83 = "BECA12AB-B2E6-4523-93EF-C309E000C746"
LOGICAL_SECTOR = "8141BF1D-A96F-4709-BA47-F233A8FAAB5F"
PHYSICAL_SECTOR = "CDA348C7-445D-4471-9CC9-E9885251C556"
PARENT_LOCATOR = "A8D35F2D-B30B-454D-ABF7-D3D84834AB0C"
KNOWN_ITEMS = {FILE_PARAMETERS, VIRTUAL_DISK_SIZE, PAGE83, LOGICAL_SECTOR, PHYSICAL_SECTOR}

PAYLOAD_FULLY_PRESENT = 6
PAYLOAD_PARTIALLY_PRESENT = 7
SB_BLOCK_PRESENT = 6
MAX_BAT_BYTES = 256 * MiB
LOG_SECTOR = 4 * KiB
#: The log read to find an entry to replay (Hyper-V and QEMU make 1 MiB logs).
MAX_LOG_BYTES = 32 * MiB


def crc32c(data: bytes, at: int) -> tuple[int, int]:
    """(stored, computed) CRC-32C of a structure whose checksum field is at ``at``."""
    import google_crc32c

    stored = struct.unpack_from("<I", data, at)[0]
    computed = google_crc32c.value(data[:at] + b"\0\0\0\0" + data[at + 4 :])
    return stored, computed


class Vhdx(Parser):
    fmt = "vhdx"
    exclusive_kinds = frozenset({"BAT region", "metadata region", "log"})

    def header_length(self) -> int:
        return HEADER_AREA

    def start(self) -> None:
        self.headers: dict[int, tuple[int, bytes] | None] = {}
        self.regions: dict[int, bytes | None] = {}
        self.want(0, 8, self._identifier)
        for at in HEADERS:
            self.want(at, 4 * KiB, self._header_at(at))
        for at in REGION_TABLES:
            self.want(at, REGION_TABLE_SIZE, self._region_table_at(at))

    def _identifier(self, data: bytes) -> None:
        if data != b"vhdxfile":
            self.add("validator.disk.bad_signature", self.fmt, "file type identifier", data.hex())
            self.dead = True

    def _header_at(self, at: int) -> Callback:
        def parse(h: bytes) -> None:
            if len(h) < 4 * KiB or h[:4] != b"head":
                self.headers[at] = None
                return
            stored, computed = crc32c(h, 4)
            if stored != computed:
                self.add(
                    "validator.disk.bad_checksum",
                    self.fmt,
                    f"header at {at}",
                    f"{stored:08x}",
                    f"{computed:08x}",
                )
                self.headers[at] = None
                return
            self.headers[at] = (struct.unpack_from("<Q", h, 8)[0], h)
            if len(self.headers) == 2:
                self._current_header()

        return parse

    def _current_header(self) -> None:
        valid = [v for v in self.headers.values() if v is not None]
        if not valid:
            self.add("validator.disk.vhdx.no_header")
            return
        _seq, h = max(valid, key=lambda v: v[0])
        log_guid = h[48:64]
        _log_version, version, log_length, log_offset = struct.unpack_from("<HHIQ", h, 64)
        if version != 1:
            self.field("header version", version, "1")
        if log_length:
            if log_offset % MiB or log_length % MiB:
                self.add("validator.disk.table_misaligned", self.fmt, "log", log_offset, MiB)
                return
            self.extent("log", log_offset, log_length)
        if any(log_guid) and log_length:
            # A log GUID alone does not mean a log to replay: as QEMU does, look for
            # an entry of that GUID with a valid checksum.
            self.want(log_offset, min(log_length, MAX_LOG_BYTES), self._log(log_guid))

    def _log(self, log_guid: bytes) -> Callback:
        def scan(log: bytes) -> None:
            for at in range(0, len(log) - LOG_SECTOR + 1, LOG_SECTOR):
                if log[at : at + 4] != b"loge" or log[at + 32 : at + 48] != log_guid:
                    continue
                length = struct.unpack_from("<I", log, at + 8)[0]
                if not length or length % LOG_SECTOR or at + length > len(log):
                    continue
                stored, computed = crc32c(log[at : at + length], 4)
                if stored == computed:
                    self.risk("log to replay")
                    self.add("validator.disk.vhdx.log_replay")
                    return

        return scan

    def _region_table_at(self, at: int) -> Callback:
        def parse(t: bytes) -> None:
            good = len(t) == REGION_TABLE_SIZE and t[:4] == b"regi"
            if good:
                stored, computed = crc32c(t, 4)
                if stored != computed:
                    self.add(
                        "validator.disk.bad_checksum",
                        self.fmt,
                        f"region table at {at}",
                        f"{stored:08x}",
                        f"{computed:08x}",
                    )
                    good = False
            self.regions[at] = t if good else None
            if len(self.regions) == 2:
                self._region_table()

        return parse

    def _region_table(self) -> None:
        table = self.regions[REGION_TABLES[0]] or self.regions[REGION_TABLES[1]]
        if table is None:
            self.add("validator.disk.vhdx.no_region_table")
            self.dead = True
            return
        count = struct.unpack_from("<I", table, 8)[0]
        if count > MAX_ENTRIES:
            self.field("region entry count", count, f"at most {MAX_ENTRIES}")
            return
        found: dict[str, tuple[int, int]] = {}
        for i in range(count):
            at = 16 + 32 * i
            ident = guid(table[at : at + 16])
            offset, length, required = struct.unpack_from("<QII", table, at + 16)
            if ident in found:
                self.field("region", str(ident), "once")
                continue
            if ident not in (BAT_GUID, METADATA_GUID):
                if required & 1:
                    self.add("validator.disk.unknown_required", self.fmt, "region", str(ident))
                continue
            kind = "BAT region" if ident == BAT_GUID else "metadata region"
            if offset % MiB or length % MiB or not length:
                self.add("validator.disk.table_misaligned", self.fmt, kind, offset, MiB)
                continue
            found[ident] = (offset, length)
            self.extent(kind, offset, length)
        self.bat_region = found.get(BAT_GUID)
        meta = found.get(METADATA_GUID)
        if self.bat_region is None or meta is None:
            self.add(
                "validator.disk.vhdx.no_region", "BAT" if self.bat_region is None else "metadata"
            )
            return
        self.meta_offset = meta[0]
        self.want(meta[0], 64 * KiB, self._metadata_table)
        # The BAT is read now, whole, and parsed once the metadata say how many
        # entries it has: in a stream it may come before the metadata region.
        self.bat_data: bytes | None = None
        self.bat_entries: int | None = None
        self.want(self.bat_region[0], min(self.bat_region[1], MAX_BAT_BYTES), self._bat_read)

    def _metadata_table(self, t: bytes) -> None:
        if len(t) < 64 * KiB:
            return  # past the end: the region's extent says so
        if t[:8] != b"metadata":
            self.add("validator.disk.bad_signature", self.fmt, "metadata table", t[:8].hex())
            return
        count = struct.unpack_from("<H", t, 10)[0]
        if count > MAX_ENTRIES:
            self.field("metadata entry count", count, f"at most {MAX_ENTRIES}")
            return
        self.items: dict[str, bytes] = {}
        wanted: list[tuple[str, int, int]] = []
        for i in range(count):
            at = 32 + 32 * i
            ident = guid(t[at : at + 16])
            offset, length, flags = struct.unpack_from("<III", t, at + 16)
            if ident == PARENT_LOCATOR:
                self.risk("parent locator")
                self.add("validator.disk.parent_locator", self.fmt, "parent locator")
                continue
            if ident not in KNOWN_ITEMS:
                if flags & 4:
                    self.add(
                        "validator.disk.unknown_required", self.fmt, "metadata item", str(ident)
                    )
                continue
            if length > 64 * KiB or (length and offset < 64 * KiB):
                self.field(
                    f"metadata item {ident}", f"{offset}+{length}", "inside the metadata region"
                )
                continue
            wanted.append((ident, offset, length))
        self._pending = len(wanted)
        for ident, offset, length in wanted:
            self.want(self.meta_offset + offset, length, self._item(ident))
        if not wanted:
            self._metadata_done()

    def _item(self, ident: str) -> Callback:
        def keep(data: bytes) -> None:
            self.items[ident] = data
            self._pending -= 1
            if self._pending == 0:
                self._metadata_done()

        return keep

    def _metadata_done(self) -> None:
        params = self.items.get(FILE_PARAMETERS, b"")
        size_item = self.items.get(VIRTUAL_DISK_SIZE, b"")
        logical = self.items.get(LOGICAL_SECTOR, b"")
        if len(params) < 8 or len(size_item) < 8 or len(logical) < 4:
            self.add("validator.disk.vhdx.no_metadata")
            return
        block_size, flags = struct.unpack_from("<II", params)
        vsize = struct.unpack_from("<Q", size_item)[0]
        sector = struct.unpack_from("<I", logical)[0]
        if flags & 2:
            self.risk("differencing disk (parent)")
            self.add("validator.disk.differencing", self.fmt)
        self.info["subformat"] = "fixed" if flags & 1 else "dynamic"
        if not (MiB <= block_size <= 256 * MiB) or block_size & (block_size - 1):
            self.field("block size", block_size, "a power of two from 1 MiB to 256 MiB")
            return
        if sector not in (512, 4096):
            self.field("logical sector size", sector, "512 or 4096")
            return
        self.info["cluster_size"] = block_size
        self.virtual_size(vsize)
        self.block_size = block_size
        chunk_ratio = (1 << 23) * sector // block_size
        blocks = -(-vsize // block_size)
        entries = blocks + (blocks - 1) // chunk_ratio if blocks else 0
        self.chunk_ratio = chunk_ratio
        assert self.bat_region is not None
        if entries * 8 > self.bat_region[1]:
            self.field("BAT region length", self.bat_region[1], f"at least {entries * 8} bytes")
            return
        if entries * 8 > MAX_BAT_BYTES:
            self.field("BAT entries", entries, f"at most {MAX_BAT_BYTES // 8}")
            return
        self.bat_entries = entries
        if self.bat_data is not None:
            self._bat(self.bat_data[: entries * 8])

    def _bat_read(self, data: bytes) -> None:
        self.bat_data = data
        if self.bat_entries is not None:
            self._bat(data[: self.bat_entries * 8])

    def _bat(self, data: bytes) -> None:
        ratio = self.chunk_ratio
        allocated = 0
        end = 0
        for index, entry in enumerate(
            struct.unpack(f"<{len(data) // 8}Q", data[: len(data) // 8 * 8])
        ):
            state = entry & 7
            offset = (entry >> 20) * MiB
            bitmap = (index + 1) % (ratio + 1) == 0
            present = state == SB_BLOCK_PRESENT if bitmap else state == PAYLOAD_FULLY_PRESENT
            if not bitmap and state == PAYLOAD_PARTIALLY_PRESENT:
                present = True
            if not present:
                continue
            length = MiB if bitmap else self.block_size
            if offset < HEADER_AREA:
                self.add("validator.disk.table_overlaps_header", self.fmt, "data block", offset)
                continue
            if not bitmap:
                allocated += 1
            end = max(end, offset + length)
        self.info["allocated_blocks"] = allocated
        self.info["allocated_bytes"] = allocated * self.block_size
        self.data_end = end

    def end(self, size: int) -> None:
        end = getattr(self, "data_end", 0)
        if end > size:
            self.add("validator.disk.truncated", self.fmt, end, size)
