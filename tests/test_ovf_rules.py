"""The catalogue of descriptor rules (docs/ovf-descriptor-rules.md) is the code's."""

from __future__ import annotations

import ast

from validator_plugins.ovf.rules import RULES, markdown_table

from .conftest import ROOT

DOC = ROOT / "docs" / "ovf-descriptor-rules.md"
CHECKS = [ROOT / "plugins" / "ovf" / "descriptor.py", ROOT / "plugins" / "ovf" / "sections.py"]


def ids_reported() -> set[str]:
    found: set[str] = set()
    for path in CHECKS:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value.startswith("validator.ovf.")
                and " " not in node.value
            ):
                found.add(node.value)
    return found


def test_the_doc_table_is_the_rules_list() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert markdown_table() in text, "regenerate the table from plugins/ovf/rules.py"
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(rows) == len(RULES) + 1  # the header, then one row per rule


def test_every_id_the_checks_report_is_a_rule_and_each_rule_once() -> None:
    listed = [r.id for r in RULES]
    assert len(listed) == len(set(listed))
    assert ids_reported() == set(listed)
