"""Descriptors shaped after real exports (tests/descriptors/, written for these tests).

Valid ones must give no problem at all; invalid ones (what ovftool refuses)
the specific message id.  The invalid set is each valid export with one
mistake real producers and hand edits make.  The ratios the task sets
(≥ 95 % of valid accepted, ≥ 85 % of invalid rejected) are asserted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from validator_plugins.ovf.descriptor import read_descriptor

from validator.limits import Limits

HERE = Path(__file__).parent / "descriptors"
VALID = [
    "vcenter-vm-ovf10.ovf",
    "ovftool-vapp.ovf",
    "virtualbox7-ovf10.ovf",
    "virtualbox7-ovf20.ovf",
    "vmware-ovf09.ovf",
    "virtualcenter-ovf10-xsitype.ovf",
    "ovf20-xsitype.ovf",
    "cisco-style-appliance.ovf",
    "rhcos-style.ovf",
    "open-vmdk-style.ovf",
    "openstack-style-minimal.ovf",
    "vmware-appliance-vsphere-types.ovf",
]
#: (file, text in it, replacement or None for the file as is, the id it must give)
INVALID: list[tuple[str, str, str | None, str]] = [
    (
        "vmware-appliance-vsphere-types.ovf",
        'ovf:type="int" ovf:qualifiers="MinValue(1) MaxValue(10000000)" ovf:value="2048"',
        'ovf:type="int" ovf:qualifiers="MinValue(1) MaxValue(10000000)" ovf:value="2k"',
        "validator.ovf.product.bad_value",
    ),
    ("ovirt-style-namespace.ovf", "", None, "validator.ovf.envelope.bad_namespace"),
    (
        "vcenter-vm-ovf10.ovf",
        "<Name>web01</Name>",
        "<Nmae>web01</Nmae>",
        "validator.ovf.element.unknown",
    ),
    (
        "vcenter-vm-ovf10.ovf",
        "<rasd:Connection>VM Network</rasd:Connection>",
        "<rasd:Connection>VM Netwerk</rasd:Connection>",
        "validator.ovf.hardware.unknown_network",
    ),
    (
        "vcenter-vm-ovf10.ovf",
        'ovf:type="boolean" ovf:userConfigurable="true" ovf:value="True"',
        'ovf:type="bool" ovf:userConfigurable="true" ovf:value="True"',
        "validator.ovf.product.bad_type",
    ),
    (
        "vcenter-vm-ovf10.ovf",
        "<rasd:InstanceID>9</rasd:InstanceID>",
        "<rasd:InstanceID>8</rasd:InstanceID>",
        "validator.ovf.hardware.duplicate_instance_id",
    ),
    (
        "vcenter-vm-ovf10.ovf",
        "<License>Example Corp license terms. By deploying you accept them.</License>",
        "",
        "validator.ovf.eula.no_license",
    ),
    (
        "ovftool-vapp.ovf",
        '<Item ovf:id="shop-db" ovf:order="0"',
        '<Item ovf:id="shop-web" ovf:order="0"',
        "validator.ovf.startup.unknown_id",
    ),
    (
        "ovftool-vapp.ovf",
        '<VirtualSystem ovf:id="shop-db">',
        '<VirtualSystem ovf:id="shop">',
        "validator.ovf.content.duplicate_id",
    ),
    (
        "virtualbox7-ovf10.ovf",
        '<vbox:Machine ovf:required="false"',
        "<vbox:Machine",
        "validator.ovf.extension.required_unknown",
    ),
    (
        "virtualbox7-ovf10.ovf",
        "<rasd:ResourceType>35</rasd:ResourceType>",
        "",
        "validator.ovf.hardware.no_resource_type",
    ),
    (
        "virtualbox7-ovf20.ovf",
        "<sasd:HostResource>/disk/vmdisk1</sasd:HostResource>",
        "<sasd:HostResource>/disk/vmdisk2</sasd:HostResource>",
        "validator.ovf.hardware.unknown_disk",
    ),
    (
        "virtualbox7-ovf20.ovf",
        "<epasd:ResourceType>10</epasd:ResourceType>",
        "<epasd:ResourceType>ethernet</epasd:ResourceType>",
        "validator.ovf.hardware.bad_resource_type",
    ),
    (
        "vmware-ovf09.ovf",
        '<Disk ovf:capacity="8589934592"',
        '<Disk ovf:capacity="8 GB"',
        "validator.ovf.disk.bad_capacity",
    ),
    (
        "virtualcenter-ovf10-xsitype.ovf",
        "<ovf:Info>A virtual machine</ovf:Info>",
        "<ovf:Info>A virtual machine</ovf:Info>"
        '<ovf:Section xsi:type="ovf:DiskSection_Type"><ovf:Info>d</ovf:Info></ovf:Section>',
        "validator.ovf.section.misplaced",
    ),
    (
        "cisco-style-appliance.ovf",
        '<Configuration ovf:id="4CPU-8GB">',
        '<Configuration ovf:default="true" ovf:id="4CPU-8GB">',
        "validator.ovf.deployment.multiple_defaults",
    ),
    (
        "cisco-style-appliance.ovf",
        'MinValue(0),MaxValue(4094)" ovf:type="uint16" ovf:userConfigurable="true" ovf:value="0"',
        'MinValue(0),MaxValue(4094)" ovf:type="uint16" ovf:userConfigurable="true" '
        'ovf:value="5000"',
        "validator.ovf.product.value_qualifier",
    ),
    (
        "cisco-style-appliance.ovf",
        'ovf:configuration="4CPU-8GB" ovf:value="1000"',
        'ovf:configuration="8CPU" ovf:value="1000"',
        "validator.ovf.deployment.unknown_configuration",
    ),
    (
        "cisco-style-appliance.ovf",
        'ovf:value="ax"',
        'ovf:value="advanced"',
        "validator.ovf.product.value_qualifier",
    ),
    (
        "rhcos-style.ovf",
        "<rasd:Parent>3</rasd:Parent>",
        "<rasd:Parent>9</rasd:Parent>",
        "validator.ovf.hardware.unknown_parent",
    ),
    (
        "rhcos-style.ovf",
        "<rasd:VirtualQuantity>4096</rasd:VirtualQuantity>",
        "<rasd:VirtualQuantity>4 GB</rasd:VirtualQuantity>",
        "validator.ovf.hardware.bad_number",
    ),
    (
        "open-vmdk-style.ovf",
        "</DiskSection>",
        "</DiskSection><DiskSection><Info>more</Info></DiskSection>",
        "validator.ovf.section.duplicate",
    ),
    (
        "open-vmdk-style.ovf",
        '<OperatingSystemSection ovf:id="36"',
        "<OperatingSystemSection",
        "validator.ovf.os.no_id",
    ),
    (
        "openstack-style-minimal.ovf",
        "<ovf:VirtualHardwareSection>",
        "<ovf:VirtualHardwareSection><ovf:Item/>",
        "validator.ovf.hardware.item_empty",
    ),
    (
        "openstack-style-minimal.ovf",
        "<ovf:Info>An image</ovf:Info>",
        "<ovf:Info>An image</ovf:Info>"
        "<ovf:StartupSection><ovf:Info>s</ovf:Info></ovf:StartupSection>",
        "validator.ovf.section.misplaced",
    ),
]


def problems(text: str) -> list[str]:
    return [m for m, _ in read_descriptor("vm.ovf", text.encode(), Limits()).problems]


def load(name: str) -> str:
    return (HERE / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("name", VALID)
def test_real_world_export_is_valid(name: str) -> None:
    assert problems(load(name)) == []


def mutated(name: str, old: str, new: str | None) -> str:
    text = load(name)
    if new is None:
        return text
    assert text.count(old) == 1, (name, old)
    return text.replace(old, new)


@pytest.mark.parametrize(("name", "old", "new", "expected"), INVALID,
                         ids=[f"{c[0]}-{c[3][14:]}" for c in INVALID])  # fmt: skip
def test_invalid_export_gives_its_id(name: str, old: str, new: str | None, expected: str) -> None:
    assert expected in problems(mutated(name, old, new))


def test_acceptance_and_rejection_ratios() -> None:
    accepted = sum(not problems(load(n)) for n in VALID)
    rejected = sum(bool(problems(mutated(n, o, w))) for n, o, w, _ in INVALID)
    assert accepted / len(VALID) >= 0.95
    assert rejected / len(INVALID) >= 0.85


def test_every_descriptor_file_is_used() -> None:
    used = set(VALID) | {c[0] for c in INVALID}
    assert {p.name for p in HERE.glob("*.ovf")} == used
