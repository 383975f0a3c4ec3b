"""The OVF descriptor: safe parsing, a small model, and the structural checks.

OVF 0.9 (VMware's pre-standard namespace, sections as ``Section
xsi:type="ovf:…_Type"``), 1.x and 2.x are accepted (REFERENCE §4).  Every
problem is a ``(message id, args)`` pair; args end with the line number where
one helps.  Nothing here opens a file: hrefs are only checked as names.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import NamedTuple

from lxml import etree

from validator.limits import Limits
from validator.session import is_plain_name
from validator.xmlsafe import XmlRejected, parse

from .problems import NOT_LISTED, Tally

OVF_NAMESPACES = {
    "http://www.vmware.com/schema/ovf/1/envelope": "0.9",
    "http://schemas.dmtf.org/ovf/envelope/1": "1.x",
    "http://schemas.dmtf.org/ovf/envelope/2": "2.x",
}
XSI = "http://www.w3.org/2001/XMLSchema-instance"
CONTENT_NAMES = ("VirtualSystem", "VirtualSystemCollection")
CHUNK_DIGITS = 9

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_UNSIGNED = re.compile(r"^[0-9]{1,20}$")
_PROPERTY_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_.\-]*)\}$")
_UNITS = re.compile(r"^\s*byte((?:\s*\*\s*[0-9]{1,6}(?:\s*\^\s*[0-9]{1,3})?)*)\s*$", re.IGNORECASE)
_UNIT_TERM = re.compile(r"\*\s*([0-9]{1,6})(?:\s*\^\s*([0-9]{1,3}))?")
_HOST_RESOURCE = re.compile(r"^(?:ovf:)?/(disk|file)/(.+)$")
_XSI_TYPE = f"{{{XSI}}}type"

Problem = tuple[str, tuple[object, ...]]


@dataclass(slots=True)
class FileRef:
    """A ``References/File`` element."""

    id: str
    href: str
    line: int
    size: int | None = None
    compression: str | None = None
    chunk_size: int | None = None
    #: The href is a plain name a session can hold.
    usable: bool = True
    #: With the chunks of the references before it, its chunks are more than
    #: ``max_files`` (no session can hold them): like a reference with too many
    #: chunks by itself, its chunk names are not listed (``chunk_names``).
    over_chunk_budget: bool = False

    def chunk_count(self) -> int | None:
        """How many chunks its size says it is stored as (``None``: not said)."""
        if self.chunk_size is None or self.size is None or self.chunk_size <= 0:
            return None
        return max(1, -(-self.size // self.chunk_size))

    def chunk_names(self, limit: int) -> list[str] | None:
        """The names of its chunks when the size says how many, else ``None``."""
        count = self.chunk_count()
        if count is None or count > limit or self.over_chunk_budget:
            return None
        return [chunk_name(self.href, i) for i in range(count)]


def chunk_name(href: str, index: int) -> str:
    return f"{href}.{index:0{CHUNK_DIGITS}d}"


class Disk(NamedTuple):
    id: str
    line: int
    file_ref: str | None
    capacity_bytes: int | None
    format: str | None
    populated_size: int | None


@dataclass(slots=True)
class Descriptor:
    name: str
    version: str | None = None
    files: list[FileRef] = field(default_factory=list)
    disks: list[Disk] = field(default_factory=list)
    #: At most ``PER_KIND`` of each message id, then one ``NOT_LISTED`` for the rest.
    problems: list[Problem] = field(default_factory=list)
    parsed: bool = False
    _tally: Tally[str] = field(default_factory=Tally, repr=False, compare=False)

    def file_by_id(self) -> dict[str, FileRef]:
        return {f.id: f for f in self.files}

    def add(self, message: str, *args: object) -> None:
        if self._tally.admit(message):
            self.problems.append((message, args))

    def add_not_listed(self) -> None:
        """One problem per message id that had more than ``PER_KIND``: how many more."""
        for message, count in self._tally.not_listed():
            self.problems.append((NOT_LISTED, (self.name, count, message, self._tally.per_kind)))
        self._tally = Tally(self._tally.per_kind)


def _local(tag: object) -> str:
    """The local name of an element's tag (``""`` for a comment or processing instruction).

    lxml gives tags in Clark notation, ``{namespace}local``, and ``}`` cannot be
    part of an XML name: this is ``etree.QName(tag).localname`` without building
    a QName object for every element (which cost most of the time of a large
    descriptor).
    """
    return tag[tag.rfind("}") + 1 :] if isinstance(tag, str) else ""


def _ns(tag: object) -> str:
    return (etree.QName(tag).namespace or "") if isinstance(tag, str) else ""


def _elements(el: etree._Element, local: str | None = None) -> Iterator[etree._Element]:
    """The child elements of ``el`` (comments and processing instructions skipped), in
    order; with ``local``, only those of that local name, in any namespace or none.

    lxml filters the children itself (``{*}name`` is any namespace or none).
    """
    return el.iterchildren(etree.Element if local is None else f"{{*}}{local}")


class _Reader:
    """Walks one parsed envelope and fills a :class:`Descriptor`."""

    def __init__(self, desc: Descriptor, ns: str, limits: Limits) -> None:
        self.d = desc
        self.ns = ns
        self.limits = limits
        self.legacy = OVF_NAMESPACES[ns] == "0.9"
        self.properties: set[str] = set()
        #: Attribute name → its Clark name in the envelope's namespace.
        self._attr_names: dict[str, str] = {}

    def attr(self, el: etree._Element, name: str) -> str | None:
        key = self._attr_names.get(name)
        if key is None:
            key = self._attr_names[name] = f"{{{self.ns}}}{name}"
        value = el.get(key)
        return value.strip() if value is not None else None

    def kind(self, el: etree._Element, local: str | None = None) -> str:
        """Section or content kind: the local name, or the xsi:type of 0.9's Section/Content."""
        if local is None:
            local = _local(el.tag)
        if self.legacy and local in ("Section", "Content"):
            xtype = el.get(_XSI_TYPE, "")
            base = xtype.split(":")[-1]
            return base[: -len("_Type")] if base.endswith("_Type") else (base or local)
        return local

    def classify(self, el: etree._Element) -> tuple[str, bool, bool]:
        """``(kind, is content, is section)`` of an element (both can hold for 0.9)."""
        local = _local(el.tag)
        kind = self.kind(el, local)
        return kind, kind in CONTENT_NAMES, kind.endswith("Section") or local == "Section"

    def has_info(self, el: etree._Element) -> bool:
        return next(_elements(el, "Info"), None) is not None

    # -- the envelope ---------------------------------------------------
    def read(self, root: etree._Element) -> None:
        for prop in root.iter(f"{{{self.ns}}}Property"):
            key = self.attr(prop, "key")
            if key:
                self.properties.add(key)
        children = [(c, *self.classify(c)) for c in _elements(root)]
        refs = [c for c, *_ in children if _local(c.tag) == "References"]
        content = [(c, kind) for c, kind, is_content, _ in children if is_content]
        if not refs:
            self.d.add("validator.ovf.references.missing")
        for extra in refs[1:]:
            self.d.add("validator.ovf.references.duplicate", extra.sourceline or 0)
        if refs and children[0][0] is not refs[0]:
            self.d.add("validator.ovf.envelope.references_not_first", refs[0].sourceline or 0)
        if not content:
            self.d.add("validator.ovf.content.missing")
        for extra, _ in content[1:]:
            self.d.add("validator.ovf.content.multiple", extra.sourceline or 0)
        seen_content = False
        for c, kind, is_content, is_section in children:
            if is_content:
                seen_content = True
            elif seen_content and is_section:
                self.d.add("validator.ovf.envelope.section_after_content", kind, c.sourceline or 0)
        if refs:
            self.read_references(refs[0])
        for c, kind, _, is_section in children:
            if is_section:
                self.read_section(c, kind)
        content_ids: set[str] = set()
        for c, kind in content:
            self.read_content(c, kind, content_ids, depth=0)
        self.check_host_resources(root)

    def read_references(self, refs: etree._Element) -> None:
        ids: set[str] = set()
        hrefs: set[str] = set()
        chunks = 0  # implied by the sizes of the references so far
        found = _elements(refs, "File")
        files = list(islice(found, self.limits.references))
        beyond = sum(1 for _ in found)  # counted, not kept
        if beyond:
            total = len(files) + beyond
            self.d.add("validator.ovf.limit.references", total, self.limits.references)
        for el in files:
            line = el.sourceline or 0
            fid = self.attr(el, "id")
            href = self.attr(el, "href")
            if not fid:
                self.d.add("validator.ovf.file.no_id", line)
            elif fid in ids:
                self.d.add("validator.ovf.file.duplicate_id", fid, line)
            if not href:
                self.d.add("validator.ovf.file.no_href", fid or "?", line)
                continue
            ref = FileRef(id=fid or "", href=href, line=line)
            ref.usable = self.check_href(href, line)
            if href in hrefs:
                self.d.add("validator.ovf.file.duplicate_href", href, line)
                ref.usable = False
            hrefs.add(href)
            size = self.attr(el, "size")
            if size is not None:
                if _UNSIGNED.match(size):
                    ref.size = int(size)
                else:
                    self.d.add("validator.ovf.file.bad_size", href, size, line)
            compression = self.attr(el, "compression")
            if compression is not None:
                if compression in ("gzip", "identity"):
                    ref.compression = None if compression == "identity" else compression
                else:
                    self.d.add("validator.ovf.file.bad_compression", href, compression, line)
            chunk = self.attr(el, "chunkSize")
            if chunk is not None:
                if _UNSIGNED.match(chunk) and int(chunk) > 0:
                    ref.chunk_size = int(chunk)
                else:
                    self.d.add("validator.ovf.file.bad_chunk_size", href, chunk, line)
            if fid and fid not in ids:
                self.d.files.append(ref)
                chunks = self.budget_chunks(ref, chunks)
            ids.add(fid or "")

    def budget_chunks(self, ref: FileRef, chunks: int) -> int:
        """Chunks implied so far, with ``ref``'s; over ``max_files`` it is marked instead.

        Each reference may imply up to ``max_files`` chunks; without a bound on
        their sum, 200 references of 9,999 one-byte chunks (15 KB of descriptor)
        made two million missing names, 860 MB and 24 s.
        """
        count = ref.chunk_count()
        if not ref.usable or count is None or count > self.limits.max_files:
            return chunks  # not chunked, or chunk.too_many by itself
        if chunks + count > self.limits.max_files:
            ref.over_chunk_budget = True
            return chunks
        return chunks + count

    def check_href(self, href: str, line: int) -> bool:
        if _URL.match(href) and not re.match(r"^[A-Za-z]:[\\/]", href):
            self.d.add("validator.ovf.file.href_url", href, line)
            return False
        if href.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", href):
            self.d.add("validator.ovf.file.href_absolute", href, line)
            return False
        if ".." in re.split(r"[\\/]", href):
            self.d.add("validator.ovf.file.href_traversal", href, line)
            return False
        if not is_plain_name(href):
            self.d.add("validator.ovf.file.href_not_plain", href, line)
            return False
        return True

    def read_section(self, section: etree._Element, kind: str) -> None:
        if not self.has_info(section):
            self.d.add("validator.ovf.section.no_info", kind, section.sourceline or 0)
        if kind == "DiskSection":
            self.read_disks(section)

    def read_disks(self, section: etree._Element) -> None:
        ids: set[str] = set()
        file_ids = {f.id for f in self.d.files}
        for el in _elements(section, "Disk"):
            line = el.sourceline or 0
            did = self.attr(el, "diskId")
            if not did:
                self.d.add("validator.ovf.disk.no_id", line)
            elif did in ids:
                self.d.add("validator.ovf.disk.duplicate_id", did, line)
            label = did or "?"
            file_ref = self.attr(el, "fileRef")
            if file_ref is not None and file_ref not in file_ids:
                self.d.add("validator.ovf.disk.unknown_file_ref", label, file_ref, line)
            units = self.units(el, label, line)
            capacity = self.capacity(el, label, line)
            capacity_bytes = capacity * units if capacity is not None and units else None
            populated: int | None = None
            raw_pop = self.attr(el, "populatedSize")
            if raw_pop is not None:
                if _UNSIGNED.match(raw_pop):
                    populated = int(raw_pop)
                    if capacity_bytes is not None and populated > capacity_bytes:
                        self.d.add(
                            "validator.ovf.disk.populated_exceeds_capacity",
                            label,
                            populated,
                            capacity_bytes,
                            line,
                        )
                else:
                    self.d.add("validator.ovf.disk.bad_populated_size", label, raw_pop, line)
            if did and did not in ids:
                self.d.disks.append(
                    Disk(did, line, file_ref, capacity_bytes, self.attr(el, "format"), populated)
                )
            ids.add(did or "")

    def capacity(self, el: etree._Element, label: str, line: int) -> int | None:
        raw = self.attr(el, "capacity")
        if raw is None or raw == "":
            self.d.add("validator.ovf.disk.no_capacity", label, line)
            return None
        prop = _PROPERTY_REF.match(raw)
        if prop:
            if prop.group(1) not in self.properties:
                self.d.add(
                    "validator.ovf.disk.unknown_capacity_property", label, prop.group(1), line
                )
            return None
        if not _UNSIGNED.match(raw):
            self.d.add("validator.ovf.disk.bad_capacity", label, raw, line)
            return None
        if int(raw) == 0:
            self.d.add("validator.ovf.disk.zero_capacity", label, line)
            return None
        return int(raw)

    def units(self, el: etree._Element, label: str, line: int) -> int | None:
        raw = self.attr(el, "capacityAllocationUnits")
        if raw is None:
            return 1
        m = _UNITS.match(raw)
        if not m:
            self.d.add("validator.ovf.disk.bad_allocation_units", label, raw, line)
            return None
        value = 1
        for base, exp in _UNIT_TERM.findall(m.group(1)):
            value *= int(base) ** int(exp or 1)
            if value.bit_length() > 128:
                self.d.add("validator.ovf.disk.bad_allocation_units", label, raw, line)
                return None
        return value

    def read_content(self, el: etree._Element, kind: str, ids: set[str], depth: int) -> None:
        line = el.sourceline or 0
        cid = self.attr(el, "id")
        if not cid:
            self.d.add("validator.ovf.content.no_id", kind, line)
        elif cid in ids:
            self.d.add("validator.ovf.content.duplicate_id", cid, line)
        else:
            ids.add(cid)
        if not self.has_info(el):
            self.d.add("validator.ovf.content.no_info", kind, cid or "?", line)
        for child in _elements(el):
            child_kind, is_content, is_section = self.classify(child)
            if is_content:
                if kind != "VirtualSystemCollection":
                    self.d.add(
                        "validator.ovf.content.nested_in_system",
                        child_kind,
                        cid or "?",
                        child.sourceline or 0,
                    )
                self.read_content(child, child_kind, ids, depth + 1)
            elif is_section:
                self.read_section(child, child_kind)

    def check_host_resources(self, root: etree._Element) -> None:
        disks = {d.id for d in self.d.disks}
        files = {f.id for f in self.d.files}
        for el in root.iter("{*}HostResource"):
            value = (el.text or "").strip()
            m = _HOST_RESOURCE.match(value)
            if not m:
                continue
            kind, ident = m.groups()
            if kind == "disk" and ident not in disks:
                self.d.add("validator.ovf.hardware.unknown_disk", ident, el.sourceline or 0)
            elif kind == "file" and ident not in files:
                self.d.add("validator.ovf.hardware.unknown_file", ident, el.sourceline or 0)


def read_descriptor(name: str, data: bytes | None, limits: Limits) -> Descriptor:
    """Parse and check a descriptor's bytes (``None``: larger than the limit)."""
    desc = Descriptor(name=name)
    if data is None:
        desc.add("validator.ovf.limit.descriptor_size", limits.descriptor_bytes)
        return desc
    try:
        tree = parse(
            data, max_elements=limits.descriptor_elements, max_depth=limits.descriptor_depth
        )
    except XmlRejected as exc:
        if exc.kind == "malformed":
            desc.add("validator.ovf.xml.malformed", exc.detail, exc.line)
        elif exc.kind in ("doctype", "entity"):
            desc.add("validator.ovf.xml.doctype", exc.line)
        elif exc.kind == "elements":
            desc.add("validator.ovf.limit.descriptor_elements", limits.descriptor_elements)
        else:
            desc.add("validator.ovf.limit.descriptor_depth", limits.descriptor_depth, exc.line)
        return desc
    root = tree.getroot()
    if _local(root.tag) != "Envelope":
        desc.add("validator.ovf.envelope.not_envelope", _local(root.tag), root.sourceline or 0)
        return desc
    ns = _ns(root.tag)
    if ns not in OVF_NAMESPACES:
        desc.add("validator.ovf.envelope.bad_namespace", ns or "(none)", root.sourceline or 0)
        return desc
    desc.version = OVF_NAMESPACES[ns]
    desc.parsed = True
    _Reader(desc, ns, limits).read(root)
    desc.add_not_listed()
    return desc
