"""The ``ovf`` adapter's resource limits (declared through ``validator_limits``).

Kept apart from the parsers so that listing them (``validator limits``) imports
nothing else of the adapter.
"""

from __future__ import annotations

from validator.limits import GiB, Limit, MiB

LIMITS: tuple[Limit, ...] = (
    Limit("descriptor_bytes", 16 * MiB, "Size of an OVF descriptor, in bytes."),
    Limit("descriptor_elements", 200_000, "XML elements in a descriptor."),
    Limit("descriptor_depth", 64, "Nesting depth of XML elements in a descriptor."),
    Limit("references", 10_000, "File elements in References."),
    Limit("manifest_lines", 100_000, "Lines of an OVF manifest."),
    Limit("certificate_chain", 10, "Certificates in an OVF .cert chain."),
    Limit("archive_members", 10_000, "Members of an OVA archive."),
    Limit("gzip_decompressed_bytes", 64 * GiB, "Decompressed bytes of one gzip-compressed file."),
    # Each gzip member costs a fresh decompressor; real files have one, bgzip-style
    # ones one per 64 KiB.
    Limit("gzip_members", 1_000_000, "gzip members in one file."),
)
