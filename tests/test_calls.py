"""The gateway every plugin call passes through (validator/calls.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pluggy
import pytest

from validator import calls, hookspecs
from validator.calls import HookFailure, PluginTimeout, call_each
from validator.hookspecs import hookimpl
from validator.registry import Registry

from .conftest import SAMPLES

RELEASE = threading.Event()


@pytest.fixture(autouse=True)
def _release() -> Iterator[None]:
    RELEASE.clear()
    yield
    RELEASE.set()  # let a thread given up on finish


def _pm(*plugins: object) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for i, p in enumerate(plugins):
        pm.register(p, name=f"p{i}")
    return pm


class Keys:
    def __init__(self, fn: Callable[[], object]) -> None:
        self.fn = fn

    @hookimpl
    def validator_option_keys(self) -> object:
        return self.fn()


def _boom() -> object:
    raise RuntimeError("boom")


def _gen() -> object:
    yield "a.one"
    raise ValueError("half way")


def _hang() -> object:
    RELEASE.wait(30)
    return ["late"]


def test_call_each_isolates_checks_types_and_bounds_every_implementation() -> None:
    pm = _pm(Keys(lambda: ["a.ok", 3]), Keys(_boom), Keys(_gen), Keys(lambda: None), Keys(_hang))
    replies = {
        r.plugin: r
        for r in call_each(pm, "validator_option_keys", {}, seconds=0.5, accept=str)
    }
    assert replies["p0"].values == ["a.ok"]
    (bad,) = replies["p0"].failures
    hook = "validator_option_keys"
    assert bad.message() == ("validator.core.plugin.bad_result", ("p0", hook, "int"))
    assert bad.message(registry=True)[0] == "validator.core.registry.bad_result"
    (boom,) = replies["p1"].failures
    assert boom.message() == (
        "validator.core.plugin.failed",
        ("p1", "validator_option_keys", "RuntimeError: boom"),
    )
    assert replies["p2"].failures[0].error == "ValueError: half way"  # a generator, read
    assert replies["p3"].declined and replies["p3"].values == []
    (late,) = replies["p4"].failures
    assert isinstance(late.exception, PluginTimeout) and late.timed_out
    assert late.message() == ("validator.core.plugin.timeout", ("p4", hook, "0.5"))


def test_a_failure_names_plugin_and_hook() -> None:
    failure = HookFailure("acme", "validator_file_checks", "KeyError: 'x'")
    message_id, args = failure.message()
    assert message_id == "validator.core.plugin.failed"
    assert args[:2] == ("acme", "validator_file_checks")


class NewWrapper:
    @hookimpl(wrapper=True)
    def validator_prepare_session(self):  # type: ignore[no-untyped-def]
        return (yield)


class OldWrapper:
    @hookimpl(hookwrapper=True)
    def validator_file_checks(self):  # type: ignore[no-untyped-def]
        yield


@pytest.mark.parametrize(("plugin", "hook"), [
    (NewWrapper(), "validator_prepare_session"),
    (OldWrapper(), "validator_file_checks"),
])  # fmt: skip
def test_hook_wrappers_are_refused_at_load(
    make_registry: Callable[..., Registry], cli, plugin: object, hook: str  # type: ignore[no-untyped-def]
) -> None:
    reg = make_registry(("wrapping", plugin))
    assert ("validator.core.registry.wrapper_refused", ("wrapping", hook)) in reg.load_errors
    assert reg.pm.get_plugin("wrapping") is None  # not registered: never half-called
    r = cli(SAMPLES / "vm.ovf")
    assert r.code == 2
    assert "wrapping" in r.err and hook in r.err and "hook wrapper" in r.err
    assert r.err.count("\n") == 1


def test_the_ovf_adapter_calls_its_hook_through_the_gateway(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """validator_disk_checks goes through calls.call_each (no copy of the machinery)."""
    from validator_plugins.ovf import disks

    from validator.engine import Engine

    seen: list[str] = []
    real = calls.call_each

    def spy(pm, hook, kwargs, **kw):  # type: ignore[no-untyped-def]
        seen.append(hook)
        return real(pm, hook, kwargs, **kw)

    monkeypatch.setattr(calls, "call_each", spy)
    assert not hasattr(disks, "_bounded") and not hasattr(disks, "threading")
    engine = Engine()
    assert not engine.validate(engine.open(SAMPLES / "vm.ovf")).has_errors
    assert "validator_disk_checks" in seen
    assert "validator_required_files" in seen
