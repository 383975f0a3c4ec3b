"""The adversarial corpus (tests/adversarial/cases.py): every case ends in exactly the
expected result, opens nothing outside its folder, writes nothing, touches no network.

Each case runs through the engine API under the audit hook; the cases marked
``cli`` also run through ``python -m validator`` in a subprocess (no traceback,
the documented exit status) and, where ``strace`` works, with every ``open``
of the process traced, C libraries (libxml2, OpenSSL) included.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path

import pytest

from validator.engine import Engine
from validator.limits import Limits
from validator.results import NotAllowedInCurrentState
from validator.session import SessionError

from .adversarial import audit
from .adversarial.cases import CASES, Case
from .adversarial.util import CRASH_IDS, english_ids, result_ids, run_cli, strace_works

CANARIES = ("/etc/passwd", "/etc/shadow", "/etc/hostname", "/proc/self/environ")


def _prepare(case: Case, tmp_path: Path) -> tuple[Path, Path, Path]:
    missing_tools = [t for t in case.tools if shutil.which(t) is None]
    if missing_tools:
        pytest.skip(f"needs {', '.join(missing_tools)}")
    unknown = case.expected_ids() - english_ids()
    if unknown:
        pytest.skip(f"ids not in the catalogs yet: {sorted(unknown)}")
    folder = tmp_path / "case"
    outside = tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    return folder, outside, case.build(folder, outside)


def test_the_corpus_is_big_and_names_are_unique() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))
    assert len(CASES) >= 60


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    """Import everything lazily imported once, outside any watched block."""
    engine = Engine()
    engine.validate(engine.open(Path(__file__).parent.parent / "samples" / "vm.ovf"))
    english_ids()


def _params(cases: list[Case]) -> list[object]:
    return [
        pytest.param(c, marks=pytest.mark.xfail(reason=c.known_bug, strict=False))
        if c.known_bug
        else c
        for c in cases
    ]


@pytest.mark.parametrize("case", _params(CASES), ids=lambda c: c.name)
def test_case(case: Case, tmp_path: Path) -> None:
    folder, _outside, path = _prepare(case, tmp_path)
    before = audit.snapshot(tmp_path)
    engine = Engine(limits=Limits().replace(**case.limits))
    got_error: str | None = None
    not_allowed = False
    result = None
    started = time.monotonic()
    with audit.watching() as rec:
        try:
            result = engine.validate(engine.open(path))
        except SessionError as exc:
            got_error = exc.message_id
        except NotAllowedInCurrentState as exc:
            not_allowed = True
            assert all(m.id in english_ids() for m in exc.messages)
    assert time.monotonic() - started < 30, "took too long"
    assert rec.outside(folder) == [], "opened outside the case folder"
    assert rec.listed_outside(folder) == [], "listed a folder outside the case folder"
    assert rec.writes() == [], "opened for writing"
    assert rec.activity == [], "network or subprocess activity"
    assert audit.snapshot(tmp_path) == before, "the case folder changed"

    assert got_error == case.session_error
    assert not_allowed == case.not_allowed
    if result is None:
        return
    ids = result_ids(result)
    assert set(ids) <= english_ids(), "an id that no catalog has"
    assert not set(ids) & (set(CRASH_IDS) - set(case.ids)), result.invalid_files
    if case.exact:
        assert set(ids) == set(case.ids), result.invalid_files
    else:
        assert set(case.ids) <= set(ids), result.invalid_files
    if case.missing is not None:
        assert result.missing_files == case.missing
    assert result.has_errors == (case.exit_status == 1)


CLI_CASES = [c for c in CASES if c.cli]


def test_enough_cases_run_through_the_cli() -> None:
    assert len(CLI_CASES) >= 8


@pytest.mark.parametrize("case", _params(CLI_CASES), ids=lambda c: c.name)
def test_case_through_the_cli(case: Case, tmp_path: Path) -> None:
    folder, outside, path = _prepare(case, tmp_path)
    before = audit.snapshot(tmp_path)
    args = ["--format", "json"]
    for name, value in case.limits.items():
        args += ["--limit", f"{name}={value}"]
    trace = tmp_path / "strace.log" if strace_works() else None
    proc, opened = run_cli([*args, str(path)], cwd=folder, trace=trace)
    if trace is not None:
        trace.unlink(missing_ok=True)
    err = proc.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err, err
    assert proc.returncode == case.exit_status, err
    if proc.returncode in (0, 1):
        doc = json.loads(proc.stdout)
        ids = {e["error_message"]["id"] for e in doc["value"]["invalid_files"]}
        assert set(case.ids) <= ids
    elif case.session_error:
        assert err.startswith("validator: ") and err.count("\n") == 1, err
    assert audit.snapshot(tmp_path) == before
    bad = [
        p for p in opened if p.startswith("socket:") or p in CANARIES or p.startswith(str(outside))
    ]
    assert bad == [], "the CLI opened files outside the case folder"


STDIN_CASES = ("ova-valid", "ova-symlink-member", "ova-dotdot-member", "ova-device-member",
               "ova-duplicate-member", "ova-descriptor-not-first", "ova-pax-path-traversal",
               "ova-truncated", "ova-random-bytes")  # fmt: skip
OVA_CASES = [c for c in CASES if c.name in STDIN_CASES]


def test_stdin_cases_exist() -> None:
    assert len(OVA_CASES) == len(STDIN_CASES)


@pytest.mark.parametrize("case", OVA_CASES, ids=lambda c: c.name)
def test_hostile_ova_on_standard_input(case: Case, tmp_path: Path) -> None:
    """``validator -`` reads the archive from a pipe in one pass: the same verdict."""
    folder, outside, path = _prepare(case, tmp_path)
    data = path.read_bytes()
    path.unlink()  # only the pipe holds the archive
    trace = tmp_path / "strace.log" if strace_works() else None
    proc, opened = run_cli(["--format", "json", "-"], cwd=folder, trace=trace, stdin=data)
    err = proc.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err, err
    assert proc.returncode == case.exit_status, err
    if proc.returncode in (0, 1):
        doc = json.loads(proc.stdout)
        assert set(case.ids) <= {e["error_message"]["id"] for e in doc["value"]["invalid_files"]}
    assert [p for p in opened if p in CANARIES or p.startswith(str(outside))] == []


def test_the_audit_guard_sees_opens_outside_and_writes(tmp_path: Path) -> None:
    """The guard is not vacuous: a read outside, a write and a socket are all recorded."""
    import os
    import socket

    inside = tmp_path / "case"
    inside.mkdir()
    (inside / "ok").write_text("x")
    with audit.watching() as rec:
        (inside / "ok").read_text()
        with open("/etc/hostname", "rb"):
            pass
        fd = os.open(tmp_path / "written", os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        link = inside / "link"
        link.symlink_to("/etc/hostname")
        link.read_bytes()
        os.listdir("/etc")
        with socket.socket() as s:
            s.settimeout(0.01)
            with contextlib.suppress(OSError):
                s.connect(("127.0.0.1", 9))
    assert rec.outside(inside) == ["/etc/hostname", str(tmp_path / "written"), "/etc/hostname"]
    assert rec.writes() == [str(tmp_path / "written")]
    assert rec.listed_outside(inside) == ["/etc"]
    assert rec.activity and rec.activity[0].startswith("socket.connect")


@pytest.mark.skipif(not strace_works(), reason="needs a working strace")
def test_the_strace_guard_sees_opens_of_the_process(tmp_path: Path) -> None:
    """The CLI traces are not vacuous: a file the user names is seen being opened."""
    canary = tmp_path / "canary.ovf"
    canary.write_text("<x/>")
    proc, opened = run_cli([str(canary)], trace=tmp_path / "strace.log")
    assert proc.returncode == 1
    assert str(canary) in opened
