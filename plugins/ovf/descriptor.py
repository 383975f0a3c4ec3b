"""The OVF descriptor: safe parsing, a small model, and the structural checks.

OVF 0.9 (VMware's pre-standard namespace), 1.x and 2.x are accepted
(REFERENCE §4); ``Section``/``Content`` with ``xsi:type="ovf:…_Type"`` are
read as the section or content they name in every namespace.  The envelope is
walked once (:class:`_Reader`); the sections' own rules are in
:mod:`.sections` and the catalogue of rules in :mod:`.rules`
(docs/ovf-descriptor-rules.md).  Every problem is a ``(message id, args)``
pair; args end with the line number where one helps.  Nothing here opens a
file: hrefs are only checked as names.
"""

from __future__ import annotations

import re
from itertools import islice
from typing import NamedTuple

from lxml import etree

from validator.limits import Limits
from validator.session import is_plain_name
from validator.xmlsafe import XmlRejected, parse

from . import sections
from .problems import NOT_LISTED, Tally
from .xmltree import OVF_NAMESPACES, XSI, elements, local, namespace, understood

CONTENT_NAMES = ("VirtualSystem", "VirtualSystemCollection")
CHUNK_DIGITS = 9

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_UNSIGNED = re.compile(r"^[0-9]{1,20}$")
_PROPERTY_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_.\-]*)\}$")
_UNITS = re.compile(r"^\s*byte((?:\s*\*\s*[0-9]{1,6}(?:\s*\^\s*[0-9]{1,3})?)*)\s*$", re.IGNORECASE)
_UNIT_TERM = re.compile(r"\*\s*([0-9]{1,6})(?:\s*\^\s*([0-9]{1,3}))?")
_VERSION = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_XSI_TYPE = f"{{{XSI}}}type"

Problem = tuple[str, tuple[object, ...]]


class FileRef:
    """A ``References/File`` element.

    (Plain classes, this and :class:`Descriptor`: a dataclass costs every run 0.5-1 ms of
    start-up on Python 3.11, see ``validator/session.py``.)
    """

    __slots__ = (
        "chunk_size",
        "compression",
        "href",
        "id",
        "line",
        "over_chunk_budget",
        "size",
        "usable",
    )  # fmt: skip

    def __init__(
        self,
        id: str,
        href: str,
        line: int,
        size: int | None = None,
        compression: str | None = None,
        chunk_size: int | None = None,
        usable: bool = True,
        over_chunk_budget: bool = False,
    ) -> None:
        self.id = id
        self.href = href
        self.line = line
        self.size = size
        self.compression = compression
        self.chunk_size = chunk_size
        #: The href is a plain name a session can hold.
        self.usable = usable
        #: With the chunks of the references before it, its chunks are more than
        #: ``max_files`` (no session can hold them): like a reference with too many
        #: chunks by itself, its chunk names are not listed (``chunk_names``).
        self.over_chunk_budget = over_chunk_budget

    def __repr__(self) -> str:
        return f"FileRef(id={self.id!r}, href={self.href!r}, line={self.line})"

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


class Descriptor:
    """What the adapter learned from a descriptor: its references, disks and problems."""

    __slots__ = ("_tally", "disks", "files", "name", "parsed", "problems", "version")

    def __init__(self, name: str, version: str | None = None) -> None:
        self.name = name
        self.version = version
        self.files: list[FileRef] = []
        self.disks: list[Disk] = []
        #: At most ``PER_KIND`` of each message id, then one ``NOT_LISTED`` for the rest.
        self.problems: list[Problem] = []
        self.parsed = False
        self._tally: Tally[str] = Tally()

    def __repr__(self) -> str:
        return f"Descriptor({self.name!r}, files={len(self.files)}, disks={len(self.disks)})"

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


#: Kept for callers of the old private names.
_local = local
_elements = elements


def _ns(tag: object) -> str:
    return namespace(tag)


class _Reader:
    """Walks one parsed envelope once and fills a :class:`Descriptor`.

    The walk follows the structure (envelope, sections, content, the sections
    of each content element); every lookup is in a set or dict built as the
    walk goes, so a descriptor is checked in time linear in its size.
    """

    def __init__(self, desc: Descriptor, ns: str, limits: Limits) -> None:
        self.d = desc
        self.ns = ns
        self.limits = limits
        self.version = OVF_NAMESPACES[ns]
        self.legacy = self.version == "0.9"
        self.known_sections = sections.known_sections(self.version)
        #: Section kind → the OVF elements it may hold (in this version).
        self.children = sections.children(self.version)
        self.properties: set[str] = set()
        #: Network names of the NetworkSection (``rasd:Connection`` names one).
        self.networks: set[str] = set()
        #: Configuration ids of the DeploymentOptionSection (``None``: there is none).
        self.configurations: set[str] | None = None
        #: Ids of the files and disks declared so far (``HostResource`` names one).
        self.file_ids: set[str] = set()
        self.disk_ids: set[str] = set()
        #: Tag (Clark notation) → (local name, namespace) of the elements met in sections.
        self.tags: dict[object, tuple[str, str]] = {}
        #: Attribute name → its Clark name in the envelope's namespace.
        self._attr_names: dict[str, str] = {}

    def attr(self, el: etree._Element, name: str) -> str | None:
        key = self._attr_names.get(name)
        if key is None:
            key = self._attr_names[name] = f"{{{self.ns}}}{name}"
        value = el.get(key)
        return value.strip() if value is not None else None

    def add(self, message: str, *args: object) -> None:
        self.d.add(message, *args)

    def kind(self, el: etree._Element, name: str | None = None) -> tuple[str, str]:
        """``(kind, namespace)`` of an element: its local name and namespace, or for an
        OVF ``Section``/``Content`` with ``xsi:type`` the type it names (less ``_Type``),
        resolved with the element's in-scope namespaces (any OVF version)."""
        if name is None:
            name = local(el.tag)
        ns = namespace(el.tag)
        if name in ("Section", "Content") and ns == self.ns:
            xtype = (el.get(_XSI_TYPE) or "").strip()
            if xtype:
                prefix, _, base = xtype.rpartition(":")
                type_ns = el.nsmap.get(prefix or None)
                if type_ns is None or type_ns in OVF_NAMESPACES:
                    type_ns = self.ns  # an undeclared prefix: read it as OVF's
                return (base[: -len("_Type")] if base.endswith("_Type") else base), type_ns
        return name, ns

    def has_info(self, el: etree._Element) -> bool:
        return next(elements(el, "Info"), None) is not None

    def not_required(self, el: etree._Element) -> bool:
        value = el.get(f"{{{self.ns}}}required")
        return value is not None and value.strip().lower() in ("false", "0")

    def other(self, el: etree._Element, parent: str, name: str, ns: str) -> None:
        """An element that is not OVF's own at this place: an unknown OVF element (an
        error), or an extension (an error only when it is required and not understood)."""
        line = el.sourceline or 0
        if ns == self.ns or ns in OVF_NAMESPACES or not ns:
            self.add("validator.ovf.element.unknown", name, parent, line)
        elif not understood(ns) and not self.not_required(el):
            self.add("validator.ovf.extension.required_unknown", name, ns, line)

    # -- the envelope ---------------------------------------------------
    def read(self, root: etree._Element) -> None:
        version = self.attr(root, "version")
        if version is not None and not _VERSION.match(version):
            self.add("validator.ovf.envelope.bad_version", version, root.sourceline or 0)
        for prop in root.iter(f"{{{self.ns}}}Property"):
            key = self.attr(prop, "key")
            if key:
                self.properties.add(key)
        refs: list[etree._Element] = []
        content: list[tuple[etree._Element, str]] = []
        found: list[tuple[etree._Element, str]] = []  # sections, in order
        first: etree._Element | None = None
        seen_content = False
        after: list[tuple[str, str, int]] = []  # what follows the content: reported below
        for c in elements(root):
            first = c if first is None else first
            kind, ns = self.kind(c)
            line = c.sourceline or 0
            if ns == self.ns and kind in CONTENT_NAMES:
                seen_content = True
                content.append((c, kind))
                continue
            if ns == self.ns and kind == "References":
                refs.append(c)
            elif ns == self.ns and kind == "Strings":
                pass
            elif ns == self.ns and (kind.endswith("Section") or kind == "Section"):
                found.append((c, kind))
                if seen_content:
                    after.append(("validator.ovf.envelope.section_after_content", kind, line))
                continue
            elif not (seen_content and ns == self.ns):  # else: after_content says it
                self.other(c, "Envelope", kind, ns)
            if seen_content and ns == self.ns and kind != "Strings":
                after.append(("validator.ovf.envelope.after_content", kind, line))
        if not refs:
            self.add("validator.ovf.references.missing")
        for extra in refs[1:]:
            self.add("validator.ovf.references.duplicate", extra.sourceline or 0)
        if refs and first is not refs[0]:
            self.add("validator.ovf.envelope.references_not_first", refs[0].sourceline or 0)
        if not content:
            self.add("validator.ovf.content.missing")
        for extra, _ in content[1:]:
            self.add("validator.ovf.content.multiple", extra.sourceline or 0)
        for message, kind, line in after:
            self.add(message, kind, line)
        if refs:
            self.read_references(refs[0])
        scope = sections.Scope("Envelope", "Envelope")
        # DeploymentOptionSection first: items and properties name its configurations.
        found.sort(key=lambda pair: pair[1] != "DeploymentOptionSection")
        for c, kind in found:
            self.read_section(c, kind, scope)
        ids: set[str] = set()  # the top-level content is its own sibling set
        for c, kind in content:
            self.read_content(c, kind, ids)

    def read_references(self, refs: etree._Element) -> None:
        ids: set[str] = set()
        hrefs: set[str] = set()
        chunks = 0  # implied by the sizes of the references so far
        found = elements(refs, "File")
        files = list(islice(found, self.limits.references))
        beyond = sum(1 for _ in found)  # counted, not kept
        if beyond:
            total = len(files) + beyond
            self.add("validator.ovf.limit.references", total, self.limits.references)
        for el in files:
            line = el.sourceline or 0
            fid = self.attr(el, "id")
            href = self.attr(el, "href")
            if not fid:
                self.add("validator.ovf.file.no_id", line)
            elif fid in ids:
                self.add("validator.ovf.file.duplicate_id", fid, line)
            if not href:
                self.add("validator.ovf.file.no_href", fid or "?", line)
                continue
            ref = FileRef(id=fid or "", href=href, line=line)
            ref.usable = self.check_href(href, line)
            if href in hrefs:
                self.add("validator.ovf.file.duplicate_href", href, line)
                ref.usable = False
            hrefs.add(href)
            size = self.attr(el, "size")
            if size is not None:
                if _UNSIGNED.match(size):
                    ref.size = int(size)
                else:
                    self.add("validator.ovf.file.bad_size", href, size, line)
            compression = self.attr(el, "compression")
            if compression is not None:
                if compression in ("gzip", "identity"):
                    ref.compression = None if compression == "identity" else compression
                else:
                    self.add("validator.ovf.file.bad_compression", href, compression, line)
            chunk = self.attr(el, "chunkSize")
            if chunk is not None:
                if _UNSIGNED.match(chunk) and int(chunk) > 0:
                    ref.chunk_size = int(chunk)
                else:
                    self.add("validator.ovf.file.bad_chunk_size", href, chunk, line)
            if fid and fid not in ids:
                self.d.files.append(ref)
                self.file_ids.add(fid)
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
            self.add("validator.ovf.file.href_url", href, line)
            return False
        if href.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", href):
            self.add("validator.ovf.file.href_absolute", href, line)
            return False
        if ".." in re.split(r"[\\/]", href):
            self.add("validator.ovf.file.href_traversal", href, line)
            return False
        if not is_plain_name(href):
            self.add("validator.ovf.file.href_not_plain", href, line)
            return False
        return True

    # -- sections -------------------------------------------------------
    def read_section(self, section: etree._Element, kind: str, scope: sections.Scope) -> None:
        """A section in the OVF namespace, at ``scope`` (its placement is checked)."""
        line = section.sourceline or 0
        if not self.has_info(section):
            self.add("validator.ovf.section.no_info", kind, line)
        if kind not in self.known_sections:
            self.add("validator.ovf.section.unknown", kind, line)
            return
        allowed = sections.PLACEMENT[kind]
        if scope.where not in allowed:
            where = " / ".join(sorted(allowed))
            self.add("validator.ovf.section.misplaced", kind, scope.where, where, line)
        elif kind in sections.AT_MOST_ONE:
            if kind in scope.seen:
                self.add("validator.ovf.section.duplicate", kind, scope.label, line)
            scope.seen.add(kind)
        children = self.children.get(kind)
        if children is not None:
            tags = self.tags
            for child in elements(section):
                tag = child.tag
                known = tags.get(tag)  # a few distinct tags, repeated (Item, Disk…)
                if known is None:
                    known = tags[tag] = (local(tag), namespace(tag))
                name, ns = known
                if ns != self.ns or name not in children:
                    self.other(child, kind, name, ns)
        if kind == "DiskSection":
            self.read_disks(section)
        else:
            sections.read(self, section, kind, scope)

    def read_disks(self, section: etree._Element) -> None:
        ids: set[str] = set()
        file_ids = self.file_ids
        used_files: set[str] = set()
        for el in elements(section, "Disk"):
            line = el.sourceline or 0
            did = self.attr(el, "diskId")
            if not did:
                self.add("validator.ovf.disk.no_id", line)
            elif did in ids:
                self.add("validator.ovf.disk.duplicate_id", did, line)
            label = did or "?"
            file_ref = self.attr(el, "fileRef") or None  # "" is an empty disk (no file)
            if file_ref is not None:
                if file_ref not in file_ids:
                    self.add("validator.ovf.disk.unknown_file_ref", label, file_ref, line)
                elif file_ref in used_files:
                    self.add("validator.ovf.disk.duplicate_file_ref", label, file_ref, line)
                used_files.add(file_ref)
            parent = self.attr(el, "parentRef")
            if parent and parent not in ids:
                self.add("validator.ovf.disk.unknown_parent", label, parent, line)
            units = self.units(el, label, line)
            capacity = self.capacity(el, label, line)
            capacity_bytes = capacity * units if capacity is not None and units else None
            populated: int | None = None
            raw_pop = self.attr(el, "populatedSize")
            if raw_pop is not None:
                if _UNSIGNED.match(raw_pop):
                    populated = int(raw_pop)
                    if capacity_bytes is not None and populated > capacity_bytes:
                        self.add(
                            "validator.ovf.disk.populated_exceeds_capacity",
                            label,
                            populated,
                            capacity_bytes,
                            line,
                        )
                else:
                    self.add("validator.ovf.disk.bad_populated_size", label, raw_pop, line)
            if did and did not in ids:
                self.disk_ids.add(did)
                self.d.disks.append(
                    Disk(did, line, file_ref, capacity_bytes, self.attr(el, "format"), populated)
                )
            ids.add(did or "")

    def capacity(self, el: etree._Element, label: str, line: int) -> int | None:
        raw = self.attr(el, "capacity")
        if raw is None or raw == "":
            self.add("validator.ovf.disk.no_capacity", label, line)
            return None
        prop = _PROPERTY_REF.match(raw)
        if prop:
            if prop.group(1) not in self.properties:
                self.add("validator.ovf.disk.unknown_capacity_property", label, prop.group(1), line)
            return None
        if not _UNSIGNED.match(raw):
            self.add("validator.ovf.disk.bad_capacity", label, raw, line)
            return None
        if int(raw) == 0:
            self.add("validator.ovf.disk.zero_capacity", label, line)
            return None
        return int(raw)

    def units(self, el: etree._Element, label: str, line: int) -> int | None:
        raw = self.attr(el, "capacityAllocationUnits")
        if raw is None:
            return 1
        m = _UNITS.match(raw)
        if not m:
            self.add("validator.ovf.disk.bad_allocation_units", label, raw, line)
            return None
        value = 1
        for base, exp in _UNIT_TERM.findall(m.group(1)):
            value *= int(base) ** int(exp or 1)
            if value.bit_length() > 128:
                self.add("validator.ovf.disk.bad_allocation_units", label, raw, line)
                return None
        return value

    # -- content --------------------------------------------------------
    def read_content(self, el: etree._Element, kind: str, siblings: set[str]) -> None:
        """A VirtualSystem or VirtualSystemCollection; ``siblings``: the ids of the
        content elements beside it (its collection's direct children), its own added."""
        line = el.sourceline or 0
        cid = self.attr(el, "id")
        if not cid:
            self.add("validator.ovf.content.no_id", kind, line)
        elif cid in siblings:
            self.add("validator.ovf.content.duplicate_id", cid, line)
        else:
            siblings.add(cid)
        if not self.has_info(el):
            self.add("validator.ovf.content.no_info", kind, cid or "?", line)
        scope = sections.Scope(kind, f"{kind} {cid or '?'}")
        children: set[str] = set()
        later: list[tuple[etree._Element, str]] = []
        for child in elements(el):
            name = local(child.tag)
            child_kind, ns = self.kind(child, name)
            if ns != self.ns:
                self.other(child, kind, child_kind, ns)
            elif child_kind in CONTENT_NAMES:
                if kind != "VirtualSystemCollection":
                    self.add(
                        "validator.ovf.content.nested_in_system",
                        child_kind,
                        cid or "?",
                        child.sourceline or 0,
                    )
                self.read_content(child, child_kind, children)
            elif child_kind.endswith("Section") or child_kind == "Section":
                if child_kind == "StartupSection":
                    later.append((child, child_kind))  # it names the children: after them
                else:
                    self.read_section(child, child_kind, scope)
            elif child_kind not in ("Info", "Name"):
                self.other(child, kind, child_kind, ns)
        scope.children = children
        for child, child_kind in later:
            self.read_section(child, child_kind, scope)
        if kind == "VirtualSystem":
            sections.finish_system(self, el, cid or "?", scope)


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
