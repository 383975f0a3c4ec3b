"""Small helpers shared by the hostile-input tests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

from validator.registry import build_registry
from validator.results import ValidationResult

ROOT = Path(__file__).resolve().parents[2]
#: Ids that mean a plugin or check crashed rather than reporting the input.
CRASH_IDS = (
    "validator.core.plugin.failed",
    "validator.core.plugin.bad_result",
    "validator.core.plugin.timeout",
    "validator.core.check.failed",
    "validator.core.input.plugin_failed",
    "validator.core.input.plugin_bad_result",
    "validator.core.input.plugin_timeout",
)


@cache
def english_ids() -> frozenset[str]:
    """Every id in the English catalogs of the built-in plugins (engine included)."""
    return frozenset(build_registry().catalogs.catalog("en"))


def result_ids(result: ValidationResult) -> list[str]:
    return [e.error_message.id for e in (*result.invalid_files, *result.warnings)]


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LC_ALL", "LC_MESSAGES", "LANG")}
    env["NO_COLOR"] = "1"
    env["VALIDATOR_LOAD_PLUGINS"] = ""  # built-in plugins only, whatever else is installed
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@cache
def strace_works() -> bool:
    if shutil.which("strace") is None:
        return False
    probe = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=openat", "true"], capture_output=True, check=False
    )
    return probe.returncode == 0


_OPENED = re.compile(r'(?:open|openat|openat2|execve|connect)\((?:AT_FDCWD, |[0-9]+, )?"([^"]*)"')


def run_cli(
    args: list[str],
    *,
    cwd: Path | None = None,
    trace: Path | None = None,
    timeout: int = 120,
    stdin: bytes | None = None,
) -> tuple[subprocess.CompletedProcess[bytes], list[str]]:
    """``python -m validator ARGS``; with ``trace``, under strace: also the paths it opened
    (every ``open``/``openat`` of the process and its threads, C libraries included)."""
    cmd = [sys.executable, "-m", "validator", *args]
    if trace is not None:
        cmd = ["strace", "-f", "-qq", "-s", "4096", "-o", str(trace),
               "-e", "trace=open,openat,openat2,connect", *cmd]  # fmt: skip
    proc = subprocess.run(
        cmd, capture_output=True, env=cli_env(), cwd=cwd, timeout=timeout, check=False, input=stdin
    )
    opened: list[str] = []
    if trace is not None and trace.exists():
        for line in trace.read_text(errors="replace").splitlines():
            m = _OPENED.search(line)
            if m:
                opened.append(m.group(1))
            elif "connect(" in line and "AF_INET" in line:
                opened.append("socket:" + line)
    return proc, opened
