"""The result types and their wire formats, compared with the seed's representations."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from lxml import etree

from validator.results import (
    LocalizableMessage,
    NotAllowedInCurrentState,
    ValidationError,
    ValidationResult,
    result_to_json,
    result_to_xml,
)

from .conftest import SHARED

SEED = SHARED / "spec" / "seeds" / "003_b3c828a309ee15ee.txt"


def sample_result() -> ValidationResult:
    msg = LocalizableMessage("id.one", "message", ("string", "string"))
    return ValidationResult(
        missing_files=("string", "string"),
        invalid_files=(ValidationError("string", msg), ValidationError("string", msg)),
    )


def seed_text() -> str:
    if not SEED.exists():
        pytest.skip("shared/spec/seeds is not beside the checkout")
    # The page was extracted from HTML: its indentation is no-break spaces.
    return SEED.read_text(encoding="utf-8").replace("\u00a0", " ")


def seed_json_response() -> dict:  # type: ignore[type-arg]
    text = seed_text()
    start = text.index('"value"')
    start = text.rindex("{", 0, start)
    end = text.index("<?xml", start)
    raw = text[start:end]
    # The seed page lost the ':' between keys and values when it was extracted.
    fixed = re.sub(r'"(\w+)"(?=\s*[\[{"tf])', r'"\1":', raw)
    return json.loads(fixed)


def seed_xml_response() -> etree._Element:
    text = seed_text()
    start = text.index("<ns0:Validate-Result")
    end = text.index("</ns0:Validate-Result>") + len("</ns0:Validate-Result>")
    return etree.fromstring(text[start:end].encode())


def shape(value: object) -> object:
    """Keys and types, with list items reduced to the shape of the first."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def test_json_matches_seed_shape_and_key_order() -> None:
    seed = seed_json_response()
    ours = json.loads(result_to_json(sample_result()))
    assert shape(ours) == shape(seed)
    assert list(ours["value"]) == list(seed["value"])
    assert list(ours["value"]["invalid_files"][0]) == list(seed["value"]["invalid_files"][0])
    assert list(ours["value"]["invalid_files"][0]["error_message"]) == list(
        seed["value"]["invalid_files"][0]["error_message"]
    )
    assert ours["value"]["missing_files"] == seed["value"]["missing_files"]
    assert ours["value"]["has_errors"] is True


def element_shape(el: etree._Element) -> tuple[str, list[object]]:
    return (el.tag, [element_shape(c) for c in el])


def test_xml_matches_seed_element_for_element() -> None:
    seed = seed_xml_response()
    ours = etree.fromstring(result_to_xml(sample_result()).encode())
    assert (
        ours.tag
        == seed.tag
        == "{http://vmware.com/content/library/item/updatesession/file}Validate-Result"
    )
    assert element_shape(ours) == element_shape(seed)
    assert ours.nsmap == seed.nsmap
    # Text content too: has_errors, names and args.
    assert [e.text for e in ours.iter("array-item") if len(e) == 0] == [
        e.text for e in seed.iter("array-item") if len(e) == 0
    ]


def test_has_errors_exactly_when_a_list_is_non_empty() -> None:
    msg = LocalizableMessage("x", "y")
    assert not ValidationResult().has_errors
    assert ValidationResult(missing_files=("a",)).has_errors
    assert ValidationResult(invalid_files=(ValidationError("a", msg),)).has_errors
    # Warnings alone are not errors (certificate preview warnings).
    assert not ValidationResult(warnings=(ValidationError("a", msg),)).has_errors


def test_empty_result_serializations() -> None:
    assert json.loads(result_to_json(ValidationResult())) == {
        "value": {"has_errors": False, "invalid_files": [], "missing_files": []}
    }
    root = etree.fromstring(result_to_xml(ValidationResult()).encode())
    assert root.findtext("value/has_errors") == "false"


def test_xml_escapes_hostile_text() -> None:
    msg = LocalizableMessage("x", 'a <b> & "c"', ("</args-array>",))
    xml = result_to_xml(ValidationResult(invalid_files=(ValidationError("<n>&", msg),)))
    root = etree.fromstring(xml.encode())
    assert root.findtext("value/invalid_files-array/array-item/name") == "<n>&"
    assert root.findtext(".//args-array/array-item") == "</args-array>"


def test_localized_only_when_asked() -> None:
    plain = LocalizableMessage("x", "y", ("1",))
    assert "localized" not in plain.to_dict()
    asked = LocalizableMessage("x", "y", ("1",), localized="z")
    assert asked.to_dict()["localized"] == "z"
    xml = result_to_xml(ValidationResult(invalid_files=(ValidationError("f", asked),)))
    assert "<localized>z</localized>" in xml


def test_vapi_error_bodies() -> None:
    err = NotAllowedInCurrentState([LocalizableMessage("a.b", "text", ("f",))])
    assert err.http_status == 400
    assert err.to_rest_dict() == {
        "type": "com.vmware.vapi.std.errors.not_allowed_in_current_state",
        "value": {
            "error_type": "NOT_ALLOWED_IN_CURRENT_STATE",
            "messages": [{"args": ["f"], "default_message": "text", "id": "a.b"}],
        },
    }
    assert err.to_api_dict()["error_type"] == "NOT_ALLOWED_IN_CURRENT_STATE"


def test_seed_file_is_where_we_expect() -> None:
    assert isinstance(SEED, Path)
    seed_text()


def test_cli_documents_keep_the_seed_value_with_warnings_beside_it() -> None:
    """Warnings (and, with several inputs, ``input``) are siblings of ``value``, whose shape
    stays the seed's to the key and element."""
    from validator.results import result_document

    warned = ValidationResult(
        missing_files=sample_result().missing_files,
        invalid_files=sample_result().invalid_files,
        warnings=(ValidationError("vm.cert", LocalizableMessage("w.x", "warn", ("a",))),),
    )
    doc = result_document(warned, "in.ova")
    assert list(doc) == ["input", "value", "warnings"]
    seed = seed_json_response()
    assert shape(doc["value"]) == shape(seed["value"])
    assert list(doc["value"]) == list(seed["value"])
    message = {"args": ["a"], "default_message": "warn", "id": "w.x"}
    assert doc["warnings"] == [{"error_message": message, "name": "vm.cert"}]
    assert result_document(sample_result()) == json.loads(result_to_json(sample_result()))
    root = etree.fromstring(result_to_xml(warned, warnings=True, input="in.ova").encode())
    assert root.get("input") == "in.ova"
    assert [c.tag for c in root] == ["value", "warnings-array"]
    assert element_shape(root[0]) == element_shape(seed_xml_response()[0])
    assert result_to_xml(sample_result(), warnings=True) == result_to_xml(sample_result())
