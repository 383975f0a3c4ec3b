"""The command line: formats, exit statuses, locales, colour, listings, errors on one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from lxml import etree

from .conftest import SAMPLES, CliResult, run_module

BROKEN = SAMPLES / "broken"


def test_valid_sample_text(cli) -> None:  # type: ignore[no-untyped-def]
    r: CliResult = cli(SAMPLES / "vm.ovf")
    assert r.code == 0
    assert r.out == f"{SAMPLES / 'vm.ovf'}: valid ovf item (3 files).\n"
    assert "\033[" not in r.out  # not a terminal: no colour
    assert r.err == ""


def test_invalid_sample_text_lists_each_problem(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli(BROKEN / "bad-references" / "vm.ovf")
    assert r.code == 1
    lines = r.out.splitlines()
    assert lines[0].endswith("ovf item has errors: 0 missing, 8 invalid.")
    assert "[validator.ovf.file.href_traversal]" in r.out
    assert len(lines) == 9


def test_json_is_the_seed_document(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("--format", "json", BROKEN / "missing-disk" / "vm.ovf")
    assert r.code == 1
    assert r.json() == {
        "value": {"has_errors": True, "invalid_files": [], "missing_files": ["vm-disk2.vmdk"]}
    }


def test_json_with_several_inputs_is_one_document_per_line(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("-f", "json", SAMPLES / "vm.ovf", BROKEN / "hostile" / "entities.ovf")
    assert r.code == 1
    docs = [json.loads(line) for line in r.out.splitlines()]
    assert [d["value"]["has_errors"] for d in docs] == [False, True]
    err = docs[1]["value"]["invalid_files"][0]
    assert err["name"] == "entities.ovf"
    assert err["error_message"]["id"] == "validator.ovf.xml.doctype"
    assert set(err["error_message"]) == {"id", "default_message", "args"}


def test_xml_format(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("--format", "xml", BROKEN / "missing-disk" / "vm.ovf")
    root = etree.fromstring(r.out.encode())
    assert root.tag.endswith("Validate-Result")
    assert root.findtext("value/has_errors") == "true"
    assert root.findtext("value/missing_files-array/array-item") == "vm-disk2.vmdk"


@pytest.mark.parametrize("locale", ["de", "fr", "ja"])
def test_locale_fills_localized(cli, locale: str) -> None:  # type: ignore[no-untyped-def]
    r = cli("--locale", locale, "-f", "json", BROKEN / "hostile" / "entities.ovf")
    msg = r.json()["value"]["invalid_files"][0]["error_message"]
    assert msg["default_message"].startswith("The OVF descriptor has a DOCTYPE")
    assert msg["localized"] and msg["localized"] != msg["default_message"]
    text = cli("--locale", locale, BROKEN / "hostile" / "entities.ovf")
    assert msg["localized"] in text.out


def test_lang_environment_selects_locale(cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    r = cli("-f", "json", BROKEN / "hostile" / "entities.ovf")
    assert "localized" not in r.out
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    r = cli("-f", "json", BROKEN / "hostile" / "entities.ovf")
    assert "localized" in r.json()["value"]["invalid_files"][0]["error_message"]


def test_color_always_and_no_color(cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert "\033[" in cli("--color", "always", SAMPLES / "vm.ovf").out
    assert "\033[" not in cli("--color", "never", SAMPLES / "vm.ovf").out
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\033[" not in cli(SAMPLES / "vm.ovf").out


def test_force_type(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("--type", "nosuchtype", SAMPLES / "vm.ovf")
    assert r.code == 2
    assert r.err.startswith("validator: ") and "unknown item type nosuchtype" in r.err
    assert len(r.err.strip().splitlines()) == 1


def test_unreadable_inputs_are_one_line_exit_2(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli(tmp_path / "does-not-exist.ovf")
    assert r.code == 2
    assert r.out == ""
    assert r.err.count("\n") == 1 and "Traceback" not in r.err
    unknown = tmp_path / "thing.bin"
    unknown.write_bytes(b"\0" * 10)
    r = cli(unknown)
    assert r.code == 2 and "cannot tell the item type" in r.err


def test_not_received_is_exit_2_with_vapi_error(cli, bundle: Path) -> None:  # type: ignore[no-untyped-def]
    manifest = bundle / "s.yaml"
    manifest.write_text(
        "validator-session: 1\nfiles:\n  - {name: vm.ovf}\n"
        "  - {name: vm-disk1.vmdk, status: TRANSFERRING}\n",
        encoding="utf-8",
    )
    r = cli(manifest)
    assert r.code == 2
    assert "File vm-disk1.vmdk has transfer errors or has not been fully received yet" in r.err
    r = cli("-f", "json", manifest)
    assert r.code == 2
    body = r.json()
    assert body["type"] == "com.vmware.vapi.std.errors.not_allowed_in_current_state"
    assert body["value"]["error_type"] == "NOT_ALLOWED_IN_CURRENT_STATE"


def test_exit_status_is_the_worst_of_all_inputs(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli(SAMPLES / "vm.ovf", SAMPLES / "vm.session.yaml").code == 0
    assert cli(SAMPLES / "vm.ovf", BROKEN / "missing-disk" / "vm.ovf").code == 1
    assert cli(BROKEN / "missing-disk" / "vm.ovf", tmp_path / "nope").code == 2


def test_quiet(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("-q", SAMPLES / "vm.ovf").out == ""


def test_bad_limit_and_option(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("--limit", "nonsense=3", SAMPLES / "vm.ovf")
    assert r.code == 2 and "unknown limit" in r.err
    r = cli("--limit", "descriptor_bytes=abc", SAMPLES / "vm.ovf")
    assert r.code == 2
    r = cli("--limit", "descriptor_bytes=10", "-f", "json", SAMPLES / "vm.ovf")
    assert r.code == 1
    assert r.json()["value"]["invalid_files"][0]["error_message"]["id"] == (
        "validator.ovf.limit.descriptor_size"
    )
    assert cli("--option", "novalue", SAMPLES / "vm.ovf").code == 2


def test_usage_errors_exit_2(cli) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exc:
        cli()
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        cli("--format", "yaml", "x")
    assert exc.value.code == 2


def test_help_text(capsys) -> None:  # type: ignore[no-untyped-def]
    from validator.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in (
        "--format",
        "--type",
        "--locale",
        "--limit",
        "--option",
        "--color",
        "--progress",
        "plugins",
        "exit status",
        "VALIDATOR_LOAD_PLUGINS",
        "NO_COLOR",
    ):
        assert word in out, word


def test_plugins_listing(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("plugins", "--format", "json")
    plugins = {p["name"]: p for p in json.loads(r.out)}
    assert plugins["ovf"]["item_types"] == ["ovf"]
    assert plugins["ovf"]["builtin"] is True
    assert "validator_required_files" in plugins["ovf"]["hooks"]
    text = cli("plugins").out
    assert "ovf 0.1.0 (built-in)" in text and "item types: ovf" in text


def test_hooks_and_limits_commands(cli) -> None:  # type: ignore[no-untyped-def]
    out = cli("hooks").out
    assert "validator_file_checks(" in out and "validator_required_files(" in out
    out = cli("limits").out
    assert "descriptor_bytes=16777216" in out


def test_folder_input(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli(BROKEN / "missing-disk")
    assert r.code == 1 and "missing: vm-disk2.vmdk" in r.out


def test_python_dash_m_in_a_real_process() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("LANG", "LC_ALL", "LC_MESSAGES")}
    proc = run_module(SAMPLES / "vm.ovf", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().endswith("valid ovf item (3 files).\n")
    proc = run_module("-f", "json", BROKEN / "bad-references" / "vm.ovf", env=env)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["value"]["has_errors"] is True
    assert proc.stderr == b""


@pytest.mark.parametrize(
    ("args", "absent"),
    [
        # A small OVF package needs lxml, but not PyYAML, cryptography or the ISO adapter.
        (["samples/vm.ovf"], {"yaml", "cryptography", "pycdlib", "validator_plugins.iso.check"}),
        # Local inputs never load the remote stack (fsspec, aiohttp) or the batch runner.
        (["samples/vm.ovf"], {"fsspec", "aiohttp", "validator.remote", "validator.batch"}),
        # An ISO needs neither lxml nor the OVF adapter's modules.
        (["ISO"], {"yaml", "lxml.etree", "cryptography", "validator_plugins.ovf.descriptor"}),
        (["--help"], {"pluggy", "lxml.etree", "importlib.metadata", "validator.engine"}),
    ],
)
def test_imports_stay_lazy(tmp_path: Path, args: list[str], absent: set[str]) -> None:
    """What start-up imports decides its cost (bench/startup.py measures it)."""
    import subprocess
    import sys

    from .conftest import ROOT

    if args == ["ISO"]:
        iso = tmp_path / "small.iso"
        pycdlib = pytest.importorskip("pycdlib")
        image = pycdlib.PyCdlib()
        image.new()
        image.add_fp(__import__("io").BytesIO(b"hi\n"), 3, "/A.TXT;1")
        image.write(str(iso))
        image.close()
        args = [str(iso)]
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['validator', *{args!r}]\n"
        "try:\n    runpy.run_module('validator', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        f"print(sorted(m for m in {sorted(absent)!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "[]", out.stdout + out.stderr
    assert ("usage" if args == ["--help"] else ": valid ") in lines[0], out.stdout + out.stderr
