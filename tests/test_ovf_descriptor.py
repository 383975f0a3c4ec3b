"""The OVF descriptor adapter: structure and cross-references, OVF 0.9 to 2.x, hostile input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from validator.limits import Limits

from .conftest import SAMPLES, ids, validate

OVF1 = "http://schemas.dmtf.org/ovf/envelope/1"
OVF2 = "http://schemas.dmtf.org/ovf/envelope/2"
OVF09 = "http://www.vmware.com/schema/ovf/1/envelope"
DISK_SIZE = (SAMPLES / "vm-disk1.vmdk").stat().st_size


def envelope(body: str, ns: str = OVF1, extra_ns: str = "") -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Envelope xmlns="{ns}" xmlns:ovf="{ns}" '
        'xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/'
        'CIM_ResourceAllocationSettingData" '
        f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"{extra_ns}>\n{body}\n</Envelope>\n'
    )


REFS = (
    f'<References><File ovf:id="file1" ovf:href="vm-disk1.vmdk" ovf:size="{DISK_SIZE}"/>'
    "</References>"
)
DISKS = (
    '<DiskSection><Info>Disks</Info><Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" '
    'ovf:capacity="64" ovf:capacityAllocationUnits="byte * 2^20"/></DiskSection>'
)
SYSTEM = (
    '<VirtualSystem ovf:id="vm"><Info>A VM</Info>'
    "<VirtualHardwareSection><Info>hw</Info><Item>"
    "<rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>"
    "<rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>17</rasd:ResourceType></Item>"
    "</VirtualHardwareSection></VirtualSystem>"
)


def write(tmp_path: Path, text: str | bytes, *, disk: bool = True, name: str = "vm.ovf") -> Path:
    folder = tmp_path / "pkg"
    folder.mkdir(exist_ok=True)
    path = folder / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    if disk:
        shutil.copy(SAMPLES / "vm-disk1.vmdk", folder / "vm-disk1.vmdk")
    return path


def check(tmp_path: Path, body: str, ns: str = OVF1, **kw: object) -> list[str]:
    return ids(validate(write(tmp_path, envelope(body, ns)), **kw))  # type: ignore[arg-type]


def test_sample_package_is_valid() -> None:
    result = validate(SAMPLES / "vm.ovf")
    assert not result.has_errors, result
    assert result.item_type == "ovf"


@pytest.mark.parametrize("ns", [OVF1, OVF2])
def test_minimal_valid_descriptor_1x_and_2x(tmp_path: Path, ns: str) -> None:
    assert check(tmp_path, REFS + DISKS + SYSTEM, ns) == []


def test_ovf_09_with_xsi_typed_sections(tmp_path: Path) -> None:
    body = (
        REFS + '<Section xsi:type="ovf:DiskSection_Type"><Info>Disks</Info>'
        '<Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="67108864"/></Section>'
        '<Content xsi:type="ovf:VirtualSystem_Type" ovf:id="vm"><Info>A VM</Info>'
        '<Section xsi:type="ovf:VirtualHardwareSection_Type"><Info>hw</Info><Item>'
        "<rasd:HostResource>/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>1</rasd:InstanceID>"
        "<rasd:ResourceType>17</rasd:ResourceType></Item></Section></Content>"
    )
    assert check(tmp_path, body, OVF09) == []
    bad = body.replace("<Info>Disks</Info>", "")
    assert check(tmp_path, bad, OVF09) == ["validator.ovf.section.no_info"]


def test_unknown_namespace_and_not_an_envelope(tmp_path: Path) -> None:
    assert check(tmp_path, REFS + SYSTEM, "urn:not-ovf") == ["validator.ovf.envelope.bad_namespace"]
    path = write(tmp_path, "<html><body/></html>", disk=False)
    assert ids(validate(path)) == ["validator.ovf.envelope.not_envelope"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"", "validator.ovf.xml.malformed"),
        (b"<Envelope", "validator.ovf.xml.malformed"),
        (b"\xff\xfe\x00garbage", "validator.ovf.xml.malformed"),
        (
            '<?xml version="1.0" encoding="UTF-8"?><Envelope>\xe9</Envelope>'.encode("latin-1"),
            "validator.ovf.xml.malformed",
        ),
    ],
)
def test_malformed_xml(tmp_path: Path, text: bytes, expected: str) -> None:
    assert ids(validate(write(tmp_path, text, disk=False))) == [expected]


def test_entity_expansion_is_refused(tmp_path: Path) -> None:
    lol = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    text = f'<?xml version="1.0"?>\n<!DOCTYPE Envelope [<!ENTITY l0 "lol">{lol}]>\n' + envelope(
        REFS + DISKS + SYSTEM
    ).split("\n", 1)[1].replace("A VM", "&l9;")
    result = validate(write(tmp_path, text))
    assert ids(result) == ["validator.ovf.xml.doctype"]
    assert result.invalid_files[0].error_message.args == ("2",)


def test_external_entity_is_never_fetched(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET", encoding="utf-8")
    text = (
        f'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
        + envelope(REFS + DISKS + SYSTEM).split("\n", 1)[1].replace("A VM", "&xxe;")
    )
    result = validate(write(tmp_path, text))
    assert ids(result) == ["validator.ovf.xml.doctype"]
    assert "TOP SECRET" not in repr(result)


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("../../etc/passwd", "validator.ovf.file.href_traversal"),
        ("/etc/passwd", "validator.ovf.file.href_absolute"),
        ("C:\\disk.vmdk", "validator.ovf.file.href_absolute"),
        ("http://example.com/disk.vmdk", "validator.ovf.file.href_url"),
        ("file:///etc/passwd", "validator.ovf.file.href_url"),
        ("disks/disk.vmdk", "validator.ovf.file.href_not_plain"),
    ],
)
def test_hrefs_that_a_session_cannot_hold(tmp_path: Path, href: str, expected: str) -> None:
    body = REFS.replace("vm-disk1.vmdk", href) + DISKS + SYSTEM
    result = validate(write(tmp_path, envelope(body)))
    assert expected in ids(result)
    assert result.missing_files == ()  # never asked for, never opened


def test_references_cross_checks(tmp_path: Path) -> None:
    refs = (
        "<References>"
        f'<File ovf:id="file1" ovf:href="vm-disk1.vmdk" ovf:size="{DISK_SIZE}"/>'
        '<File ovf:id="file1" ovf:href="other.vmdk"/>'
        '<File ovf:id="file3" ovf:href="vm-disk1.vmdk"/>'
        '<File ovf:href="noid.vmdk"/>'
        '<File ovf:id="file5"/>'
        '<File ovf:id="file6" ovf:href="six.vmdk" ovf:size="-1" ovf:compression="bzip2" '
        'ovf:chunkSize="0"/>'
        "</References>"
    )
    got = check(tmp_path, refs + DISKS + SYSTEM)
    assert got == [
        "validator.ovf.file.duplicate_id",
        "validator.ovf.file.duplicate_href",
        "validator.ovf.file.no_id",
        "validator.ovf.file.no_href",
        "validator.ovf.file.bad_size",
        "validator.ovf.file.bad_compression",
        "validator.ovf.file.bad_chunk_size",
    ]


def test_missing_files_are_listed_not_invalid(tmp_path: Path) -> None:
    refs = REFS.replace("</References>", '<File ovf:id="f2" ovf:href="disk2.vmdk"/></References>')
    result = validate(write(tmp_path, envelope(refs + DISKS + SYSTEM)))
    assert result.missing_files == ("disk2.vmdk",)
    assert ids(result) == []
    assert result.has_errors


def test_disk_checks(tmp_path: Path) -> None:
    disks = (
        "<DiskSection><Info>Disks</Info>"
        '<Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="64" '
        'ovf:capacityAllocationUnits="byte * 2^20" ovf:populatedSize="999999999999"/>'
        '<Disk ovf:diskId="vmdisk1" ovf:capacity="1"/>'
        '<Disk ovf:diskId="d3" ovf:fileRef="nope" ovf:capacity="1"/>'
        '<Disk ovf:diskId="d4" ovf:capacity="${disk.size}"/>'
        '<Disk ovf:diskId="d5" ovf:capacity="ten"/>'
        '<Disk ovf:diskId="d6"/>'
        '<Disk ovf:diskId="d7" ovf:capacity="0"/>'
        '<Disk ovf:diskId="d8" ovf:capacity="1" ovf:capacityAllocationUnits="parsecs"/>'
        '<Disk ovf:diskId="d9" ovf:capacity="1" ovf:populatedSize="lots"/>'
        '<Disk ovf:capacity="1"/>'
        "</DiskSection>"
    )
    assert check(tmp_path, REFS + disks + SYSTEM) == [
        "validator.ovf.disk.populated_exceeds_capacity",
        "validator.ovf.disk.duplicate_id",
        "validator.ovf.disk.unknown_file_ref",
        "validator.ovf.disk.unknown_capacity_property",
        "validator.ovf.disk.bad_capacity",
        "validator.ovf.disk.no_capacity",
        "validator.ovf.disk.zero_capacity",
        "validator.ovf.disk.bad_allocation_units",
        "validator.ovf.disk.bad_populated_size",
        "validator.ovf.disk.no_id",
    ]


def test_capacity_property_declared_in_product_section(tmp_path: Path) -> None:
    disks = DISKS.replace(
        'ovf:capacity="64" ovf:capacityAllocationUnits="byte * 2^20"', 'ovf:capacity="${disk.size}"'
    )
    system = SYSTEM.replace(
        "<Info>A VM</Info>",
        "<Info>A VM</Info><ProductSection><Info>p</Info>"
        '<Property ovf:key="disk.size" ovf:type="uint64"/></ProductSection>',
    )
    assert check(tmp_path, REFS + disks + system) == []


def test_envelope_structure(tmp_path: Path) -> None:
    assert check(tmp_path, DISKS + SYSTEM) == [
        "validator.ovf.references.missing",
        "validator.ovf.disk.unknown_file_ref",
    ]
    got = check(tmp_path, DISKS + REFS + REFS + SYSTEM + SYSTEM + DISKS)
    assert got[:4] == [
        "validator.ovf.references.duplicate",
        "validator.ovf.envelope.references_not_first",
        "validator.ovf.content.multiple",
        "validator.ovf.envelope.section_after_content",
    ]
    assert "validator.ovf.content.missing" in check(tmp_path, REFS + DISKS)


HW = "<VirtualHardwareSection><Info>hw</Info></VirtualHardwareSection>"


def test_content_checks(tmp_path: Path) -> None:
    collection = (
        '<VirtualSystemCollection ovf:id="all"><Info>All</Info>'
        + SYSTEM
        + f'<VirtualSystem ovf:id="vm"><Info>dup id</Info>{HW}</VirtualSystem>'
        + f"<VirtualSystem><Info>no id</Info>{HW}</VirtualSystem>"
        + f'<VirtualSystem ovf:id="noinfo">{HW}</VirtualSystem>'
        + '<VirtualSystem ovf:id="outer"><Info>x</Info>'
        + f'<VirtualSystem ovf:id="inner"><Info>x</Info>{HW}</VirtualSystem>{HW}</VirtualSystem>'
        + "</VirtualSystemCollection>"
    )
    assert check(tmp_path, REFS + DISKS + collection) == [
        "validator.ovf.content.duplicate_id",
        "validator.ovf.content.no_id",
        "validator.ovf.content.no_info",
        "validator.ovf.content.nested_in_system",
    ]


def test_content_ids_are_unique_among_siblings_only(tmp_path: Path) -> None:
    """ovftool's vApp exports give the collection the id of one of its systems."""
    nested = (
        '<VirtualSystemCollection ovf:id="vm"><Info>All</Info>'
        + SYSTEM
        + '<VirtualSystemCollection ovf:id="inner"><Info>x</Info>'
        + SYSTEM.replace('ovf:id="vm"', 'ovf:id="other"')
        + f'<VirtualSystem ovf:id="vm"><Info>same id, other collection</Info>{HW}</VirtualSystem>'
        + "</VirtualSystemCollection></VirtualSystemCollection>"
    )
    assert check(tmp_path, REFS + DISKS + nested) == []


def test_host_resource_must_point_at_declared_disk_or_file(tmp_path: Path) -> None:
    system = SYSTEM.replace("ovf:/disk/vmdisk1", "ovf:/disk/nodisk").replace(
        "</Item>",
        "</Item><Item><rasd:HostResource>ovf:/file/nofile</rasd:HostResource>"
        "<rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>15</rasd:ResourceType></Item>",
    )
    assert check(tmp_path, REFS + DISKS + system) == [
        "validator.ovf.hardware.unknown_disk",
        "validator.ovf.hardware.unknown_file",
    ]


def test_problems_carry_line_numbers(tmp_path: Path) -> None:
    body = REFS.replace("vm-disk1.vmdk", "../x") + "\n" + DISKS + SYSTEM
    result = validate(write(tmp_path, envelope(body)))
    traversal = [e for e in result.invalid_files if e.error_message.id.endswith("href_traversal")]
    assert traversal[0].error_message.args == ("../x", "3")
    assert "(line 3)" in traversal[0].error_message.default_message


def test_two_descriptors_in_a_folder(tmp_path: Path) -> None:
    path = write(tmp_path, envelope(REFS + DISKS + SYSTEM))
    shutil.copy(path, path.parent / "second.ovf")
    result = validate(path.parent)
    assert "validator.ovf.session.multiple_descriptors" in ids(result)


def test_unreferenced_file_in_folder(tmp_path: Path) -> None:
    path = write(tmp_path, envelope(REFS + DISKS + SYSTEM))
    (path.parent / "notes.txt").write_text("x", encoding="utf-8")
    result = validate(path.parent)
    assert ids(result) == ["validator.ovf.file.unreferenced"]
    assert result.invalid_files[0].name == "notes.txt"
    # Validating the descriptor alone selects only what it references.
    assert not validate(path).has_errors


def test_limits_are_enforced(tmp_path: Path) -> None:
    path = write(tmp_path, envelope(REFS + DISKS + SYSTEM))
    assert ids(validate(path, limits=Limits(descriptor_bytes=100))) == [
        "validator.ovf.limit.descriptor_size"
    ]
    assert ids(validate(path, limits=Limits(descriptor_elements=5))) == [
        "validator.ovf.limit.descriptor_elements"
    ]
    assert ids(validate(path, limits=Limits(descriptor_depth=3))) == [
        "validator.ovf.limit.descriptor_depth"
    ]
    many = (
        "<References>"
        + "".join(f'<File ovf:id="f{i}" ovf:href="f{i}.bin"/>' for i in range(20))
        + "</References>"
    )
    got = ids(
        validate(write(tmp_path, envelope(many + SYSTEM), disk=False), limits=Limits(references=10))
    )
    assert got[0] == "validator.ovf.limit.references"


def test_links_in_a_bundle_are_refused_not_followed(tmp_path: Path) -> None:
    path = write(tmp_path, envelope(REFS + DISKS + SYSTEM), disk=False)
    (path.parent / "vm-disk1.vmdk").symlink_to(SAMPLES / "vm-disk1.vmdk")
    for target in (path, path.parent):
        result = validate(target)
        assert ids(result) == ["validator.core.file.link"]
        assert result.invalid_files[0].name == "vm-disk1.vmdk"
        assert result.missing_files == ("vm-disk1.vmdk",)


def test_a_lone_ovf_is_read_and_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening a lone .ovf reads its descriptor; the validation reuses those bytes and
    that parse (the digest for the manifest comes from the same bytes)."""
    import validator_plugins.ovf.descriptor as descriptor_mod

    import validator.session as session_mod
    from validator.engine import Engine

    from .conftest import SAMPLES

    parses: list[str] = []
    opens: list[str] = []
    real_parse, real_open = descriptor_mod.read_descriptor, session_mod.open_regular_file

    def parse(name: str, *args: object, **kwargs: object) -> object:
        parses.append(name)
        return real_parse(name, *args, **kwargs)  # type: ignore[arg-type]

    def open_file(path: object) -> object:
        opens.append(str(path))
        return real_open(path)  # type: ignore[arg-type]

    monkeypatch.setattr(descriptor_mod, "read_descriptor", parse)
    monkeypatch.setattr(session_mod, "open_regular_file", open_file)
    engine = Engine()
    result = engine.validate(engine.open(SAMPLES / "vm.ovf"))
    assert not result.has_errors  # the manifest's digest of vm.ovf matched
    assert parses == ["vm.ovf"]
    assert [Path(p).name for p in opens].count("vm.ovf") == 1


@pytest.mark.parametrize(
    ("text", "limits", "expected"),
    [
        ("<Envelope", Limits(), "validator.ovf.xml.malformed"),
        (
            envelope(REFS + DISKS + SYSTEM),
            Limits(descriptor_bytes=100),
            "validator.ovf.limit.descriptor_size",
        ),
        ("<html/>", Limits(), "validator.ovf.envelope.not_envelope"),
    ],
)
def test_an_unreadable_descriptor_does_not_judge_the_other_files(
    tmp_path: Path, text: str, limits: Limits, expected: str
) -> None:
    """No 'not referenced by the descriptor' advice when the descriptor cannot be read."""
    path = write(tmp_path, text)
    (path.parent / "notes.txt").write_text("x", encoding="utf-8")
    assert ids(validate(path.parent, limits=limits)) == [expected]


def test_xsi_typed_section_and_content_in_ovf_1_and_2(tmp_path: Path) -> None:
    for ns in (OVF1, OVF2):
        body = (
            REFS + '<Section xsi:type="ovf:DiskSection_Type"><Info>Disks</Info>'
            '<Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="67108864"/></Section>'
            + SYSTEM.replace(
                "<VirtualSystem ", '<Content xsi:type="ovf:VirtualSystem_Type" '
            ).replace("</VirtualSystem>", "</Content>")
        )
        assert check(tmp_path, body, ns) == [], ns


def test_empty_file_ref_is_a_blank_disk(tmp_path: Path) -> None:
    disks = DISKS.replace(
        "</DiskSection>", '<Disk ovf:diskId="blank" ovf:fileRef="" ovf:capacity="1"/></DiskSection>'
    )
    assert check(tmp_path, REFS + disks + SYSTEM) == []
