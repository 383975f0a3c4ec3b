"""The server's own plugin (registered as ``server``): its message catalogs."""

from __future__ import annotations

from collections.abc import Iterable
from importlib.resources import files

from validator.hookspecs import hookimpl
from validator.messages import CatalogSource


@hookimpl
def validator_message_catalogs() -> Iterable[CatalogSource]:
    return [CatalogSource("validator.server", files("validator.server") / "catalogs")]
