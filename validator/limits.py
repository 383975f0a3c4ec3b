"""Resource limits: every parser we run on untrusted input is bounded by one of these.

Each limit is *declared* by the code that uses it, with its documented default:
the engine declares its own here (:data:`CORE_LIMITS`: files per session,
session manifests, reads, threads, plugin calls), and a plugin declares the
limits of its parsers through the ``validator_limits`` hook (the ``ovf``
adapter its descriptor, manifest, certificate, archive and gzip limits, the
``iso`` adapter its directory walk).  ``validator limits`` lists them all,
grouped by the plugin that declares them; the CLI changes one with
``--limit NAME=VALUE`` and a server passes its own :class:`Limits`.  Exceeding
a limit is a clear invalid-file message, never a crash or a silent pass.

:class:`Limits` holds the values that differ from the defaults and answers
every declared name as an attribute (``limits.descriptor_bytes``); it is a
small slotted class, cheap to define on every run (README, "Performance").
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, NamedTuple

MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40


class Limit(NamedTuple):
    """One declared limit: its ``name``, ``default`` and what it bounds (``doc``)."""

    name: str
    default: int
    doc: str
    #: ``0`` is a meaningful value (``threads``: one per core).
    zero_allowed: bool = False


#: The engine's own limits.
CORE_LIMITS: tuple[Limit, ...] = (
    Limit("max_files", 10_000, "Files (and rejected entries) in one session."),
    Limit("manifest_bytes", 16 * MiB, "Size of a session manifest or OVF manifest, in bytes."),
    Limit("read_chunk_bytes", 1 * MiB, "Bytes read per call in the stream pass."),
    Limit("threads", 0, "Threads reading independent files in parallel (0: one per core).", True),
    Limit(
        "plugin_seconds",
        60,
        "Seconds one call into a plugin may take before it is reported and given up on.",
    ),
)

_lock = threading.Lock()
#: name → (declaring plugin, limit), in declaration order.
_DECLARED: dict[str, tuple[str, Limit]] = {lim.name: ("core", lim) for lim in CORE_LIMITS}


def declare(plugin: str, limits: Iterable[Limit]) -> list[str]:
    """Declare a plugin's limits (the registry does, from ``validator_limits``).

    :return: the names refused because another plugin declared them first.
    """
    global _registry_read
    refused: list[str] = []
    with _lock:
        _registry_read = True  # a registry is declaring: no need to build one
        for lim in limits:
            owner = _DECLARED.get(lim.name)
            if owner is not None and (owner[0] != plugin or owner[1] != lim):
                refused.append(lim.name)
                continue
            _DECLARED[lim.name] = (plugin, lim)
    return refused


def _declared() -> dict[str, tuple[str, Limit]]:
    """Every declared limit; plugins' declarations are read from the registry first."""
    if not _registry_read:
        _read_registry()
    with _lock:
        return dict(_DECLARED)


_registry_read = False


def _read_registry() -> None:
    """Declarations come with the plugins: build the process's registry if nobody did."""
    global _registry_read
    _registry_read = True
    from validator.registry import default_registry

    default_registry()


def declared() -> list[tuple[str, Limit]]:
    """``(plugin, limit)`` for every declared limit, core first, in declaration order."""
    return list(_declared().values())


class Limits:
    """The limits in force: the declared defaults, less what was changed.

    ``Limits(descriptor_bytes=100)`` or ``Limits().replace(threads=2)`` change
    some; every declared limit is an attribute.  Names are checked against the
    declarations when read (and by :meth:`with_assignment`).
    """

    __slots__ = ("_values",)
    _values: dict[str, int]

    def __init__(self, **values: int) -> None:
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str) -> int:
        if name.startswith("__"):
            raise AttributeError(name)
        values: dict[str, int] = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        found = _DECLARED.get(name)
        if found is None:
            found = _declared().get(name)
        if found is None:
            raise AttributeError(f"no limit named {name!r}")
        return found[1].default

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Limits are immutable: use replace()")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Limits):
            return NotImplemented
        return self.as_dict() == other.as_dict()

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.as_dict().items())))

    def __reduce__(self) -> tuple[Any, tuple[dict[str, int]]]:
        """Pickled as the values that were changed (a batch sends them to its workers,
        which read the declared defaults from their own registry)."""
        return (_limits_from, (dict(object.__getattribute__(self, "_values")),))

    def __repr__(self) -> str:
        changed = ", ".join(f"{k}={v}" for k, v in self._values.items())
        return f"Limits({changed})"

    def as_dict(self) -> dict[str, int]:
        """Every declared limit's value."""
        return {name: getattr(self, name) for name in self.names()}

    @classmethod
    def names(cls) -> list[str]:
        return list(_declared())

    @classmethod
    def defaults(cls) -> dict[str, int]:
        """Every limit's name and default, in declaration order (core first)."""
        return {name: lim.default for name, (_plugin, lim) in _declared().items()}

    def replace(self, **changes: int) -> Limits:
        return Limits(**{**self._values, **changes})

    _replace = replace

    def with_assignment(self, text: str) -> Limits:
        """Apply ``NAME=VALUE`` (``ValueError`` with a one-line reason if it is not one)."""
        name, sep, value = text.partition("=")
        name = name.strip().replace("-", "_")
        known = _declared()
        if not sep or name not in known:
            raise ValueError(f"unknown limit {name!r}; known: {', '.join(known)}")
        try:
            number = int(value.strip().replace("_", ""))
        except ValueError:
            raise ValueError(f"limit {name} needs a whole number, got {value!r}") from None
        if number < 0 or (number == 0 and not known[name][1].zero_allowed):
            raise ValueError(f"limit {name} must be positive")
        return self.replace(**{name: number})


def _limits_from(values: dict[str, int]) -> Limits:
    """Unpickle :class:`Limits` (see ``Limits.__reduce__``)."""
    return Limits(**values)
