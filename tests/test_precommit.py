"""The pre-commit hook definition: it runs the installed CLI on OVF, OVA and ISO files only."""

from __future__ import annotations

import re
import tomllib

import yaml

from validator.cli import main

from .conftest import ROOT, SAMPLES


def _hook() -> dict[str, object]:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    (hook,) = [h for h in hooks if h["id"] == "validator"]
    return dict(hook)


def test_hook_selects_ovf_ova_and_iso_files() -> None:
    hook = _hook()
    pattern = re.compile(str(hook["files"]))
    for name in ("vm.ovf", "dir/App.OVA", "boot.iso", "x/y/Z.Ovf"):
        assert pattern.search(name), name
    for name in ("vm.mf", "disk.vmdk", "notes.txt", "vm.ovf.bak", "iso"):
        assert not pattern.search(name), name
    assert hook["language"] == "python"


def test_hook_entry_is_the_console_script() -> None:
    hook = _hook()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert hook["entry"] in project["scripts"]
    assert project["scripts"][hook["entry"]] == "validator.cli:main"


def test_hook_runs_as_pre_commit_calls_it(cli) -> None:  # type: ignore[no-untyped-def]
    """pre-commit appends the matching file names: several inputs, worst exit status."""
    assert cli(SAMPLES / "vm.ovf").code == 0
    assert main([str(SAMPLES / "vm.ovf"), str(SAMPLES / "broken" / "missing-disk" / "vm.ovf")]) == 1


def test_readme_documents_the_hook() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "id: validator" in readme and ".pre-commit-hooks.yaml" in readme
    assert "upload-sarif" in readme and "reports: {junit:" in readme
