"""The plugin registry: one factory builds the plugin manager, a typed facade calls it.

Plugins, the built-in adapters included, are found through the entry-point
group ``validator.plugins``.  The built-in adapters are the entry points of
this project's own distribution (:data:`DEFAULT_PLUGINS`); they always load,
and they load *first*, so a third-party plugin can never take over a built-in
plugin's name or item type, whatever order the entry points come in.
Third-party plugins load unless ``VALIDATOR_LOAD_PLUGINS`` restricts them::

    VALIDATOR_LOAD_PLUGINS=acme-policy,qcow2   # only these third-party plugins
    VALIDATOR_LOAD_PLUGINS=                    # no third-party plugin at all

A plugin that cannot be used as a whole — it fails to import, its name or an
item type it declares is already taken (the built-in's stays), its item types
cannot be read — is a *load error* (:attr:`Registry.load_errors`, with the
plugin's name and why): the CLI refuses to validate with it (exit status 2,
as flake8 does), because a run without it would hide the checks it was meant
to add.  Deselect it with ``VALIDATOR_LOAD_PLUGINS`` to run without it; a
name there that is no installed plugin is a load error too.  Lesser problems
(a catalog that cannot be read) are in :attr:`Registry.problems` only.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import Any, NamedTuple

import pluggy

from validator import calls, hookspecs
from validator.calls import PLUGIN_ERRORS, HookFailure, WrapperRefused, describe
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

_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


class PluginInfo(NamedTuple):
    name: str
    version: str
    builtin: bool
    hooks: tuple[str, ...]
    item_types: tuple[str, ...]


class Registry:
    """The loaded plugins, their item types and catalogs (built by :func:`build_registry`)."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self.item_types: dict[str, ItemType] = {}
        self.item_type_plugin: dict[str, str] = {}
        #: Registry problems as (message id, args), load errors included: shown by the CLI.
        self.problems: list[tuple[str, tuple[str, ...]]] = []
        #: Plugins that could not be used as a whole (message id, args; args[0] is the
        #: plugin's name): a validation must not run with them (see the module docstring).
        self.load_errors: list[tuple[str, tuple[str, ...]]] = []
        #: Plugin name → its version, or the distribution to read it from when asked
        #: (reading a distribution's METADATA costs a parse: only ``plugins`` needs it).
        self.versions: dict[str, Any] = {}
        self.builtin: set[str] = set()
        self._catalogs: Catalogs | None = None
        self._renderers: dict[str, Any] | None = None

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

    def load_error(self, message_id: str, plugin: str, *args: object) -> None:
        """A plugin that cannot be used as a whole (a problem that fails a validation run)."""
        self.problem(message_id, plugin, *args)
        entry = (message_id, (str(plugin), *(str(a) for a in args)))
        if entry not in self.load_errors:
            self.load_errors.append(entry)

    def option_keys(self) -> dict[str, str]:
        """Every plugin option key the loaded plugins declare (``validator_option_keys``),
        with the plugin that declares it."""
        keys: dict[str, str] = {}
        for reply in self.replies("validator_option_keys", accept=str):
            for key in reply.values:
                keys.setdefault(key, reply.plugin)
        return keys

    def replies(
        self,
        hook: str,
        kwargs: dict[str, Any] | None = None,
        *,
        accept: type | tuple[type, ...] | None = None,
        registration_order: bool = False,
    ) -> Iterator[calls.Reply]:
        """A load hook's replies through the gateway (:func:`validator.calls.call_each`);
        failures become registry problems (``validator.core.registry.*``)."""
        for reply in calls.call_each(
            self.pm, hook, kwargs or {}, accept=accept, registration_order=registration_order
        ):
            for failure in reply.failures:
                self.problem(*_flat(failure.message(registry=True)))
            yield reply

    # -- output formats ---------------------------------------------------
    def renderers(self) -> dict[str, Any]:
        """Output formats by name (``validator_renderers``): :class:`~validator.render.Renderer`
        subclasses, the core plugin's first; a name already taken is refused (a problem)."""
        if self._renderers is None:
            from validator.render import Renderer

            found: dict[str, Any] = {}
            owner: dict[str, str] = {}
            for reply in self.replies("validator_renderers", registration_order=True):
                plugin = reply.plugin
                for cls in reply.values:
                    name = getattr(cls, "name", None)
                    if not (isinstance(cls, type) and issubclass(cls, Renderer)) or not (
                        isinstance(name, str) and _TYPE_NAME.match(name)
                    ):
                        self.problem(
                            "validator.core.registry.bad_result",
                            plugin,
                            "validator_renderers",
                            type(cls).__name__,
                        )
                        continue
                    if name in found:
                        self.problem(
                            "validator.core.registry.duplicate_renderer", plugin, name, owner[name]
                        )
                        continue
                    found[name] = cls
                    owner[name] = plugin
            self._renderers = found
        return self._renderers

    # -- catalogs ---------------------------------------------------------
    @property
    def catalogs(self) -> Catalogs:
        if self._catalogs is None:
            cats = Catalogs(on_problem=self.problem)
            for reply in self.replies("validator_message_catalogs", accept=CatalogSource):
                for src in reply.values:
                    cats.add(reply.plugin, src)
            self._catalogs = cats
        return self._catalogs

    # -- calling hooks ----------------------------------------------------
    def impls(self, hook: str) -> list[pluggy.HookImpl]:
        """Implementations in pluggy's call order (tryfirst … trylast, last registered first)."""
        return calls.implementations(self.pm, hook)

    def call_each(
        self,
        hook: str,
        kwargs: dict[str, Any],
        *,
        registration_order: bool = False,
        seconds: float | None = None,
    ) -> Iterator[tuple[str, Any | HookFailure]]:
        """Every implementation called on its own, through the gateway
        (:func:`validator.calls.call_each`): ``(plugin, failure)`` for one that raised
        or ran past ``seconds``, else ``(plugin, what it returned)``."""
        for reply in calls.call_each(
            self.pm, hook, kwargs, seconds=seconds, registration_order=registration_order
        ):
            if reply.failures:
                yield reply.plugin, reply.failures[0]
            else:
                yield reply.plugin, reply.raw

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
    # Each plugin adds its own hook specifications as it is registered (historic hook).
    pm.hook.validator_add_hookspecs.call_historic(kwargs={"pluginmanager": pm})
    reg = Registry(pm=pm)

    core = importlib.import_module(CORE_PLUGIN[1])
    pm.register(core, name=CORE_PLUGIN[0])
    reg.builtin.add(CORE_PLUGIN[0])
    from validator import __version__

    reg.versions[CORE_PLUGIN[0]] = __version__

    if load_entry_points:
        allowed = _allowed_third_party(env)
        found = [(ep, _is_builtin(ep)) for ep in _entry_points()]
        # Built-ins first: their names and item types are taken before any third party's.
        # Among them, DEFAULT_PLUGINS order (not the entry points' alphabetical one): a
        # built-in may implement a hook another one adds (``disk`` implements the ``ovf``
        # adapter's ``validator_disk_checks``), so the one that adds it registers first.
        rank = {name: i for i, name in enumerate(DEFAULT_PLUGINS)}
        for ep, builtin in sorted(found, key=lambda f: rank.get(f[0].name, len(rank))):
            if builtin and pm.get_plugin(ep.name) is None:
                _load_entry_point(reg, ep, builtin=True)
        for name, module in DEFAULT_PLUGINS.items():
            if pm.get_plugin(name) is None:
                try:
                    _register(pm, importlib.import_module(module), name)
                except PLUGIN_ERRORS as exc:
                    _load_failure(reg, name, DISTRIBUTION, exc)
                    continue
                reg.builtin.add(name)
                reg.versions[name] = __version__
        if allowed is not None:
            known = {ep.name for ep, _ in found} | set(DEFAULT_PLUGINS) | {CORE_PLUGIN[0]}
            installed = sorted({ep.name for ep, builtin in found if not builtin})
            for name in sorted(allowed - known):
                reg.load_error(
                    "validator.core.registry.unknown_plugin",
                    name,
                    ENV_LOAD_PLUGINS,
                    ", ".join(installed) or "-",
                )
        for ep, builtin in found:
            if builtin or (allowed is not None and ep.name not in allowed):
                continue
            if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
                reg.load_error(
                    "validator.core.registry.duplicate_plugin",
                    ep.name,
                    _dist_name(getattr(ep, "dist", None)),
                )
                continue
            _load_entry_point(reg, ep, builtin=False)

    for name, plugin in extra_plugins:
        try:
            _register(pm, plugin, name)
        except WrapperRefused as exc:
            _load_failure(reg, name, "", exc)
            continue
        reg.versions.setdefault(name, getattr(plugin, "__version__", ""))

    _collect_item_types(reg)
    _collect_limits(reg)
    return reg


def _collect_limits(reg: Registry) -> None:
    """Every plugin's limits (``validator_limits``), declared in registration order."""
    from validator.limits import Limit, declare

    for reply in reg.replies("validator_limits", accept=Limit, registration_order=True):
        for name in declare(reply.plugin, reply.values):
            reg.problem("validator.core.registry.duplicate_limit", reply.plugin, name)


def _load_entry_point(reg: Registry, ep: Any, *, builtin: bool) -> None:
    dist = getattr(ep, "dist", None)
    try:
        plugin = ep.load()
        _register(reg.pm, plugin, ep.name)
    except PLUGIN_ERRORS as exc:
        _load_failure(reg, ep.name, _dist_name(dist), exc)
        return
    reg.versions[ep.name] = dist
    if builtin:
        reg.builtin.add(ep.name)


def _register(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    """Register a plugin; refused (unregistered, the error raised) when it implements an
    unknown hook or a hook wrapper (:func:`validator.calls.refuse_wrappers`)."""
    try:
        pm.register(plugin, name=name)
    except BaseException:
        if pm.is_registered(plugin):  # its validator_add_hookspecs failed
            pm.unregister(plugin)
        raise
    try:
        pm.check_pending()
        calls.refuse_wrappers(pm, plugin)
    except (pluggy.PluginValidationError, WrapperRefused):
        pm.unregister(plugin)
        raise


def _load_failure(reg: Registry, name: str, dist: str, exc: BaseException) -> None:
    """A plugin that could not be registered: why, as a load error."""
    if isinstance(exc, WrapperRefused):
        reg.load_error("validator.core.registry.wrapper_refused", name, exc.hook)
    else:
        reg.load_error("validator.core.registry.load_failed", name, dist, describe(exc))


def _flat(message: tuple[str, tuple[str, ...]]) -> tuple[str, ...]:
    return (message[0], *message[1])


def _collect_item_types(reg: Registry) -> None:
    # Registration order (core, built-ins, third parties, extra plugins): a built-in's
    # type name cannot be taken over by a later plugin.  Whatever keeps a plugin's
    # item types out is a load error: the checks it was meant to add would be lost.
    for reply in calls.call_each(
        reg.pm, "validator_item_types", {}, accept=ItemType, registration_order=True
    ):
        plugin = reply.plugin
        for failure in reply.failures:
            message_id, args = failure.message(registry=True)
            reg.load_error(message_id, *args)
        for item in reply.values:
            name = getattr(item, "name", "")
            if not isinstance(name, str) or not _TYPE_NAME.match(name):
                reg.load_error("validator.core.registry.bad_type_name", plugin, name)
                continue
            if name in reg.item_types:
                reg.load_error(
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
    "PLUGIN_ERRORS",
    "HookFailure",
    "PluginInfo",
    "Registry",
    "build_registry",
    "default_registry",
    "describe",
]
