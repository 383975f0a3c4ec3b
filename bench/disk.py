"""Metadata only: validating a 10 GiB sparse qcow2 (or streamOptimized VMDK) costs what a
1 MiB one does.

Makes qcow2 images with ``qemu-img create`` (1 MiB, 1 GiB, 10 GiB: sparse,
metadata only) and one 10 GiB image with 64 MiB of data in it, and
streamOptimized VMDKs with ``qemu-img convert`` (1 MiB of random data; 10 GiB
with 4 MiB and with 64 MiB of random data), then times ``Engine.validate`` on
each (median of ``--runs``, after one warm-up run) and prints the bytes the
disk check read (``validator info``'s ``bytes_read``; for a VMDK the bytes and
reads of :class:`~validator_plugins.disk.check.VmdkMetadataCheck`), then the
wall time of the whole CLI on the smallest and the largest sparse image::

    python bench/disk.py            # --runs N, --keep DIR
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20


def build(base: Path) -> dict[str, Path]:
    out = {}
    for size in ("1M", "1G", "10G"):
        path = base / f"sparse-{size}.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
        out[f"sparse {size}"] = path
    data = base / "data.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(data), "10G"], check=True)
    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 64M", str(data)],
        check=True,
        capture_output=True,
    )
    out["10G, 64 MiB written"] = data
    for label, size, written in (
        ("1M", MiB, MiB),
        ("10G, 4 MiB written", 10 << 30, 4 * MiB),
        ("10G, 64 MiB written", 10 << 30, 64 * MiB),
    ):
        raw = base / "stream.raw"
        with raw.open("wb") as fh:
            fh.truncate(size)
            step = max(size // 8, written // 8)
            for i in range(8):  # the data in 8 pieces spread over the disk
                fh.seek(min(i * step, size - written // 8))
                fh.write(os.urandom(written // 8))
        path = base / f"stream-{len(out)}.vmdk"
        subprocess.run(
            ["qemu-img", "convert", "-q", "-f", "raw", "-O", "vmdk", "-o",
             "subformat=streamOptimized", str(raw), str(path)],
            check=True,
        )  # fmt: skip
        raw.unlink()
        out[f"VMDK stream {label}"] = path
    return out


def vmdk_read(path: Path) -> tuple[int, int]:
    """Bytes and reads the metadata-only VMDK check takes."""
    from validator_plugins.disk.check import VmdkMetadataCheck

    from validator.checks import Reporter
    from validator.limits import Limits

    check = VmdkMetadataCheck(path.name, Limits())
    report = Reporter()
    with path.open("rb") as fh:
        check.run(fh, path.stat().st_size, report)
    assert not report.problems, report.problems
    return check.bytes_read, check.reads


def vmdk_whole(path: Path) -> None:
    """The ``ovf`` adapter's VMDK checker fed every byte (how a streamOptimized disk item
    was read before it was read from its metadata)."""
    from validator_plugins.ovf.vmdk import VmdkChecker

    checker = VmdkChecker(path.name)
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            checker.feed(block)
    assert not checker.close()


def timed(work: Callable[[Path], object], path: Path, runs: int) -> list[float]:
    """Seconds of each of ``runs`` calls of ``work(path)``, after a warm-up call."""
    work(path)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work(path)
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--keep", type=Path)
    opts = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from validator_plugins.disk.check import inspect

    from validator.engine import Engine
    from validator.limits import Limits

    base = opts.keep or Path(tempfile.mkdtemp(prefix="disk-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        images = build(base)
        engine = Engine()
        print("| image | file size | validate (median) | metadata read |")
        print("|---|---:|---:|---:|")
        for label, path in images.items():
            times = []
            for i in range(opts.runs + 1):
                start = time.perf_counter()
                result = engine.validate(engine.open(path))
                elapsed = time.perf_counter() - start
                assert not result.has_errors and result.item_type == "disk", result
                if i:
                    times.append(elapsed)
            if path.suffix == ".vmdk":
                read, reads = vmdk_read(path)
                what = f"{read / 1024:,.1f} KiB in {reads} reads"
            else:
                with path.open("rb") as fh:
                    info, _ = inspect(path.name, fh, path.stat().st_size, Limits())
                what = f"{info['bytes_read'] / 1024:,.1f} KiB"
            size = path.stat().st_size
            print(
                f"| {label} | {size / MiB:,.2f} MiB | {statistics.median(times) * 1000:.2f} ms "
                f"| {what} |"
            )
        print()
        print("| VMDK | metadata read (median) | whole read (median) |")
        print("|---|---:|---:|")
        for label, path in images.items():
            if path.suffix == ".vmdk":
                meta = statistics.median(timed(vmdk_read, path, opts.runs))
                whole = statistics.median(timed(vmdk_whole, path, opts.runs))
                print(f"| {label} | {meta * 1000:.2f} ms | {whole * 1000:.2f} ms |")
        print()
        print("| image | `python -m validator IMAGE` (median, wall) |")
        print("|---|---:|")
        for label in (
            "sparse 1M",
            "sparse 10G",
            "VMDK stream 1M",
            "VMDK stream 10G, 4 MiB written",
        ):
            times = []
            for _ in range(max(5, opts.runs // 2)):
                start = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "validator", str(images[label])],
                    check=True,
                    capture_output=True,
                    cwd=ROOT,
                )
                times.append(time.perf_counter() - start)
            print(f"| {label} | {statistics.median(times) * 1000:.0f} ms |")
        return 0
    finally:
        if opts.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
