"""Every resource limit (validator/limits.py): lowered, it yields its documented message
(an invalid-file entry, or a one-line input error), never a crash and never a silent pass;
at its default the same bundle does not hit it.  docs/security.md lists every limit."""

from __future__ import annotations

import gzip
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from validator.engine import Engine
from validator.limits import Limits
from validator.session import SessionError

from .adversarial.bundles import (
    SAMPLE_DISK,
    Member,
    descriptor,
    disk_element,
    file_element,
    have,
    manifest_text,
    openssl_identity,
    package,
    sign,
    tar_bytes,
    write,
)
from .adversarial.util import CRASH_IDS, result_ids
from .conftest import ROOT


@dataclass(frozen=True)
class LimitCase:
    limit: str
    value: int
    build: Callable[[Path], Path]
    message: str
    tools: tuple[str, ...] = ()
    label: str = ""


def _many_files(d: Path) -> Path:
    package(d, extra={f"x{i}.bin": b"" for i in range(10)})
    return d


def _many_referenced(d: Path) -> Path:
    files = [file_element("file1", "vm-disk1.vmdk")]
    files += [file_element(f"f{i}", f"x{i}.bin") for i in range(10)]
    return package(d, descriptor(files), extra={f"x{i}.bin": b"" for i in range(10)})


def _session_manifest_files(d: Path) -> Path:
    package(d / "b")
    write(d, {f"f{i}": b"" for i in range(10)})
    body = "".join(f"  - {{name: f{i}}}\n" for i in range(10))
    write(d, {"s.yaml": "validator-session: 1\nitem_type: ovf\nfiles:\n" + body})
    return d / "s.yaml"


def _big_descriptor(d: Path) -> Path:
    return package(d, descriptor(system_extra="<!--" + "x" * 8000 + "-->"))


def _many_elements(d: Path) -> Path:
    return package(d, descriptor(system_extra="<Annotation/>" * 300))


def _deep(d: Path) -> Path:
    return package(d, descriptor(system_extra="<a>" * 20 + "</a>" * 20))


def _references(d: Path) -> Path:
    files = [file_element("file1", "vm-disk1.vmdk")]
    files += [file_element(f"f{i}", f"x{i}.bin") for i in range(10)]
    return package(d, descriptor(files), extra={f"x{i}.bin": b"" for i in range(10)})


def _ovf_manifest(d: Path) -> Path:
    path = package(d)
    text = manifest_text(d, ["vm.ovf", "vm-disk1.vmdk"])
    write(d, {"vm.mf": text + "\n" * 0 + "".join(text for _ in range(10))})
    return path


def _ovf_manifest_lines(d: Path) -> Path:
    path = package(d)
    write(d, {"vm.mf": manifest_text(d, ["vm.ovf", "vm-disk1.vmdk"]) * 60})
    return path


def _session_manifest_bytes(d: Path) -> Path:
    package(d / "b")
    write(d, {"s.yaml": "validator-session: 1\nfiles:\n  - {name: vm.ovf, path: b/vm.ovf}\n"
              + "# padding\n" * 400})  # fmt: skip
    return d / "s.yaml"


def _chain(d: Path) -> Path:
    path = package(d)
    write(d, {"vm.mf": manifest_text(d, ["vm.ovf", "vm-disk1.vmdk"])})
    work = d.parent / "keys"
    work.mkdir()
    key, cert = openssl_identity(work)
    pem = cert.read_text()
    signature = sign(key, d / "vm.mf")
    write(d, {"vm.cert": f"SHA256(vm.mf)= {signature}\n" + pem * 3})
    shutil.rmtree(work)
    return path


def _ova(d: Path) -> Path:
    members = [Member("vm.ovf", descriptor().encode()), Member("vm-disk1.vmdk", SAMPLE_DISK)]
    members += [Member(f"x{i}.bin", b"x") for i in range(10)]
    write(d, {"vm.ova": tar_bytes(members)})
    return d / "vm.ova"


def _iso(d: Path) -> Path:
    src = d.parent / "iso-src"
    src.mkdir()
    for i in range(30):
        (src / f"F{i}.TXT").write_text("x")
    from .adversarial.bundles import run

    run("genisoimage", "-quiet", "-J", "-R", "-o", d / "image.iso", src)
    shutil.rmtree(src)
    return d / "image.iso"


def _gzip_bomb(d: Path) -> Path:
    files = [file_element("file1", "vm-disk1.vmdk"),
             file_element("file2", "zeros.bin", ' ovf:compression="gzip"')]  # fmt: skip
    return package(d, descriptor(files), extra={"zeros.bin": gzip.compress(bytes(4 << 20), 9)})


def _qcow2(d: Path) -> Path:
    """A lone qcow2 image of 4 MiB (a disk item) with 1 MiB of data: an L2 table to read."""
    from .adversarial.bundles import run

    raw = d / "disk.raw"
    raw.write_bytes(b"\x5a" * (1 << 20) + bytes(3 << 20))
    run("qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw, d / "disk.qcow2")
    raw.unlink()
    return d / "disk.qcow2"


def _gzip_members(d: Path) -> Path:
    files = [file_element("file1", "vm-disk1.vmdk", ' ovf:compression="gzip"')]
    step = len(SAMPLE_DISK) // 16
    parts = b"".join(
        gzip.compress(SAMPLE_DISK[i : i + step]) for i in range(0, len(SAMPLE_DISK), step)
    )
    return package(d, descriptor(files), disk=parts)


CASES = [
    LimitCase("max_files", 5, _many_files, "validator.core.input.too_many_files", label="folder"),
    LimitCase("max_files", 5, _many_referenced, "validator.core.input.too_many_files",
              label="lone-descriptor"),
    LimitCase("max_files", 5, _session_manifest_files, "validator.core.input.too_many_files",
              label="session-manifest"),
    LimitCase("descriptor_bytes", 4096, _big_descriptor, "validator.ovf.limit.descriptor_size"),
    LimitCase("descriptor_elements", 100, _many_elements,
              "validator.ovf.limit.descriptor_elements"),
    LimitCase("descriptor_depth", 10, _deep, "validator.ovf.limit.descriptor_depth"),
    LimitCase("references", 5, _references, "validator.ovf.limit.references"),
    LimitCase("manifest_bytes", 1024, _ovf_manifest, "validator.ovf.manifest.too_large",
              label="ovf-manifest"),
    LimitCase("manifest_bytes", 1024, _session_manifest_bytes,
              "validator.core.manifest.too_large", label="session-manifest"),
    LimitCase("manifest_lines", 50, _ovf_manifest_lines, "validator.ovf.manifest.too_many_lines"),
    LimitCase("certificate_chain", 2, _chain, "validator.ovf.certificate.chain_too_long",
              tools=("openssl",)),
    LimitCase("archive_members", 5, _ova, "validator.ovf.ova.too_many_members"),
    LimitCase("iso_directory_records", 5, _iso, "validator.iso.directory.too_many_records",
              tools=("genisoimage",)),
    LimitCase("gzip_decompressed_bytes", 1 << 20, _gzip_bomb, "validator.ovf.gzip.too_large"),
    LimitCase("gzip_members", 4, _gzip_members, "validator.ovf.gzip.too_many_members"),
    LimitCase("disk_virtual_bytes", 1 << 20, _qcow2, "validator.disk.virtual_size_limit",
              tools=("qemu-img",)),
    LimitCase("disk_metadata_bytes", 4096, _qcow2, "validator.disk.metadata_limit",
              tools=("qemu-img",)),
]  # fmt: skip
#: Limits that bound resources without a message of their own, and where they are tested.
NOT_MESSAGES = {
    "read_chunk_bytes": "test_results_do_not_depend_on_chunk_size_or_threads",
    "threads": "test_results_do_not_depend_on_chunk_size_or_threads",
    "plugin_seconds": "tests/test_isolation.py, tests/test_engine.py (timeouts)",
}


def test_every_limit_is_tested() -> None:
    covered = {c.limit for c in CASES} | set(NOT_MESSAGES)
    assert covered == set(Limits.names())


def outcome(path: Path, limits: Limits) -> list[str]:
    engine = Engine(limits=limits)
    try:
        result = engine.validate(engine.open(path))
    except SessionError as exc:
        return [exc.message_id]
    return result_ids(result)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.limit}-{c.label}".rstrip("-"))
def test_lowered_limit_gives_its_message(case: LimitCase, tmp_path: Path) -> None:
    if any(not have(t) for t in case.tools):
        pytest.skip(f"needs {case.tools}")
    folder = tmp_path / "case"
    folder.mkdir()
    path = case.build(folder)
    lowered = outcome(path, Limits().replace(**{case.limit: case.value}))
    assert case.message in lowered
    assert not set(lowered) & set(CRASH_IDS)
    assert case.message not in outcome(path, Limits())  # the limit, not the bundle, is the cause


CLI_LIMITS = ("descriptor_elements", "descriptor_depth", "references", "manifest_lines",
              "gzip_decompressed_bytes", "gzip_members")  # fmt: skip


@pytest.mark.parametrize("case", [c for c in CASES if c.limit in CLI_LIMITS],
                         ids=lambda c: c.limit)  # fmt: skip
def test_limit_option_of_the_cli(case: LimitCase, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "case"
    folder.mkdir()
    path = case.build(folder)
    res = cli("--format", "json", "--limit", f"{case.limit.replace('_', '-')}={case.value}", path)
    assert res.code == 1 and "Traceback" not in res.err
    ids = [e["error_message"]["id"] for e in res.json()["value"]["invalid_files"]]
    assert case.message in ids


def test_results_do_not_depend_on_chunk_size_or_threads(tmp_path: Path) -> None:
    folder = tmp_path / "case"
    folder.mkdir()
    files = [file_element("file1", "vm-disk1.vmdk"),
             file_element("file2", "vm-disk2.vmdk", ' ovf:compression="gzip"')]  # fmt: skip
    disk2 = bytearray(SAMPLE_DISK)
    disk2[40000:40100] = bytes(100)  # damaged inside the stream
    package(folder, descriptor(files), extra={"vm-disk2.vmdk": gzip.compress(bytes(disk2))})
    write(folder, {"vm.mf": manifest_text(folder, ["vm.ovf", "vm-disk1.vmdk"]) + "SHA256(x)= 00\n"})
    first = Engine().validate(Engine().open(folder))
    for chunk, threads in ((4096, 1), (65536, 4), (1 << 22, 2)):
        engine = Engine(limits=Limits(read_chunk_bytes=chunk, threads=threads))
        assert engine.validate(engine.open(folder)) == first, (chunk, threads)


def test_security_doc_lists_every_limit_with_its_default() -> None:
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    for name, default in Limits.defaults().items():
        row = re.search(rf"^\| `{name}` \|[^\n]*\| `{default}` \|", text, re.MULTILINE)
        assert row, f"docs/security.md: no row for limit {name} with default {default}"


def _peak_rss_mib(args: list[str]) -> tuple[int, float]:
    """Exit status and peak resident memory (MiB) of ``python -m validator ARGS``."""
    import subprocess
    import sys

    code = (
        "import resource, subprocess, sys;"
        "p = subprocess.run([sys.executable, '-m', 'validator', *sys.argv[1:]],"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);"
        "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         timeout=300, check=True).stdout.split()  # fmt: skip
    return int(out[0]), int(out[1]) / 1024


def test_memory_stays_bounded_on_bombs(tmp_path: Path) -> None:
    """A 256 MiB gzip bomb, a descriptor of 100,000 elements and a YAML alias bomb are
    read with the default limits in a bounded amount of memory."""
    import zlib

    bomb = tmp_path / "bomb"
    bomb.mkdir()
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    data = b"".join(comp.compress(block) for _ in range(256)) + comp.flush()
    files = [file_element("file1", "vm-disk1.vmdk"),
             file_element("file2", "zeros.vmdk", ' ovf:compression="gzip"')]  # fmt: skip
    disks = [disk_element(), disk_element("d2", "file2")]
    package(bomb, descriptor(files, disks), extra={"zeros.vmdk": data})
    code, peak = _peak_rss_mib([str(bomb)])
    assert code == 1 and peak < 200, peak

    many = tmp_path / "many"
    many.mkdir()
    package(many, descriptor(system_extra="<a/>" * 100_000))
    code, peak = _peak_rss_mib([str(many)])
    assert code in (0, 1) and peak < 300, peak

    aliases = tmp_path / "aliases"
    aliases.mkdir()
    text = "validator-session: 1\nx: &a [" + ",".join(["1"] * 50) + "]\n"
    text += "".join(f"{c}: &{c} [" + ",".join([f"*{p}"] * 50) + "]\n"
                    for p, c in zip("abcdefgh", "bcdefghi", strict=True))  # fmt: skip
    text += "files: [*i]\n"
    write(aliases, {"s.yaml": text})
    code, peak = _peak_rss_mib([str(aliases / "s.yaml")])
    assert code == 2 and peak < 200, peak


def test_problem_order_does_not_depend_on_chunk_size(tmp_path: Path) -> None:
    """A damaged disk's problems came in the order the chunks cut its bytes (the embedded
    descriptor's before or after a bad marker); now in the order of stream positions."""
    from .adversarial.fuzz import REGRESSIONS, _signed_bundle

    raw = (REGRESSIONS / "bundle" / "4dea915e36d74bcd.bin").read_bytes()
    name, _, content = raw.partition(b"\0")
    folder = tmp_path / "bundle"
    _signed_bundle(folder)
    (folder / name.decode()).write_bytes(content)
    results = []
    for chunk in (4096, 5000, 1 << 16, 1 << 20):  # 5000: chunks that cut sectors
        engine = Engine(limits=Limits(read_chunk_bytes=chunk))
        results.append(engine.validate(engine.open(folder)))
    assert results[0].invalid_files and all(r == results[0] for r in results)


def test_readme_limit_table_matches_the_declarations() -> None:
    """Every limit is in the README's table, under the plugin that declares it."""
    from validator.limits import declared

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("| limit | default | declared by |", 1)[1].split("\n\n", 1)[0]
    documented: dict[str, str] = {}
    for row in table.splitlines()[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        for name in re.findall(r"`(\w+)`", cells[0]):
            documented[name] = cells[-1]
    assert documented == {lim.name: plugin for plugin, lim in declared()}


def test_plugins_declare_their_limits(cli) -> None:  # type: ignore[no-untyped-def]
    """OVF and ISO limits are the adapters' own; `validator limits` groups them."""
    from validator.limits import CORE_LIMITS, declared

    owners = {lim.name: plugin for plugin, lim in declared()}
    assert owners["descriptor_bytes"] == "ovf" and owners["iso_directory_records"] == "iso"
    assert {lim.name for lim in CORE_LIMITS} == {n for n, p in owners.items() if p == "core"}
    out = cli("limits").out
    assert out.index("# core") < out.index("# iso") < out.index("iso_directory_records=")
    assert out.index("# ovf") < out.index("descriptor_bytes=16777216")
    # --limit still takes a plugin's limit, and refuses an unknown one.
    assert Limits().with_assignment("descriptor-bytes=10").descriptor_bytes == 10


def test_a_second_declaration_of_a_name_is_refused(make_registry) -> None:  # type: ignore[no-untyped-def]
    from validator.hookspecs import hookimpl
    from validator.limits import Limit

    class Greedy:
        @hookimpl
        def validator_limits(self):  # type: ignore[no-untyped-def]
            return [Limit("descriptor_bytes", 1, "mine now")]

    reg = make_registry(("greedy", Greedy()))
    refused = ("validator.core.registry.duplicate_limit", ("greedy", "descriptor_bytes"))
    assert refused in reg.problems
    assert Limits().descriptor_bytes == 16 << 20


def test_limits_survive_pickling() -> None:
    """A batch sends its limits to worker processes (and Dask workers) by pickle."""
    import pickle

    from validator.limits import Limits

    changed = Limits(max_files=5, plugin_seconds=7)
    back = pickle.loads(pickle.dumps(changed))
    assert back == changed and back.max_files == 5 and back.plugin_seconds == 7
    assert back.read_chunk_bytes == Limits().read_chunk_bytes
