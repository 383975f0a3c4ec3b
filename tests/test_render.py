"""Rendering at the edge: the renderer registry, JUnit and SARIF read back by real consumers.

``junit`` output is parsed with ``junitparser`` (a JUnit XML library CI tools use)
and ``sarif`` with ``sarif-pydantic`` (the SARIF 2.1.0 object model), so both are
proven readable, not just well-formed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml
from sarif_pydantic import Sarif
from sarif_pydantic.sarif import Notification

from validator.engine import Engine
from validator.hookspecs import hookimpl
from validator.registry import build_registry
from validator.render import (
    BUILTIN_NAMES,
    Outcome,
    Renderer,
    localize,
    render_document,
)
from validator.results import ValidationResult

from .conftest import BUILTINS_ONLY, SAMPLES, CliResult

BROKEN = SAMPLES / "broken"


def _junit(out: str) -> JUnitXml:
    return JUnitXml.fromstring(out.encode("utf-8"))


def test_builtin_formats_come_from_the_registry() -> None:
    reg = build_registry(environ=BUILTINS_ONLY)
    assert tuple(reg.renderers()) == BUILTIN_NAMES == ("text", "json", "xml", "junit", "sarif")


def test_junit_one_testcase_per_input_one_failure_per_problem(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gone = tmp_path / "gone.ova"
    r: CliResult = cli(
        "-f",
        "junit",
        SAMPLES / "vm.ovf",
        BROKEN / "bad-references" / "vm.ovf",
        BROKEN / "missing-disk" / "vm.ovf",
        gone,
    )
    assert r.code == 2
    xml = _junit(r.out)
    suites = list(xml)
    assert len(suites) == 1
    cases = list(suites[0])
    assert [c.name for c in cases] == [
        str(SAMPLES / "vm.ovf"),
        str(BROKEN / "bad-references" / "vm.ovf"),
        str(BROKEN / "missing-disk" / "vm.ovf"),
        str(gone),
    ]
    assert cases[0].is_passed
    bad = [f for f in cases[1].result if isinstance(f, Failure)]
    assert len(bad) == 8  # the eight invalid_files entries of the text output
    assert bad[0].type == "validator.ovf.file.href_traversal"
    assert "leads out of the package" in (bad[0].message or "")
    missing = [f for f in cases[2].result if isinstance(f, Failure)]
    assert [f.type for f in missing] == ["validator.core.missing"]
    assert "vm-disk2.vmdk" in (missing[0].text or "")
    errors = [e for e in cases[3].result if isinstance(e, Error)]
    assert errors and errors[0].type == "com.vmware.vapi.std.errors.not_found"
    assert suites[0].tests == 4 and suites[0].failures == 9 and suites[0].errors == 1


def test_junit_localized(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("-f", "junit", "--locale", "de", BROKEN / "hostile" / "entities.ovf")
    case = next(iter(next(iter(_junit(r.out)))))
    failure = case.result[0]
    assert failure.type == "validator.ovf.xml.doctype"
    assert "DOCTYPE" in (failure.message or "") and "The OVF" not in (failure.message or "")


def _sarif(out: str) -> Sarif:
    doc = json.loads(out)
    assert doc["version"] == "2.1.0"
    assert doc["$schema"].endswith("sarif-2.1.0.json")
    return Sarif.model_validate(doc)


def test_sarif_results_name_rule_file_and_line(cli) -> None:  # type: ignore[no-untyped-def]
    target = BROKEN / "bad-references" / "vm.ovf"
    r = cli("-f", "sarif", target)
    assert r.code == 1
    log = _sarif(r.out)
    run = log.runs[0]
    assert run.tool.driver.name == "validator"
    results = run.results or []
    assert len(results) == 8
    first = results[0]
    assert first.rule_id == "validator.ovf.file.href_traversal"
    assert first.level is not None and first.level.value == "error"
    rules = run.tool.driver.rules or []
    assert first.rule_index is not None and rules[first.rule_index].id == first.rule_id
    loc = (first.locations or [])[0].physical_location
    assert loc is not None and loc.artifact_location is not None
    assert loc.artifact_location.uri == target.as_posix()
    # The message says "(line 8)": the region carries it.
    assert "(line 8)" in (first.message.text or "")
    assert loc.region is not None and loc.region.start_line == 8
    # Every result's rule is declared once.
    assert sorted({r.rule_id for r in results}) == sorted(rule.id for rule in rules)


def test_sarif_missing_file_member_and_input_error(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("-f", "sarif", BROKEN / "missing-disk", tmp_path / "nope.ovf")
    log = _sarif(r.out)
    run = log.runs[0]
    (missing,) = run.results or []
    assert missing.rule_id == "validator.core.cli.missing"
    uri = missing.locations[0].physical_location.artifact_location.uri  # type: ignore[index,union-attr]
    assert uri == (BROKEN / "missing-disk" / "vm-disk2.vmdk").as_posix()
    invocation = (run.invocations or [])[0]
    assert invocation.execution_successful is False
    # sarif-pydantic's Invocation keeps toolExecutionNotifications as an extra field:
    # each is read with the library's Notification model.
    raw = json.loads(r.out)["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    notes = [Notification.model_validate(n) for n in raw]
    assert notes and notes[0].descriptor is not None
    assert notes[0].descriptor.id == "validator.core.input.unreadable"


def test_sarif_member_of_an_archive_is_a_logical_location(tmp_path: Path) -> None:
    from validator.results import LocalizableMessage, ValidationError

    reg = build_registry(environ=BUILTINS_ONLY)
    msg = reg.catalogs.message("validator.ovf.file.unreferenced", ("extra.txt", "vm.ovf"))
    result = ValidationResult(invalid_files=(ValidationError("extra.txt", msg),), item_type="ovf")
    assert isinstance(msg, LocalizableMessage)
    out = render_document(
        reg.renderers()["sarif"], [Outcome(str(tmp_path / "a.ova"), result, 2)], reg.catalogs
    )
    loc = json.loads(out)["runs"][0]["results"][0]["locations"][0]
    assert loc["physicalLocation"]["artifactLocation"]["uri"] == (tmp_path / "a.ova").as_posix()
    assert loc["logicalLocations"] == [{"name": "extra.txt", "kind": "member"}]


def test_existing_formats_unchanged_through_the_registry(cli) -> None:  # type: ignore[no-untyped-def]
    """The document the renderer writes is the one results.py always wrote."""
    from validator.results import result_document, result_to_xml

    engine = Engine()
    result = engine.validate(engine.open(BROKEN / "missing-disk" / "vm.ovf"))
    assert cli("-f", "json", BROKEN / "missing-disk" / "vm.ovf").json() == result_document(result)
    assert cli("-f", "xml", BROKEN / "missing-disk" / "vm.ovf").out == result_to_xml(
        result, warnings=True
    )


def test_render_per_request_locale_without_a_new_engine() -> None:
    """What a server does: one engine, one result, rendered in each request's language."""
    reg = build_registry(environ=BUILTINS_ONLY)
    engine = Engine(reg)
    result = engine.validate(engine.open(BROKEN / "hostile" / "entities.ovf"))
    msg = result.invalid_files[0].error_message
    assert msg.localized is None  # the engine answers with ids, args and English
    texts = {}
    for locale in ("de", "fr", "ja"):
        doc = json.loads(
            render_document(reg.renderers()["json"], [Outcome("x", result)], reg.catalogs, locale)
        )
        localized = doc["value"]["invalid_files"][0]["error_message"]["localized"]
        texts[locale] = localized
        again = localize(result, reg.catalogs, locale).invalid_files[0].error_message
        assert localized == again.localized
    assert len(set(texts.values())) == 3
    # And the engine's locale option is the same localization, applied once at the end.
    de = Engine(reg, locale="de")
    assert de.validate(de.open(BROKEN / "hostile" / "entities.ovf")) == localize(
        result, reg.catalogs, "de"
    )


class CountRenderer(Renderer):
    name = "count"
    summary = "problems per input"

    def result(self, input: str, result: ValidationResult, files: int) -> None:
        self.out.write(f"{input} {len(result.invalid_files) + len(result.missing_files)}\n")


class _FormatPlugin:
    @hookimpl
    def validator_renderers(self):  # type: ignore[no-untyped-def]
        return [CountRenderer]


class _ClashPlugin:
    @hookimpl
    def validator_renderers(self):  # type: ignore[no-untyped-def]
        class Json(CountRenderer):
            name = "json"

        return [Json, "not a renderer"]


def test_a_plugin_adds_a_format(cli, make_registry) -> None:  # type: ignore[no-untyped-def]
    make_registry(("counting", _FormatPlugin()))
    r = cli("-f", "count", BROKEN / "bad-references" / "vm.ovf")
    assert r.out == f"{BROKEN / 'bad-references' / 'vm.ovf'} 8\n"
    assert r.code == 1


def test_a_taken_format_name_is_refused(make_registry) -> None:  # type: ignore[no-untyped-def]
    reg = make_registry(("clash", _ClashPlugin()))
    assert reg.renderers()["json"].__module__ == "validator.render"
    ids = [p[0] for p in reg.problems]
    assert "validator.core.registry.duplicate_renderer" in ids
    assert "validator.core.registry.bad_result" in ids


def test_unknown_format_lists_the_registry(cli, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exc:
        cli("--format", "yaml", SAMPLES / "vm.ovf")
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Unknown output format yaml" in err and "junit, sarif" in err
