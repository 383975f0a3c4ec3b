"""The sections of an OVF descriptor: where each may appear and what it must say.

Rules from DSP0243 (OVF 1.x, 2.x) and its schema DSP8023, written here as
tables and code (no schema file is loaded), checked as strictly as VMware's
ovftool but never stricter than the specification or real exports
(REFERENCE §4): VMware's ``vmw:`` vocabulary and the CIM namespaces are
understood, a foreign extension marked ``ovf:required="false"`` is ignored.
:mod:`.descriptor` walks the envelope and calls :func:`read` for each section.
"""

from __future__ import annotations

import math
import re
from itertools import pairwise
from typing import TYPE_CHECKING

from lxml import etree

from .xmltree import CIM_PREFIX, elements, local, namespace, text

if TYPE_CHECKING:
    from .descriptor import _Reader

ENVELOPE = "Envelope"
SYSTEM = "VirtualSystem"
COLLECTION = "VirtualSystemCollection"
HARDWARE = "VirtualHardwareSection"
CONTENT = frozenset({SYSTEM, COLLECTION})

#: Where each section of the specification may appear (DSP0243 1.1 Table 6; 2.x §9).
PLACEMENT: dict[str, frozenset[str]] = {
    "DiskSection": frozenset({ENVELOPE}),
    "NetworkSection": frozenset({ENVELOPE}),
    "DeploymentOptionSection": frozenset({ENVELOPE}),
    "VirtualHardwareSection": frozenset({SYSTEM}),
    "OperatingSystemSection": frozenset({SYSTEM}),
    "InstallSection": frozenset({SYSTEM}),
    "ResourceAllocationSection": frozenset({COLLECTION}),
    "StartupSection": frozenset({COLLECTION}),
    "AnnotationSection": CONTENT,
    "ProductSection": CONTENT,
    "EulaSection": CONTENT,
    # OVF 2.x only
    "SharedDiskSection": frozenset({ENVELOPE}),
    "PlacementGroupSection": frozenset({ENVELOPE}),
    "EncryptionSection": frozenset({ENVELOPE}),
    "EnvironmentFilesSection": frozenset({SYSTEM}),
    "BootDeviceSection": frozenset({SYSTEM, HARDWARE}),
    "ScaleOutSection": frozenset({COLLECTION}),
    "PlacementSection": CONTENT,
}
SECTIONS_1X = frozenset(
    {
        "DiskSection",
        "NetworkSection",
        "DeploymentOptionSection",
        "VirtualHardwareSection",
        "OperatingSystemSection",
        "InstallSection",
        "ResourceAllocationSection",
        "StartupSection",
        "AnnotationSection",
        "ProductSection",
        "EulaSection",
    }
)
#: Sections of which a container holds at most one ("zero or one" in the placement table).
AT_MOST_ONE = frozenset(
    {
        "DiskSection",
        "NetworkSection",
        "DeploymentOptionSection",
        "OperatingSystemSection",
        "InstallSection",
        "ResourceAllocationSection",
        "StartupSection",
        "AnnotationSection",
        "SharedDiskSection",
        "EnvironmentFilesSection",
        "ScaleOutSection",
    }
)

_PRODUCT = frozenset(
    {
        "Info",
        "Product",
        "Vendor",
        "Version",
        "FullVersion",
        "ProductUrl",
        "VendorUrl",
        "AppUrl",
        "Icon",
        "Category",
        "Property",
    }
)
#: The OVF elements each section may hold (DSP8023); anything else of OVF's is unknown.
_CHILDREN_1X: dict[str, frozenset[str]] = {
    "DiskSection": frozenset({"Info", "Disk"}),
    "NetworkSection": frozenset({"Info", "Network"}),
    "DeploymentOptionSection": frozenset({"Info", "Configuration"}),
    "VirtualHardwareSection": frozenset({"Info", "System", "Item"}),
    "OperatingSystemSection": frozenset({"Info", "Description"}),
    "InstallSection": frozenset({"Info"}),
    "ResourceAllocationSection": frozenset({"Info", "Item"}),
    "StartupSection": frozenset({"Info", "Item"}),
    "AnnotationSection": frozenset({"Info", "Annotation"}),
    "ProductSection": _PRODUCT,
    "EulaSection": frozenset({"Info", "License"}),
}
_ITEMS_2X = frozenset({"StorageItem", "EthernetPortItem"})
ITEMS = frozenset({"Item"}) | _ITEMS_2X

#: ``ovf:type`` of a Property: DSP0243 1.1 Table 7, plus the vSphere vApp property types
#: VMware's own appliances and vCenter write (``int``, ``real``, ``password``, ``ip``,
#: ``ip:NETWORK``, ``expression``).
_INTS = {
    "int": (-(2**63), 2**64 - 1),
    "uint8": (0, 2**8 - 1),
    "sint8": (-(2**7), 2**7 - 1),
    "uint16": (0, 2**16 - 1),
    "sint16": (-(2**15), 2**15 - 1),
    "uint32": (0, 2**32 - 1),
    "sint32": (-(2**31), 2**31 - 1),
    "uint64": (0, 2**64 - 1),
    "sint64": (-(2**63), 2**63 - 1),
}
_REALS = frozenset({"real32", "real64", "real"})
_TEXTS = frozenset({"string", "expression", "ip", "password"})
_BOOLEANS = frozenset({"true", "false", "1", "0"})

_INT = re.compile(r"^[+-]?[0-9]{1,40}$")
_UNSIGNED = re.compile(r"^\+?[0-9]{1,20}$")
_PROPERTY_REF = re.compile(r"^\$\{[^{}]+\}$")
_HOST_RESOURCE = re.compile(r"^(?:ovf:)?/{1,2}(disk|file)/(.+)$")
#: One qualifier; they are separated by commas (DSP0243) or blanks (seen in VMware's own).
_QUALIFIER = re.compile(r"\s*([A-Za-z]+)\s*(?:\(([^()]*)\)|\{([^{}]*)\})\s*,?")
_MAP_ENTRY = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^,"]*?))\s*(?:,|$)')
#: Numeric RASD elements (xs:unsignedLong / unsignedInt in CIM_ResourceAllocationSettingData).
_NUMBERS = ("VirtualQuantity", "Reservation", "Limit", "Weight")
_BOUNDS = ("min", "normal", "max")


def known_sections(version: str) -> frozenset[str]:
    """The section names of the OVF namespace in ``version`` (``0.9``, ``1.x``, ``2.x``)."""
    return frozenset(PLACEMENT) if version == "2.x" else SECTIONS_1X


def children(version: str) -> dict[str, frozenset[str]]:
    """Section kind → the OVF elements it may hold; VMware's 0.9 is not checked this way."""
    if version == "0.9":
        return {}
    if version == "1.x":
        return _CHILDREN_1X
    out = dict(_CHILDREN_1X)
    out[HARDWARE] = out[HARDWARE] | _ITEMS_2X | {"BootDeviceSection"}
    out["ResourceAllocationSection"] = out["ResourceAllocationSection"] | _ITEMS_2X
    return out


class Scope:
    """A container of sections: the Envelope or one content element.

    (A plain class, as the plugin's other working state: a dataclass costs every run
    0.5 ms of start-up to define.)
    """

    __slots__ = ("children", "hardware", "label", "products", "seen", "where")

    def __init__(self, where: str, label: str) -> None:
        self.where = where
        self.label = label
        #: Kinds of the at-most-one sections seen in it.
        self.seen: set[str] = set()
        #: Ids of a collection's direct child content elements.
        self.children: set[str] = set()
        #: ``(ovf:class, ovf:instance)`` of its ProductSections.
        self.products: set[tuple[str, str]] = set()
        #: ``(ovf:transport, vssd:VirtualSystemType, line)`` of its VirtualHardwareSections.
        self.hardware: list[tuple[str, str, int]] = []


def read(r: _Reader, section: etree._Element, kind: str, scope: Scope) -> None:
    """The checks of one section of a known kind (DiskSection is the reader's own)."""
    if kind == "NetworkSection":
        _networks(r, section)
    elif kind == "DeploymentOptionSection":
        _deployment(r, section)
    elif kind == HARDWARE:
        _hardware(r, section, scope)
    elif kind == "ProductSection":
        _product(r, section, scope)
    elif kind == "EulaSection":
        if not any(_all_text(el) for el in _own(r, section, "License")):
            r.add("validator.ovf.eula.no_license", section.sourceline or 0)
    elif kind == "AnnotationSection":
        if not _own(r, section, "Annotation"):
            r.add("validator.ovf.annotation.missing", section.sourceline or 0)
    elif kind == "OperatingSystemSection":
        _operating_system(r, section)
    elif kind == "StartupSection" and scope.where == COLLECTION:
        _startup(r, section, scope)


def finish_system(r: _Reader, el: etree._Element, cid: str, scope: Scope) -> None:
    """A VirtualSystem has at least one VirtualHardwareSection; several must differ in
    ``ovf:transport`` or ``vssd:VirtualSystemType`` (a consumer picks one by them)."""
    if not scope.hardware:
        r.add("validator.ovf.hardware.missing", cid, el.sourceline or 0)
        return
    seen: set[tuple[str, str]] = set()
    for transport, system_type, line in scope.hardware:
        if (transport, system_type) in seen:
            r.add("validator.ovf.hardware.ambiguous", cid, line)
        seen.add((transport, system_type))


def _own(r: _Reader, el: etree._Element, name: str) -> list[etree._Element]:
    """Children of ``el`` named ``name`` in the envelope's namespace."""
    return [c for c in elements(el, name) if namespace(c.tag) == r.ns]


def _all_text(el: etree._Element) -> str:
    return "".join(el.itertext()).strip()


def _boolean(value: str) -> bool:
    return value.strip().lower() in _BOOLEANS


def _configurations(r: _Reader, el: etree._Element, what: str, line: int) -> set[str] | None:
    """The configurations ``el`` applies to (``ovf:configuration``; ``None``: all), each
    checked against the DeploymentOptionSection."""
    value = r.attr(el, "configuration")
    if value is None:
        return None
    names = set(value.split())
    known = r.configurations or set()
    for name in sorted(names - known)[:1]:
        r.add("validator.ovf.deployment.unknown_configuration", what, name, line)
    return names


# -- NetworkSection, DeploymentOptionSection, OperatingSystemSection, StartupSection ---------


def _networks(r: _Reader, section: etree._Element) -> None:
    for net in _own(r, section, "Network"):
        line = net.sourceline or 0
        name = r.attr(net, "name")
        if not name:
            r.add("validator.ovf.network.no_name", line)
        elif name in r.networks:
            r.add("validator.ovf.network.duplicate_name", name, line)
        else:
            r.networks.add(name)


def _deployment(r: _Reader, section: etree._Element) -> None:
    ids: set[str] = set()
    default: str | None = None
    for conf in _own(r, section, "Configuration"):
        line = conf.sourceline or 0
        cid = r.attr(conf, "id")
        if not cid:
            r.add("validator.ovf.deployment.no_id", line)
        elif cid in ids:
            r.add("validator.ovf.deployment.duplicate_id", cid, line)
        ids.add(cid or "")
        if next(elements(conf, "Label"), None) is None:
            r.add("validator.ovf.deployment.no_label", cid or "?", line)
        flag = r.attr(conf, "default")
        if flag is not None and flag.lower() in ("true", "1"):
            if default is not None:
                r.add("validator.ovf.deployment.multiple_defaults", cid or "?", default, line)
            else:
                default = cid or "?"
    ids.discard("")
    r.configurations = (r.configurations or set()) | ids


def _operating_system(r: _Reader, section: etree._Element) -> None:
    value = r.attr(section, "id")
    line = section.sourceline or 0
    if value is None:
        r.add("validator.ovf.os.no_id", line)
    elif not (_UNSIGNED.match(value) and int(value) <= 65535):
        r.add("validator.ovf.os.bad_id", value, line)


def _startup(r: _Reader, section: etree._Element, scope: Scope) -> None:
    for item in _own(r, section, "Item"):
        line = item.sourceline or 0
        iid = r.attr(item, "id")
        if not iid or iid not in scope.children:
            r.add("validator.ovf.startup.unknown_id", iid or "(none)", scope.label, line)
        order = r.attr(item, "order")
        if order is None or not _UNSIGNED.match(order):
            r.add("validator.ovf.startup.bad_attribute", iid or "?", "order", order or "", line)
        for name in ("startDelay", "stopDelay"):
            value = r.attr(item, name)
            if value is not None and not _INT.match(value):
                r.add("validator.ovf.startup.bad_attribute", iid or "?", name, value, line)
        waiting = r.attr(item, "waitingForGuest")
        if waiting is not None and not _boolean(waiting):
            r.add(
                "validator.ovf.startup.bad_attribute", iid or "?", "waitingForGuest", waiting, line
            )


# -- VirtualHardwareSection ---------------------------------------------------------------


class _Bounded:
    __slots__ = ("bound", "instance", "line", "numbers")

    def __init__(self, instance: str, bound: str, numbers: dict[str, int], line: int) -> None:
        self.instance = instance
        self.bound = bound
        self.numbers = numbers
        self.line = line


def _hardware(r: _Reader, section: etree._Element, scope: Scope) -> None:
    line = section.sourceline or 0
    transport = r.attr(section, "transport") or ""
    system_type = ""
    systems = 0
    #: (InstanceID, bound) → the configurations that used it (``None``: every one).
    used: dict[tuple[str, str], set[str] | None] = {}
    instances: set[str] = set()
    parents: list[tuple[str, str, int]] = []
    ranges: dict[str, list[_Bounded]] = {}
    normals: dict[str, _Bounded] = {}
    items = ITEMS if r.version == "2.x" else frozenset({"Item"})
    tags = r.tags
    for child in elements(section):
        known = tags.get(child.tag)
        if known is None:
            known = tags[child.tag] = (local(child.tag), namespace(child.tag))
        name, ns = known
        if ns != r.ns:
            continue  # an extension (vmw:Config, vmw:ExtraConfig…): read_section judged it
        if name == "System":
            systems += 1
            if systems > 1:
                r.add("validator.ovf.hardware.system_duplicate", child.sourceline or 0)
            fields = {local(f.tag): f for f in elements(child)}
            if "InstanceID" not in fields and not r.legacy:  # 0.9 may omit it
                r.add("validator.ovf.hardware.system_no_instance_id", child.sourceline or 0)
            found = fields.get("VirtualSystemType")
            if found is not None and systems == 1:
                system_type = text(found)
        elif name in items:
            item = _item(r, child, name, used, instances, parents)
            if item is not None:
                if item.bound == "":
                    normals.setdefault(item.instance, item)
                else:
                    ranges.setdefault(item.instance, []).append(item)
    scope.hardware.append((transport, system_type, line))
    for instance, parent, at in parents:
        if parent not in instances:
            r.add("validator.ovf.hardware.unknown_parent", instance, parent, at)
    for instance, bounded in ranges.items():
        _check_range(r, instance, bounded, normals.get(instance))


def _item(
    r: _Reader,
    item: etree._Element,
    kind: str,
    used: dict[tuple[str, str], set[str] | None],
    instances: set[str],
    parents: list[tuple[str, str, int]],
) -> _Bounded | None:
    line = item.sourceline or 0
    fields: dict[str, list[etree._Element]] = {}
    count = 0
    tags = r.tags
    for f in elements(item):
        count += 1
        tag = f.tag
        known = tags.get(tag)  # a few distinct tags, repeated in every item
        if known is None:
            known = tags[tag] = (local(tag), namespace(tag))
        name, ns = known
        if ns.startswith(CIM_PREFIX):
            fields.setdefault(name, []).append(f)
        else:
            r.other(f, kind, name, ns)  # vmw:Config is understood; an OVF element is not
    if count == 0:
        r.add("validator.ovf.hardware.item_empty", kind, line)
        return None
    found = fields.get("InstanceID") or fields.get("InstanceId")  # 0.9 wrote InstanceId
    instance = text(found[0]) if found else ""
    label = instance or "?"
    if not instance:
        r.add("validator.ovf.hardware.no_instance_id", kind, line)
    raw_bound = r.attr(item, "bound") or ""
    bound = raw_bound if raw_bound in _BOUNDS else ""
    if raw_bound and not bound:
        r.add("validator.ovf.hardware.bad_bound", label, raw_bound, line)
    configs = _configurations(r, item, f"{kind} {label}", line)
    if instance:
        key = (instance, raw_bound or "normal")
        if key in used:
            before = used[key]
            if before is None or configs is None or not before.isdisjoint(configs):
                r.add("validator.ovf.hardware.duplicate_instance_id", instance, line)
            if before is not None and configs is not None:
                before.update(configs)
            else:
                used[key] = None
        else:
            used[key] = None if configs is None else set(configs)
        instances.add(instance)
    types = fields.get("ResourceType")
    if not types:
        r.add("validator.ovf.hardware.no_resource_type", label, line)
    else:
        value = text(types[0])
        number = int(value) if _UNSIGNED.match(value) else -1
        if not (1 <= number <= 35 or 32768 <= number <= 65535):
            r.add(
                "validator.ovf.hardware.bad_resource_type",
                label,
                value,
                types[0].sourceline or line,
            )
    for el in fields.get("Parent", ()):
        parents.append((label, text(el), el.sourceline or line))
    numbers: dict[str, int] = {}
    for name in _NUMBERS:
        for el in fields.get(name, ()):
            value = text(el)
            if _UNSIGNED.match(value):
                numbers[name] = int(value)
            elif not _PROPERTY_REF.match(value):
                r.add(
                    "validator.ovf.hardware.bad_number", label, name, value, el.sourceline or line
                )
    for el in fields.get("AddressOnParent", ()):
        value = text(el)
        if value.startswith("-") and _INT.match(value):
            r.add(
                "validator.ovf.hardware.bad_number",
                label,
                "AddressOnParent",
                value,
                el.sourceline or line,
            )
    for el in fields.get("HostResource", ()):
        m = _HOST_RESOURCE.match(text(el))
        if m:
            what, ident = m.groups()
            at = el.sourceline or line
            if what == "disk" and ident not in r.disk_ids:
                r.add("validator.ovf.hardware.unknown_disk", ident, at)
            elif what == "file" and ident not in r.file_ids:
                r.add("validator.ovf.hardware.unknown_file", ident, at)
    for el in fields.get("Connection", ()):
        value = text(el)
        if value and value not in r.networks and not _PROPERTY_REF.match(value):
            r.add("validator.ovf.hardware.unknown_network", label, value, el.sourceline or line)
    if not instance or (raw_bound and not bound):
        return None
    return _Bounded(instance, bound, numbers, line)


def _check_range(
    r: _Reader, instance: str, bounded: list[_Bounded], normal: _Bounded | None
) -> None:
    """``ovf:bound`` items of one InstanceID: min ≤ normal ≤ max for each value they give."""
    by_bound = {b.bound: b for b in bounded}
    if normal is not None:
        by_bound.setdefault("normal", normal)
    names = {n for b in by_bound.values() for n in b.numbers}
    for name in sorted(names):
        values = [
            (by_bound[b].numbers[name], by_bound[b].line)
            for b in _BOUNDS
            if b in by_bound and name in by_bound[b].numbers
        ]
        for (low, _), (high, line) in pairwise(values):
            if low > high:
                r.add("validator.ovf.hardware.bound_order", instance, name, line)
                break


# -- ProductSection ------------------------------------------------------------------------


def _product(r: _Reader, section: etree._Element, scope: Scope) -> None:
    line = section.sourceline or 0
    pair = (r.attr(section, "class") or "", r.attr(section, "instance") or "")
    if pair in scope.products:
        r.add("validator.ovf.product.duplicate_class", pair[0], pair[1], line)
    scope.products.add(pair)
    keys: set[str] = set()
    for prop in _own(r, section, "Property"):
        at = prop.sourceline or 0
        key = r.attr(prop, "key")
        if not key:
            r.add("validator.ovf.product.no_key", at)
        elif key in keys:
            r.add("validator.ovf.product.duplicate_key", key, at)
        keys.add(key or "")
        label = key or "?"
        for name in ("userConfigurable", "password"):
            flag = r.attr(prop, name)
            if flag is not None and not _boolean(flag):
                r.add("validator.ovf.product.bad_boolean", label, name, flag, at)
        ptype = r.attr(prop, "type")
        if not ptype:
            r.add("validator.ovf.product.no_type", label, at)
            continue
        if not (ptype in _INTS or ptype in _REALS or ptype in _TEXTS or ptype == "boolean"
                or ptype.startswith("ip:")):  # fmt: skip
            r.add("validator.ovf.product.bad_type", label, ptype, at)
            continue
        raw = r.attr(prop, "qualifiers")
        qualifiers = _qualifiers(raw) if raw is not None else []
        if qualifiers is None:
            r.add("validator.ovf.product.bad_qualifiers", label, raw, at)
            qualifiers = []
        value = r.attr(prop, "value")
        if value is not None:
            _check_value(r, label, ptype, qualifiers, value, at)
        for el in _own(r, prop, "Value"):
            vline = el.sourceline or at
            _configurations(r, el, f"Property {label}", vline)
            given = r.attr(el, "value")
            if given is not None:
                _check_value(r, label, ptype, qualifiers, given, vline)


Qualifier = tuple[str, str, list[str] | None]


def _qualifiers(raw: str) -> list[Qualifier] | None:
    """``MinLen(1),MaxLen(64)``, ``ValueMap{"a","b"}``… parsed (``None``: malformed)."""
    out: list[Qualifier] = []
    pos = 0
    raw = raw.strip()
    while pos < len(raw):
        m = _QUALIFIER.match(raw, pos)
        if not m or m.end() == pos:
            return None
        name, arg, mapping = m.groups()
        if mapping is not None:
            entries = [a if a is not None else b for a, b in _MAP_ENTRY.findall(mapping)]
            out.append((name, "", [e for e in entries if e != ""] if mapping.strip() else []))
        else:
            arg = arg.strip()
            if name in ("MinLen", "MaxLen") and not _UNSIGNED.match(arg):
                return None
            if name in ("MinValue", "MaxValue") and _number(arg) is None:
                return None
            out.append((name, arg, None))
        pos = m.end()
    return out


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return None if math.isnan(number) else number


def _check_value(
    r: _Reader, key: str, ptype: str, qualifiers: list[Qualifier], value: str, line: int
) -> None:
    """A default or Value of a property against its type and qualifiers ("" is no value)."""
    if value == "" or _PROPERTY_REF.match(value):
        return
    number: float | None = None
    if ptype in _INTS:
        low, high = _INTS[ptype]
        if not _INT.match(value) or not low <= int(value) <= high:
            r.add("validator.ovf.product.bad_value", key, value, ptype, line)
            return
        number = int(value)
    elif ptype in _REALS:
        number = _number(value)
        if number is None:
            r.add("validator.ovf.product.bad_value", key, value, ptype, line)
            return
    elif ptype == "boolean":
        if not _boolean(value):
            r.add("validator.ovf.product.bad_value", key, value, ptype, line)
        return
    for name, arg, mapping in qualifiers:
        ok = True
        if name == "MinLen":
            ok = len(value) >= int(arg)
        elif name == "MaxLen":
            ok = len(value) <= int(arg)
        elif name in ("MinValue", "MaxValue") and number is not None:
            limit = _number(arg) or 0.0
            ok = number >= limit if name == "MinValue" else number <= limit
        elif name == "ValueMap" and mapping and not any(".." in e for e in mapping):
            ok = value in mapping or (
                number is not None and any(_number(e) == number for e in mapping)
            )
        if not ok:
            shown = f"{name}{{{','.join(mapping)}}}" if mapping is not None else f"{name}({arg})"
            r.add("validator.ovf.product.value_qualifier", key, value, shown, line)
            return
