"""Time to parse and check large OVF descriptors, by shape, and an OVF manifest of many lines.

    python bench/descriptor.py [--elements 10000 200000] [--runs 3] [--profile SHAPE]

Each shape is the sample descriptor (``samples/vm.ovf``) grown to about the
given number of elements (the default limit ``descriptor_elements`` is
200,000) in one way:

| shape | what is added |
|---|---|
| items | hardware ``Item`` elements with six ``rasd:`` children each (a big VM) |
| flat | empty unknown elements in the ``VirtualSystem`` |
| sections | ``NetworkSection`` elements (with ``Info``) at the envelope level |
| disks | ``Disk`` elements in the ``DiskSection`` |
| systems | ``VirtualSystem`` siblings: one content element too many each |
| hosts | hardware ``Item`` elements whose ``HostResource`` names no disk |

It prints the best of ``--runs`` wall times of ``read_descriptor`` (the
safe parse included) with the number of problems it keeps.  ``manifest``
runs the whole engine on the sample package whose ``vm.mf`` has 99,000 lines
listing files the package does not reference, and prints the number of
``invalid_files`` entries and the size of the JSON result.  ``--profile SHAPE``
runs one shape under cProfile instead.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lxml import etree
from validator_plugins.ovf.descriptor import read_descriptor

from validator.engine import Engine
from validator.limits import Limits

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = (ROOT / "samples" / "vm.ovf").read_text(encoding="utf-8")
ITEM = (
    "<Item><rasd:ElementName>x</rasd:ElementName><rasd:InstanceID>{id}</rasd:InstanceID>"
    "<rasd:HostResource>ovf:/disk/{disk}</rasd:HostResource>"
    "<rasd:ResourceType>17</rasd:ResourceType><rasd:Parent>3</rasd:Parent>"
    "<rasd:AddressOnParent>0</rasd:AddressOnParent></Item>"
)


def _before(marker: str, body: str) -> str:
    assert marker in SAMPLE
    return SAMPLE.replace(marker, body + marker, 1)


def items(n: int, disk: str = "vmdisk1") -> str:
    body = "".join(ITEM.format(id=i + 100, disk=disk if disk == "vmdisk1" else f"{disk}{i}")
                   for i in range(n // 7))  # fmt: skip
    return _before("</VirtualHardwareSection>", body)


SHAPES: dict[str, Callable[[int], str]] = {
    "items": items,
    "flat": lambda n: _before("</VirtualSystem>", "<a/>" * n),
    "sections": lambda n: _before(
        "<VirtualSystem ", "<NetworkSection><Info>n</Info></NetworkSection>" * (n // 2)
    ),
    "disks": lambda n: _before(
        "</DiskSection>", "".join(f'<Disk ovf:diskId="d{i}" ovf:capacity="1"/>' for i in range(n))
    ),
    "systems": lambda n: _before(
        "</Envelope>",
        "".join(
            f'<VirtualSystem ovf:id="s{i}"><Info>x</Info></VirtualSystem>' for i in range(n // 2)
        ),
    ),
    "hosts": lambda n: items(n, disk="nodisk"),
}


def element_count(data: bytes) -> int:
    return sum(1 for _ in etree.fromstring(data).iter(etree.Element))


def best_of(runs: int, call: Callable[[], object]) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(runs):
        start = time.perf_counter()
        out = call()
        best = min(best, time.perf_counter() - start)
    return best, out


def bench_descriptors(sizes: list[int], runs: int) -> None:
    limits = Limits()
    print(f"{'shape':9} {'elements':>9} {'seconds':>8} {'problems':>8}")
    for n in sizes:
        for shape, build in SHAPES.items():
            data = build(n).encode()
            seconds, desc = best_of(runs, lambda d=data: read_descriptor("vm.ovf", d, limits))
            count = element_count(data)
            problems = len(desc.problems)  # type: ignore[attr-defined]
            print(f"{shape:9} {count:9} {seconds:8.3f} {problems:8}")


def bench_manifest(runs: int, lines: int = 99_000) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for name in ("vm.ovf", "vm-disk1.vmdk", "vm.mf"):
            shutil.copy(ROOT / "samples" / name, d / name)
        listed = (d / "vm.mf").read_text(encoding="utf-8")
        ghosts = lines - len(listed.splitlines())
        zeros = "0" * 64
        extra = "".join(f"SHA256(ghost-{i:06d}.vmdk)= {zeros}\n" for i in range(ghosts))
        (d / "vm.mf").write_text(listed + extra, encoding="utf-8")
        engine = Engine()
        seconds, result = best_of(runs, lambda: engine.validate(engine.open(d)))
        size = len(json.dumps(result.to_dict()))  # type: ignore[attr-defined]
        entries = len(result.invalid_files)  # type: ignore[attr-defined]
        print(f"manifest of {lines} lines: {seconds:.3f} s, {entries} invalid_files, "
              f"{size} bytes of JSON")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, nargs="+", default=[10_000, 200_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", choices=sorted(SHAPES))
    args = parser.parse_args()
    # A few elements of the sample itself stay under the limit with 200,000.
    sizes = [min(n, Limits().descriptor_elements - 100) for n in args.elements]
    if args.profile:
        data = SHAPES[args.profile](max(sizes)).encode()
        profile = cProfile.Profile()
        profile.runcall(read_descriptor, "vm.ovf", data, Limits())
        pstats.Stats(profile).sort_stats("cumulative").print_stats(20)
        return
    bench_descriptors(sizes, args.runs)
    bench_manifest(args.runs)


if __name__ == "__main__":
    main()
