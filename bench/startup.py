"""Start-up cost of the CLI against a bare interpreter, measured in the same run.

    python bench/startup.py [RUNS]

Prints the median wall time of

- ``python -c pass``;
- the design's minimum: pluggy and the entry-point lookup through
  ``importlib.metadata``, which every run needs to find its adapters (the
  built-in ones included) before it knows what the input is;
- every library a validation of ``samples/vm.ovf`` cannot do without (that,
  plus lxml, hashlib, argparse and tomllib): the floor any code on these
  dependencies pays;
- ``python -m validator samples/vm.ovf``;

each with its ratio to the bare start.  The difference between the last two is
what the project's own code costs (the bar: at most 25 ms; ``--help`` loads
neither pluggy nor lxml, ``tests/test_cli.py::test_imports_stay_lazy``).

Medians and minimums are both printed: on a shared machine whose speed drifts
from one second to the next, the minimum of many runs is the steadier estimate
of what a start costs; the median says what a user typically waits.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# As installed code runs: with byte-code caches (some environments export
# PYTHONDONTWRITEBYTECODE, which makes every start compile every module).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_once(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   cwd=ROOT, env=ENV)
    return time.perf_counter() - start


def timings(cmds: list[list[str]], runs: int) -> list[list[float]]:
    """Wall times of each command, the commands run in turn (round robin).

    Interleaving keeps a change in the machine's load (a neighbour's work) from
    landing on one command only: the ratios stay meaningful on a busy machine.
    """
    for cmd in cmds:
        subprocess.run(cmd, check=False, capture_output=True, cwd=ROOT, env=ENV)  # warm caches
    times: list[list[float]] = [[] for _ in cmds]
    for _ in range(runs):
        for i, cmd in enumerate(cmds):
            times[i].append(run_once(cmd))
    return times


MINIMUM = (
    "import importlib.metadata, pluggy\n"
    "importlib.metadata.entry_points(group='validator.plugins')"
)
FLOOR = "import argparse, hashlib, tomllib, lxml.etree\n" + MINIMUM


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 21
    times = timings(
        [
            [sys.executable, "-c", "pass"],
            [sys.executable, "-c", MINIMUM],
            [sys.executable, "-c", FLOOR],
            [sys.executable, "-m", "validator", "samples/vm.ovf"],
        ],
        runs,
    )
    labels = [
        "python -c pass",
        "pluggy + entry points (minimum)",
        "dependencies only (floor)",
        "python -m validator samples/vm.ovf",
    ]
    med = [statistics.median(t) for t in times]
    low = [min(t) for t in times]
    print(f"{runs} runs each, interleaved          median      min")
    for label, m, lo in zip(labels, med, low, strict=True):
        print(f"{label:35} {m * 1000:7.1f} ms {lo * 1000:7.1f} ms  {m / med[0]:5.2f}x")
    print(
        f"{'the project own code (cli - floor)':35} {(med[3] - med[2]) * 1000:7.1f} ms"
        f" {(low[3] - low[2]) * 1000:7.1f} ms  (bar: <= 25 ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
