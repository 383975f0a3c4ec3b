"""Resource limits: every parser we run on untrusted input is bounded by one of these.

Each has a documented default; the CLI changes one with ``--limit NAME=VALUE``
(``validator limits`` lists them) and a server passes its own :class:`Limits`.
Exceeding a limit is a clear invalid-file message, never a crash or a silent pass.

:class:`Limits` is a ``NamedTuple``, not a frozen dataclass, because every run
defines it: on Python 3.11 a frozen dataclass costs 0.6-0.9 ms to define, a
NamedTuple about 0.1 ms (README, "Performance"; the other value records on the
start-up path are NamedTuples for the same reason).
"""

from __future__ import annotations

from typing import NamedTuple

MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40


class Limits(NamedTuple):
    #: Files (and rejected entries) in one session.
    max_files: int = 10_000
    #: Size of an OVF descriptor, in bytes.
    descriptor_bytes: int = 16 * MiB
    #: XML elements in a descriptor.
    descriptor_elements: int = 200_000
    #: Nesting depth of XML elements in a descriptor.
    descriptor_depth: int = 64
    #: ``File`` elements in ``References``.
    references: int = 10_000
    #: Size of a session manifest or OVF manifest, in bytes.
    manifest_bytes: int = 16 * MiB
    #: Lines of an OVF manifest.
    manifest_lines: int = 100_000
    #: Certificates in an OVF ``.cert`` chain.
    certificate_chain: int = 10
    #: Members of an OVA archive.
    archive_members: int = 10_000
    #: Directory records walked in an ISO image.
    iso_directory_records: int = 1_000_000
    #: Decompressed bytes of one gzip-compressed file.
    gzip_decompressed_bytes: int = 64 * GiB
    #: gzip members in one file (each costs a fresh decompressor; real files have one,
    #: bgzip-style ones one per 64 KiB).
    gzip_members: int = 1_000_000
    #: Bytes read per call in the stream pass.
    read_chunk_bytes: int = 1 * MiB
    #: Threads reading independent files in parallel (0: one per core).
    threads: int = 0
    #: Seconds one call into a plugin may take before it is reported and given up on.
    plugin_seconds: int = 60
    #: Virtual size of a disk image (``disk`` items, qcow2/VHD/VHDX/VDI disks of an
    #: OVF package), in bytes: 64 TiB, above vSphere's largest virtual disk (62 TB).
    disk_virtual_bytes: int = 64 * TiB
    #: Metadata (tables) read from one disk image, in bytes.
    disk_metadata_bytes: int = 256 * MiB

    @classmethod
    def names(cls) -> list[str]:
        return list(cls._fields)

    @classmethod
    def defaults(cls) -> dict[str, int]:
        """Every limit's name and default, in declaration order."""
        return dict(cls._field_defaults)

    def replace(self, **changes: int) -> Limits:
        return self._replace(**changes)

    def with_assignment(self, text: str) -> Limits:
        """Apply ``NAME=VALUE`` (``ValueError`` with a one-line reason if it is not one)."""
        name, sep, value = text.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in self.names():
            raise ValueError(f"unknown limit {name!r}; known: {', '.join(self.names())}")
        try:
            number = int(value.strip().replace("_", ""))
        except ValueError:
            raise ValueError(f"limit {name} needs a whole number, got {value!r}") from None
        if number < 0 or (number == 0 and name != "threads"):
            raise ValueError(f"limit {name} must be positive")
        return self.replace(**{name: number})
