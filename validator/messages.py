"""Message catalogs: every text a user can see, by stable id, per locale.

A plugin contributes a catalog through the ``validator_message_catalogs``
hook: a :class:`CatalogSource` naming the id namespace it owns (for example
``validator.ovf``) and a directory that holds one TOML file per locale,
``en.toml``, ``de.toml``, … Each file maps a dotted message id (a quoted key)
to a template with positional ``{0}``, ``{1}`` … placeholders; ``#`` starts a
comment for translators::

    "validator.ovf.reference.duplicate_id" = "File id {0} is declared more than once (line {1})."

TOML rather than YAML: ``tomllib`` is in the standard library and imports in
about a tenth of PyYAML's time, which is most of a message's cost at start-up.

English is mandatory and is always used for ``default_message``; another
locale only fills ``localized``.  An unknown locale, or an id a locale lacks,
falls back to English.  A catalog is read lazily, the first time a message of
its namespace is rendered in that locale.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

from validator.results import LocalizableMessage

DEFAULT_LOCALE = "en"
#: The locales whose catalogs ship complete with the project.
SHIPPED_LOCALES = ("en", "de", "fr", "ja")

#: A catalog file's name is the locale plus this suffix.
CATALOG_SUFFIX = ".toml"

_PLACEHOLDER = re.compile(r"\{(\d+)\}")


class CatalogSource(NamedTuple):
    """A plugin's catalogs: the id ``namespace`` it owns and the folder of ``<locale>.toml``."""

    namespace: str
    directory: Traversable | Path


def placeholders(template: str) -> set[int]:
    """The positional placeholder numbers a template uses."""
    return {int(m) for m in _PLACEHOLDER.findall(template)}


def format_template(template: str, args: tuple[str, ...]) -> str:
    """Fill ``{N}`` placeholders; nothing else in the template is interpreted.

    Unlike ``str.format`` this cannot be made to look up attributes, and a
    placeholder without an argument is left as it stands.
    """

    def sub(m: re.Match[str]) -> str:
        i = int(m.group(1))
        return args[i] if i < len(args) else m.group(0)

    return _PLACEHOLDER.sub(sub, template)


def normalize_locale(value: str | None) -> str | None:
    """``de_DE.UTF-8`` → ``de``; ``C``, ``POSIX`` and empty values → ``None``."""
    if not value:
        return None
    value = value.split(":")[0].split(".")[0].split("@")[0].strip()
    if not value or value in ("C", "POSIX"):
        return None
    return value.replace("-", "_").split("_")[0].lower() or None


def locale_from_environment(environ: Mapping[str, str] | None = None) -> str | None:
    """The locale the environment asks for (``LC_ALL``, ``LC_MESSAGES``, ``LANG``).

    Only a shipped non-English locale counts: ``LANG=en_US.UTF-8`` (the
    usual default) asks for nothing, so default output stays the seed's.
    """
    env = os.environ if environ is None else environ
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        loc = normalize_locale(env.get(var))
        if loc is not None:
            return loc if loc in SHIPPED_LOCALES and loc != DEFAULT_LOCALE else None
    return None


def load_catalog_file(path: Traversable | Path) -> dict[str, str]:
    """Read one catalog file: a flat TOML table of quoted id → template string."""
    import tomllib

    data = tomllib.loads(path.read_text(encoding="utf-8"))
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ValueError(
            f"{path}: a catalog maps quoted message ids to template strings "
            '(write "a.b.c" = "…", not a.b.c = "…", which makes nested tables)'
        )
    return data


class Catalogs:
    """All catalogs contributed by the loaded plugins, read on first use."""

    def __init__(
        self,
        sources: Iterable[tuple[str, CatalogSource]] = (),
        on_problem: Callable[..., None] | None = None,
    ) -> None:
        self._sources: list[tuple[str, CatalogSource]] = []
        self._files: dict[tuple[int, str], dict[str, str]] = {}
        self._lock = threading.Lock()
        #: Called as ``on_problem(message_id, *args)`` for a broken catalog.
        self.on_problem = on_problem or (lambda *a: None)
        for plugin, source in sources:
            self.add(plugin, source)

    def add(self, plugin: str, source: CatalogSource) -> None:
        with self._lock:
            self._sources.append((plugin, source))
            self._files.clear()

    @property
    def sources(self) -> list[tuple[str, CatalogSource]]:
        return list(self._sources)

    def locales(self) -> list[str]:
        """Every locale some plugin ships a catalog for."""
        found: set[str] = set()
        for _plugin, src in self._sources:
            for entry in src.directory.iterdir():
                if entry.name.endswith(CATALOG_SUFFIX):
                    found.add(entry.name[: -len(CATALOG_SUFFIX)])
        return sorted(found)

    def _file(self, index: int, locale: str) -> dict[str, str]:
        """One source's catalog of one locale, read once (a broken one is reported, empty)."""
        key = (index, locale)
        with self._lock:
            if key not in self._files:
                plugin, src = self._sources[index]
                entries: dict[str, str] = {}
                entry = src.directory / f"{locale}{CATALOG_SUFFIX}"
                try:
                    data = load_catalog_file(entry) if entry.is_file() else {}
                except Exception as exc:  # OSError, UnicodeError, ValueError (TOMLDecodeError)…
                    self.on_problem(
                        "validator.core.registry.catalog_error",
                        plugin,
                        locale,
                        " ".join(str(exc).split()),
                    )
                    data = {}
                for mid, template in data.items():
                    if mid.startswith(src.namespace + "."):
                        entries[mid] = template
                    else:
                        self.on_problem(
                            "validator.core.registry.catalog_namespace",
                            plugin,
                            locale,
                            mid,
                            src.namespace,
                        )
                self._files[key] = entries
            return self._files[key]

    def catalog(self, locale: str) -> dict[str, str]:
        """The merged id → template mapping of one locale (empty if none ships)."""
        merged: dict[str, str] = {}
        for index in range(len(self._sources)):
            merged.update(self._file(index, locale))
        return merged

    def template(self, message_id: str, locale: str = DEFAULT_LOCALE) -> str | None:
        """The template of one id: only the catalogs whose namespace holds the id are read."""
        found: str | None = None
        for index, (_plugin, src) in enumerate(self._sources):
            if message_id.startswith(src.namespace + "."):
                found = self._file(index, locale).get(message_id, found)
        return found

    def message(
        self, message_id: str, args: Iterable[object] = (), locale: str | None = None
    ) -> LocalizableMessage:
        """Render a message: English ``default_message``, ``localized`` if a locale was asked."""
        sargs = tuple(str(a) for a in args)
        english = self.template(message_id, DEFAULT_LOCALE)
        if english is None:
            # An id with no catalog entry is a bug the catalog tests catch; the
            # user still gets the id and its arguments rather than nothing.
            english = message_id + "".join(f" {{{i}}}" for i in range(len(sargs)))
        default = format_template(english, sargs)
        localized: str | None = None
        if locale is not None:
            tmpl = self.template(message_id, locale) if locale != DEFAULT_LOCALE else None
            localized = format_template(tmpl, sargs) if tmpl is not None else default
        return LocalizableMessage(message_id, default, sargs, localized)
