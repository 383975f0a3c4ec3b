"""Replays every input kept in tests/regressions/<target>/ (crashes found by fuzzing
or by hand) through its target's properties."""

from __future__ import annotations

from pathlib import Path

import pytest

from .adversarial.fuzz import KNOWN_BUGS, REGRESSIONS, TARGETS

CASES = sorted(p for p in REGRESSIONS.glob("*/*.bin") if p.is_file())
PARAMS = [
    pytest.param(p, marks=pytest.mark.xfail(reason=KNOWN_BUGS[p.parent.name], strict=False))
    if p.parent.name in KNOWN_BUGS
    else p
    for p in CASES
]


def test_regression_folders_name_targets() -> None:
    folders = {p.name for p in REGRESSIONS.iterdir() if p.is_dir()}
    assert folders <= set(TARGETS), folders - set(TARGETS)
    assert CASES, "no regression inputs kept"


@pytest.mark.parametrize("path", PARAMS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_regression(path: Path) -> None:
    TARGETS[path.parent.name].run(path.read_bytes())
