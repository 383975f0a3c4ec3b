"""VMDK sparse disks (monolithicSparse, streamOptimized), checked in one sequential pass.

:class:`VmdkChecker` is an incremental consumer: ``feed(bytes)`` the disk's
content in order (as stored, or after the OVF stream pipeline joined chunks and
decompressed gzip), in pieces of any size, then ``close()`` returns the
problems as ``(message id, args)`` pairs: the same problems in the same order
wherever the pieces are cut (the engine's ``read_chunk_bytes``, gzip's
output).  :class:`VmdkCheck` wraps it as an engine
:class:`~validator.checks.StreamCheck`.

Memory stays bounded whatever the disk size: the 512-byte header, the embedded
descriptor (at most ``max_descriptor`` bytes), the grain directory (at most
``max_grain_directory`` bytes), one grain table at a time and a few integers.
What is checked (REFERENCE §5):

- header: magic ``KDMV``, version 1–3, known flag bits, capacity > 0, grain
  size a power of two > 8, 512 entries per grain table, embedded descriptor
  inside the file, the ``\\n \\r\\n`` newline-detection bytes, deflate
  compression, grain directory offset (``0xFFFFFFFFFFFFFFFF`` only with
  markers);
- streams with markers: every marker walked (grain markers inside the
  capacity, known metadata markers, only zero bytes after end-of-stream: QEMU
  pads its last grain's cluster with zeros, which read as an end-of-stream
  marker); when the
  grain directory is "at the end" the stream must finish with a footer marker,
  a footer that agrees with the header and an end-of-stream marker; a stream
  cut short inside a grain is reported as such (QEMU writes its grain
  directory near the start and no footer: that layout is accepted);
- grain directory and grain tables inside the file, grains inside the file and
  outside the metadata;
- the embedded descriptor, case-sensitively, duplicate keys refused, keys that
  differ from a known key only by case refused (the CVE-2022-47951 trick),
  exactly one SPARSE extent whose size is the header's capacity, no parent,
  ``createType`` streamOptimized or monolithicSparse and agreeing with the
  header.  The extent's file name is not compared with anything: in a
  single-file disk the one sparse extent is the file itself, readers never
  open a file by that name, and producers write whatever they like there
  (VMware ``generated-stream.vmdk``, open-vmdk ``disk``, VMDKstream
  ``call-me-stream.vmdk``, qemu-img the name at conversion time), and a disk
  is renamed after conversion as a rule.  What keeps another file out is the
  rest: one extent, of type SPARSE, no FLAT/VMFS/ZERO extent, no parent, a
  single-file ``createType`` and a header capacity > 0 (QEMU reads the extent
  lines of an embedded descriptor only when the capacity is 0);
- the header capacity against the capacity the OVF descriptor declares;
- with ``inflate`` (``-o ovf.inflate=true``), every compressed grain the walk
  passes is inflated, in bounded pieces whose output is only counted: a
  deflate error, or a grain that does not inflate to the grain size (the
  grain holding the disk's last sector may be shorter), is reported; the work
  is bounded by the disk (past its capacity plus one grain of inflated data,
  inflating stops and says so).
"""

from __future__ import annotations

import heapq
import re
import struct
import zlib
from collections.abc import Callable
from typing import NamedTuple

from validator.checks import Reporter, StreamCheck

from .problems import NOT_LISTED, PER_KIND, Tally

SECTOR = 512
MAGIC = b"KDMV"
GD_AT_END = 0xFFFFFFFFFFFFFFFF
NEWLINE_BYTES = b"\n \r\n"

FLAG_NEWLINE_TEST = 1 << 0
FLAG_REDUNDANT_GT = 1 << 1
FLAG_ZERO_GTE = 1 << 2
FLAG_COMPRESSED = 1 << 16
FLAG_MARKERS = 1 << 17
KNOWN_FLAGS = FLAG_NEWLINE_TEST | FLAG_REDUNDANT_GT | FLAG_ZERO_GTE | FLAG_COMPRESSED | FLAG_MARKERS

MARKER_EOS, MARKER_GT, MARKER_GD, MARKER_FOOTER = 0, 1, 2, 3
COMPRESS_NONE, COMPRESS_DEFLATE = 0, 1
GTES_PER_GT = 512
#: Bytes after the end of a stream checked for zeros at once (bounds the copy).
TAIL_SCAN = 64 << 10
#: Most bytes one call inflates a grain into (the output is counted, then dropped).
INFLATE_PIECE = 256 << 10
INCOMPLETE = "incomplete or truncated stream"

ALLOWED_CREATE_TYPES = ("streamOptimized", "monolithicSparse")
#: Keys of the descriptor header QEMU and VMware read (case-sensitively).
KNOWN_KEYS = ("version", "CID", "parentCID", "createType", "parentFileNameHint", "encoding")
ALLOWED_EXTENT_ACCESS = ("RW", "RDONLY")

#: Default bounds of what is kept in memory.
MAX_DESCRIPTOR_BYTES = 1 << 20
#: 65,536 grain tables: 2 TiB with the usual 64 KiB grains (the monolithicSparse maximum);
#: each table to check costs a little bookkeeping, so this also bounds memory (~15 MiB).
MAX_GRAIN_DIRECTORY_BYTES = 256 << 10

# magic, version, flags, capacity, grainSize, descriptorOffset, descriptorSize,
# numGTEsPerGT, rgdOffset, gdOffset, overHead, uncleanShutdown, newline bytes,
# compressAlgorithm
_HEADER = struct.Struct("<4sIIQQQQIQQQB4sH")
_MARKER = struct.Struct("<QII")
_EXTENT = re.compile(
    r"^(?P<access>[A-Z]+)\s+(?P<sectors>[0-9]+)\s+(?P<type>[A-Z]+)"
    r'(?:\s+"(?P<file>[^"]*)"(?:\s+(?P<offset>[0-9]+))?)?\s*$'
)
_KEY = re.compile(r"^(?P<key>[A-Za-z0-9_.]+)\s*=\s*(?P<value>.*?)\s*$")

Problem = tuple[str, tuple[object, ...]]


class Header(NamedTuple):
    """The fields of a sparse extent header (or of a streamOptimized footer)."""

    magic: bytes
    version: int
    flags: int
    capacity: int
    grain_size: int
    descriptor_offset: int
    descriptor_size: int
    gtes_per_gt: int
    rgd_offset: int
    gd_offset: int
    overhead: int
    unclean: int
    newline: bytes
    compress: int

    @classmethod
    def parse(cls, block: bytes) -> Header:
        return cls(*_HEADER.unpack_from(block))

    @property
    def markers(self) -> bool:
        return bool(self.flags & FLAG_MARKERS)

    @property
    def compressed(self) -> bool:
        return bool(self.flags & FLAG_COMPRESSED)

    def grain_tables(self) -> int:
        """How many grain tables the capacity needs (entries of the grain directory)."""
        if self.grain_size <= 0:
            return 0
        grains = -(-self.capacity // self.grain_size)
        return -(-grains // GTES_PER_GT)


def _hex(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


class _Capture:
    """Copies the bytes of one region ``[start, start + length)`` as they stream past.

    It is handed to ``done`` when the stream reaches :attr:`done_at`: the end
    of the region (just past its start for an empty region).
    """

    __slots__ = ("buf", "done", "done_at", "kind", "length", "seq", "start")

    def __init__(
        self, start: int, length: int, kind: str, done: Callable[[bytes], None], seq: int
    ) -> None:
        self.start = start
        self.length = length
        self.kind = kind
        self.buf = bytearray()
        self.done = done
        self.seq = seq
        self.done_at = start + max(length, 1)


class VmdkChecker:
    """Checks one VMDK disk from its bytes, fed in order.

    ``name`` is the file problems are about (the first argument of every
    message); ``declared_capacity`` is the Disk's
    capacity in bytes from the OVF descriptor (``None``: unknown); ``variant``
    is the fragment of the OVF format URI (``streamOptimized``,
    ``monolithicSparse`` or ``sparse``); ``inflate`` turns on the deep grain
    check (every compressed grain inflated and its length checked: about ten
    times the cost of hashing the disk, so off unless asked for with
    ``-o ovf.inflate=true``).

    The verdict depends only on the bytes, never on how they are cut into
    pieces: everything the checker does happens at a *stream position* (the
    header at byte 512, a marker where its 16 bytes end, a captured region
    where it ends), in the order of those positions (a region before a marker
    that ends at the same byte, regions in the order they were asked for), and
    a region asked for at a position it starts before is never read (it has
    streamed past).  So the problems come in the same order too.
    """

    def __init__(
        self,
        name: str,
        *,
        declared_capacity: int | None = None,
        disk_id: str = "",
        variant: str | None = None,
        max_descriptor: int = MAX_DESCRIPTOR_BYTES,
        max_grain_directory: int = MAX_GRAIN_DIRECTORY_BYTES,
        inflate: bool = False,
    ) -> None:
        self.name = name
        self.declared_capacity = declared_capacity
        self.disk_id = disk_id
        self.variant = variant
        self.max_descriptor = max_descriptor
        self.max_grain_directory = max_grain_directory
        self.inflate = inflate
        self.problems: list[Problem] = []
        # The first PER_KIND problems of each kind are kept, the rest only counted (a
        # descriptor of a megabyte of bad lines must not build half a million of them).
        self._tally: Tally[str] = Tally()
        self._summarized = False
        self.pos = 0
        self.header: Header | None = None
        self.dead = False  # not a VMDK: the rest is only counted
        self._head = bytearray()
        self._at = 0  # stream position of the event being handled
        # regions to capture: not reached yet (by start), receiving bytes, complete (by end)
        self._waiting: list[tuple[int, int, _Capture]] = []
        self._active: list[_Capture] = []
        self._ready: list[tuple[int, int, _Capture]] = []
        self._seq = 0
        # grain directory and tables
        self._gd_entries: list[int] | None = None
        self._max_grain_end = 0  # bytes: end of the farthest grain a table points at
        self._grain_low: int | None = None  # lowest grain sector inside the metadata
        # marker walk
        self._walking = False
        self._mpos = 0
        self._mbuf = bytearray()
        self._mstop = False
        self._grain = 1  # grain size in sectors for the walk (1 if the header's is 0)
        self._biggest = 0  # largest compressed grain a marker may announce
        self._eos_at: int | None = None
        self._nonzero_at: int | None = None  # first non-zero byte after the end of the stream
        self._footer: Header | None = None
        self._footer_at: int | None = None
        self._gd_marker_sector: int | None = None
        # the compressed grain being inflated (deep grain check)
        self._inflating = False  # the header says deflate grains, and `inflate` is on
        self._z: zlib._Decompress | None = None
        self._z_at = 0  # its marker's stream position
        self._z_lba = 0
        self._z_pos = 0  # next stream position of its data to inflate
        self._z_end = 0  # end of its data
        self._z_out = 0  # bytes it inflated to so far
        self._z_failed = False
        self._inflated = 0  # bytes every grain inflated to, together
        self._grain_problems: list[Problem] = []

    # -- problems -----------------------------------------------------------
    def _add(self, message_id: str, *args: object) -> None:
        if self._tally.admit(message_id):
            self.problems.append((message_id, (self.name, *args)))

    # -- feeding --------------------------------------------------------------
    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Consume the next bytes of the disk (pieces of any size)."""
        view = data if isinstance(data, memoryview) else memoryview(data)
        n = len(view)
        if not n or self.dead:
            self.pos += n
            return
        start = self.pos
        self.pos = start + n
        if self.header is None:
            need = SECTOR - len(self._head)
            self._head += view[:need]
            if len(self._head) < SECTOR:
                return
            head = bytes(self._head)
            self._head = bytearray()
            self._at = SECTOR
            self._start(head)
            if self.dead:
                return
            # A marker walk may start inside the header (overhead 0): walk its bytes too.
            self._process(memoryview(head), 0)
            view = view[need:]
            start += need
            if not view:
                return
        self._process(view, start)

    def needs(self) -> tuple[int, int] | None:
        """The next stream span whose real bytes matter, ``(start, end)``; None: none does.

        For a reader that can seek (the ``disk`` plugin's metadata-only read):
        bytes before ``start`` (from :attr:`pos` on) may be fed as anything of
        the same length, zeros say, since nothing looks at them; the span
        itself must be fed as stored.  ``start`` may be :attr:`pos` itself
        (the span has begun), ``end`` may lie past the end of the file.  The
        spans are the header, the regions asked for (embedded descriptor,
        grain directory and tables, footer), each marker of the walk (16 bytes
        where the walk reads it) and, after an end-of-stream marker, the rest
        of the file (checked for zeros).  With ``inflate`` every byte matters.
        """
        pos = self.pos
        if self.dead:
            return None
        if self.header is None:
            return (pos, SECTOR)
        if self._inflating:
            return (pos, pos + TAIL_SCAN)
        spans: list[tuple[int, int]] = []
        for cap in self._active:
            spans.append((pos, cap.start + cap.length))
        if self._waiting:
            cap = self._waiting[0][2]
            spans.append((max(pos, cap.start), cap.start + cap.length))
        if self._walking and not self._mstop:
            at = max(pos, self._mpos)
            spans.append((at, self._mpos + 16))
        if self._eos_at is not None and self._nonzero_at is None:
            at = max(pos, self._eos_at + 16)
            spans.append((at, at + TAIL_SCAN))
        return min(spans) if spans else None

    def _process(self, view: memoryview, start: int) -> None:
        """Handle every event that happens within ``[start, start + len(view))``, in order."""
        end = start + len(view)
        ready = self._ready
        while True:
            if self._waiting or self._active:
                self._fill(view, start, end)
            if self._walking and not self._mstop:
                # markers that end before the next complete region (ties: the region first)
                stop = ready[0][0] - 1 if ready else end
                if self._walk(view, start, end, stop):
                    continue
            if not ready:
                if self._eos_at is not None and self._nonzero_at is None:
                    self._scan_tail(view, start, end)
                return
            at, _, cap = heapq.heappop(ready)
            self._at = at
            data, cap.buf = bytes(cap.buf), bytearray()
            cap.done(data)

    def _scan_tail(self, view: memoryview, start: int, end: int) -> None:
        """Look for a non-zero byte after the end of the stream (zero padding is fine).

        QEMU ends a streamOptimized file with the zero-filled rest of the last
        grain's cluster and no end-of-stream marker: the walk reads those zeros
        as one, so whatever follows an end-of-stream must be zeros.
        """
        assert self._eos_at is not None
        at = max(start, self._eos_at + 16)
        while at < end:
            upto = min(end, at + TAIL_SCAN)
            block = view[at - start : upto - start].tobytes()
            if block.count(0) != len(block):
                self._nonzero_at = at + len(block) - len(block.lstrip(b"\0"))
                return
            at = upto

    def _fill(self, view: memoryview, start: int, end: int) -> None:
        """Copy this piece's bytes into the regions it covers; queue the complete ones."""
        waiting = self._waiting
        active = self._active
        while waiting and waiting[0][0] < end:
            active.append(heapq.heappop(waiting)[2])
        if not active:
            return
        still: list[_Capture] = []
        for cap in active:
            have = cap.start + len(cap.buf)  # >= start: regions start at or after their request
            hi = min(cap.start + cap.length, end)
            if have < hi:
                cap.buf += view[have - start : hi - start]
            if cap.done_at <= end:
                heapq.heappush(self._ready, (cap.done_at, cap.seq, cap))
            else:
                still.append(cap)
        self._active = still

    def _want(self, start: int, length: int, kind: str, done: Callable[[bytes], None]) -> None:
        if start < self._at:
            return  # streamed past already: it cannot be checked in one pass
        self._seq += 1
        cap = _Capture(start, length, kind, done, self._seq)
        heapq.heappush(self._waiting, (start, cap.seq, cap))

    # -- the header -----------------------------------------------------------
    def _start(self, block: bytes) -> None:
        if block[:4] != MAGIC:
            self._add("validator.ovf.vmdk.not_vmdk", _hex(block[:4]))
            self.dead = True
            return
        h = Header.parse(block)
        self.header = h
        if not 1 <= h.version <= 3:
            self._add("validator.ovf.vmdk.bad_version", h.version)
        if h.flags & ~KNOWN_FLAGS:
            self._add(
                "validator.ovf.vmdk.bad_flags",
                f"0x{h.flags:08x}",
                f"0x{h.flags & ~KNOWN_FLAGS:08x}",
            )
        if h.capacity == 0:
            self._add("validator.ovf.vmdk.zero_capacity")
        good_grain = h.grain_size > 8 and h.grain_size & (h.grain_size - 1) == 0
        if not good_grain:
            self._add("validator.ovf.vmdk.bad_grain_size", h.grain_size)
        if h.gtes_per_gt != GTES_PER_GT:
            self._add("validator.ovf.vmdk.bad_gtes_per_gt", h.gtes_per_gt)
        if h.flags & FLAG_NEWLINE_TEST and h.newline != NEWLINE_BYTES:
            self._add("validator.ovf.vmdk.bad_newline_bytes", _hex(h.newline))
        if (h.compressed and h.compress != COMPRESS_DEFLATE) or h.compress not in (
            COMPRESS_NONE,
            COMPRESS_DEFLATE,
        ):
            self._add("validator.ovf.vmdk.bad_compression", h.compress)
        if h.gd_offset == GD_AT_END and not h.markers:
            self._add("validator.ovf.vmdk.gd_at_end_without_markers")
        declared = self.declared_capacity
        if declared is not None and h.capacity * SECTOR > declared:
            self._add(
                "validator.ovf.vmdk.capacity_exceeds_declared",
                h.capacity * SECTOR,
                declared,
                self.disk_id,
            )
        # the embedded descriptor
        if h.descriptor_offset == 0 or h.descriptor_size == 0:
            self._add("validator.ovf.vmdk.no_descriptor", h.descriptor_offset, h.descriptor_size)
        elif h.descriptor_size * SECTOR > self.max_descriptor:
            self._add(
                "validator.ovf.vmdk.descriptor_too_large",
                h.descriptor_size * SECTOR,
                self.max_descriptor,
            )
        else:
            start = h.descriptor_offset * SECTOR
            self._want(start, h.descriptor_size * SECTOR, "descriptor", self._descriptor)
        # the grain directory, when the header says where it is
        sane = good_grain and h.capacity and h.gtes_per_gt == GTES_PER_GT
        if sane and h.gd_offset != GD_AT_END:
            self._want_gd(h.gd_offset, h)
        if h.markers:
            self._walking = True
            self._mpos = h.overhead * SECTOR
            self._grain = h.grain_size if h.grain_size > 0 else 1
            self._biggest = self._grain * SECTOR * 2 + 4096
            self._inflating = self.inflate and h.compressed and h.compress == COMPRESS_DEFLATE

    def _want_gd(self, gd_sector: int, h: Header) -> None:
        count = h.grain_tables()
        if count * 4 > self.max_grain_directory:
            self._add(
                "validator.ovf.vmdk.limit_grain_directory", count, self.max_grain_directory // 4
            )
            return
        if gd_sector == 0:
            self._add("validator.ovf.vmdk.bad_gd_offset", gd_sector)
            return
        self._want(gd_sector * SECTOR, count * 4, "gd", self._grain_directory)

    def _grain_directory(self, data: bytes) -> None:
        entries = list(struct.unpack(f"<{len(data) // 4}I", data))
        self._gd_entries = entries
        # Tables already streamed past (after GT markers) were checked then.
        for gt in sorted({e for e in entries if e}):
            self._want(gt * SECTOR, GTES_PER_GT * 4, "gt", self._grain_table)

    def _grain_table(self, data: bytes) -> None:
        if data.count(0) == len(data):
            return  # no grain (qemu-img writes a table for all the capacity, most of them empty)
        h = self.header
        assert h is not None
        zero_gte = 1 if h.flags & FLAG_ZERO_GTE else 0
        live = [e for e in struct.unpack(f"<{len(data) // 4}I", data) if e > zero_gte]
        if not live:
            return
        top = max(live)
        low = min(live)
        # a compressed grain starts with its marker; a plain one fills grainSize sectors
        extent = 1 if h.compressed else h.grain_size * SECTOR
        self._max_grain_end = max(self._max_grain_end, top * SECTOR + extent)
        if low < h.overhead and (self._grain_low is None or low < self._grain_low):
            self._grain_low = low

    # -- the marker walk --------------------------------------------------------
    def _walk(self, view: memoryview, start: int, end: int, stop: int) -> bool:
        """Walk the markers whose 16 bytes end by ``stop`` (at most ``end``).

        Plain grains are skipped in a tight loop; any other marker is handled
        and True returned (it may have asked for regions).  False: the walk
        waits for bytes beyond ``stop``.
        """
        h = self.header
        assert h is not None
        if self._z is not None:
            self._inflate_from(view, start, end)
        mpos = self._mpos
        if self._mbuf:
            # a marker across pieces: gather its 16 bytes
            done_at = mpos + 16
            have = mpos + len(self._mbuf)
            if done_at > stop:
                if done_at > end:
                    self._mbuf += view[have - start :]
                return False
            self._mbuf += view[have - start : done_at - start]
            raw = bytes(self._mbuf)
            val, size, kind = _MARKER.unpack(raw)
            self._mbuf.clear()
            self._at = done_at
            self._marker(mpos, val, size, kind, h)
            if self._z is not None and self._z_at == mpos:
                # a grain's data starts inside the marker's 16 bytes
                self._inflate_from(memoryview(raw), mpos, done_at)
            return True
        capacity = h.capacity
        grain = self._grain
        biggest = self._biggest
        unpack = _MARKER.unpack_from
        last = stop - 16
        while mpos <= last:
            val, size, kind = unpack(view, mpos - start)
            if size and val < capacity and not val % grain and size <= biggest:
                # the common case, a grain: skip (or inflate) its compressed data
                if self._inflating:
                    self._grain_begin(mpos, val, size)
                    self._inflate_from(view, start, end)
                mpos += (12 + size + SECTOR - 1) // SECTOR * SECTOR
                continue
            self._mpos = mpos
            self._at = mpos + 16
            self._marker(mpos, val, size, kind, h)
            return True
        self._mpos = mpos
        if mpos < end < mpos + 16:
            self._mbuf += view[mpos - start :]
        return False

    def _marker(self, at: int, val: int, size: int, kind: int, h: Header) -> None:
        if size:
            # a grain: its first sector (LBA), then `size` bytes of deflate data
            if val >= h.capacity or val % self._grain:
                self._add("validator.ovf.vmdk.grain_marker_lba", at, val, h.capacity)
                self._mstop = True
                return
            if size > self._biggest:
                self._add("validator.ovf.vmdk.grain_marker_size", at, size)
                self._mstop = True
                return
            if self._inflating:
                self._grain_begin(at, val, size)
            self._mpos = at + -(-(12 + size) // SECTOR) * SECTOR
            return
        if kind == MARKER_EOS:
            self._eos_at = at
            self._mpos = at + SECTOR
            self._mstop = True
            return
        if kind not in (MARKER_GT, MARKER_GD, MARKER_FOOTER) or val > (1 << 32):
            self._add("validator.ovf.vmdk.bad_marker", at, kind)
            self._mstop = True
            return
        data_at = at + SECTOR
        if kind == MARKER_GT:
            self._want(data_at, min(val * SECTOR, GTES_PER_GT * 4), "gt", self._grain_table)
        elif kind == MARKER_GD:
            self._gd_marker_sector = data_at // SECTOR
            if h.gd_offset == GD_AT_END and h.grain_size > 8 and h.capacity:
                self._want_gd(data_at // SECTOR, h)
        else:
            self._footer_at = at
            self._want(data_at, SECTOR, "footer", self._footer_block)
        self._mpos = data_at + val * SECTOR

    # -- the deep grain check ---------------------------------------------------
    def _grain_begin(self, at: int, lba: int, size: int) -> None:
        """A compressed grain's marker at ``at``: its ``size`` bytes of data follow."""
        self._z = zlib.decompressobj()
        self._z_at = at
        self._z_lba = lba
        self._z_pos = at + 12
        self._z_end = at + 12 + size
        self._z_out = 0
        self._z_failed = False

    def _inflate_from(self, view: memoryview, start: int, end: int) -> None:
        """Inflate the current grain's bytes that lie in ``[start, end)``."""
        lo = max(self._z_pos, start)
        hi = min(self._z_end, end)
        if lo < hi:
            self._z_pos = hi
            if not self._z_failed:
                self._inflate(view[lo - start : hi - start])
        if self._z_pos >= self._z_end:
            self._grain_end()

    def _inflate(self, data: memoryview) -> None:
        z = self._z
        assert z is not None
        h = self.header
        assert h is not None
        cap = h.grain_size * SECTOR
        buf: memoryview | bytes = data
        while buf and not z.eof:
            try:
                # At most one piece at a time, counted and dropped: memory stays bounded.
                self._z_out += len(z.decompress(buf, INFLATE_PIECE))
            except zlib.error as exc:
                self._grain_problem("validator.ovf.vmdk.grain_corrupt", _zlib_detail(exc))
                return
            if self._z_out > cap:
                self._grain_problem("validator.ovf.vmdk.grain_too_long", cap)
                return
            if self._inflated + self._z_out > h.capacity * SECTOR + cap:
                # More grain data than the disk holds: grains written again and again (a
                # deflate bomb repeated); inflating stops, the walk goes on.
                self._grain_problem(
                    "validator.ovf.vmdk.inflate_beyond_capacity", h.capacity * SECTOR
                )
                self._inflating = False
                return
            buf = z.unconsumed_tail

    def _grain_end(self) -> None:
        z = self._z
        self._z = None
        self._inflated += self._z_out
        if z is None or self._z_failed:
            return
        h = self.header
        assert h is not None
        if not z.eof:
            # zlib's own words for a deflate stream that stops short (``zlib.decompress``)
            self._grain_problem("validator.ovf.vmdk.grain_corrupt", INCOMPLETE)
            return
        cap = h.grain_size * SECTOR
        # The grain that holds the disk's last sector may be short: VMDKstream compresses
        # the rest of an input whose size is not a multiple of the grain (not even of 512).
        left = (h.capacity - self._z_lba) * SECTOR
        if self._z_out != cap and not (left < cap and left - SECTOR < self._z_out <= cap):
            self._grain_problem("validator.ovf.vmdk.grain_too_short", self._z_out, cap)

    def _grain_problem(self, message_id: str, *args: object) -> None:
        self._z_failed = True
        if self._tally.admit(message_id):
            self._grain_problems.append((message_id, (self.name, self._z_at, self._z_lba, *args)))

    def _footer_block(self, data: bytes) -> None:
        self._footer = Header.parse(data)

    # -- the embedded descriptor -----------------------------------------------
    def _descriptor(self, data: bytes) -> None:
        text_bytes = data.split(b"\0", 1)[0]
        try:
            text = text_bytes.decode("utf-8")
        except UnicodeDecodeError:
            self._add("validator.ovf.vmdk.descriptor_not_text")
            return
        keys: dict[str, int] = {}
        values: dict[str, str] = {}
        extents: list[tuple[int, re.Match[str]]] = []
        known_lower = {k.lower(): k for k in KNOWN_KEYS}
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            ext = _EXTENT.match(line)
            if ext:
                extents.append((number, ext))
                continue
            kv = _KEY.match(line)
            if not kv:
                self._add("validator.ovf.vmdk.descriptor_bad_line", number, line[:80])
                continue
            key = kv.group("key")
            if key in keys:
                self._add("validator.ovf.vmdk.descriptor_duplicate_key", key, number)
                continue
            keys[key] = number
            values[key] = _unquote(kv.group("value"))
            real = known_lower.get(key.lower())
            if real is not None and real != key:
                self._add("validator.ovf.vmdk.descriptor_key_case", key, real, number)
        h = self.header
        assert h is not None
        create = values.get("createType")
        if create is None:
            self._add("validator.ovf.vmdk.descriptor_no_create_type")
        elif create not in ALLOWED_CREATE_TYPES:
            self._add("validator.ovf.vmdk.bad_create_type", create)
        else:
            stream_header = h.compressed and h.markers
            if (create == "streamOptimized") != stream_header:
                actual = "streamOptimized" if stream_header else "monolithicSparse"
                self._add("validator.ovf.vmdk.create_type_mismatch", create, actual)
            if self.variant in ALLOWED_CREATE_TYPES and self.variant != create:
                self._add("validator.ovf.vmdk.format_mismatch", self.variant, create)
        parent = values.get("parentCID")
        if parent is not None and parent.lower() != "ffffffff":
            self._add("validator.ovf.vmdk.has_parent", "parentCID", parent)
        if "parentFileNameHint" in values:
            self._add(
                "validator.ovf.vmdk.has_parent", "parentFileNameHint", values["parentFileNameHint"]
            )
        if len(extents) != 1:
            self._add("validator.ovf.vmdk.extent_count", len(extents))
        for number, ext in extents:
            kind = ext.group("type")
            if kind != "SPARSE":
                self._add("validator.ovf.vmdk.bad_extent_type", kind, number)
                continue
            if ext.group("file") is None:
                # QEMU refuses a SPARSE extent line without a file name; no producer writes one.
                self._add("validator.ovf.vmdk.descriptor_bad_line", number, ext.group(0)[:80])
                continue
            if ext.group("access") not in ALLOWED_EXTENT_ACCESS:
                self._add("validator.ovf.vmdk.bad_extent_access", ext.group("access"), number)
            # The file name is never used to find data: in a single-file disk the one
            # SPARSE extent is the file itself, whatever its name (see the class docstring).
            sectors = int(ext.group("sectors"))
            if sectors != h.capacity:
                self._add("validator.ovf.vmdk.extent_size_mismatch", sectors, h.capacity, number)

    # -- the end -------------------------------------------------------------
    def close(self) -> list[Problem]:
        """Finish: the checks that need the whole file; returns the problems found.

        Past :data:`~.problems.PER_KIND` of one kind, one ``NOT_LISTED`` problem
        at the end says how many more there were.
        """
        problems = self._close()
        if not self._summarized:
            self._summarized = True
            for message_id, count in self._tally.not_listed():
                problems.append((NOT_LISTED, (self.name, count, message_id, PER_KIND)))
        return problems

    def _close(self) -> list[Problem]:
        if self.dead:
            return self.problems
        total = self.pos
        h = self.header
        if h is None:
            self._add("validator.ovf.vmdk.too_short", total)
            return self.problems
        sectors = total // SECTOR
        broken = False
        if h.markers:
            broken = self._close_stream(h, total)
        elif total < h.overhead * SECTOR:
            self._add("validator.ovf.vmdk.truncated", h.overhead * SECTOR, total)
            broken = True
        unfinished = [cap for _, _, cap in self._waiting + self._ready] + self._active
        for cap in sorted(unfinished, key=lambda c: (c.start, c.seq)):
            if cap.kind == "descriptor":
                self._add(
                    "validator.ovf.vmdk.descriptor_outside",
                    cap.start // SECTOR,
                    cap.length // SECTOR,
                    sectors,
                )
            elif broken:
                continue  # a stream cut short: one message says it
            elif cap.kind == "gd":
                self._add("validator.ovf.vmdk.gd_outside", cap.start // SECTOR, sectors)
                broken = True
            elif cap.kind == "gt":
                self._add("validator.ovf.vmdk.grain_table_outside", cap.start // SECTOR, sectors)
                broken = True
        if h.flags & FLAG_REDUNDANT_GT and h.rgd_offset >= max(sectors, 1):
            self._add("validator.ovf.vmdk.gd_outside", h.rgd_offset, sectors)
        if self._gd_entries is not None and not broken:
            bad = [e for e in self._gd_entries if e and e >= sectors]
            if bad:
                self._add("validator.ovf.vmdk.grain_table_outside", bad[0], sectors)
                broken = True
        if not broken and self._max_grain_end > total:
            self._add(
                "validator.ovf.vmdk.grain_outside", (self._max_grain_end - 1) // SECTOR, sectors
            )
        if self._grain_low is not None:
            self._add("validator.ovf.vmdk.grain_in_metadata", self._grain_low, h.overhead)
        # Found in the walk's order (the same however the bytes are cut), listed last; a
        # grain the stream ends inside is left to the messages about the cut.
        self.problems.extend(self._grain_problems)
        self._grain_problems = []
        return self.problems

    def _close_stream(self, h: Header, total: int) -> bool:
        """The end of a stream with markers; True if it is cut short or broken."""
        if self._mstop and self._eos_at is None:
            return True  # a bad marker, already reported
        at_end = h.gd_offset == GD_AT_END
        cut = self._eos_at is None and self._mpos != total
        if cut and not at_end:
            self._add("validator.ovf.vmdk.truncated", max(self._mpos, total + 1), total)
            return True
        if self._eos_at is not None and self._nonzero_at is not None:
            self._add("validator.ovf.vmdk.data_after_eos", self._eos_at, self._nonzero_at)
        if not at_end:
            return False
        # grain directory at the end: footer marker, footer, end-of-stream marker.
        footer = self._footer
        if (
            self._eos_at is None
            or footer is None
            or self._footer_at is None
            or self._footer_at + 2 * SECTOR != self._eos_at
        ):
            self._add("validator.ovf.vmdk.no_footer", total)
            return True
        if footer.magic != MAGIC:
            self._add(
                "validator.ovf.vmdk.footer_mismatch", "magic", _hex(footer.magic), _hex(h.magic)
            )
            return False
        for field_name in ("version", "flags", "capacity", "grain_size", "gtes_per_gt"):
            a, b = getattr(footer, field_name), getattr(h, field_name)
            if a != b:
                self._add("validator.ovf.vmdk.footer_mismatch", field_name, a, b)
        if footer.gd_offset == GD_AT_END or footer.gd_offset >= total // SECTOR:
            self._add("validator.ovf.vmdk.gd_outside", footer.gd_offset, total // SECTOR)
        elif self._gd_marker_sector is not None and footer.gd_offset != self._gd_marker_sector:
            self._add("validator.ovf.vmdk.footer_gd", footer.gd_offset, self._gd_marker_sector)
        return False


def _zlib_detail(exc: zlib.error) -> str:
    text = str(exc)
    # "Error -3 while decompressing data: invalid block type" → "invalid block type"
    return text.split(": ", 1)[1] if ": " in text else text


class VmdkCheck(StreamCheck):
    """The engine-facing check: feeds a :class:`VmdkChecker` and reports its problems."""

    label = "vmdk"

    def __init__(self, checker: VmdkChecker) -> None:
        self.checker = checker

    def update(self, data: memoryview) -> None:
        self.checker.feed(data)

    def finish(self, report: Reporter) -> None:
        for message_id, args in self.checker.close():
            report.error(self.checker.name, message_id, *args)
