"""``validator info`` for OVF packages (lone .ovf, folder, .ova, signed) and ISO images
(genisoimage, xorriso); the text output's indented lines; damaged inputs."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from validator.cli import fact_lines

from .conftest import SAMPLES, CliResult
from .ovf_packages import sample_package

DESCRIPTORS = Path(__file__).parent / "descriptors"
MiB = 1 << 20


def info(cli: Callable[..., CliResult], path: Path) -> dict:  # type: ignore[type-arg]
    result = cli("info", "--format", "json", path)
    assert result.code == 0, result.err
    assert result.err == ""
    facts: dict = result.json()  # type: ignore[type-arg]
    return facts


def assert_indented(text: str) -> None:
    """Every line is ``key: value``, ``key:`` (a deeper block follows) or a ``- `` item
    (a mapping's first key on it, the others two spaces deeper), indented by steps of two
    spaces and never deeper than the line before allows."""
    lines = text.rstrip("\n").split("\n")
    assert lines and lines[0].startswith("item_type: ")
    allowed = 0
    for line in lines:
        body = line.lstrip(" ")
        indent = len(line) - len(body)
        assert indent % 2 == 0 and indent <= allowed, line
        item = body.startswith("- ")
        rest = body[2:] if item else body
        keyed = re.match(r"^[^\s:-][^:]*:( .*)?$", rest) is not None
        assert item or keyed, line
        if rest.endswith(":"):
            allowed = indent + (4 if item else 2)
        else:
            allowed = indent + (2 if item and keyed else 0)
    assert any(line.startswith("  ") for line in lines), "nested facts are indented"


def test_fact_lines_nests_mappings_and_lists() -> None:
    facts = {
        "a": 1,
        "b": {"c": None, "d": [1, 2]},
        "e": [{"f": True, "g": "x  y"}, []],
        "h": [],
    }
    assert fact_lines(facts) == [
        "a: 1",
        "b:",
        "  c: -",
        "  d:",
        "    - 1",
        "    - 2",
        "e:",
        "  - f: true",
        "    g: x y",
        "  - []",
        "h: []",
    ]


def test_fact_lines_show_a_text_of_several_lines_as_a_block() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB  x\n\n-----END CERTIFICATE-----\n"
    assert fact_lines({"pem": pem, "chain": [pem]}) == [
        "pem: |",
        "  -----BEGIN CERTIFICATE-----",
        "  MIIB x",
        "  -----END CERTIFICATE-----",
        "chain:",
        "  - |",
        "    -----BEGIN CERTIFICATE-----",
        "    MIIB x",
        "    -----END CERTIFICATE-----",
    ]
    # One line with a trailing newline stays one line.
    assert fact_lines({"a": "one\n"}) == ["a: one"]


def test_sample_descriptor(cli: Callable[..., CliResult]) -> None:
    facts = info(cli, SAMPLES / "vm.ovf")
    assert facts["item_type"] == "ovf" and facts["ovf_version"] == "1.x"
    assert facts["networks"] == [{"name": "VM Network", "description": "The VM Network network"}]
    system = facts["content"]
    assert system["kind"] == "VirtualSystem" and system["id"] == "sample-vm"
    hw = system["hardware"]
    assert (hw["system_type"], hw["cpus"], hw["memory_mib"]) == ("vmx-13", 1, 512)
    assert [(c["type"], c["subtype"]) for c in hw["controllers"]] == [
        ("Parallel SCSI HBA", "lsilogic")
    ]
    (disk,) = hw["disks"]
    assert disk["capacity_bytes"] == 64 * MiB and disk["file"] == "vm-disk1.vmdk"
    assert disk["format"].endswith("#streamOptimized") and disk["parent"] == "3"
    assert facts["files"] == [{"id": "file1", "href": "vm-disk1.vmdk", "size": 65536}]
    assert facts["signature"]["manifest"] == "vm.mf"
    assert facts["signature"]["certificate"] is None
    assert facts["problems"] == []
    text = cli("info", SAMPLES / "vm.ovf")
    assert text.code == 0
    assert "content:\n  kind: VirtualSystem\n" in text.out
    assert "    cpus: 1\n    memory_mib: 512\n" in text.out
    assert "networks:\n  - name: VM Network\n    description: The VM Network network\n" in (
        text.out
    )
    assert_indented(text.out)


def test_folder_and_ova_say_the_same(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    folder = sample_package(tmp_path / "pkg")
    from_folder = info(cli, folder)
    ova = tmp_path / "vm.ova"
    with tarfile.open(ova, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name in ("vm.ovf", "vm.mf", "vm-disk1.vmdk"):
            tar.add(folder / name, arcname=name)
    from_ova = info(cli, ova)
    assert from_ova == from_folder
    assert from_ova["content"]["hardware"]["disks"][0]["file"] == "vm-disk1.vmdk"
    assert_indented(cli("info", ova).out)


def test_virtualbox_descriptor(cli: Callable[..., CliResult]) -> None:
    facts = info(cli, DESCRIPTORS / "virtualbox7-ovf10.ovf")
    system = facts["content"]
    assert system["operating_system"] == {"id": "96", "description": "Debian_64"}
    hw = system["hardware"]
    assert (hw["system_type"], hw["cpus"], hw["memory_mib"]) == ("virtualbox-2.2", 2, 2048)
    assert [c["subtype"] for c in hw["controllers"]] == ["PIIX4", "AHCI"]
    assert [(n["subtype"], n["network"]) for n in hw["nics"]] == [("E1000", "NAT")]
    assert [(d["capacity_bytes"], d["file"]) for d in hw["disks"]] == [
        (20 << 30, "debian12-disk001.vmdk")
    ]
    assert [d["type"] for d in hw["cd_floppy"]] == ["CD Drive"]
    assert system["products"][0]["product"] == "Debian"
    assert facts["signature"] is None  # no manifest beside it


def test_vapp_descriptor_with_nested_systems(cli: Callable[..., CliResult]) -> None:
    facts = info(cli, DESCRIPTORS / "ovftool-vapp.ovf")
    vapp = facts["content"]
    assert vapp["kind"] == "VirtualSystemCollection" and vapp["id"] == "shop"
    assert [s["id"] for s in vapp["systems"]] == ["shop", "shop-db"]
    assert {n["name"] for n in facts["networks"]} == {"Frontend", "Backend"}
    (prop,) = vapp["products"][0]["properties"]
    assert prop == {
        "key": "domain",
        "type": "string",
        "default": "example.com",
        "user_configurable": True,
        "label": None,
    }
    shop = vapp["systems"][0]
    assert shop["operating_system"]["vmw_os_type"] == "rhel8_64Guest"
    assert shop["hardware"]["nics"][0]["network"] == "Frontend"
    assert shop["hardware"]["disks"][0]["capacity_bytes"] == 16 << 30
    text = cli("info", DESCRIPTORS / "ovftool-vapp.ovf").out
    assert "  systems:\n    - kind: VirtualSystem\n      id: shop\n" in text
    assert_indented(text)


def test_properties_options_eulas_and_annotation(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    text = (SAMPLES / "vm.ovf").read_text(encoding="utf-8")
    extra = """
    <ProductSection ovf:class="com.example" ovf:instance="1">
      <Info>Product</Info>
      <Product>Appliance</Product>
      <Vendor>Example</Vendor>
      <Version>2.0</Version>
      <Property ovf:key="hostname" ovf:type="string" ovf:value="appliance"
                ovf:userConfigurable="true">
        <Label>Host name</Label>
      </Property>
      <Property ovf:key="secret" ovf:type="string" ovf:password="true"
                ovf:userConfigurable="true"/>
      <Property ovf:key="build" ovf:type="uint16" ovf:value="7"/>
    </ProductSection>
    <EulaSection>
      <Info>License</Info>
      <License>
        END USER LICENSE AGREEMENT
        You may use this appliance.
      </License>
    </EulaSection>
    <AnnotationSection>
      <Info>Notes</Info>
      <Annotation>Built by the tests</Annotation>
    </AnnotationSection>
  </VirtualSystem>"""
    assert text.count("</VirtualSystem>") == 1
    text = text.replace("</VirtualSystem>", extra.lstrip("\n"), 1)
    options = """<DeploymentOptionSection>
    <Info>Sizes</Info>
    <Configuration ovf:id="small" ovf:default="true"><Label>Small</Label>
      <Description>One CPU</Description></Configuration>
    <Configuration ovf:id="large"><Label>Large</Label>
      <Description>Two CPUs</Description></Configuration>
  </DeploymentOptionSection>
  <VirtualSystem"""
    text = text.replace("<VirtualSystem", options, 1)
    cpu = "<rasd:VirtualQuantity>1</rasd:VirtualQuantity>\n      </Item>"
    large = """
      <Item ovf:configuration="large">
        <rasd:ElementName>2 virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>10</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>2</rasd:VirtualQuantity>
      </Item>"""
    assert text.count(cpu) == 1
    text = text.replace(cpu, cpu + large)
    (tmp_path / "vm.ovf").write_text(text, encoding="utf-8")
    shutil.copy(SAMPLES / "vm-disk1.vmdk", tmp_path)
    facts = info(cli, tmp_path / "vm.ovf")
    assert facts["problems"] == []
    assert facts["deployment_options"] == [
        {"id": "small", "label": "Small", "description": "One CPU", "default": True},
        {"id": "large", "label": "Large", "description": "Two CPUs", "default": False},
    ]
    system = facts["content"]
    assert system["hardware"]["cpus"] == 1
    assert system["hardware"]["by_configuration"] == {"large": {"cpus": 2}}
    (product,) = system["products"]
    assert (product["class"], product["product"], product["version"]) == (
        "com.example",
        "Appliance",
        "2.0",
    )
    assert [(p["key"], p["default"], p["user_configurable"]) for p in product["properties"]] == [
        ("hostname", "appliance", True),
        ("secret", None, True),
        ("build", "7", False),
    ]
    assert product["properties"][0]["label"] == "Host name"
    assert product["properties"][1]["password"] is True
    (eula,) = system["eulas"]
    assert eula["first_line"] == "END USER LICENSE AGREEMENT" and eula["length"] > 40
    assert system["annotation"] == "Built by the tests"


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl needed")
def test_signed_package(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    d = sample_package(tmp_path / "signed")

    def openssl(*args: str) -> bytes:
        return subprocess.run(["openssl", *args], cwd=d, capture_output=True, check=True).stdout

    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "k.pem", "-out", "c.pem",
        "-days", "30", "-subj", "/CN=info signer/O=Example",
    )  # fmt: skip
    sig = openssl("dgst", "-sha256", "-sign", "k.pem", "vm.mf")
    cert = (d / "c.pem").read_bytes()
    (d / "k.pem").unlink()
    (d / "c.pem").unlink()
    (d / "vm.cert").write_bytes(f"SHA256(vm.mf)= {sig.hex()}\n".encode() + cert)
    sig_facts = info(cli, d)["signature"]
    assert sig_facts["certificate"] == "vm.cert"
    assert sig_facts["signer"] == "O=Example,CN=info signer"
    assert sig_facts["issuer"] == "O=Example,CN=info signer"
    assert sig_facts["self_signed"] is True and sig_facts["signature_verifies"] is True
    assert sig_facts["not_before"] < sig_facts["not_after"]
    assert sig_facts["certificate_problems"] == [
        "validator.ovf.certificate.self_signed_certificate"
    ]
    # The full names and the PEM blocks as the file holds them (a server's preview).
    assert sig_facts["subject"] == "O=Example,CN=info signer"
    assert sig_facts["certificates"] == [cert.decode()]
    text = cli("info", d).out
    assert "  certificates:\n    - |\n      -----BEGIN CERTIFICATE-----\n" in text
    # The manifest changed after signing: the signer is still shown, the signature fails.
    mf = (d / "vm.mf").read_text()
    (d / "vm.mf").write_text(mf.replace("SHA256(vm.ovf)= ", "SHA256(vm.ovf)=  ", 1))
    sig_facts = info(cli, d)["signature"]
    assert sig_facts["signer"] == "O=Example,CN=info signer"
    assert sig_facts["signature_verifies"] is False
    assert "validator.ovf.certificate.bad_signature" in sig_facts["certificate_problems"]


@pytest.mark.parametrize(
    "content",
    [b"", b"<Envelope", b"<?xml version='1.0'?><notovf/>", b"\xff\xfe garbage"],
)
def test_damaged_descriptor_gives_its_facts(
    tmp_path: Path, cli: Callable[..., CliResult], content: bytes
) -> None:
    (tmp_path / "vm.ovf").write_bytes(content)
    for fmt in ("json", "text"):
        result = cli("info", "--format", fmt, tmp_path / "vm.ovf")
        assert result.code == 0 and result.err == "", result.err
        assert "Traceback" not in result.out
    facts = info(cli, tmp_path / "vm.ovf")
    assert facts["descriptor"] == "vm.ovf" and facts["problems"]
    assert "content" not in facts


def test_damaged_ova_is_a_one_line_error(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    bad = tmp_path / "noise.ova"
    bad.write_bytes(b"not a tar archive at all" * 40)
    result = cli("info", bad)
    assert result.code == 2 and result.out == ""
    assert result.err == (
        "validator: noise.ova: not a tar archive (no valid tar header at byte 0)."
        " An OVA is a tar archive: export or pack it again.\n"
    )
    good = tmp_path / "vm.ova"
    with tarfile.open(good, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name in ("vm.ovf", "vm.mf", "vm-disk1.vmdk"):
            tar.add(SAMPLES / name, arcname=name)
    cut = tmp_path / "cut.ova"
    cut.write_bytes(good.read_bytes()[:3000])
    result = cli("info", cut)
    assert result.code == 2 and result.out == ""
    assert result.err.startswith("validator: cut.ova: ") and result.err.count("\n") == 1


# -- ISO images ---------------------------------------------------------------------------


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (apt-get install {tool})")
    return path


@pytest.fixture(scope="module")
def isos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("info-iso")
    src = base / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello\n")
    (src / "boot.img").write_bytes(b"\xeb\xfe" + bytes(2046))
    efi = base / "efi.img"
    efi.write_bytes(bytes(720 * 1024))
    gen = need("genisoimage")
    builds: dict[str, list[str | Path]] = {
        "plain": [gen, "-quiet", "-V", "PLAIN_VOL", "-o", base / "plain.iso", src],
        "udf": [
            gen, "-quiet", "-udf", "-J", "-R", "-V", "UDF_VOL", "-publisher", "ACME",
            "-sysid", "LINUX", "-b", "boot.img", "-no-emul-boot", "-boot-load-size", "4",
            "-o", base / "udf.iso", src,
        ],
    }  # fmt: skip
    xorriso = shutil.which("xorriso")
    if xorriso is not None:
        builds["hybrid"] = [
            xorriso, "-as", "mkisofs", "-quiet", "-V", "HYBRID", "-r", "-J", "-c", "/boot.catalog",
            "-b", "boot.img", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
            "-eltorito-alt-boot", "-e", "--interval:appended_partition_2:::", "-no-emul-boot",
            "-append_partition", "2", "0xef", efi, "-appended_part_as_gpt",
            "-partition_offset", "16", "-o", base / "hybrid.iso", src,
        ]  # fmt: skip
    out = {}
    for name, cmd in builds.items():
        subprocess.run([str(c) for c in cmd], check=True, capture_output=True, timeout=60)
        out[name] = base / f"{name}.iso"
    return out


def test_plain_iso(isos: dict[str, Path], cli: Callable[..., CliResult]) -> None:
    facts = info(cli, isos["plain"])
    assert facts["item_type"] == "iso" and facts["volume_id"] == "PLAIN_VOL"
    assert facts["file_systems"] == ["ISO 9660"]
    assert facts["block_size"] == 2048
    assert facts["volume_bytes"] == facts["volume_blocks"] * 2048 == facts["image_bytes"]
    assert facts["boot_entries"] == [] and facts["hybrid"] is None
    assert facts["problems"] == []


def test_udf_bridge_with_el_torito(isos: dict[str, Path], cli: Callable[..., CliResult]) -> None:
    facts = info(cli, isos["udf"])
    assert (facts["volume_id"], facts["publisher"], facts["system_id"]) == (
        "UDF_VOL",
        "ACME",
        "LINUX",
    )
    assert facts["file_systems"] == ["ISO 9660", "Joliet", "Rock Ridge", "UDF", "El Torito"]
    (entry,) = facts["boot_entries"]
    assert entry == {
        "platform": "x86",
        "default": True,
        "bootable": True,
        "emulation": "no emulation",
        "load_sectors": 4,
        "image_block": entry["image_block"],
    }
    assert entry["image_block"] > 16
    text = cli("info", isos["udf"]).out
    assert "file_systems:\n  - ISO 9660\n" in text
    assert "boot_entries:\n  - platform: x86\n    default: true\n" in text
    assert_indented(text)


def test_hybrid_gpt_with_efi_entry(isos: dict[str, Path], cli: Callable[..., CliResult]) -> None:
    if "hybrid" not in isos:
        pytest.skip("xorriso is not installed (apt-get install xorriso)")
    facts = info(cli, isos["hybrid"])
    assert facts["volume_id"] == "HYBRID" and facts["hybrid"] == "GPT"
    assert [(e["platform"], e["emulation"]) for e in facts["boot_entries"]] == [
        ("x86", "no emulation"),
        ("EFI", "no emulation"),
    ]
    assert facts["boot_entries"][1]["load_sectors"] == 1440  # 720 KiB in 512-byte sectors
    assert facts["problems"] == []


def test_info_reads_metadata_only(isos: dict[str, Path]) -> None:
    from plugins.iso.describe import describe
    from plugins.iso.image import Image

    path = isos["udf"]
    with path.open("rb") as fh:
        image = Image(fh, path.stat().st_size)
        describe(image, 1_000_000)
    assert image.bytes_read < 256 * 1024


@pytest.mark.parametrize("cut", [0, 1000, 17 * 2048, 40 * 2048])
def test_damaged_iso_gives_its_facts(
    isos: dict[str, Path], tmp_path: Path, cli: Callable[..., CliResult], cut: int
) -> None:
    bad = tmp_path / "bad.iso"
    bad.write_bytes(isos["udf"].read_bytes()[:cut])
    for fmt in ("json", "text"):
        result = cli("info", "--format", fmt, bad)
        assert result.code == 0 and result.err == "", result.err
    facts = info(cli, bad)
    assert facts["problems"], facts


def test_garbage_iso_gives_its_facts(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    bad = tmp_path / "noise.iso"
    data = io.BytesIO()
    for i in range(40):
        data.write(bytes([i]) * 2048)
    bad.write_bytes(data.getvalue())
    facts = info(cli, bad)
    assert facts["problems"] == ["validator.iso.image.not_iso"]
    assert facts["file_systems"] == [] and facts["boot_entries"] == []


def test_missing_path_is_a_one_line_error(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    result = cli("info", tmp_path / "missing.iso")
    assert result.code == 2 and result.err.startswith("validator: ")
    assert result.err.count("\n") == 1
