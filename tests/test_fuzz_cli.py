"""The CLI as a black box: damaged real packages, in a real subprocess (under strace where it
works): exit status 0, 1 or 2, no traceback, nothing outside the bundle opened.

This is how an outside reviewer checks the validator; the in-process ``cli`` fuzz target
(tests/test_fuzz_parsers.py) covers far more inputs per second.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from .adversarial.fuzz import TARGETS, _signed_bundle, _target_name, fuzz_settings
from .adversarial.util import run_cli, strace_works

CANARIES = ("/etc/passwd", "/etc/shadow")


@fuzz_settings(max_examples=5)
@given(data=st.data())
def test_damaged_package_through_the_cli_subprocess(data: st.DataObject) -> None:
    raw = data.draw(TARGETS["bundle"].strategy(), label="bundle")
    name, _, content = raw.partition(b"\0")
    with tempfile.TemporaryDirectory(prefix="validator-cli-fuzz-") as tmp:
        root = Path(tmp)
        folder = root / "bundle"
        _signed_bundle(folder)
        (folder / _target_name(name)).write_bytes(content)
        outside = root / "outside"
        outside.mkdir()
        (outside / "canary").write_text("secret")
        trace = root / "strace.log" if strace_works() else None
        for args in (
            ["--format", "json", str(folder)],
            ["--format", "json", str(folder / "vm.ovf")],
        ):
            proc, opened = run_cli(args, trace=trace, cwd=folder)
            err = proc.stderr.decode("utf-8", "replace")
            assert proc.returncode in (0, 1, 2), err
            assert "Traceback" not in err, err
            if proc.returncode in (0, 1):
                assert json.loads(proc.stdout)["value"]["has_errors"] == (proc.returncode == 1)
            leaked = [p for p in opened
                      if p in CANARIES or p.startswith((str(outside), "socket:"))]  # fmt: skip
            assert leaked == []
