"""The reference update-session server: ``validator serve`` (see ``docs/server.md``).

:func:`create_app` builds the ASGI application (Starlette) around the same
plugin registry the CLI uses, with the server's own hooks
(:mod:`validator.server.hookspecs`) added; :func:`cli_main` is the command.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from validator.registry import Registry
    from validator.server.auth import Users
    from validator.server.routes import Table
    from validator.server.service import ServerConfig, Service


def build_server_registry(plugins: Iterable[tuple[str, object]] = ()) -> Registry:
    """The CLI's registry plus the server's hookspecs, its catalogs and deployment plugins."""
    from validator.registry import build_registry
    from validator.server import hookspecs, plugin

    return build_registry(
        extra_hookspecs=[hookspecs], extra_plugins=[("server", plugin), *plugins]
    )


def create_service(
    config: ServerConfig, users: Users, plugins: Iterable[tuple[str, object]] = ()
) -> Service:
    """The service (database, data folder) after crash recovery."""
    from validator.server.service import Service

    service = Service(config, build_server_registry(plugins), users)
    service.recover()
    return service


def create_app(
    config: ServerConfig,
    users: Users,
    plugins: Iterable[tuple[str, object]] = (),
    *,
    service: Service | None = None,
    table: Table | None = None,
) -> Starlette:
    """The ASGI application of ``validator serve``; ``table``: its operations (by default
    :data:`validator.server.routes.ROUTES`, the vAPI operations the seeds name)."""
    from validator.server.app import Server, make_starlette
    from validator.server.openapi import document
    from validator.server.routes import ROUTES

    service = service if service is not None else create_service(config, users, plugins)
    server = Server(service, document, ROUTES if table is None else table)
    app = make_starlette(server, sweep_seconds=min(5.0, max(0.2, config.session_timeout / 4)))
    app.state.service = service
    return app


def load_plugins(names: Sequence[str]) -> list[tuple[str, object]]:
    return [(name, importlib.import_module(name)) for name in names]


def cli_main(argv: Sequence[str]) -> int:
    from validator.server.cli import main

    return main(argv)
