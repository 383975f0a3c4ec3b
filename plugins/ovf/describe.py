"""``validator info`` for OVF packages: what the descriptor, manifest and certificate say.

The facts ``ovftool`` prints when it probes a package, or ``govc import.spec``
reads: the virtual systems (nested collections too) with their operating
system and hardware (CPUs, memory, controllers, NICs and their networks,
disks with capacity, format and file, CD and floppy drives), the networks,
the deployment options, the product sections and their properties, the
EULAs, the annotations, the files, and the signature (signer, issuer,
validity, whether it verifies).  Metadata only: no disk data is read.  The
structure model comes from the parse the opener (or the validation cache)
made (:func:`descriptor_of`); the sections this module reports are read from
the same bytes, parsed again with the same safe parser and limits.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from lxml import etree

from validator.checks import CheckContext, Reporter
from validator.session import Session
from validator.xmlsafe import XmlRejected, parse

from .xmltree import OVF_NAMESPACES, XSI, elements, local, namespace, text

if TYPE_CHECKING:
    from .descriptor import Descriptor

#: CIM_ResourceAllocationSettingData.ResourceType (DSP1041 value map), 1-33.
RESOURCE_TYPES = (
    "Other",
    "Computer System",
    "Processor",
    "Memory",
    "IDE Controller",
    "Parallel SCSI HBA",
    "FC HBA",
    "iSCSI HBA",
    "IB HCA",
    "Ethernet Adapter",
    "Other Network Adapter",
    "I/O Slot",
    "I/O Device",
    "Floppy Drive",
    "CD Drive",
    "DVD drive",
    "Disk Drive",
    "Tape Drive",
    "Storage Extent",
    "Other storage device",
    "Serial port",
    "Parallel port",
    "USB Controller",
    "Graphics controller",
    "IEEE 1394 Controller",
    "Partitionable Unit",
    "Base Partitionable Unit",
    "Power",
    "Cooling Capacity",
    "Ethernet Switch Port",
    "Logical Disk",
    "Storage Volume",
    "Ethernet Connection",
)
PROCESSOR, MEMORY, DISK_DRIVE = 3, 4, 17
CONTROLLERS = frozenset({5, 6, 7, 8, 9, 20, 23, 25})
NICS = frozenset({10, 11})
REMOVABLE = frozenset({14, 15, 16})
#: Legacy ``AllocationUnits`` spellings (VMware 0.9, VirtualBox, Citrix) → bytes.
_UNIT_NAMES = {
    "byte": 1,
    "bytes": 1,
    "kilobytes": 1 << 10,
    "kb": 1 << 10,
    "megabytes": 1 << 20,
    "mb": 1 << 20,
    "gigabytes": 1 << 30,
    "gb": 1 << 30,
}
_UNITS = re.compile(r"^\s*byte((?:\s*\*\s*[0-9]{1,6}(?:\s*\^\s*[0-9]{1,3})?)*)\s*$", re.IGNORECASE)
_UNIT_TERM = re.compile(r"\*\s*([0-9]{1,6})(?:\s*\^\s*([0-9]{1,3}))?")
_HOST_RESOURCE = re.compile(r"^(?:ovf:)?/{1,2}(disk|file)/(.+)$")
_UNSIGNED = re.compile(r"^\+?[0-9]{1,20}$")
_XSI_TYPE = f"{{{XSI}}}type"
#: How many characters of a EULA, annotation or description are shown.
EXCERPT = 200


def describe(session: Session, ctx: CheckContext) -> dict[str, Any]:
    """The facts of the session's OVF package (see the module docstring)."""
    from . import descriptor_of, descriptors
    from .opened import Opened

    note = session.noted(Opened)
    # What listing an archive found (not taken: a validation would report it).
    archive = [p.message_id for p in note.problems] if note is not None else []
    names = descriptors(session)
    if not names:
        return {"problems": [*archive, "validator.ovf.session.no_descriptor"]}
    desc = descriptor_of(session, ctx)
    if desc is None:
        return {
            "descriptor": names[0],
            "problems": [*archive, "validator.ovf.session.no_descriptor"],
        }
    facts: dict[str, Any] = {"descriptor": desc.name, "ovf_version": desc.version}
    root = _root(session, ctx, desc)
    if root is not None:
        facts.update(_Envelope(root, desc).facts())
    facts["files"] = [_file(ref) for ref in desc.files]
    facts["signature"] = _signature(desc, session, ctx)
    extra = ["validator.ovf.session.multiple_descriptors" for _ in names[1:]]
    facts["problems"] = [*archive, *extra, *(message for message, _ in desc.problems)]
    return facts


def _root(session: Session, ctx: CheckContext, desc: Descriptor) -> etree._Element | None:
    """The envelope element of a descriptor that parsed (``None``: it did not)."""
    if not desc.parsed:
        return None
    file = session.get(desc.name)
    if file is None or file.source is None:
        return None
    try:
        data = ctx.read_small(file, ctx.limits.descriptor_bytes)
    except OSError:
        return None
    if data is None:
        return None
    try:
        tree = parse(
            data,
            max_elements=ctx.limits.descriptor_elements,
            max_depth=ctx.limits.descriptor_depth,
        )
    except XmlRejected:
        return None
    return tree.getroot()


def _file(ref: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": ref.id, "href": ref.href, "size": ref.size}
    if ref.compression:
        out["compression"] = ref.compression
    if ref.chunk_size:
        out["chunk_size"] = ref.chunk_size
    return out


def _excerpt(value: str) -> str:
    flat = " ".join(value.split())
    return flat if len(flat) <= EXCERPT else flat[: EXCERPT - 1] + "…"


def allocation_units(raw: str | None) -> int | None:
    """Bytes per unit of an ``AllocationUnits`` value (``None``: not understood)."""
    if raw is None or not raw.strip():
        return 1
    named = _UNIT_NAMES.get(raw.strip().lower())
    if named is not None:
        return named
    m = _UNITS.match(raw)
    if not m:
        return None
    value = 1
    for base, exp in _UNIT_TERM.findall(m.group(1)):
        value *= int(base) ** int(exp or 1)
        if value.bit_length() > 128:
            return None
    return value


class _Envelope:
    """Reads the sections ``validator info`` shows from a parsed envelope."""

    def __init__(self, root: etree._Element, desc: Descriptor) -> None:
        self.root = root
        self.ns = namespace(root.tag)
        self.desc = desc
        self.files = files = desc.file_by_id()
        self.disks: dict[str, dict[str, Any]] = {}
        for disk in desc.disks:
            ref = files.get(disk.file_ref or "")
            self.disks[disk.id] = {
                "disk_id": disk.id,
                "capacity_bytes": disk.capacity_bytes,
                "format": disk.format,
                "file": ref.href if ref is not None else None,
                "populated_size": disk.populated_size,
            }

    def attr(self, el: etree._Element, name: str) -> str | None:
        value = el.get(f"{{{self.ns}}}{name}")
        if value is None:
            value = el.get(name)
        return value.strip() if value is not None else None

    def kind(self, el: etree._Element) -> str:
        """The local name, or for ``Section``/``Content`` the ``xsi:type`` it names."""
        name = local(el.tag)
        if name in ("Section", "Content") and namespace(el.tag) == self.ns:
            base = (el.get(_XSI_TYPE) or "").strip().rpartition(":")[2]
            if base:
                return base.removesuffix("_Type")
        return name

    def ovf(self, el: etree._Element) -> bool:
        return namespace(el.tag) in OVF_NAMESPACES

    def child_text(self, el: etree._Element, name: str) -> str | None:
        found = next(elements(el, name), None)
        return _excerpt(text(found)) if found is not None else None

    def facts(self) -> dict[str, Any]:
        root = self.root
        out: dict[str, Any] = {"envelope_version": self.attr(root, "version")}
        networks: list[dict[str, Any]] = []
        options: list[dict[str, Any]] = []
        content: list[dict[str, Any]] = []
        for el in elements(root):
            if not self.ovf(el):
                continue
            kind = self.kind(el)
            if kind == "NetworkSection":
                networks.extend(self.networks(el))
            elif kind == "DeploymentOptionSection":
                options.extend(self.options(el))
            elif kind in ("VirtualSystem", "VirtualSystemCollection"):
                content.append(self.content(el, kind))
        out["networks"] = networks
        out["deployment_options"] = options
        out["disks"] = list(self.disks.values())
        if len(content) == 1:
            out["content"] = content[0]
        elif content:
            out["content"] = content
        return out

    def networks(self, section: etree._Element) -> list[dict[str, Any]]:
        return [
            {"name": self.attr(net, "name"), "description": self.child_text(net, "Description")}
            for net in elements(section, "Network")
        ]

    def options(self, section: etree._Element) -> list[dict[str, Any]]:
        out = []
        for cfg in elements(section, "Configuration"):
            default = (self.attr(cfg, "default") or "").lower() in ("true", "1")
            out.append(
                {
                    "id": self.attr(cfg, "id"),
                    "label": self.child_text(cfg, "Label"),
                    "description": self.child_text(cfg, "Description"),
                    "default": default,
                }
            )
        return out

    def content(self, el: etree._Element, kind: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": kind,
            "id": self.attr(el, "id"),
            "name": self.child_text(el, "Name"),
            "info": self.child_text(el, "Info"),
        }
        products: list[dict[str, Any]] = []
        eulas: list[dict[str, Any]] = []
        members: list[dict[str, Any]] = []
        for child in elements(el):
            if not self.ovf(child):
                continue
            child_kind = self.kind(child)
            if child_kind in ("VirtualSystem", "VirtualSystemCollection"):
                members.append(self.content(child, child_kind))
            elif child_kind == "OperatingSystemSection" and "operating_system" not in out:
                out["operating_system"] = self.operating_system(child)
            elif child_kind == "VirtualHardwareSection" and "hardware" not in out:
                out["hardware"] = self.hardware(child)
            elif child_kind == "ProductSection":
                products.append(self.product(child))
            elif child_kind == "EulaSection":
                license_text = text(next(elements(child, "License"), child))
                lines = [line.strip() for line in license_text.splitlines() if line.strip()]
                eulas.append(
                    {"first_line": _excerpt(lines[0]) if lines else "", "length": len(license_text)}
                )
            elif child_kind == "AnnotationSection":
                out["annotation"] = self.child_text(child, "Annotation")
        if products:
            out["products"] = products
        if eulas:
            out["eulas"] = eulas
        if kind == "VirtualSystemCollection":
            out["systems"] = members
        return out

    def operating_system(self, section: etree._Element) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.attr(section, "id"),
            "description": self.child_text(section, "Description"),
        }
        for key, value in section.attrib.items():
            if local(key) == "osType" and namespace(key) not in OVF_NAMESPACES:
                out["vmw_os_type"] = value.strip()
        return out

    def hardware(self, section: etree._Element) -> dict[str, Any]:
        out: dict[str, Any] = {"system_type": None, "cpus": None, "memory_mib": None}
        controllers: list[dict[str, Any]] = []
        nics: list[dict[str, Any]] = []
        disks: list[dict[str, Any]] = []
        removable: list[dict[str, Any]] = []
        other: list[dict[str, Any]] = []
        by_configuration: dict[str, dict[str, Any]] = {}
        for child in elements(section):
            if not self.ovf(child):
                continue
            name = local(child.tag)
            if name == "System":
                found = next(elements(child, "VirtualSystemType"), None)
                if found is not None and out["system_type"] is None:
                    out["system_type"] = text(found)
                continue
            if name not in ("Item", "EthernetPortItem", "StorageItem"):
                continue
            fields: dict[str, str] = {}
            hosts: list[str] = []
            for f in elements(child):
                if local(f.tag) == "HostResource":
                    hosts.append(text(f))
                else:
                    fields.setdefault(local(f.tag), text(f))
            raw_type = fields.get("ResourceType", "")
            rtype = int(raw_type) if _UNSIGNED.match(raw_type) else -1
            if name == "EthernetPortItem" and rtype < 0:
                rtype = 10
            bound = self.attr(child, "bound")
            if bound and bound != "normal":
                continue  # min/max of a range: the normal item says the value
            configuration = self.attr(child, "configuration")
            item: dict[str, Any] = {
                "instance_id": fields.get("InstanceID") or fields.get("InstanceId"),
                "type": _resource_type(rtype, raw_type),
            }
            for key, field in (
                ("subtype", "ResourceSubType"),
                ("name", "ElementName"),
                ("parent", "Parent"),
                ("address", "Address"),
                ("address_on_parent", "AddressOnParent"),
            ):
                if fields.get(field):
                    item[key] = fields[field]
            if configuration:
                item["configuration"] = configuration
            quantity = fields.get("VirtualQuantity", "")
            if rtype in (PROCESSOR, MEMORY):
                value: Any = int(quantity) if _UNSIGNED.match(quantity) else quantity or None
                if rtype == MEMORY and isinstance(value, int):
                    units = allocation_units(fields.get("AllocationUnits"))
                    value = value * units // (1 << 20) if units else None
                key = "cpus" if rtype == PROCESSOR else "memory_mib"
                if configuration:
                    for cfg in configuration.split():
                        by_configuration.setdefault(cfg, {})[key] = value
                elif out[key] is None:
                    out[key] = value
            elif rtype in CONTROLLERS:
                controllers.append(item)
            elif rtype in NICS:
                item["network"] = fields.get("Connection") or None
                if fields.get("AutomaticAllocation"):
                    connected = fields["AutomaticAllocation"].lower() in ("true", "1")
                    item["connected_at_power_on"] = connected
                nics.append(item)
            elif rtype == DISK_DRIVE:
                for host in hosts:
                    item.update(self.host_resource(host))
                disks.append(item)
            elif rtype in REMOVABLE:
                if hosts:
                    item["host_resource"] = hosts[0]
                removable.append(item)
            else:
                other.append(item)
        out["controllers"] = controllers
        out["nics"] = nics
        out["disks"] = disks
        out["cd_floppy"] = removable
        if other:
            out["other_devices"] = other
        if by_configuration:
            out["by_configuration"] = by_configuration
        return out

    def host_resource(self, value: str) -> dict[str, Any]:
        m = _HOST_RESOURCE.match(value)
        if not m:
            return {"host_resource": value}
        what, ident = m.groups()
        if what == "disk" and ident in self.disks:
            disk = self.disks[ident]
            return {k: v for k, v in disk.items() if k != "populated_size"}
        if what == "file":
            ref = self.files.get(ident)
            return {"file": ref.href if ref is not None else ident}
        return {"host_resource": value}

    def product(self, section: etree._Element) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("class", "instance"):
            if self.attr(section, key):
                out[key] = self.attr(section, key)
        for key, name in (
            ("product", "Product"),
            ("vendor", "Vendor"),
            ("version", "Version"),
            ("full_version", "FullVersion"),
            ("product_url", "ProductUrl"),
            ("vendor_url", "VendorUrl"),
        ):
            value = self.child_text(section, name)
            if value:
                out[key] = value
        properties: list[dict[str, Any]] = []
        for prop in elements(section, "Property"):
            configurable = (self.attr(prop, "userConfigurable") or "").lower() in ("true", "1")
            entry: dict[str, Any] = {
                "key": self.attr(prop, "key"),
                "type": self.attr(prop, "type"),
                "default": self.attr(prop, "value"),
                "user_configurable": configurable,
                "label": self.child_text(prop, "Label"),
            }
            if (self.attr(prop, "password") or "").lower() in ("true", "1"):
                entry["password"] = True
            qualifiers = self.attr(prop, "qualifiers")
            if qualifiers:
                entry["qualifiers"] = qualifiers
            properties.append(entry)
        out["properties"] = properties
        return out


def _resource_type(number: int, raw: str) -> str:
    if 1 <= number <= len(RESOURCE_TYPES):
        return RESOURCE_TYPES[number - 1]
    return f"ResourceType {raw or '?'}"


def _signature(desc: Descriptor, session: Session, ctx: CheckContext) -> dict[str, Any] | None:
    """The manifest and certificate: the signer, the issuer, the validity, whether it verifies."""
    from . import certificate, manifest

    mf_name = manifest.manifest_name(desc)
    cert_name = manifest.certificate_name(desc)
    if session.get(mf_name) is None:
        return None
    out: dict[str, Any] = {"manifest": mf_name}
    mf = manifest.load(session, ctx, desc)
    if mf is not None:
        out["manifest_algorithms"] = sorted({e.algorithm for e in mf.entries.values()})
        out["manifest_entries"] = len(mf.entries)
    cert_file = session.get(cert_name)
    if cert_file is None or cert_file.source is None:
        out["certificate"] = None
        return out
    scratch = Reporter()
    certificate.check(desc, session, ctx, scratch)
    out["certificate"] = cert_name
    try:
        data = ctx.read_small(cert_file, ctx.limits.manifest_bytes)
    except OSError:
        data = None
    chain = _chain(data or b"", ctx.limits.certificate_chain)
    if chain:
        leaf = chain[0][1]
        out["signer"] = certificate.subject_of(leaf)
        out["subject"] = leaf.subject.rfc4514_string()
        out["issuer"] = leaf.issuer.rfc4514_string() or "(empty issuer)"
        out["not_before"] = leaf.not_valid_before_utc.isoformat()
        out["not_after"] = leaf.not_valid_after_utc.isoformat()
        out["self_signed"] = certificate.is_self_signed(leaf)
        out["chain_length"] = len(chain)
    errors = [p.message_id for p in scratch.problems if not p.warning]
    out["signature_verifies"] = bool(chain) and not errors
    out["certificate_problems"] = [p.message_id for p in scratch.problems]
    if chain:
        # As the file holds them (the signer's first): what a server's preview shows as
        # certificate_info.x509 and cert_chain.
        out["certificates"] = [block.decode("ascii", "replace") for block, _ in chain]
    return out


def _chain(data: bytes, limit: int) -> list[tuple[bytes, Any]]:
    """The certificates of a ``.cert`` file, each as its PEM block and parsed (empty: none,
    too many, or one unreadable)."""
    from cryptography import x509

    from .certificate import pem_certificates

    blocks = pem_certificates(data)
    if not blocks or len(blocks) > limit:
        return []
    chain = []
    for block in blocks:
        try:
            cert = x509.load_pem_x509_certificate(block)
            cert.subject.rfc4514_string()
            cert.issuer.rfc4514_string()
        except Exception:  # a hostile encoding: certificate.check reports it
            return []
        chain.append((block, cert))
    return chain
