"""The plugin registry: entry points, built-ins, restriction by environment, failures."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from types import SimpleNamespace

import pytest

from validator import hookspecs
from validator.checks import ItemType
from validator.hookspecs import hookimpl
from validator.registry import DEFAULT_PLUGINS, build_registry
from validator.session import Session

from .conftest import ROOT


class _Type(ItemType):
    def __init__(self, name: str) -> None:
        self.name = name

    def detect(self, session: Session) -> int:
        return 0


def plugin_declaring(*names: str) -> object:
    class P:
        @hookimpl
        def validator_item_types(self) -> Iterable[ItemType]:
            return [_Type(n) for n in names]

    return P()


def test_builtins_load_through_entry_points() -> None:
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group=hookspecs.ENTRY_POINT_GROUP)}
    for name, module in DEFAULT_PLUGINS.items():
        assert eps.get(name) == module
    reg = build_registry()
    assert "ovf" in reg.item_types
    assert {"core", *DEFAULT_PLUGINS} <= reg.builtin
    assert not [p for p in reg.problems if p[0] == "validator.core.registry.load_failed"]


def test_duplicate_item_type_is_refused_and_reported() -> None:
    reg = build_registry(extra_plugins=[("dupe", plugin_declaring("ovf", "fresh"))])
    assert reg.item_type_plugin["ovf"] == "ovf"
    assert reg.item_type_plugin["fresh"] == "dupe"
    assert ("validator.core.registry.duplicate_type", ("dupe", "ovf", "ovf")) in reg.problems


def test_invalid_type_name_and_wrong_return_type_are_reported() -> None:
    class Garbage:
        @hookimpl
        def validator_item_types(self) -> object:
            return ["not an item type"]

    reg = build_registry(
        extra_plugins=[("bad-name", plugin_declaring("Bad Name")), ("garbage", Garbage())]
    )
    codes = [p[0] for p in reg.problems]
    assert "validator.core.registry.bad_type_name" in codes
    assert (
        "validator.core.registry.bad_result",
        ("garbage", "validator_item_types", "str"),
    ) in reg.problems


def test_plugin_raising_in_item_types_is_reported() -> None:
    class Boom:
        @hookimpl
        def validator_item_types(self) -> object:
            raise RuntimeError("kaboom")

    reg = build_registry(extra_plugins=[("boom", Boom())])
    assert (
        "validator.core.registry.hook_failed",
        ("boom", "validator_item_types", "RuntimeError: kaboom"),
    ) in reg.problems
    assert "ovf" in reg.item_types


def fake_entry_points(*eps: SimpleNamespace) -> object:
    """The built-in adapters' real entry points and ``eps``, and nothing else installed."""
    from validator import registry

    real = [ep for ep in registry._entry_points() if registry._is_builtin(ep)]

    def entry_points() -> list[object]:
        return [*real, *eps]

    return entry_points


def test_third_party_plugin_failing_to_import_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    from validator import registry

    def load() -> object:
        raise ImportError("No module named 'acme_missing'")

    ep = SimpleNamespace(
        name="acme-broken", load=load, dist=SimpleNamespace(name="acme-broken", version="0.1")
    )
    monkeypatch.setattr(registry, "_entry_points", fake_entry_points(ep))
    reg = build_registry(environ={})
    assert (
        "validator.core.registry.load_failed",
        ("acme-broken", "acme-broken", "ImportError: No module named 'acme_missing'"),
    ) in reg.problems
    assert "ovf" in reg.item_types


def test_env_var_restricts_third_party_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    from validator import registry

    loaded: list[str] = []

    def ep(name: str) -> SimpleNamespace:
        def load() -> object:
            loaded.append(name)
            return plugin_declaring(name.replace("-", "_"))

        return SimpleNamespace(name=name, load=load, dist=SimpleNamespace(name=name, version="1"))

    monkeypatch.setattr(registry, "_entry_points", fake_entry_points(ep("p-one"), ep("p-two")))
    reg = build_registry(environ={"VALIDATOR_LOAD_PLUGINS": "p-two"})
    assert loaded == ["p-two"]
    assert "p_two" in reg.item_types and "ovf" in reg.item_types  # built-ins always load
    loaded.clear()
    build_registry(environ={"VALIDATOR_LOAD_PLUGINS": ""})
    assert loaded == []
    build_registry(environ={})
    assert loaded == ["p-one", "p-two"]


def test_third_party_cannot_take_a_builtin_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from validator import registry

    ep = SimpleNamespace(
        name="ovf",
        load=lambda: plugin_declaring("evil"),
        dist=SimpleNamespace(name="evil-dist", version="6.6.6"),
    )
    monkeypatch.setattr(registry, "_entry_points", fake_entry_points(ep))
    reg = build_registry(environ={})
    assert "evil" not in reg.item_types
    assert any(p[0] == "validator.core.registry.duplicate_plugin" for p in reg.problems)


def test_plugin_infos_list_name_version_types_and_hooks() -> None:
    reg = build_registry()
    infos = {i.name: i for i in reg.plugin_infos()}
    assert infos["ovf"].item_types == ("ovf",)
    assert "validator_prepare_session" in infos["ovf"].hooks
    assert infos["ovf"].builtin and infos["ovf"].version


HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("validator_"))


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_typed_and_documented(hook: str) -> None:
    fn = getattr(hookspecs, hook)
    doc = inspect.getdoc(fn) or ""
    assert len(doc) > 80, f"{hook} needs a real docstring"
    sig = inspect.signature(fn)
    assert sig.return_annotation is not inspect.Signature.empty
    assert all(p.annotation is not inspect.Parameter.empty for p in sig.parameters.values())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.search(rf"`{hook}\b", readme), f"{hook} is not documented in the README"
