"""Each descriptor rule (docs/ovf-descriptor-rules.md) broken alone on a valid descriptor.

``BASE`` is a valid OVF 1.0 vApp that uses every section the rules look at;
each case changes one thing and must give exactly its rule's message id.
"""

from __future__ import annotations

import re

import pytest
from validator_plugins.ovf.descriptor import read_descriptor
from validator_plugins.ovf.rules import RULES

from validator.limits import Limits

BASE = """<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
    xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
    xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
    xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xmlns:acme="urn:acme">
  <References>
    <File ovf:id="file1" ovf:href="disk1.vmdk" ovf:size="1024"/>
    <File ovf:id="file2" ovf:href="tools.iso" ovf:size="2048"/>
  </References>
  <DiskSection>
    <Info>Virtual disks</Info>
    <Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="8"
        ovf:capacityAllocationUnits="byte * 2^30"
        ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
    <Disk ovf:diskId="vmdisk2" ovf:fileRef="" ovf:capacity="1073741824" ovf:parentRef="vmdisk1"
        ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection>
    <Info>Networks</Info>
    <Network ovf:name="VM Network"><Description>The VM Network</Description></Network>
  </NetworkSection>
  <DeploymentOptionSection>
    <Info>Sizes</Info>
    <Configuration ovf:id="small" ovf:default="true">
      <Label>Small</Label><Description>s</Description></Configuration>
    <Configuration ovf:id="large"><Label>Large</Label><Description>l</Description></Configuration>
  </DeploymentOptionSection>
  <acme:PolicySection ovf:required="false"><Info>ignored</Info></acme:PolicySection>
  <VirtualSystemCollection ovf:id="vapp">
    <Info>A vApp</Info>
    <Name>vapp</Name>
    <ResourceAllocationSection><Info>Resources</Info></ResourceAllocationSection>
    <StartupSection>
      <Info>Start order</Info>
      <Item ovf:id="vm1" ovf:order="0" ovf:startAction="powerOn" ovf:startDelay="120"
          ovf:stopAction="guestShutdown"
          ovf:stopDelay="120" ovf:waitingForGuest="false"/>
    </StartupSection>
    <VirtualSystem ovf:id="vm1">
      <Info>A virtual machine</Info>
      <ProductSection ovf:class="app" ovf:instance="1">
        <Info>Product</Info>
        <Product>App</Product>
        <Category>Network</Category>
        <Property ovf:key="hostname" ovf:type="string" ovf:qualifiers="MinLen(1),MaxLen(64)"
            ovf:value="app"
            ovf:userConfigurable="true"><Label>Host name</Label></Property>
        <Property ovf:key="port" ovf:type="uint16"
            ovf:qualifiers="MinValue(1),MaxValue(65535)" ovf:value="443"/>
        <Property ovf:key="mode" ovf:type="string"
            ovf:qualifiers="ValueMap{&quot;a&quot;,&quot;b&quot;}" ovf:value="a">
          <Value ovf:value="b" ovf:configuration="large"/>
        </Property>
        <Property ovf:key="secret" ovf:type="string" ovf:password="true" ovf:value=""/>
        <Property ovf:key="debug" ovf:type="boolean" ovf:value="False"/>
        <Property ovf:key="ip" ovf:type="expression" ovf:value="${ip:VM Network}"/>
      </ProductSection>
      <AnnotationSection><Info>Notes</Info><Annotation>Hello</Annotation></AnnotationSection>
      <EulaSection><Info>License</Info><License>Use it well.</License></EulaSection>
      <OperatingSystemSection ovf:id="101" vmw:osType="otherLinux64Guest">
        <Info>OS</Info></OperatingSystemSection>
      <VirtualHardwareSection ovf:transport="com.vmware.guestInfo">
        <Info>Hardware</Info>
        <System>
          <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
          <vssd:InstanceID>0</vssd:InstanceID>
          <vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType>
        </System>
        <Item ovf:configuration="small">
          <rasd:ElementName>2 CPUs</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID>
          <rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity>
        </Item>
        <Item ovf:configuration="large">
          <rasd:ElementName>8 CPUs</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID>
          <rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>8</rasd:VirtualQuantity>
        </Item>
        <Item ovf:bound="min">
          <rasd:ElementName>Memory</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID>
          <rasd:ResourceType>4</rasd:ResourceType><rasd:Reservation>512</rasd:Reservation>
        </Item>
        <Item>
          <rasd:ElementName>Memory</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID>
          <rasd:ResourceType>4</rasd:ResourceType><rasd:Reservation>1024</rasd:Reservation>
          <rasd:VirtualQuantity>4096</rasd:VirtualQuantity><rasd:Limit>8192</rasd:Limit>
        </Item>
        <Item ovf:bound="max">
          <rasd:ElementName>Memory</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID>
          <rasd:ResourceType>4</rasd:ResourceType><rasd:Reservation>4096</rasd:Reservation>
        </Item>
        <Item>
          <rasd:ElementName>SCSI</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID>
          <rasd:ResourceSubType>VirtualSCSI</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType>
        </Item>
        <Item>
          <rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:ElementName>Disk 1</rasd:ElementName>
          <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID>
          <rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType>
          <vmw:Config ovf:required="false" vmw:key="backing.writeThrough" vmw:value="false"/>
        </Item>
        <Item>
          <rasd:AddressOnParent>1</rasd:AddressOnParent><rasd:ElementName>Disk 2</rasd:ElementName>
          <rasd:HostResource>ovf://disk/vmdisk2</rasd:HostResource><rasd:InstanceID>5</rasd:InstanceID>
          <rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType>
        </Item>
        <Item>
          <rasd:ElementName>CD</rasd:ElementName><rasd:HostResource>ovf:/file/file2</rasd:HostResource>
          <rasd:InstanceID>6</rasd:InstanceID><rasd:ResourceType>15</rasd:ResourceType>
        </Item>
        <Item>
          <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
          <rasd:Connection>VM Network</rasd:Connection>
          <rasd:ElementName>Ethernet 1</rasd:ElementName><rasd:InstanceID>7</rasd:InstanceID>
          <rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType>
        </Item>
        <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>
        <vmw:ExtraConfig ovf:required="false" vmw:key="disk.EnableUUID" vmw:value="TRUE"/>
      </VirtualHardwareSection>
      <vmw:BootOrderSection vmw:type="disk"><Info>Boot order</Info></vmw:BootOrderSection>
    </VirtualSystem>
  </VirtualSystemCollection>
</Envelope>
"""

#: (rule id, text in BASE, its replacement)
CASES: list[tuple[str, str, str]] = [
    ("validator.ovf.envelope.bad_version", "<Envelope ", '<Envelope ovf:version="one" '),
    ("validator.ovf.envelope.after_content", "</Envelope>", "<Name>late</Name></Envelope>"),
    (
        "validator.ovf.envelope.section_after_content",
        r"re:(<NetworkSection>.*</NetworkSection>)(.*)</Envelope>",
        r"\2\1</Envelope>",
    ),
    ("validator.ovf.element.unknown", "<Name>vapp</Name>", "<Nmae>vapp</Nmae>"),
    ("validator.ovf.element.unknown", "<Product>App</Product>", "<Produkt>App</Produkt>"),
    (
        "validator.ovf.element.unknown",
        "<rasd:ElementName>CD</rasd:ElementName>",
        "<ElementName>CD</ElementName>",
    ),
    (
        "validator.ovf.extension.required_unknown",
        'acme:PolicySection ovf:required="false"',
        "acme:PolicySection",
    ),
    (
        "validator.ovf.extension.required_unknown",
        "<Name>vapp</Name>",
        '<Name>vapp</Name><acme:Thing ovf:required="true"/>',
    ),
    (
        "validator.ovf.section.unknown",
        "<AnnotationSection><Info>Notes</Info><Annotation>Hello</Annotation></AnnotationSection>",
        "<AnotationSection><Info>Notes</Info></AnotationSection>",
    ),
    (
        "validator.ovf.section.misplaced",
        "<Name>vapp</Name>",
        '<Name>vapp</Name><OperatingSystemSection ovf:id="1"><Info>x</Info>'
        "</OperatingSystemSection>",
    ),
    (
        "validator.ovf.section.misplaced",
        "<Info>A virtual machine</Info>",
        "<Info>A virtual machine</Info><StartupSection><Info>x</Info></StartupSection>",
    ),
    (
        "validator.ovf.section.misplaced",
        "<Info>A virtual machine</Info>",
        "<Info>A virtual machine</Info><NetworkSection><Info>x</Info></NetworkSection>",
    ),
    (
        "validator.ovf.section.misplaced",
        "  <VirtualSystemCollection",
        "<EulaSection><Info>x</Info><License>l</License></EulaSection><VirtualSystemCollection",
    ),
    (
        "validator.ovf.section.duplicate",
        "<AnnotationSection>",
        "<AnnotationSection><Info>x</Info><Annotation>a</Annotation></AnnotationSection><AnnotationSection>",
    ),
    ("validator.ovf.section.no_info", "<Info>Resources</Info>", ""),
    (
        "validator.ovf.content.duplicate_id",
        "    </VirtualSystem>\n",
        '    </VirtualSystem>\n<VirtualSystem ovf:id="vm1"><Info>again</Info>'
        "<VirtualHardwareSection><Info>h</Info></VirtualHardwareSection></VirtualSystem>",
    ),
    (
        "validator.ovf.content.no_id",
        '<VirtualSystemCollection ovf:id="vapp">',
        "<VirtualSystemCollection>",
    ),
    ("validator.ovf.content.no_info", "<Info>A virtual machine</Info>", ""),
    (
        "validator.ovf.content.nested_in_system",
        "<Info>A virtual machine</Info>",
        '<Info>A virtual machine</Info><VirtualSystem ovf:id="in"><Info>x</Info>'
        "<VirtualHardwareSection><Info>h</Info></VirtualHardwareSection></VirtualSystem>",
    ),
    (
        "validator.ovf.content.multiple",
        "</Envelope>",
        '<VirtualSystem ovf:id="x"><Info>x</Info><VirtualHardwareSection><Info>h</Info>'
        "</VirtualHardwareSection></VirtualSystem></Envelope>",
    ),
    (
        "validator.ovf.disk.duplicate_file_ref",
        'ovf:fileRef="" ovf:capacity',
        'ovf:fileRef="file1" ovf:capacity',
    ),
    ("validator.ovf.disk.unknown_parent", 'ovf:parentRef="vmdisk1"', 'ovf:parentRef="vmdisk9"'),
    (
        "validator.ovf.disk.unknown_file_ref",
        'ovf:fileRef="" ovf:capacity',
        'ovf:fileRef="file9" ovf:capacity',
    ),
    ("validator.ovf.disk.bad_allocation_units", "byte * 2^30", "bytes times 2"),
    (
        "validator.ovf.network.no_name",
        '<Network ovf:name="VM Network">',
        '<Network ovf:name="VM Network"></Network><Network>',
    ),
    (
        "validator.ovf.network.duplicate_name",
        '<Network ovf:name="VM Network">',
        '<Network ovf:name="VM Network"></Network><Network ovf:name="VM Network">',
    ),
    (
        "validator.ovf.deployment.no_id",
        '<Configuration ovf:id="large">',
        '<Configuration><Label>x</Label></Configuration><Configuration ovf:id="large">',
    ),
    (
        "validator.ovf.deployment.duplicate_id",
        '<Configuration ovf:id="large">',
        '<Configuration ovf:id="small"><Label>x</Label></Configuration>'
        '<Configuration ovf:id="large">',
    ),
    ("validator.ovf.deployment.no_label", "<Label>Large</Label>", ""),
    (
        "validator.ovf.deployment.multiple_defaults",
        '<Configuration ovf:id="large">',
        '<Configuration ovf:id="large" ovf:default="true">',
    ),
    (
        "validator.ovf.deployment.unknown_configuration",
        'ovf:configuration="large">',
        'ovf:configuration="huge">',
    ),
    (
        "validator.ovf.deployment.unknown_configuration",
        '<Value ovf:value="b" ovf:configuration="large"/>',
        '<Value ovf:value="b" ovf:configuration="medium"/>',
    ),
    ("validator.ovf.eula.no_license", "<License>Use it well.</License>", "<License> </License>"),
    ("validator.ovf.annotation.missing", "<Annotation>Hello</Annotation>", ""),
    ("validator.ovf.os.no_id", '<OperatingSystemSection ovf:id="101"', "<OperatingSystemSection"),
    (
        "validator.ovf.os.bad_id",
        'OperatingSystemSection ovf:id="101"',
        'OperatingSystemSection ovf:id="linux"',
    ),
    (
        "validator.ovf.startup.unknown_id",
        'Item ovf:id="vm1" ovf:order="0"',
        'Item ovf:id="vm2" ovf:order="0"',
    ),
    ("validator.ovf.startup.bad_attribute", 'ovf:order="0"', 'ovf:order="first"'),
    ("validator.ovf.startup.bad_attribute", 'ovf:startDelay="120"', 'ovf:startDelay="2m"'),
    (
        "validator.ovf.hardware.missing",
        "re:<VirtualHardwareSection .*</VirtualHardwareSection>",
        "<InstallSection><Info>i</Info></InstallSection>",
    ),
    (
        "validator.ovf.hardware.ambiguous",
        "      </VirtualHardwareSection>\n",
        "      </VirtualHardwareSection>\n"
        '<VirtualHardwareSection ovf:transport="com.vmware.guestInfo">'
        "<Info>again</Info><System><vssd:InstanceID>0</vssd:InstanceID>"
        "<vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType></System></VirtualHardwareSection>\n",
    ),
    (
        "validator.ovf.hardware.system_duplicate",
        "        </System>\n",
        "        </System>\n<System><vssd:InstanceID>9</vssd:InstanceID></System>",
    ),
    ("validator.ovf.hardware.system_no_instance_id", "<vssd:InstanceID>0</vssd:InstanceID>", ""),
    ("validator.ovf.hardware.item_empty", "<Info>Hardware</Info>", "<Info>Hardware</Info><Item/>"),
    ("validator.ovf.hardware.no_instance_id", "<rasd:InstanceID>6</rasd:InstanceID>", ""),
    (
        "validator.ovf.hardware.duplicate_instance_id",
        "<rasd:InstanceID>6</rasd:InstanceID>",
        "<rasd:InstanceID>5</rasd:InstanceID>",
    ),
    (
        "validator.ovf.hardware.duplicate_instance_id",
        'Item ovf:configuration="large"',
        'Item ovf:configuration="large small"',
    ),
    ("validator.ovf.hardware.no_resource_type", "<rasd:ResourceType>15</rasd:ResourceType>", ""),
    (
        "validator.ovf.hardware.bad_resource_type",
        "<rasd:ResourceType>15</rasd:ResourceType>",
        "<rasd:ResourceType>cdrom</rasd:ResourceType>",
    ),
    (
        "validator.ovf.hardware.bad_resource_type",
        "<rasd:ResourceType>15</rasd:ResourceType>",
        "<rasd:ResourceType>0</rasd:ResourceType>",
    ),
    (
        "validator.ovf.hardware.unknown_parent",
        "<rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType>\n"
        "          <vmw:Config",
        "<rasd:Parent>30</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType>\n"
        "          <vmw:Config",
    ),
    (
        "validator.ovf.hardware.bad_number",
        "<rasd:VirtualQuantity>8</rasd:VirtualQuantity>",
        "<rasd:VirtualQuantity>-8</rasd:VirtualQuantity>",
    ),
    (
        "validator.ovf.hardware.bad_number",
        "<rasd:Limit>8192</rasd:Limit>",
        "<rasd:Limit>lots</rasd:Limit>",
    ),
    (
        "validator.ovf.hardware.bad_number",
        "<rasd:AddressOnParent>1</rasd:AddressOnParent>",
        "<rasd:AddressOnParent>-1</rasd:AddressOnParent>",
    ),
    ("validator.ovf.hardware.unknown_disk", "ovf://disk/vmdisk2", "ovf:/disk/vmdisk3"),
    ("validator.ovf.hardware.unknown_file", "ovf:/file/file2", "ovf:/file/file3"),
    (
        "validator.ovf.hardware.unknown_network",
        "<rasd:Connection>VM Network</rasd:Connection>",
        "<rasd:Connection>Lab Network</rasd:Connection>",
    ),
    ("validator.ovf.hardware.bad_bound", 'Item ovf:bound="max"', 'Item ovf:bound="maximum"'),
    (
        "validator.ovf.hardware.bound_order",
        "<rasd:Reservation>4096</rasd:Reservation>",
        "<rasd:Reservation>256</rasd:Reservation>",
    ),
    (
        "validator.ovf.product.duplicate_class",
        "<AnnotationSection>",
        '<ProductSection ovf:class="app" ovf:instance="1"><Info>again</Info></ProductSection>'
        "<AnnotationSection>",
    ),
    ("validator.ovf.product.no_key", '<Property ovf:key="debug"', "<Property"),
    ("validator.ovf.product.duplicate_key", 'ovf:key="debug"', 'ovf:key="port"'),
    ("validator.ovf.product.no_type", 'ovf:key="debug" ovf:type="boolean"', 'ovf:key="debug"'),
    (
        "validator.ovf.product.bad_type",
        'ovf:key="debug" ovf:type="boolean"',
        'ovf:key="debug" ovf:type="bool"',
    ),
    (
        "validator.ovf.product.bad_value",
        'ovf:type="boolean" ovf:value="False"',
        'ovf:type="boolean" ovf:value="no"',
    ),
    ("validator.ovf.product.bad_value", 'ovf:value="443"', 'ovf:value="70000"'),
    (
        "validator.ovf.product.value_qualifier",
        'MaxValue(65535)" ovf:value="443"',
        'MaxValue(1024)" ovf:value="8443"',
    ),
    (
        "validator.ovf.product.value_qualifier",
        'ovf:value="app"',
        'ovf:value=""/><!-- --><Property ovf:key="h2" '
        'ovf:type="string" ovf:qualifiers="MaxLen(2)" ovf:value="app"',
    ),
    ("validator.ovf.product.value_qualifier", '<Value ovf:value="b"', '<Value ovf:value="c"'),
    ("validator.ovf.product.bad_qualifiers", "MinLen(1),MaxLen(64)", "MinLen(one)"),
    (
        "validator.ovf.product.bad_boolean",
        'ovf:userConfigurable="true"',
        'ovf:userConfigurable="yes"',
    ),
    ("validator.ovf.references.duplicate", "  <DiskSection>", "<References/><DiskSection>"),
    ("validator.ovf.file.bad_size", 'ovf:size="2048"', 'ovf:size="-2048"'),
]


def problems(text: str) -> list[str]:
    desc = read_descriptor("vm.ovf", text.encode(), Limits())
    return [message for message, _ in desc.problems]


def test_base_descriptor_is_valid() -> None:
    assert problems(BASE) == []


@pytest.mark.parametrize(
    ("rule", "old", "new"), CASES, ids=[f"{c[0][14:]}-{i}" for i, c in enumerate(CASES)]
)
def test_rule_broken_alone(rule: str, old: str, new: str) -> None:
    if old.startswith("re:"):
        text, count = re.subn(old[3:], new, BASE, count=1, flags=re.DOTALL)
        assert count == 1, old
    else:
        assert BASE.count(old) == 1, old
        text = BASE.replace(old, new)
    assert problems(text) == [rule]


def test_problems_give_the_line() -> None:
    desc = read_descriptor(
        "vm.ovf", BASE.replace("<rasd:InstanceID>6", "<rasd:InstanceID>5").encode(), Limits()
    )
    ((_message, args),) = desc.problems
    line = next(i for i, text in enumerate(BASE.splitlines(), 1) if "<rasd:InstanceID>6" in text)
    assert args == ("5", line - 2)  # the Item element starts two lines before


def test_every_new_rule_has_a_case() -> None:
    """Rules of sections and hardware each have at least one case here; the older
    ones (references, disks, limits) are tested in test_ovf_descriptor.py."""
    covered = {rule for rule, _, _ in CASES}
    areas = ("envelope.bad_version", "envelope.after_content", "element.", "extension.", "section.",
             "network.", "deployment.", "eula.", "annotation.", "os.", "startup.", "hardware.",
             "product.", "disk.duplicate_file_ref", "disk.unknown_parent")  # fmt: skip
    wanted = {r.id for r in RULES if any(r.id.startswith(f"validator.ovf.{a}") for a in areas)}
    assert wanted - covered == set()
