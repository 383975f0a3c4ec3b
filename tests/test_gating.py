"""Verdicts a script can gate on (issue 11): every input gets a document, plugins that
cannot load stop the run, unknown option keys and plugin names are refused."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from types import SimpleNamespace

import pytest
from lxml import etree

from validator import registry as registry_module
from validator.checks import ItemType
from validator.hookspecs import hookimpl
from validator.registry import Registry, build_registry
from validator.results import FILE_NS
from validator.session import Session

from .conftest import SAMPLES, run_module
from .disks import ovf_text

BROKEN = SAMPLES / "broken"
ERRORS_NS = "http://vmware.com/vapi/std/errors"


@pytest.fixture
def warned(tmp_path: Path) -> Path:
    """A valid package with one preview warning (a disk without ovf:format)."""
    folder = tmp_path / "warned"
    folder.mkdir()
    (folder / "disk.raw").write_bytes(bytes(4096))
    (folder / "vm.ovf").write_text(ovf_text("disk.raw", 4096, 4096, None), encoding="utf-8")
    return folder


# -- documents for every input ---------------------------------------------------------


def test_single_input_json_keeps_the_seed_document(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("-f", "json", SAMPLES / "vm.ovf")
    assert r.code == 0
    assert r.json() == {"value": {"has_errors": False, "invalid_files": [], "missing_files": []}}


def test_warnings_reach_json_beside_value(cli, warned: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("-f", "json", warned)
    assert r.code == 0
    doc = r.json()
    assert list(doc) == ["value", "warnings"]
    assert doc["value"] == {"has_errors": False, "invalid_files": [], "missing_files": []}
    (warning,) = doc["warnings"]
    assert list(warning) == ["error_message", "name"]
    assert warning["name"] == "disk.raw"
    assert warning["error_message"]["id"] == "validator.ovf.disk.no_format"


def test_warnings_reach_xml_beside_value(cli, warned: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("-f", "xml", warned)
    root = etree.fromstring(r.out.encode())
    assert root.tag == f"{{{FILE_NS}}}Validate-Result"
    assert [c.tag for c in root] == ["value", "warnings-array"]
    assert root.findtext("warnings-array/array-item/error_message/id") == (
        "validator.ovf.disk.no_format"
    )
    assert root.findtext("warnings-array/array-item/name") == "disk.raw"


def test_several_inputs_json_lines_say_which_input(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, warned: Path
) -> None:
    missing = tmp_path / "nope.ovf"
    inputs = [SAMPLES / "vm.ovf", BROKEN / "missing-disk" / "vm.ovf", missing, warned]
    r = cli("-f", "json", *inputs)
    assert r.code == 2
    docs = [json.loads(line) for line in r.out.splitlines()]
    assert [d["input"] for d in docs] == [str(p) for p in inputs]
    assert [list(d) for d in docs] == [
        ["input", "value"],
        ["input", "value"],
        ["input", "type", "value"],
        ["input", "value", "warnings"],
    ]
    assert docs[1]["value"]["missing_files"] == ["vm-disk2.vmdk"]
    assert docs[2]["type"] == "com.vmware.vapi.std.errors.not_found"
    assert docs[2]["value"]["messages"][0]["id"] == "validator.core.input.unreadable"


def test_several_inputs_xml_is_one_well_formed_document(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path
) -> None:
    inputs = [SAMPLES / "vm.ovf", tmp_path / "nope.ovf", BROKEN / "hostile" / "entities.ovf"]
    r = cli("-f", "xml", *inputs)
    assert r.code == 2
    root = etree.fromstring(r.out.encode())
    assert root.tag == "validator-results"
    assert [c.get("input") for c in root] == [str(p) for p in inputs]
    assert [c.tag for c in root] == [
        f"{{{FILE_NS}}}Validate-Result",
        f"{{{ERRORS_NS}}}Error",
        f"{{{FILE_NS}}}Validate-Result",
    ]
    assert root[1].findtext("type") == "com.vmware.vapi.std.errors.not_found"
    assert root[2].findtext("value/invalid_files-array/array-item/error_message/id") == (
        "validator.ovf.xml.doctype"
    )


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_an_input_that_cannot_be_validated_still_gets_a_document(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, fmt: str
) -> None:
    unknown = tmp_path / "thing.bin"
    unknown.write_bytes(b"\0" * 10)
    r = cli("-f", fmt, unknown)
    assert r.code == 2
    assert r.err.count("\n") == 1 and "cannot tell the item type" in r.err
    if fmt == "json":
        body = r.json()
        assert body["type"] == "com.vmware.vapi.std.errors.invalid_argument"
        assert body["value"]["messages"][0]["id"] == "validator.core.input.no_type"
    else:
        root = etree.fromstring(r.out.encode())
        assert root.tag == f"{{{ERRORS_NS}}}Error"
        assert root.findtext("value/error_type") == "INVALID_ARGUMENT"
        assert root.findtext("value/messages-array/array-item/id") == "validator.core.input.no_type"


def test_xml_names_with_control_characters_stay_well_formed() -> None:
    from validator.results import (
        LocalizableMessage,
        ValidationError,
        ValidationResult,
        result_to_xml,
    )

    msg = LocalizableMessage("x", "bad \x01 byte", ("\x1b[31m",))
    xml = result_to_xml(ValidationResult(invalid_files=(ValidationError("a\x02b", msg),)))
    root = etree.fromstring(xml.encode())
    assert root.findtext("value/invalid_files-array/array-item/name") == "a\\x02b"


# -- plugin options ---------------------------------------------------------------------


def test_a_misspelled_option_key_is_refused_with_the_known_keys(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("-o", "ovf.trust_stor=ca.pem", SAMPLES / "vm.ovf")
    assert r.code == 2 and r.out == ""
    assert r.err == (
        "validator: No loaded plugin reads the option ovf.trust_stor; "
        "the known option keys are: ovf.inflate, ovf.trust_store, remote.follow_redirects, "
        "remote.retries, remote.timeout.\n"
    )
    assert cli("-o", "ovf.trust_store=nothing.pem", SAMPLES / "vm.ovf").code == 0
    assert "KEY=VALUE" in cli("-o", "novalue", SAMPLES / "vm.ovf").err


def test_ovf_declares_the_keys_its_checks_read() -> None:
    from validator_plugins.ovf import certificate, disks

    keys = build_registry().option_keys()
    assert keys == {
        certificate.TRUST_STORE_OPTION: "ovf",
        disks.INFLATE_OPTION: "ovf",
        # the core plugin's: how URL inputs are read (validator/remote.py)
        "remote.retries": "core",
        "remote.timeout": "core",
        "remote.follow_redirects": "core",
    }
    assert cli_accepts_inflate()


def cli_accepts_inflate() -> bool:
    from validator.cli import main

    return main(["-q", "-o", "ovf.inflate=true", str(SAMPLES / "vm.ovf")]) == 0


def test_a_plugin_declares_its_own_option_keys(  # type: ignore[no-untyped-def]
    cli, make_registry: Callable[..., Registry]
) -> None:
    class Options:
        @hookimpl
        def validator_option_keys(self) -> Iterable[str]:
            return ["acme.strict"]

    make_registry(("acme-options", Options()))
    assert cli("-o", "acme.strict=1", SAMPLES / "vm.ovf").code == 0
    r = cli("-o", "acme.strikt=1", SAMPLES / "vm.ovf")
    assert r.code == 2 and "acme.strict, ovf.inflate, ovf.trust_store" in r.err


# -- plugins that cannot load -------------------------------------------------------------


class _Type(ItemType):
    def __init__(self, name: str) -> None:
        self.name = name

    def detect(self, session: Session) -> int:
        return 100  # it would take every input over


def declaring(*names: str) -> object:
    class P:
        @hookimpl
        def validator_item_types(self) -> Iterable[ItemType]:
            return [_Type(n) for n in names]

    return P()


def entry_point(name: str, load: Callable[[], object], dist: str = "acme-dist") -> object:
    return SimpleNamespace(name=name, value=f"{dist}:x", load=load, dist=SimpleNamespace(name=dist))


def _fail_import() -> object:
    raise ImportError("No module named 'acme_missing'")


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Pretend these entry points are installed, *before* the built-ins' in discovery order."""

    def install(*eps: object) -> None:
        real = [ep for ep in registry_module._entry_points() if registry_module._is_builtin(ep)]
        monkeypatch.setattr(registry_module, "_entry_points", lambda: [*eps, *real])

    return install


def test_a_plugin_that_fails_to_import_fails_the_run(  # type: ignore[no-untyped-def]
    cli, installed, make_registry: Callable[..., Registry]
) -> None:
    installed(entry_point("acme-broken", _fail_import))
    make_registry(environ={})
    r = cli(SAMPLES / "vm.ovf")
    assert r.code == 2 and r.out == ""
    assert r.err == (
        "validator: Plugin acme-broken (acme-dist) could not be loaded: ImportError: No module "
        "named 'acme_missing'. Nothing is validated without it: fix or uninstall it, or leave "
        "it out of VALIDATOR_LOAD_PLUGINS.\n"
    )
    body = cli("-f", "json", SAMPLES / "vm.ovf").json()
    assert body["type"] == "com.vmware.vapi.std.errors.internal_server_error"
    assert body["value"]["messages"][0]["id"] == "validator.core.registry.load_failed"
    root = etree.fromstring(cli("-f", "xml", SAMPLES / "vm.ovf").out.encode())
    assert root.findtext("value/messages-array/array-item/args-array/array-item") == "acme-broken"
    several = cli("-f", "xml", SAMPLES / "vm.ovf", SAMPLES / "vm.ovf")
    assert several.code == 2
    assert etree.fromstring(several.out.encode()).tag == f"{{{ERRORS_NS}}}Error"


def test_deselecting_the_broken_plugin_runs_without_it(  # type: ignore[no-untyped-def]
    cli, installed, make_registry: Callable[..., Registry]
) -> None:
    installed(entry_point("acme-broken", _fail_import), entry_point("acme-ok", lambda: object()))
    make_registry(environ={"VALIDATOR_LOAD_PLUGINS": "acme-ok"})
    r = cli(SAMPLES / "vm.ovf")
    assert r.code == 0 and r.err == ""


def test_an_unknown_name_in_the_environment_is_an_error(installed) -> None:  # type: ignore[no-untyped-def]
    installed(entry_point("acme-ok", lambda: object()))
    reg = build_registry(environ={"VALIDATOR_LOAD_PLUGINS": "acme-ok, acme-typo, ovf"})
    assert reg.load_errors == [
        (
            "validator.core.registry.unknown_plugin",
            ("acme-typo", "VALIDATOR_LOAD_PLUGINS", "acme-ok"),
        )
    ]


@pytest.mark.parametrize("name", ["ovf", "iso", "core"])
def test_a_third_party_cannot_take_a_builtin_plugin_name(  # type: ignore[no-untyped-def]
    installed, name: str
) -> None:
    installed(entry_point(name, lambda: declaring("evil"), dist="evil-dist"))
    reg = build_registry(environ={})
    assert "evil" not in reg.item_types
    assert reg.item_type_plugin["ovf"] == "ovf"
    assert reg.load_errors == [("validator.core.registry.duplicate_plugin", (name, "evil-dist"))]


def test_a_third_party_cannot_take_a_builtin_item_type(  # type: ignore[no-untyped-def]
    cli, installed, make_registry: Callable[..., Registry]
) -> None:
    installed(entry_point("acme-ovf", lambda: declaring("ovf", "iso")))
    reg = make_registry(environ={})
    assert reg.item_type_plugin == {"ovf": "ovf", "iso": "iso", "disk": "disk"}
    assert reg.load_errors == [
        ("validator.core.registry.duplicate_type", ("acme-ovf", "ovf", "ovf")),
        ("validator.core.registry.duplicate_type", ("acme-ovf", "iso", "iso")),
    ]
    r = cli(SAMPLES / "vm.ovf")
    assert r.code == 2
    assert r.err.splitlines()[0] == (
        "validator: Plugin acme-ovf declares item type ovf, which plugin ovf already declares; "
        "it was refused. Uninstall acme-ovf, or leave it out of VALIDATOR_LOAD_PLUGINS."
    )


def test_the_plugins_command_still_lists_and_shows_the_failure(  # type: ignore[no-untyped-def]
    cli, installed, make_registry: Callable[..., Registry]
) -> None:
    installed(entry_point("acme-broken", _fail_import))
    make_registry(environ={})
    r = cli("plugins")
    assert r.code == 0
    assert "ovf 0.1.0 (built-in)" in r.out
    assert "acme-broken (not loaded)\n  error: Plugin acme-broken (acme-dist) could not" in r.out
    entries = {p["name"]: p for p in json.loads(cli("plugins", "-f", "json").out)}
    assert entries["ovf"]["loaded"] is True and entries["ovf"]["errors"] == []
    assert entries["acme-broken"]["loaded"] is False
    assert entries["acme-broken"]["errors"][0]["id"] == "validator.core.registry.load_failed"


def test_a_real_process_fails_on_a_broken_plugin(tmp_path: Path) -> None:
    """Through real entry points: a dist-info folder on PYTHONPATH naming a missing module."""
    import os

    dist = tmp_path / "acme_broken-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[validator.plugins]\nacme-broken = acme_missing_module\n"
    )
    env = dict(os.environ, PYTHONPATH=str(tmp_path), VALIDATOR_LOAD_PLUGINS="acme-broken")
    proc = run_module(SAMPLES / "vm.ovf", env=env)
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert err.count("\n") == 1 and "Plugin acme-broken (acme-broken) could not be loaded" in err
    env["VALIDATOR_LOAD_PLUGINS"] = ""
    assert run_module(SAMPLES / "vm.ovf", env=env).returncode == 0
