"""ISO adapter throughput: a 1 GiB image against `openssl dgst -sha256`, measured in the same run.

    python bench/iso.py [--size-mib N] [--runs N] [--keep]

Builds a 1 GiB image (genisoimage over a sparse file) in a temporary folder
under bench/work/, then prints the wall times (best of RUNS, page cache warm)
and their ratios to openssl:

- validating it without a declared checksum (metadata only; target: a small fraction);
- validating it through a session manifest that declares its SHA-256
  (one streaming pass; target: at most 1.15x openssl).

Both are measured in-process (`Engine.validate`, plugins already loaded) and
through the CLI (`python -m validator`, start-up included).  The work folder
is removed afterwards unless --keep is given.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def best(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def build(folder: Path, size: int) -> Path:
    src = folder / "src"
    src.mkdir()
    with (src / "disk.bin").open("wb") as fh:
        fh.truncate(size)
    (src / "readme.txt").write_text("benchmark image\n")
    image = folder / "big.iso"
    subprocess.run(["genisoimage", "-quiet", "-o", str(image), str(src)], check=True)
    shutil.rmtree(src)
    return image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    opts = parser.parse_args()
    for tool in ("genisoimage", "openssl"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (apt-get install {tool})", file=sys.stderr)
            return 2

    sys.path.insert(0, str(ROOT))
    from validator.engine import Engine

    WORK.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="iso-", dir=WORK))
    try:
        image = build(folder, opts.size_mib << 20)
        size = image.stat().st_size
        digest = hashlib.sha256()
        with image.open("rb") as fh:  # also warms the page cache
            while chunk := fh.read(8 << 20):
                digest.update(chunk)
        manifest = folder / "session.yaml"
        manifest.write_text(
            "validator-session: 1\nfiles:\n"
            f"  - name: {image.name}\n"
            f"    checksum_info: {{algorithm: SHA256, checksum: '{digest.hexdigest()}'}}\n"
        )

        def openssl() -> None:
            subprocess.run(
                ["openssl", "dgst", "-sha256", str(image)], check=True, capture_output=True
            )

        engine = Engine()

        def validate(path: Path) -> None:
            result = engine.validate(engine.open(path))
            assert not result.has_errors, result

        def cli(path: Path) -> None:
            proc = subprocess.run(
                [sys.executable, "-m", "validator", str(path)],
                capture_output=True,
                cwd=ROOT,
                env=ENV,
                check=False,
            )
            assert proc.returncode == 0, proc.stdout + proc.stderr

        validate(image)  # imports pycdlib once, as a long-running server would have
        t_openssl = best(openssl, opts.runs)
        rows = [
            ("engine, no checksum", best(lambda: validate(image), opts.runs)),
            ("engine, SHA-256 declared", best(lambda: validate(manifest), opts.runs)),
            ("CLI, no checksum", best(lambda: cli(image), opts.runs)),
            ("CLI, SHA-256 declared", best(lambda: cli(manifest), opts.runs)),
        ]
        print(f"image: {size} bytes ({size / (1 << 30):.2f} GiB), best of {opts.runs} runs")
        print(f"{'openssl dgst -sha256':<28} {t_openssl * 1000:9.1f} ms   1.000x")
        for label, seconds in rows:
            print(f"{label:<28} {seconds * 1000:9.1f} ms   {seconds / t_openssl:.3f}x")
        return 0
    finally:
        if not opts.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
