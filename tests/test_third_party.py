"""A third-party plugin installed from its own package is found, listed and used.

examples/acme-validator is a real package (the README's adapter example): it is
built and installed with pip into a temporary folder and the CLI runs with that
folder on PYTHONPATH, so discovery goes through real installed entry points.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, SAMPLES, run_module

EXAMPLE = ROOT / "examples" / "acme-validator"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    target = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        capture_output=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"could not install the example plugin: {proc.stderr.decode()[-2000:]}")
    env = {k: v for k, v in os.environ.items() if k not in ("LANG", "LC_ALL", "LC_MESSAGES")}
    env["PYTHONPATH"] = str(target)
    # Named, not left unset: the suite never loads what else happens to be installed.
    env["VALIDATOR_LOAD_PLUGINS"] = "acme-notes,acme-policy"
    return env


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "README.txt").write_text("Read me\n", encoding="utf-8")
    (folder / "todo.txt").write_bytes(b"caf\xc3\xa9 ok\n")
    return folder


def test_listed_with_name_version_types_and_hooks(installed: dict[str, str]) -> None:
    proc = run_module("plugins", "--format", "json", env=installed)
    assert proc.returncode == 0, proc.stderr
    plugins = {p["name"]: p for p in json.loads(proc.stdout)}
    assert plugins["acme-notes"]["version"] == "1.0.0"
    assert plugins["acme-notes"]["builtin"] is False
    assert plugins["acme-notes"]["item_types"] == ["notes"]
    assert "validator_file_checks" in plugins["acme-notes"]["hooks"]
    assert "acme-policy" in plugins


def test_new_item_type_is_detected_and_used(installed: dict[str, str], notes: Path) -> None:
    proc = run_module(notes, env=installed)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert b"valid notes item (2 files)" in proc.stdout
    (notes / "README.txt").unlink()
    (notes / "bad.txt").write_bytes(b"ok\xff\xfe")
    (notes / "image.png").write_bytes(b"\x89PNG")
    proc = run_module("-f", "json", "--type", "notes", notes, env=installed)
    assert proc.returncode == 1
    value = json.loads(proc.stdout)["value"]
    assert value["missing_files"] == ["README.txt"]
    assert [
        (e["name"], e["error_message"]["id"], e["error_message"]["args"])
        for e in value["invalid_files"]
    ] == [
        ("bad.txt", "acme.notes.not_utf8", ["bad.txt", "2"]),
        ("image.png", "acme.notes.not_txt", ["image.png"]),
    ]


def test_policy_adds_a_rule_to_ovf_and_localizes(installed: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "nomf"
    folder.mkdir()
    for name in ("vm.ovf", "vm-disk1.vmdk"):
        (folder / name).write_bytes((SAMPLES / name).read_bytes())
    proc = run_module("-f", "json", "--locale", "de", folder / "vm.ovf", env=installed)
    assert proc.returncode == 1, proc.stderr
    err = json.loads(proc.stdout)["value"]["invalid_files"][0]
    assert err["error_message"]["id"] == "acme.policy.manifest_required"
    assert err["error_message"]["localized"].startswith("ACME-Richtlinie")
    assert run_module(SAMPLES / "vm.ovf", env=installed).returncode == 0


def test_environment_restricts_third_party_plugins(
    installed: dict[str, str], tmp_path: Path
) -> None:
    folder = tmp_path / "nomf"
    folder.mkdir()
    for name in ("vm.ovf", "vm-disk1.vmdk"):
        (folder / name).write_bytes((SAMPLES / name).read_bytes())
    env = dict(installed, VALIDATOR_LOAD_PLUGINS="acme-notes")
    assert run_module(folder / "vm.ovf", env=env).returncode == 0
    proc = run_module("plugins", "--format", "json", env=env)
    names = {p["name"] for p in json.loads(proc.stdout)}
    assert "acme-notes" in names and "acme-policy" not in names
    env = dict(installed, VALIDATOR_LOAD_PLUGINS="")
    names = {p["name"] for p in json.loads(run_module("plugins", "-f", "json", env=env).stdout)}
    assert not {"acme-notes", "acme-policy"} & names
    assert "ovf" in names


def test_readme_shows_the_tested_example() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    code = (EXAMPLE / "acme_validator" / "notes.py").read_text(encoding="utf-8")
    assert code in blocks, "README's adapter example must be examples/.../notes.py verbatim"
    toml = (EXAMPLE / "pyproject.toml").read_text(encoding="utf-8")
    assert '[project.entry-points."validator.plugins"]' in readme
    assert (
        'acme-notes = "acme_validator.notes"' in readme
        and 'acme-notes = "acme_validator.notes"' in toml
    )


def test_ci_installs_the_example_with_the_readme_command() -> None:
    """The suite runs with the example plugin installed: the README's test command and
    ``.ci/run`` are one command, and it installs ``examples/acme-validator``."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = next(line for line in readme.splitlines() if line.endswith("python -m pytest"))
    assert command in ci.splitlines()
    assert "pip install -e '.[test]' ./examples/acme-validator" in command
