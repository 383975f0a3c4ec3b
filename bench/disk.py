"""Metadata only: validating a 10 GiB sparse qcow2 costs what a 1 MiB one does.

Makes qcow2 images with ``qemu-img create`` (1 MiB, 1 GiB, 10 GiB: sparse,
metadata only) and one 10 GiB image with 64 MiB of data in it, then times
``Engine.validate`` on each (median of ``--runs``, after one warm-up run) and
prints the bytes the disk check read (``validator info``'s ``bytes_read``), then
the wall time of the whole CLI on the smallest and the largest sparse image::

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
    return out


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
            with path.open("rb") as fh:
                info, _ = inspect(path.name, fh, path.stat().st_size, Limits())
            size = path.stat().st_size
            print(
                f"| {label} | {size / MiB:,.2f} MiB | {statistics.median(times) * 1000:.2f} ms "
                f"| {info['bytes_read'] / 1024:,.1f} KiB |"
            )
        print()
        print("| image | `python -m validator IMAGE` (median, wall) |")
        print("|---|---:|")
        for label in ("sparse 1M", "sparse 10G"):
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
