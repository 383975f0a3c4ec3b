"""Long lists of problems: at most PER_KIND of one kind on one file, then one
``validator.ovf.problems.not_listed`` with how many more (plugins/ovf/problems.py).

The large cases (a 99,000-line manifest, descriptors near the 200,000-element
limit) check that the result is right and bounded; how long they take is
measured by bench/descriptor.py, not here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from validator_plugins.ovf.descriptor import read_descriptor
from validator_plugins.ovf.problems import (
    NOT_LISTED,
    PER_KIND,
    CappedCheck,
    CappedReporter,
    Tally,
    capped_check,
)

from validator.checks import CheckContext, Reporter, StreamCheck
from validator.engine import Engine
from validator.limits import Limits

from .conftest import SAMPLES
from .disks import edit_descriptor
from .ovf_packages import DISK, check, file_xml, manifest_text, sample_package, write_ovf

MF = "vm.mf"
SAMPLE_OVF = (SAMPLES / "vm.ovf").read_text(encoding="utf-8")
LIMIT = Limits().descriptor_elements


def grown(marker: str, extra: str) -> bytes:
    """The sample descriptor with ``extra`` inserted before ``marker``."""
    assert marker in SAMPLE_OVF
    return SAMPLE_OVF.replace(marker, extra + marker, 1).encode()


def sample_elements() -> int:
    from lxml import etree

    return sum(1 for _ in etree.fromstring(SAMPLE_OVF.encode()).iter(etree.Element))


# -- the mechanism ------------------------------------------------------------------


def test_tally_admits_the_first_of_each_kind_and_counts_the_rest() -> None:
    tally: Tally[str] = Tally(2)
    admitted = [tally.admit(k) for k in "aabacab"]
    assert admitted == [True, True, True, False, True, False, True]
    assert tally.not_listed() == [("a", 2)]


def test_capped_reporter_caps_per_file_and_message_id() -> None:
    inner = Reporter()
    with CappedReporter(inner, per_kind=2) as report:
        for i in range(5):
            report.error("a.mf", "x.one", i)
            report.error("b.mf", "x.one", i)  # another file: a kind of its own
        report.error("a.mf", "x.two", 0)
        for i in range(3):
            report.warning("a.cert", "x.warn", i)
    got = [(p.name, p.message_id, p.args, p.warning) for p in inner.problems]
    assert got == [
        ("a.mf", "x.one", ("0",), False),
        ("b.mf", "x.one", ("0",), False),
        ("a.mf", "x.one", ("1",), False),
        ("b.mf", "x.one", ("1",), False),
        ("a.mf", "x.two", ("0",), False),
        ("a.cert", "x.warn", ("0",), True),
        ("a.cert", "x.warn", ("1",), True),
        ("a.mf", NOT_LISTED, ("a.mf", "3", "x.one", "2"), False),
        ("b.mf", NOT_LISTED, ("b.mf", "3", "x.one", "2"), False),
        # the summary of warnings is a warning: it does not make an item invalid
        ("a.cert", NOT_LISTED, ("a.cert", "1", "x.warn", "2"), True),
    ]


def test_summaries_are_not_capped() -> None:
    """The descriptor summarises while it is read: one per kind, however many kinds."""
    inner = Reporter()
    with CappedReporter(inner, per_kind=1) as report:
        for kind in ("x.a", "x.b", "x.c"):
            report.error("vm.ovf", NOT_LISTED, "vm.ovf", 5, kind, 1)
    assert [p.args[2] for p in inner.problems] == ["x.a", "x.b", "x.c"]


def test_capped_reporter_adds_nothing_when_the_hook_fails() -> None:
    inner = Reporter()
    with pytest.raises(RuntimeError), CappedReporter(inner, per_kind=1) as report:
        report.error("a", "x.one")
        report.error("a", "x.one")
        raise RuntimeError
    assert [p.message_id for p in inner.problems] == ["x.one"]


class Noisy(StreamCheck):
    label = "noisy"

    def __init__(self) -> None:
        self.seen = 0

    def update(self, data: memoryview) -> None:
        self.seen += len(data)

    def finish(self, report: Reporter) -> None:
        for i in range(PER_KIND + 5):
            report.error("disk.vmdk", "x.line", i)


def test_capped_check_caps_what_a_check_of_the_pass_reports() -> None:
    ctx = CheckContext(item_type="ovf", limits=Limits())
    inner = Noisy()
    check = capped_check(inner, ctx)
    assert isinstance(check, CappedCheck) and check.label == "noisy"
    assert capped_check(inner, ctx) is check  # a check shared by chunks: one wrapper
    check.update(memoryview(b"abc"))
    report = Reporter()
    check.finish(report)
    assert inner.seen == 3
    assert [p.message_id for p in report.problems] == ["x.line"] * PER_KIND + [NOT_LISTED]
    assert report.problems[-1].args == ("disk.vmdk", "5", "x.line", str(PER_KIND))


# -- the manifest -------------------------------------------------------------------


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("caps")


def test_manifest_of_99000_unreferenced_lines_is_summarised(root: Path) -> None:
    d = sample_package(root / "ghosts")
    listed = (d / MF).read_text(encoding="utf-8")
    ghosts = 99_000 - len(listed.splitlines())
    zeros = "0" * 64
    extra = "".join(f"SHA256(ghost-{i:06d}.vmdk)= {zeros}\n" for i in range(ghosts))
    (d / MF).write_text(listed + extra, encoding="utf-8")
    out = check(d)
    unreferenced = "validator.ovf.manifest.unreferenced"
    assert out.errors == [(MF, unreferenced)] * PER_KIND + [(MF, NOT_LISTED)]
    # the first lines, in order, then how many more
    first_line = len(listed.splitlines()) + 1
    assert out.args(unreferenced) == [
        (MF, f"ghost-{i:06d}.vmdk", str(first_line + i)) for i in range(PER_KIND)
    ]
    assert out.args(NOT_LISTED) == [(MF, str(ghosts - PER_KIND), unreferenced, str(PER_KIND))]
    assert out.missing == [] and out.warnings == []
    assert len(json.dumps(out.result.to_dict())) < 20_000  # was 26 MB


def test_each_kind_is_capped_on_its_own(root: Path) -> None:
    """Files the manifest does not list, and lines it should not have: two kinds, two caps."""
    d = sample_package(root / "two-kinds", manifest=False)
    names = [f"x{i:02d}.bin" for i in range(30)]
    for name in names:
        (d / name).write_bytes(name.encode())
    write_ovf(d, file_xml(), *(file_xml(n, f"f{n}", size=7) for n in names))
    zeros = "0" * 64
    ghosts = "".join(f"SHA256(ghost{i}.vmdk)= {zeros}\n" for i in range(25))
    (d / MF).write_text(manifest_text(d, ["vm.ovf", DISK]) + ghosts, encoding="utf-8")
    out = check(d)
    unlisted = "validator.ovf.manifest.unlisted"
    unreferenced = "validator.ovf.manifest.unreferenced"
    assert out.ids.count(unlisted) == PER_KIND
    assert out.args(unlisted)[0] == (MF, "x00.bin")
    assert out.ids.count(unreferenced) == PER_KIND
    assert sorted(out.args(NOT_LISTED)) == [
        (MF, "10", unlisted, str(PER_KIND)),
        (MF, "5", unreferenced, str(PER_KIND)),
    ]


def test_problems_on_different_files_are_all_listed(root: Path) -> None:
    """One problem on each of 30 files: every invalid file is named, nothing is merged."""
    d = sample_package(root / "sizes", manifest=False)
    names = [f"y{i:02d}.bin" for i in range(30)]
    for name in names:
        (d / name).write_bytes(b"abc")
    write_ovf(d, file_xml(), *(file_xml(n, f"f{n}", size=4) for n in names))
    out = check(d)
    assert sorted(n for n, i in out.errors if i == "validator.ovf.size.mismatch") == names
    assert NOT_LISTED not in out.ids


def test_bad_lines_keep_their_own_summary(root: Path) -> None:
    """Grammar problems are one group (more_problems), as before; not_listed is not added."""
    d = sample_package(root / "bad-lines")
    with (d / MF).open("a", encoding="utf-8") as fh:
        fh.write("bad\n" * 30 + "SHA256(vm.ovf)= " + "0" * 64 + "\n")  # 31 bad lines
    out = check(d)
    assert out.ids.count("validator.ovf.manifest.malformed") == PER_KIND
    assert out.args("validator.ovf.manifest.more_problems") == [(MF, "11")]
    assert NOT_LISTED not in out.ids


# -- the descriptor -----------------------------------------------------------------


def test_descriptor_near_the_element_limit_with_one_problem_per_element() -> None:
    """100,000 VirtualSystem siblings (was 55 s: a list lookup per child): 20 listed."""
    systems = (LIMIT - sample_elements()) // 4
    hardware = "<VirtualHardwareSection><Info>h</Info></VirtualHardwareSection>"
    extra = "".join(f'<VirtualSystem ovf:id="s{i}"><Info>x</Info>{hardware}</VirtualSystem>'
                    for i in range(systems))  # fmt: skip
    desc = read_descriptor("vm.ovf", grown("</Envelope>", extra), Limits())
    assert desc.parsed
    multiple = "validator.ovf.content.multiple"
    assert [m for m, _ in desc.problems] == [multiple] * PER_KIND + [NOT_LISTED]
    assert desc.problems[-1] == (NOT_LISTED, ("vm.ovf", systems - PER_KIND, multiple, PER_KIND))
    assert [f.href for f in desc.files] == [DISK] and [d.id for d in desc.disks] == ["vmdisk1"]


def test_descriptor_problems_of_several_kinds_are_capped_each() -> None:
    items = "".join(
        f"<Item><rasd:HostResource>ovf:/disk/none{i}</rasd:HostResource>"
        f"<rasd:InstanceID>d{i}</rasd:InstanceID><rasd:ResourceType>17</rasd:ResourceType></Item>"
        f"<Item><rasd:HostResource>ovf:/file/none{i}</rasd:HostResource>"
        f"<rasd:InstanceID>f{i}</rasd:InstanceID><rasd:ResourceType>15</rasd:ResourceType></Item>"
        for i in range(20_000)
    )
    disks = "".join(f'<Disk ovf:diskId="d{i}"/>' for i in range(25))
    data = (
        grown("</VirtualHardwareSection>", items)
        .decode()
        .replace("</DiskSection>", disks + "</DiskSection>")
    )
    desc = read_descriptor("vm.ovf", data.encode(), Limits())
    ids = [m for m, _ in desc.problems]
    for kind in ("validator.ovf.hardware.unknown_disk", "validator.ovf.hardware.unknown_file",
                 "validator.ovf.disk.no_capacity"):  # fmt: skip
        assert ids.count(kind) == PER_KIND, kind
    summaries = {args[2]: args[1] for m, args in desc.problems if m == NOT_LISTED}
    assert summaries == {
        "validator.ovf.disk.no_capacity": 5,
        "validator.ovf.hardware.unknown_disk": 20_000 - PER_KIND,
        "validator.ovf.hardware.unknown_file": 20_000 - PER_KIND,
    }
    assert ids[-3:] == [NOT_LISTED] * 3  # after every listed problem


def test_large_valid_descriptor_is_read_completely() -> None:
    """Near the element limit, a valid descriptor: nothing reported, every part read."""
    item = ("<Item><rasd:ElementName>x</rasd:ElementName><rasd:InstanceID>x{i}</rasd:InstanceID>"
            "<rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>"
            "<rasd:ResourceType>17</rasd:ResourceType></Item>")  # fmt: skip
    count = (LIMIT - sample_elements()) // 5
    data = grown("</VirtualHardwareSection>", "".join(item.format(i=i) for i in range(count)))
    desc = read_descriptor("vm.ovf", data, Limits())
    assert desc.parsed and desc.problems == []
    assert [(f.id, f.href, f.size) for f in desc.files] == [("file1", DISK, 65536)]
    assert [(d.id, d.capacity_bytes) for d in desc.disks] == [("vmdisk1", 64 << 20)]
    # one element more than the limit is refused, as before
    over = grown("</VirtualHardwareSection>", "<a/>" * (LIMIT - sample_elements() + 1))
    assert read_descriptor("vm.ovf", over, Limits()).problems == [
        ("validator.ovf.limit.descriptor_elements", (LIMIT,))
    ]


def test_descriptor_problems_are_capped_in_a_validation(tmp_path: Path) -> None:
    d = tmp_path / "pkg"
    d.mkdir()
    shutil.copy(SAMPLES / DISK, d / DISK)
    items = "".join(f"<Item><rasd:HostResource>ovf:/disk/x{i}</rasd:HostResource>"
                    f"<rasd:InstanceID>x{i}</rasd:InstanceID><rasd:ResourceType>17</rasd:ResourceType>"
                    "</Item>" for i in range(500))  # fmt: skip
    (d / "vm.ovf").write_bytes(grown("</VirtualHardwareSection>", items))
    out = check(d)
    unknown = "validator.ovf.hardware.unknown_disk"
    assert out.errors == [("vm.ovf", unknown)] * PER_KIND + [("vm.ovf", NOT_LISTED)]
    assert out.args(NOT_LISTED) == [("vm.ovf", str(500 - PER_KIND), unknown, str(PER_KIND))]
    summary = out.result.invalid_files[-1].error_message.default_message
    assert "480" in summary and unknown in summary


# -- chunks implied by every reference together ---------------------------------------


def test_chunks_of_all_references_together_are_bounded_by_max_files(root: Path) -> None:
    """Each reference may imply up to max_files chunks; 200 of them implied two million
    missing names (860 MB). Past max_files in total, a reference's chunks are not listed."""
    d = sample_package(root / "chunk-budget", manifest=False)
    refs = [file_xml(f"x{i}.bin", f"f{i}", size=9999, chunk=1) for i in range(200)]
    write_ovf(d, file_xml(), *refs)
    out = check(d)
    total = "validator.ovf.chunk.too_many_total"
    # the first reference's 9,999 chunks fit in max_files (10,000); each later one
    # needs at least its first chunk, as when a reference has too many chunks by itself
    first = [f"x0.bin.{i:09d}" for i in range(9999)]
    assert out.missing == sorted(first + [f"x{i}.bin.000000000" for i in range(1, 200)])
    assert out.errors == [("vm.ovf", total)] * PER_KIND + [("vm.ovf", NOT_LISTED)]
    assert out.args(total)[0] == ("x1.bin", "9999", "1", "10000")
    assert out.args(NOT_LISTED) == [("vm.ovf", str(199 - PER_KIND), total, str(PER_KIND))]


def test_chunk_budget_with_a_lower_max_files(root: Path) -> None:
    """a.bin: 6 chunks, all there; b.bin: 5 chunks by its size, one there (9 files)."""
    d = sample_package(root / "chunk-budget-small", manifest=False)
    for i in range(6):
        (d / f"a.bin.{i:09d}").write_bytes(b"xx")
    (d / "b.bin.000000000").write_bytes(b"xx")
    write_ovf(d, file_xml(), file_xml("a.bin", "fa", size=12, chunk=2),
              file_xml("b.bin", "fb", size=10, chunk=2))  # fmt: skip
    assert check(d).missing == [f"b.bin.{i:09d}" for i in range(1, 5)]
    out = check(d, limits=Limits(max_files=10))  # 6 + 5 chunks: b.bin's are not listed
    assert out.errors == [("vm.ovf", "validator.ovf.chunk.too_many_total")]
    assert out.args("validator.ovf.chunk.too_many_total") == [("b.bin", "10", "2", "10")]
    assert out.missing == []  # the chunks of b.bin that are there are taken, in order


# -- problems found in the pass (the disk checks) ---------------------------------------

BAD_LINE = "validator.ovf.vmdk.descriptor_bad_line"


def noisy_disk(folder: Path) -> Path:
    """The sample package; its disk's embedded descriptor has 1,000 lines that are not
    ``key=value`` (a megabyte of them gave 524,242 problems)."""
    d = sample_package(folder, manifest=False)
    edit_descriptor(d / DISK, "# Disk DescriptorFile", "# Disk DescriptorFile\n" + "x\n" * 1000)
    return d


def test_disk_check_problems_are_capped(root: Path) -> None:
    out = check(noisy_disk(root / "noisy-disk"))
    assert out.errors == [(DISK, BAD_LINE)] * PER_KIND + [(DISK, NOT_LISTED)]
    assert out.args(NOT_LISTED) == [(DISK, str(1000 - PER_KIND), BAD_LINE, str(PER_KIND))]


def test_disk_check_problems_are_capped_on_an_ova_from_a_pipe(root: Path) -> None:
    import io
    import tarfile

    from validator_plugins.ovf.ova import open_stream

    d = noisy_disk(root / "noisy-pipe")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in ("vm.ovf", DISK):
            tar.add(d / name, name)
    engine = Engine(limits=Limits())
    result = engine.validate(open_stream(io.BytesIO(raw.getvalue()), "-", Limits()))
    ids = [e.error_message.id for e in result.invalid_files]
    assert ids == [BAD_LINE] * PER_KIND + [NOT_LISTED]


def test_the_vmdk_checker_itself_keeps_only_the_first_of_a_kind(root: Path) -> None:
    """The checker counts what it does not keep: memory and time stay bounded by the
    cap, not by the number of bad lines (the engine-level caps came after it)."""
    from validator_plugins.ovf.vmdk import VmdkChecker

    d = noisy_disk(root / "noisy-checker")
    checker = VmdkChecker(DISK)
    data = (d / DISK).read_bytes()
    for at in range(0, len(data), 4096):
        checker.feed(data[at : at + 4096])
    assert len(checker.problems) == PER_KIND
    problems = checker.close()
    assert [mid for mid, _ in problems] == [BAD_LINE] * PER_KIND + [NOT_LISTED]
    assert problems[-1][1] == (DISK, 1000 - PER_KIND, BAD_LINE, PER_KIND)
    assert checker.close() == problems  # closing again adds no second summary
