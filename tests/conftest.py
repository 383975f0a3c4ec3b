"""Shared fixtures: fresh registries, engines and a CLI runner.

The suite never depends on what else is installed: ``VALIDATOR_LOAD_PLUGINS``
is pinned empty for the whole run (this process and every ``python -m
validator`` it starts), so the registry holds the built-in plugins only, even
with a third-party plugin (the README's ``examples/acme-validator``) installed.
A test that needs a plugin registers it in a fresh registry (``make_registry``)
and the process-wide registry is restored afterwards, as datasette's tests do;
``tests/test_third_party.py`` names the third-party plugins it loads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from validator import registry as registry_module
from validator.cli import main
from validator.engine import Engine
from validator.limits import Limits
from validator.registry import ENV_LOAD_PLUGINS, Registry, build_registry

# Built-in plugins only, in this process and in every subprocess that inherits it.
os.environ[ENV_LOAD_PLUGINS] = ""
#: The environment that loads no third-party plugin (``environ=`` of ``build_registry``).
BUILTINS_ONLY = {ENV_LOAD_PLUGINS: ""}

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SHARED = ROOT.parent / "shared"


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> dict:  # type: ignore[type-arg]
        return json.loads(self.out)


@pytest.fixture(scope="session")
def _builtins() -> Registry:
    return build_registry(environ=BUILTINS_ONLY)


@pytest.fixture(autouse=True)
def _builtin_registry(_builtins: Registry) -> Iterator[None]:
    """Every test runs with the process registry of the built-in plugins only."""
    registry_module._CACHE = _builtins
    os.environ[ENV_LOAD_PLUGINS] = ""
    yield
    registry_module._CACHE = _builtins
    os.environ[ENV_LOAD_PLUGINS] = ""


@pytest.fixture
def make_registry() -> Iterator[Callable[..., Registry]]:
    """Build a registry with extra plugins; it is also the CLI's until the test ends.

    Third-party plugins installed in the environment are not loaded unless
    ``environ`` asks for them.
    """
    saved = registry_module._CACHE

    def make(*plugins: tuple[str, object], environ: dict[str, str] | None = None) -> Registry:
        reg = build_registry(
            extra_plugins=plugins, environ=BUILTINS_ONLY if environ is None else environ
        )
        registry_module._CACHE = reg
        return reg

    yield make
    registry_module._CACHE = saved


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., CliResult]:
    """Run the CLI in-process; NO_COLOR and no locale so output is plain English."""
    for var in ("LC_ALL", "LC_MESSAGES", "LANG", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)

    def run(*args: str | Path) -> CliResult:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def run_module(
    *args: str | Path, env: dict[str, str] | None = None, input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """``python -m validator ARGS`` in a real subprocess.

    ``VALIDATOR_LOAD_PLUGINS`` is empty (built-in plugins only) unless ``env`` sets it.
    """
    env = dict(os.environ if env is None else env)
    env.setdefault(ENV_LOAD_PLUGINS, "")
    return subprocess.run(
        [sys.executable, "-m", "validator", *map(str, args)],
        capture_output=True,
        env=env,
        input=input,
        timeout=120,
        check=False,
    )


def validate(
    path: Path,
    *,
    limits: Limits | None = None,
    item_type: str | None = None,
    registry: Registry | None = None,
    locale: str | None = None,
):  # type: ignore[no-untyped-def]
    engine = Engine(registry, limits=limits, locale=locale)
    return engine.validate(engine.open(path), item_type)


def ids(result) -> list[str]:  # type: ignore[no-untyped-def]
    """The message ids of a result's invalid files, in order."""
    return [e.error_message.id for e in result.invalid_files]


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A copy of the valid sample package (vm.ovf, vm-disk1.vmdk, vm.mf) to damage."""
    dest = tmp_path / "bundle"
    dest.mkdir()
    for name in ("vm.ovf", "vm-disk1.vmdk", "vm.mf"):
        shutil.copy(SAMPLES / name, dest / name)
    return dest
