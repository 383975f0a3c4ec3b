"""The OVF manifest (<base>.mf): strict grammar, listing, digests from the single pass;
session checksums (checksum_info) on OVF packages; every file read once."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from validator.limits import Limits
from validator.session import PathSource

from .ovf_packages import (
    DISK,
    check,
    file_xml,
    manifest_text,
    sample_package,
    write_manifest,
    write_ovf,
)

MF = "vm.mf"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("manifest")


def with_manifest(root: Path, name: str, text: str | bytes) -> Path:
    d = sample_package(root / name, manifest=False)
    data = text.encode() if isinstance(text, str) else text
    (d / MF).write_bytes(data)
    return d


def good(root: Path, alg: str = "SHA256") -> str:
    d = sample_package(root / f"ref-{alg}", manifest=False)
    return manifest_text(d, ["vm.ovf", DISK], alg)


def test_sample_manifest_is_valid(root: Path) -> None:
    out = check(sample_package(root / "sample"))
    assert out.errors == [] and out.warnings == []


@pytest.mark.parametrize("alg", ["SHA1", "SHA256", "SHA512"])
def test_every_algorithm(root: Path, alg: str) -> None:
    assert check(with_manifest(root, f"alg-{alg}", good(root, alg))).errors == []


def test_openssl_r_output_converted(root: Path) -> None:
    """A manifest made with ``openssl dgst -sha256 -r`` (``hex *name``) turned into OVF lines."""
    if not shutil.which("openssl"):
        pytest.skip("openssl needed")
    d = sample_package(root / "openssl", manifest=False)
    proc = subprocess.run(
        ["openssl", "dgst", "-sha256", "-r", "vm.ovf", DISK],
        cwd=d,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [ln.split(" *", 1) for ln in proc.stdout.splitlines()]
    (d / MF).write_text("".join(f"SHA256({n})= {h}\n" for h, n in lines))
    assert check(d).errors == []


def test_crlf_and_missing_final_newline_are_accepted(root: Path) -> None:
    text = good(root)
    assert check(with_manifest(root, "crlf", text.replace("\n", "\r\n"))).errors == []
    assert check(with_manifest(root, "nofinal", text.rstrip("\n"))).errors == []
    upper = "".join(
        ln.split("= ")[0] + "= " + ln.split("= ")[1].upper() for ln in text.splitlines(True)
    )
    assert check(with_manifest(root, "upperhex", upper)).errors == []


def test_digest_mismatch_names_both_digests(root: Path) -> None:
    text = good(root)
    d = sample_package(root / "mismatch", manifest=False)
    (d / MF).write_text(text)
    (d / "vm.ovf").write_text((d / "vm.ovf").read_text() + "\n")
    out = check(d)
    assert out.errors == [("vm.ovf", "validator.ovf.manifest.digest_mismatch")]
    name, alg, listed, actual, mf = out.args("validator.ovf.manifest.digest_mismatch")[0]
    assert (name, alg, mf) == ("vm.ovf", "SHA256", MF)
    assert actual == hashlib.sha256((d / "vm.ovf").read_bytes()).hexdigest()
    assert listed != actual and listed in text


def test_unlisted_file_and_descriptor(root: Path) -> None:
    text = good(root)
    disk_line = [ln for ln in text.splitlines(True) if DISK in ln]
    out = check(with_manifest(root, "unlisted", "".join(disk_line)))
    assert out.errors == [(MF, "validator.ovf.manifest.unlisted")]
    assert out.args("validator.ovf.manifest.unlisted") == [(MF, "vm.ovf")]
    ovf_line = [ln for ln in text.splitlines(True) if "vm.ovf" in ln]
    out = check(with_manifest(root, "unlisted2", "".join(ovf_line)))
    assert out.args("validator.ovf.manifest.unlisted") == [(MF, DISK)]


def test_listed_but_unreferenced(root: Path) -> None:
    extra = "SHA256(other.iso)= " + "0" * 64 + "\n"
    out = check(with_manifest(root, "unref", good(root) + extra))
    assert out.errors == [(MF, "validator.ovf.manifest.unreferenced")]
    assert out.args("validator.ovf.manifest.unreferenced") == [(MF, "other.iso", "3")]
    selfline = "SHA256(vm.mf)= " + "0" * 64 + "\n"
    assert check(with_manifest(root, "unref-self", good(root) + selfline)).ids == [
        "validator.ovf.manifest.unreferenced"
    ]


@pytest.mark.parametrize(
    "line",
    [
        "SHA2-256(vm.ovf)= {h}",  # OpenSSL 3 writes this
        "MD5(vm.ovf)= {h}",
        "sha256(vm.ovf)= {h}",
    ],
)
def test_unknown_algorithm(root: Path, line: str) -> None:
    h = hashlib.sha256(b"").hexdigest()
    text = good(root) + line.format(h=h) + "\n"
    out = check(with_manifest(root, "alg-" + line[:4], text))
    assert out.ids == ["validator.ovf.manifest.bad_algorithm"]


@pytest.mark.parametrize(
    "line",
    [
        "SHA256(vm.ovf)={h}",  # no space after '='
        "SHA256(vm.ovf)=  {h}",  # two spaces
        "SHA256(vm.ovf) = {h}",  # space before '='
        "SHA256 (vm.ovf)= {h}",  # space before '('
        "SHA256(vm.ovf)= {h} ",  # trailing space
        "SHA256(vm.ovf)= {h}x",  # not hex
        "SHA256()= {h}",  # no name
        "SHA256(vm.ovf)=\t{h}",
        "{h}  vm.ovf",  # sha256sum format
        "garbage",
        "",  # an empty line between entries
    ],
)
def test_malformed_lines(root: Path, line: str) -> None:
    h = hashlib.sha256(b"").hexdigest()
    text = good(root) + line.format(h=h) + "\nSHA256(x)= " + h + "\n"
    out = check(with_manifest(root, f"malformed-{abs(hash(line))}", text))
    assert "validator.ovf.manifest.malformed" in out.ids
    assert out.args("validator.ovf.manifest.malformed")[0][1] == "3"


def test_spaces_around_the_name(root: Path) -> None:
    text = good(root).replace(f"({DISK})", f"( {DISK} )")
    out = check(with_manifest(root, "spaces", text))
    assert ("validator.ovf.manifest.name_spaces") in out.ids
    # the entry is refused, so the disk is not listed either
    assert out.args("validator.ovf.manifest.unlisted") == [(MF, DISK)]


def test_duplicate_line(root: Path) -> None:
    text = good(root)
    out = check(with_manifest(root, "dup", text + text.splitlines(True)[0]))
    assert out.ids == ["validator.ovf.manifest.duplicate"]
    assert out.args("validator.ovf.manifest.duplicate") == [(MF, "vm.ovf", "3", "1")]


def test_digest_of_the_wrong_length(root: Path) -> None:
    text = good(root).replace("SHA256(vm.ovf)", "SHA1(vm.ovf)")
    out = check(with_manifest(root, "length", text))
    assert "validator.ovf.manifest.bad_digest_length" in out.ids


def test_not_utf8_line(root: Path) -> None:
    out = check(with_manifest(root, "latin1", good(root).encode() + b"SHA256(\xff)= 00\n"))
    assert "validator.ovf.manifest.malformed" in out.ids


def test_many_bad_lines_are_summarised(root: Path) -> None:
    out = check(with_manifest(root, "many", good(root) + "bad\n" * 500))
    assert out.ids.count("validator.ovf.manifest.malformed") == 20
    assert out.args("validator.ovf.manifest.more_problems") == [(MF, "480")]


def test_limits(root: Path) -> None:
    d = with_manifest(root, "limits", good(root))
    out = check(d, limits=Limits().replace(manifest_bytes=50))
    assert out.ids == ["validator.ovf.manifest.too_large"]
    out = check(d, limits=Limits().replace(manifest_lines=1))
    assert out.ids == ["validator.ovf.manifest.too_many_lines"]


def test_chunks_must_be_listed_each(root: Path) -> None:
    d = sample_package(root / "chunks", manifest=False)
    data = (d / DISK).read_bytes()
    (d / DISK).unlink()
    for i in range(2):
        (d / f"{DISK}.{i:09d}").write_bytes(data[i * 32768 : (i + 1) * 32768])
    write_ovf(d, file_xml(size=65536, chunk=32768))
    write_manifest(d)
    assert check(d).errors == []
    write_manifest(d, ["vm.ovf", f"{DISK}.000000000"])
    out = check(d)
    assert out.args("validator.ovf.manifest.unlisted") == [(MF, f"{DISK}.000000001")]
    (d / f"{DISK}.000000001").write_bytes(b"x" * 32768)
    write_manifest(d)
    (d / f"{DISK}.000000001").write_bytes(data[32768:])
    out = check(d)
    assert (f"{DISK}.000000001", "validator.ovf.manifest.digest_mismatch") in out.errors


def test_manifest_of_a_broken_descriptor_still_checks_digests(root: Path) -> None:
    d = sample_package(root / "brokenxml", manifest=False)
    (d / "vm.ovf").write_text("<Envelope")
    (d / MF).write_text(f"SHA256(vm.ovf)= {'0' * 64}\n")
    out = check(d)
    assert ("vm.ovf", "validator.ovf.manifest.digest_mismatch") in out.errors


# -- session checksums (checksum_info) on an OVF package -----------------------------


def test_session_checksum_mismatch_and_manifest_in_one_pass(root: Path) -> None:
    d = sample_package(root / "session")
    disk_sha1 = hashlib.sha1((d / DISK).read_bytes()).hexdigest()
    (d / "s.yaml").write_text(
        "validator-session: 1\nitem_type: ovf\nfiles:\n"
        "  - name: vm.ovf\n"
        f"    checksum_info: {{algorithm: MD5, checksum: '{'0' * 32}'}}\n"
        f"  - name: {DISK}\n"
        f"    checksum_info: {{algorithm: SHA1, checksum: '{disk_sha1}'}}\n"
        "  - name: vm.mf\n"
    )
    out = check(d / "s.yaml")
    assert out.errors == [("vm.ovf", "validator.core.file.checksum_mismatch")]
    assert out.args("validator.core.file.checksum_mismatch")[0][1] == "MD5"


def test_every_file_is_opened_once(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Manifest digests, session checksums and content checks share one read per file."""
    d = sample_package(root / "once", manifest=False)
    write_manifest(d, alg="SHA512")
    opened: list[str] = []
    real = PathSource.open

    def counting(self: PathSource):  # type: ignore[no-untyped-def]
        opened.append(self.path.name)
        return real(self)

    monkeypatch.setattr(PathSource, "open", counting)
    out = check(d)
    assert out.errors == []
    assert opened.count(DISK) == 1 and opened.count(MF) == 1
    # The descriptor is parsed before the pass (read_small) and hashed in it: a
    # small file read twice (the engine could hash it from the cached bytes).
    assert opened.count("vm.ovf") <= 2


# -- OVA archives: the same manifest checks, also when the manifest comes last ------------


@pytest.mark.skipif(not shutil.which("tar"), reason="GNU tar needed")
@pytest.mark.parametrize("order", ["head", "end"])
def test_ova_manifest_mismatch_from_file_and_stdin(root: Path, order: str) -> None:
    from .conftest import run_module

    d = sample_package(root / f"ova-{order}")
    text = (d / MF).read_text()
    (d / MF).write_text(text.replace(f"SHA256({DISK})= 3", f"SHA256({DISK})= 4"))
    members = ["vm.ovf", MF, DISK] if order == "head" else ["vm.ovf", DISK, MF]
    subprocess.run(["tar", "--format=ustar", "-cf", "vm.ova", *members], cwd=d, check=True)
    ova = d / "vm.ova"
    out = check(ova)
    assert out.errors == [(DISK, "validator.ovf.manifest.digest_mismatch")]
    proc = run_module("--format", "json", "-", input=ova.read_bytes())
    import json

    doc = json.loads(proc.stdout)
    assert [(e["name"], e["error_message"]["id"]) for e in doc["value"]["invalid_files"]] == [
        (DISK, "validator.ovf.manifest.digest_mismatch")
    ]
