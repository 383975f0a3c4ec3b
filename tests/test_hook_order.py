"""The documented hook order (README's hook tables, hookspecs' docstring) is the real one.

A spy plugin implements every hook and records each call; a validation of the
sample package through the CLI must call them in the order the README's table
gives, and the hookspecs module docstring must list them in that order too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from itertools import pairwise

from validator import hookspecs
from validator.hookspecs import hookimpl

from .conftest import ROOT, SAMPLES


class Spy:
    """Implements every hook, records the calls, changes nothing."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    def validator_add_hookspecs(self) -> None:
        self.calls.append("validator_add_hookspecs")

    @hookimpl
    def validator_item_types(self) -> Iterable[object]:
        self.calls.append("validator_item_types")
        return []

    @hookimpl
    def validator_message_catalogs(self) -> Iterable[object]:
        self.calls.append("validator_message_catalogs")
        return []

    @hookimpl
    def validator_limits(self) -> Iterable[object]:
        self.calls.append("validator_limits")
        return []

    @hookimpl
    def validator_option_keys(self) -> Iterable[str]:
        self.calls.append("validator_option_keys")
        return ["spy.option"]

    @hookimpl
    def validator_renderers(self) -> Iterable[object]:
        self.calls.append("validator_renderers")
        return []

    @hookimpl
    def validator_open_session(self) -> None:
        self.calls.append("validator_open_session")

    @hookimpl
    def validator_prepare_session(self) -> None:
        self.calls.append("validator_prepare_session")

    @hookimpl
    def validator_disk_checks(self) -> None:
        self.calls.append("validator_disk_checks")

    @hookimpl
    def validator_file_groups(self) -> None:
        self.calls.append("validator_file_groups")

    @hookimpl
    def validator_file_checks(self) -> None:
        self.calls.append("validator_file_checks")

    @hookimpl
    def validator_required_files(self) -> None:
        self.calls.append("validator_required_files")

    @hookimpl
    def validator_check_session(self) -> None:
        self.calls.append("validator_check_session")


def _tables() -> list[list[str]]:
    """The hook names of each table of the README's "Hooks" section, in row order."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Hooks", 1)[1].split("\n### ", 1)[0]
    tables: list[list[str]] = []
    current: list[str] = []
    for line in section.splitlines():
        m = re.match(r"\| `(validator_\w+)\(", line)
        if m:
            current.append(m.group(1))
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def _first_calls(calls: list[str]) -> list[str]:
    seen: list[str] = []
    for c in calls:
        if c not in seen:
            seen.append(c)
    return seen


def _spec_names(module: object) -> list[str]:
    return [n for n in dir(module) if n.startswith("validator_")]


def test_every_hook_is_in_one_readme_table() -> None:
    from validator_plugins.ovf import hookspecs as ovf_hookspecs

    listed = [h for table in _tables() for h in table]
    assert sorted(listed) == sorted(_spec_names(hookspecs) + _spec_names(ovf_hookspecs))


def test_validation_calls_hooks_in_the_documented_order(cli, make_registry) -> None:  # type: ignore[no-untyped-def]
    spy = Spy()
    make_registry(("spy", spy))
    # When the registry is built: as the spy is registered, then its item types and limits.
    assert spy.calls == ["validator_add_hookspecs", "validator_item_types", "validator_limits"]
    r = cli("-o", "spy.option=1", "-f", "json", SAMPLES / "vm.ovf")
    assert r.code == 0, r.out + r.err
    registry_table, validation_table, _elsewhere = _tables()
    calls = _first_calls(spy.calls)
    assert set(calls) == set(registry_table) | set(validation_table)
    # The validation phases, in the table's order, each after the last of the one before.
    phases = [c for c in spy.calls if c in validation_table]
    assert _first_calls(phases) == validation_table
    for earlier, later in pairwise(validation_table):
        last_earlier = max(i for i, c in enumerate(phases) if c == earlier)
        first_later = phases.index(later)
        assert last_earlier < first_later, (earlier, later, phases)
    assert phases.count("validator_file_checks") == 3  # once per file of the package


def test_hookspecs_docstring_lists_the_same_order() -> None:
    doc = hookspecs.__doc__ or ""
    numbered = re.findall(r"^\d\. :func:`(validator_\w+)`", doc, flags=re.M)
    validation = [h for h in _tables()[1] if h != "validator_disk_checks"]
    assert numbered == validation
