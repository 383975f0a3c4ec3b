"""The catalogue of the OVF descriptor rules: each with its message id and spec clause.

``docs/ovf-descriptor-rules.md`` holds this table; ``tests/test_ovf_rules.py``
checks that the two agree and that every id :mod:`.descriptor` and
:mod:`.sections` report is listed, so neither can drift from the code.
Clauses are of DSP0243 1.1.0 (OVF 1.x; 2.x keeps the rule in its own numbering)
and of its schema DSP8023; "VMware 0.9" is VMware's pre-standard namespace.
"""

from __future__ import annotations

from typing import NamedTuple


class Rule(NamedTuple):
    id: str
    clause: str
    rule: str


RULES: tuple[Rule, ...] = (
    Rule("validator.ovf.xml.malformed", "XML 1.0", "The descriptor is well-formed XML"),
    Rule("validator.ovf.xml.doctype", "REFERENCE §7", "No DOCTYPE or entity declaration"),
    Rule("validator.ovf.limit.descriptor_size", "limits", "At most `descriptor_bytes` bytes"),
    Rule(
        "validator.ovf.limit.descriptor_elements",
        "limits",
        "At most `descriptor_elements` elements",
    ),
    Rule(
        "validator.ovf.limit.descriptor_depth",
        "limits",
        "At most `descriptor_depth` levels deep",
    ),
    Rule("validator.ovf.limit.references", "limits", "At most `references` File elements"),
    Rule("validator.ovf.envelope.not_envelope", "DSP0243 §7", "The root element is Envelope"),
    Rule(
        "validator.ovf.envelope.bad_namespace",
        "DSP0243 §7, VMware 0.9",
        "The Envelope is in the OVF 0.9, 1.x or 2.x namespace",
    ),
    Rule(
        "validator.ovf.envelope.bad_version",
        "DSP8023 Envelope",
        "`ovf:version`, when given, is a version number",
    ),
    Rule(
        "validator.ovf.references.missing",
        "DSP0243 §7.1",
        "The Envelope has a References element",
    ),
    Rule("validator.ovf.references.duplicate", "DSP0243 §7.1", "Exactly one References element"),
    Rule(
        "validator.ovf.envelope.references_not_first",
        "DSP0243 §7",
        "References is the first child of the Envelope",
    ),
    Rule(
        "validator.ovf.content.missing",
        "DSP0243 §7.2",
        "The Envelope has a VirtualSystem or VirtualSystemCollection (also as `Content xsi:type`)",
    ),
    Rule("validator.ovf.content.multiple", "DSP0243 §7.2", "Exactly one top-level content element"),
    Rule(
        "validator.ovf.envelope.section_after_content",
        "DSP0243 §7",
        "Sections come before the content element",
    ),
    Rule(
        "validator.ovf.envelope.after_content",
        "DSP8023 Envelope",
        "Only Strings follow the content element",
    ),
    Rule(
        "validator.ovf.element.unknown",
        "DSP8023",
        "An element in an OVF namespace (or none) is one the schema defines at that place",
    ),
    Rule(
        "validator.ovf.extension.required_unknown",
        "DSP0243 §7.3",
        "An extension of a namespace not understood (not OVF, CIM or VMware's) is marked "
        '`ovf:required="false"`',
    ),
    Rule("validator.ovf.file.no_id", "DSP0243 §7.1", "A File has `ovf:id`"),
    Rule("validator.ovf.file.duplicate_id", "DSP0243 §7.1", "File ids are unique"),
    Rule("validator.ovf.file.no_href", "DSP0243 §7.1", "A File has `ovf:href`"),
    Rule(
        "validator.ovf.file.duplicate_href",
        "DSP0243 §7.1",
        "No two File elements reference the same file",
    ),
    Rule("validator.ovf.file.href_url", "REFERENCE §4", "An href is not a URL"),
    Rule("validator.ovf.file.href_absolute", "REFERENCE §4", "An href is not an absolute path"),
    Rule("validator.ovf.file.href_traversal", "REFERENCE §4", "An href has no `..` segment"),
    Rule("validator.ovf.file.href_not_plain", "REFERENCE §4", "An href is a plain file name"),
    Rule("validator.ovf.file.bad_size", "DSP0243 §7.1", "`ovf:size` is a non-negative integer"),
    Rule(
        "validator.ovf.file.bad_compression",
        "DSP0243 §7.1",
        "`ovf:compression` is gzip or identity",
    ),
    Rule(
        "validator.ovf.file.bad_chunk_size",
        "DSP0243 §7.1",
        "`ovf:chunkSize` is a positive integer",
    ),
    Rule("validator.ovf.section.no_info", "DSP0243 §7.2", "Every OVF section has an Info element"),
    Rule(
        "validator.ovf.section.unknown",
        "DSP0243 §9, DSP8023",
        "A section of the OVF namespace is one the version defines",
    ),
    Rule(
        "validator.ovf.section.misplaced",
        "DSP0243 §9 Table 6",
        "A section appears only where the spec allows it (DiskSection, NetworkSection, "
        "DeploymentOptionSection: Envelope; VirtualHardwareSection, "
        "OperatingSystemSection, InstallSection: VirtualSystem; StartupSection, "
        "ResourceAllocationSection: VirtualSystemCollection; ProductSection, EulaSection,"
        " AnnotationSection: content)",
    ),
    Rule(
        "validator.ovf.section.duplicate",
        "DSP0243 §9 Table 6",
        "A container holds at most one of a zero-or-one section",
    ),
    Rule("validator.ovf.content.no_id", "DSP0243 §7.2", "A content element has `ovf:id`"),
    Rule(
        "validator.ovf.content.duplicate_id",
        "DSP0243 §7.2",
        "Content ids are unique among the direct children of a collection",
    ),
    Rule("validator.ovf.content.no_info", "DSP0243 §7.2", "A content element has an Info element"),
    Rule(
        "validator.ovf.content.nested_in_system",
        "DSP0243 §7.2",
        "Only a VirtualSystemCollection contains systems",
    ),
    Rule("validator.ovf.disk.no_id", "DSP0243 §9.1", "A Disk has `ovf:diskId`"),
    Rule("validator.ovf.disk.duplicate_id", "DSP0243 §9.1", "Disk ids are unique"),
    Rule(
        "validator.ovf.disk.unknown_file_ref",
        "DSP0243 §9.1",
        "`ovf:fileRef` names a File (empty: a blank disk)",
    ),
    Rule("validator.ovf.disk.duplicate_file_ref", "DSP0243 §9.1", "One Disk per File"),
    Rule(
        "validator.ovf.disk.unknown_parent",
        "DSP0243 §9.1",
        "`ovf:parentRef` names a Disk declared before it",
    ),
    Rule("validator.ovf.disk.no_capacity", "DSP0243 §9.1", "A Disk has `ovf:capacity`"),
    Rule(
        "validator.ovf.disk.bad_capacity",
        "DSP0243 §9.1",
        "`ovf:capacity` is an integer or a `${property}`",
    ),
    Rule("validator.ovf.disk.zero_capacity", "DSP0243 §9.1", "The capacity is not 0"),
    Rule(
        "validator.ovf.disk.unknown_capacity_property",
        "DSP0243 §9.1",
        "A `${property}` capacity names a declared Property",
    ),
    Rule(
        "validator.ovf.disk.bad_allocation_units",
        "DSP0243 §9.1, DSP0004 Annex C",
        "`ovf:capacityAllocationUnits` reads as `byte * 2^N`",
    ),
    Rule(
        "validator.ovf.disk.bad_populated_size",
        "DSP0243 §9.1",
        "`ovf:populatedSize` is an integer",
    ),
    Rule(
        "validator.ovf.disk.populated_exceeds_capacity",
        "DSP0243 §9.1",
        "The populated size is at most the capacity",
    ),
    Rule("validator.ovf.network.no_name", "DSP0243 §9.2", "A Network has `ovf:name`"),
    Rule("validator.ovf.network.duplicate_name", "DSP0243 §9.2", "Network names are unique"),
    Rule("validator.ovf.deployment.no_id", "DSP0243 §9.8", "A Configuration has `ovf:id`"),
    Rule("validator.ovf.deployment.duplicate_id", "DSP0243 §9.8", "Configuration ids are unique"),
    Rule(
        "validator.ovf.deployment.no_label",
        "DSP0243 §9.8, DSP8023",
        "A Configuration has a Label",
    ),
    Rule(
        "validator.ovf.deployment.multiple_defaults",
        "DSP0243 §9.8",
        "At most one Configuration is the default",
    ),
    Rule(
        "validator.ovf.deployment.unknown_configuration",
        "DSP0243 §9.8",
        "`ovf:configuration` names declared configurations",
    ),
    Rule("validator.ovf.eula.no_license", "DSP0243 §9.6", "An EulaSection has License text"),
    Rule(
        "validator.ovf.annotation.missing",
        "DSP0243 §9.4",
        "An AnnotationSection has an Annotation",
    ),
    Rule("validator.ovf.os.no_id", "DSP0243 §9.9", "An OperatingSystemSection has `ovf:id`"),
    Rule(
        "validator.ovf.os.bad_id",
        "DSP0243 §9.9",
        "Its `ovf:id` is a CIM operating-system number (0..65535)",
    ),
    Rule(
        "validator.ovf.startup.unknown_id",
        "DSP0243 §9.7",
        "A startup Item names a direct child of its collection",
    ),
    Rule(
        "validator.ovf.startup.bad_attribute",
        "DSP0243 §9.7",
        "`ovf:order` is an integer; delays are integers; `waitingForGuest` is a boolean",
    ),
    Rule(
        "validator.ovf.hardware.missing",
        "DSP0243 §8.1",
        "Every VirtualSystem has a VirtualHardwareSection",
    ),
    Rule(
        "validator.ovf.hardware.ambiguous",
        "DSP0243 §8.1",
        "Several VirtualHardwareSections differ in `ovf:transport` or `vssd:VirtualSystemType`",
    ),
    Rule("validator.ovf.hardware.system_duplicate", "DSP8023", "At most one System"),
    Rule(
        "validator.ovf.hardware.system_no_instance_id",
        "DSP0243 §8.2, CIM VSSD",
        "System has `vssd:InstanceID`",
    ),
    Rule("validator.ovf.hardware.item_empty", "DSP0243 §8.3", "An Item is not empty"),
    Rule("validator.ovf.hardware.no_instance_id", "DSP0243 §8.3", "An Item has InstanceID"),
    Rule(
        "validator.ovf.hardware.duplicate_instance_id",
        "DSP0243 §8.3, §8.4, §9.8",
        "InstanceIDs are unique in the section (except across disjoint configurations and bounds)",
    ),
    Rule("validator.ovf.hardware.no_resource_type", "DSP0243 §8.3", "An Item has ResourceType"),
    Rule(
        "validator.ovf.hardware.bad_resource_type",
        "CIM RASD ResourceType",
        "ResourceType is 1..35 or a vendor value 32768..65535",
    ),
    Rule(
        "validator.ovf.hardware.unknown_parent",
        "DSP0243 §8.3",
        "Parent names an InstanceID of the section",
    ),
    Rule(
        "validator.ovf.hardware.bad_number",
        "CIM RASD",
        "VirtualQuantity, Reservation, Limit, Weight are non-negative integers; a numeric"
        " AddressOnParent is not negative",
    ),
    Rule(
        "validator.ovf.hardware.unknown_disk",
        "DSP0243 §8.3",
        "HostResource `ovf:/disk/ID` names a declared Disk",
    ),
    Rule(
        "validator.ovf.hardware.unknown_file",
        "DSP0243 §8.3",
        "HostResource `ovf:/file/ID` names a declared File",
    ),
    Rule(
        "validator.ovf.hardware.unknown_network",
        "DSP0243 §8.3, §9.2",
        "Connection names a declared Network",
    ),
    Rule("validator.ovf.hardware.bad_bound", "DSP0243 §8.4", "`ovf:bound` is min, normal or max"),
    Rule(
        "validator.ovf.hardware.bound_order",
        "DSP0243 §8.4",
        "Bounded values satisfy min ≤ normal ≤ max",
    ),
    Rule(
        "validator.ovf.product.duplicate_class",
        "DSP0243 §9.5",
        "`ovf:class`/`ovf:instance` are unique per content",
    ),
    Rule("validator.ovf.product.no_key", "DSP0243 §9.5", "A Property has `ovf:key`"),
    Rule(
        "validator.ovf.product.duplicate_key",
        "DSP0243 §9.5",
        "Property keys are unique in a ProductSection",
    ),
    Rule("validator.ovf.product.no_type", "DSP0243 §9.5", "A Property has `ovf:type`"),
    Rule(
        "validator.ovf.product.bad_type",
        "DSP0243 §9.5 Table 7",
        "`ovf:type` is a property type (or vSphere's int, real, password, ip, ip:NETWORK, "
        "expression)",
    ),
    Rule(
        "validator.ovf.product.bad_value",
        "DSP0243 §9.5",
        "A default or Value is valid for the type",
    ),
    Rule(
        "validator.ovf.product.value_qualifier",
        "DSP0243 §9.5 Table 8",
        "A default or Value satisfies MinLen, MaxLen, MinValue, MaxValue, ValueMap",
    ),
    Rule(
        "validator.ovf.product.bad_qualifiers",
        "DSP0243 §9.5 Table 8",
        "`ovf:qualifiers` is readable",
    ),
    Rule(
        "validator.ovf.product.bad_boolean",
        "DSP0243 §9.5",
        "`ovf:userConfigurable` and `ovf:password` are booleans",
    ),
)


def markdown_table() -> str:
    """The table of ``docs/ovf-descriptor-rules.md``."""
    rows = ["| rule | spec clause | id |", "|---|---|---|"]
    rows += [f"| {r.rule} | {r.clause} | `{r.id}` |" for r in RULES]
    return "\n".join(rows) + "\n"
