"""Small helpers over lxml trees shared by the descriptor modules."""

from __future__ import annotations

from collections.abc import Iterator

from lxml import etree

#: The envelope namespaces and the OVF version each stands for (REFERENCE §4).
OVF_NAMESPACES = {
    "http://www.vmware.com/schema/ovf/1/envelope": "0.9",
    "http://schemas.dmtf.org/ovf/envelope/1": "1.x",
    "http://schemas.dmtf.org/ovf/envelope/2": "2.x",
}
XSI = "http://www.w3.org/2001/XMLSchema-instance"
#: VMware's own extension vocabularies (``vmw:``, vServiceManager, VADK): understood.
VMWARE_PREFIX = "http://www.vmware.com/schema/"
#: The CIM namespaces (rasd, vssd, sasd, epasd, cim): governed by the CIM schemas.
CIM_PREFIX = "http://schemas.dmtf.org/wbem/wscim/"


def local(tag: object) -> str:
    """The local name of an element's tag (``""`` for a comment or processing instruction).

    lxml gives tags in Clark notation, ``{namespace}local``, and ``}`` cannot be
    part of an XML name: this is ``etree.QName(tag).localname`` without building
    a QName object for every element (which cost most of the time of a large
    descriptor).
    """
    return tag[tag.rfind("}") + 1 :] if isinstance(tag, str) else ""


def namespace(tag: object) -> str:
    """The namespace of an element's tag (``""``: none)."""
    if isinstance(tag, str) and tag.startswith("{"):
        return tag[1 : tag.find("}")]
    return ""


def elements(el: etree._Element, name: str | None = None) -> Iterator[etree._Element]:
    """The child elements of ``el`` (comments and processing instructions skipped), in
    order; with ``name``, only those of that local name, in any namespace or none.

    lxml filters the children itself (``{*}name`` is any namespace or none).
    """
    return el.iterchildren(etree.Element if name is None else f"{{*}}{name}")


def understood(ns: str) -> bool:
    """Whether elements of namespace ``ns`` are understood (never an unknown extension)."""
    return ns in OVF_NAMESPACES or ns.startswith((VMWARE_PREFIX, CIM_PREFIX))


def text(el: etree._Element) -> str:
    """The element's own text, stripped."""
    return (el.text or "").strip()
