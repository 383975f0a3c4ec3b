"""The plugin registry: one factory builds the plugin manager, a typed facade calls it.

Plugins, the built-in adapters included, are found through the entry-point
group ``validator.plugins``.  The built-in adapters are the entry points of
this project's own distribution (:data:`DEFAULT_PLUGINS`); they always load.
Third-party plugins load unless ``VALIDATOR_LOAD_PLUGINS`` restricts them::

    VALIDATOR_LOAD_PLUGINS=acme-policy,qcow2   # only these third-party plugins
    VALIDATOR_LOAD_PLUGINS=                    # no third-party plugin at all

A plugin that fails to import, or declares an item type that is already
taken, is recorded in :attr:`Registry.problems` with its name (the CLI shows
them on standard error) and the others load as usual.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, NamedTuple

import pluggy

from validator import hookspecs
from validator.checks import ItemType
from validator.hookspecs import ENTRY_POINT_GROUP, PROJECT
from validator.messages import Catalogs, CatalogSource

#: The built-in adapters: entry-point name → module.  They are loaded through
#: the entry points of this distribution like any plugin; the module path is
#: only used when the installed metadata lacks one (an old editable install).
DEFAULT_PLUGINS: dict[str, str] = {
    "ovf": "validator_plugins.ovf",
    "iso": "validator_plugins.iso",
    "disk": "validator_plugins.disk",
}
#: The engine's own hook implementations (folders, session manifests, files).
CORE_PLUGIN = ("core", "validator.builtin")
DISTRIBUTION = "validator"
ENV_LOAD_PLUGINS = "VALIDATOR_LOAD_PLUGINS"

#: What a call into plugin code may raise and still be only that plugin's failure:
#: a plugin that calls ``sys.exit()`` must not end the validation with a verdict.
#: ``KeyboardInterrupt`` still stops everything.
PLUGIN_ERRORS: tuple[type[BaseException], ...] = (Exception, SystemExit, GeneratorExit)

_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


class PluginInfo(NamedTuple):
    name: str
    version: str
    builtin: bool
    hooks: tuple[str, ...]
    item_types: tuple[str, ...]


class HookFailure(NamedTuple):
    """A hook implementation raised or returned something of the wrong type."""

    plugin: str
    hook: str
    error: str
    exception: BaseException | None = None


@dataclass
class Registry:
    """The loaded plugins, their item types and catalogs."""

    pm: pluggy.PluginManager
    item_types: dict[str, ItemType] = field(default_factory=dict)
    item_type_plugin: dict[str, str] = field(default_factory=dict)
    #: Load problems as (message id, args): shown by the CLI, never fatal.
    problems: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    #: Plugin name → its version, or the distribution to read it from when asked
    #: (reading a distribution's METADATA costs a parse: only ``plugins`` needs it).
    versions: dict[str, Any] = field(default_factory=dict)
    builtin: set[str] = field(default_factory=set)
    _catalogs: Catalogs | None = None

    def version(self, name: str) -> str:
        value = self.versions.get(name, "")
        if not isinstance(value, str):
            try:
                value = str(getattr(value, "version", "") or "")
            except PLUGIN_ERRORS:
                value = ""
            self.versions[name] = value
        return value

    def problem(self, message_id: str, *args: object) -> None:
        entry = (message_id, tuple(str(a) for a in args))
        if entry not in self.problems:
            self.problems.append(entry)

    # -- catalogs ---------------------------------------------------------
    @property
    def catalogs(self) -> Catalogs:
        if self._catalogs is None:
            cats = Catalogs(on_problem=self.problem)
            for plugin, result in self.call_each("validator_message_catalogs", {}):
                if isinstance(result, HookFailure):
                    self.problem(
                        "validator.core.registry.hook_failed",
                        result.plugin,
                        result.hook,
                        result.error,
                    )
                    continue
                for src in _as_list(result):
                    if isinstance(src, CatalogSource):
                        cats.add(plugin, src)
                    else:
                        self.problem(
                            "validator.core.registry.bad_result",
                            plugin,
                            "validator_message_catalogs",
                            type(src).__name__,
                        )
            self._catalogs = cats
        return self._catalogs

    # -- calling hooks ----------------------------------------------------
    def impls(self, hook: str) -> list[pluggy.HookImpl]:
        """Implementations in pluggy's call order (tryfirst … trylast, last registered first)."""
        caller = getattr(self.pm.hook, hook)
        return [i for i in reversed(caller.get_hookimpls()) if not (i.hookwrapper or i.wrapper)]

    def call_each(
        self,
        hook: str,
        kwargs: dict[str, Any],
        *,
        registration_order: bool = False,
        invoke: Callable[[pluggy.HookImpl, list[Any]], Any] | None = None,
    ) -> Iterator[tuple[str, Any | HookFailure]]:
        """Call every implementation on its own; one that raises yields a :class:`HookFailure`.

        ``registration_order`` calls the first registered plugin first (built-ins
        before third parties) instead of pluggy's last-registered-first.
        ``invoke(impl, args)`` runs each call (the engine bounds it in time).
        """
        impls = self.impls(hook)
        for impl in reversed(impls) if registration_order else impls:
            args = [kwargs[a] for a in impl.argnames]
            try:
                result = impl.function(*args) if invoke is None else invoke(impl, args)
            except PLUGIN_ERRORS as exc:
                yield impl.plugin_name, HookFailure(impl.plugin_name, hook, describe(exc), exc)
            else:
                yield impl.plugin_name, result

    def plugin_infos(self) -> list[PluginInfo]:
        infos = []
        for name, plugin in sorted(self.pm.list_name_plugin()):
            if plugin is None:
                continue
            hooks = tuple(
                sorted(
                    hc.name
                    for hc in self.pm.get_hookcallers(plugin) or []
                    if not hc.name.startswith("_")
                )
            )
            types = tuple(sorted(t for t, p in self.item_type_plugin.items() if p == name))
            infos.append(
                PluginInfo(
                    name=name,
                    version=self.version(name),
                    builtin=name in self.builtin,
                    hooks=hooks,
                    item_types=types,
                )
            )
        return infos


def describe(exc: BaseException) -> str:
    """One line for an exception: its type and message, never a traceback."""
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def _allowed_third_party(environ: dict[str, str] | os._Environ[str]) -> set[str] | None:
    raw = environ.get(ENV_LOAD_PLUGINS)
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


def _dist_name(dist: Any) -> str:
    """A distribution's name (parses its METADATA: only for messages)."""
    try:
        return str(getattr(dist, "name", None) or dist.metadata["Name"])
    except PLUGIN_ERRORS:
        return "?"


def _is_builtin(ep: Any) -> bool:
    """An entry point of this distribution's own adapters.

    Decided without reading METADATA where possible (an email-format parse per
    distribution, the largest part of building the registry): importlib.metadata
    normalizes a distribution's name from its ``.dist-info`` folder name.
    """
    if DEFAULT_PLUGINS.get(ep.name) != getattr(ep, "value", None):
        return False
    dist = getattr(ep, "dist", None)
    # importlib.metadata's own cheap name (from the folder name), public API as fallback.
    name = getattr(dist, "_normalized_name", None)
    if not isinstance(name, str) or not name:
        name = _dist_name(dist)
    return name.replace("-", "_").lower() == DISTRIBUTION


def _entry_points() -> Iterable[Any]:
    from importlib.metadata import entry_points

    return entry_points(group=ENTRY_POINT_GROUP)


def build_registry(
    *,
    extra_plugins: Iterable[tuple[str, object]] = (),
    extra_hookspecs: Iterable[ModuleType | type] = (),
    environ: dict[str, str] | None = None,
    load_entry_points: bool = True,
) -> Registry:
    """Build the plugin manager and the item-type registry.

    ``extra_hookspecs`` (modules of specs, like the server's) are added before
    any plugin is loaded, so entry-point plugins may implement them too.
    ``extra_plugins`` (name, module or object) are registered after the entry
    points, as a server or a test registers its own hooks.
    """
    env = os.environ if environ is None else environ
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for specs in extra_hookspecs:
        pm.add_hookspecs(specs)
    reg = Registry(pm=pm)

    core = importlib.import_module(CORE_PLUGIN[1])
    pm.register(core, name=CORE_PLUGIN[0])
    reg.builtin.add(CORE_PLUGIN[0])
    from validator import __version__

    reg.versions[CORE_PLUGIN[0]] = __version__

    if load_entry_points:
        allowed = _allowed_third_party(env)
        for ep in _entry_points():
            dist = getattr(ep, "dist", None)
            builtin = _is_builtin(ep)
            if not builtin and allowed is not None and ep.name not in allowed:
                continue
            if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
                reg.problem("validator.core.registry.duplicate_plugin", ep.name, _dist_name(dist))
                continue
            try:
                plugin = ep.load()
                _register(pm, plugin, ep.name)
            except PLUGIN_ERRORS as exc:
                reg.problem(
                    "validator.core.registry.load_failed", ep.name, _dist_name(dist), describe(exc)
                )
                continue
            reg.versions[ep.name] = dist
            if builtin:
                reg.builtin.add(ep.name)
        for name, module in DEFAULT_PLUGINS.items():
            if pm.get_plugin(name) is None:
                try:
                    _register(pm, importlib.import_module(module), name)
                except PLUGIN_ERRORS as exc:
                    reg.problem(
                        "validator.core.registry.load_failed", name, DISTRIBUTION, describe(exc)
                    )
                    continue
                reg.builtin.add(name)
                reg.versions[name] = __version__

    for name, plugin in extra_plugins:
        _register(pm, plugin, name)
        reg.versions.setdefault(name, getattr(plugin, "__version__", ""))

    _collect_item_types(reg)
    return reg


def _register(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    pm.register(plugin, name=name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError:
        pm.unregister(plugin)
        raise


def _collect_item_types(reg: Registry) -> None:
    # Registration order: a built-in's type name cannot be taken over by a later plugin.
    for plugin, result in reg.call_each("validator_item_types", {}, registration_order=True):
        if isinstance(result, HookFailure):
            reg.problem("validator.core.registry.hook_failed", plugin, result.hook, result.error)
            continue
        for item in _as_list(result):
            if not isinstance(item, ItemType):
                reg.problem(
                    "validator.core.registry.bad_result",
                    plugin,
                    "validator_item_types",
                    type(item).__name__,
                )
                continue
            name = getattr(item, "name", "")
            if not isinstance(name, str) or not _TYPE_NAME.match(name):
                reg.problem("validator.core.registry.bad_type_name", plugin, name)
                continue
            if name in reg.item_types:
                reg.problem(
                    "validator.core.registry.duplicate_type",
                    plugin,
                    name,
                    reg.item_type_plugin[name],
                )
                continue
            reg.item_types[name] = item
            reg.item_type_plugin[name] = plugin


_CACHE: Registry | None = None


def default_registry() -> Registry:
    """The registry of this process (built on first use)."""
    global _CACHE
    if _CACHE is None:
        _CACHE = build_registry()
    return _CACHE


__all__ = [
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "ENV_LOAD_PLUGINS",
    "HookFailure",
    "PluginInfo",
    "Registry",
    "build_registry",
    "default_registry",
    "describe",
]
