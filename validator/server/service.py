"""The operations of the server, independent of the wire format: the facade.

:class:`Service` is what the web layer (:mod:`validator.server.app`) and the route table's
handlers (:mod:`validator.server.routes`) call. It is built from rooms, one concern each,
each on top of the one before (a room uses only what lies below it)::

    store.Store           database, data folder, tokens, libraries, items, shared checks
    sessions.Sessions     update sessions and their files: the state machine, expiry
    uploads.Uploads       a file's bytes arriving (claim, progress, how it ended)
    uploads.Publishing    validate and complete: the engine, the atomic publish
    recovery.Recovery     start-up repair, stale uploads, the periodic sweep

State lives in one database (SQLite in the data folder, or PostgreSQL); file content lives
beside it::

    DATA/state.sqlite3                 libraries, items, sessions, files, tokens
    DATA/uploads/SESSION/TOKEN         bytes of a session file (TOKEN.part while arriving)
    DATA/content/ITEM/VERSION-SESSION  the files of one content version of an item

Every method is synchronous (the web layer runs them in worker threads) and raises
:class:`~validator.results.VapiError` for the client.
"""

from __future__ import annotations

from pathlib import Path

from validator.engine import Engine
from validator.server.recovery import Recovery
from validator.server.sessions import ACTIVE, CANCELED, DONE, ERROR
from validator.server.store import (
    _ID,
    Ctx,
    DataFolderBusy,
    GiB,
    ServerConfig,
    SessionLocks,
    _fsync_dir,
    iso_time,
)
from validator.server.uploads import WARNING_TYPES, UploadTarget, warning_type

__all__ = [
    "ACTIVE",
    "CANCELED",
    "DONE",
    "ERROR",
    "WARNING_TYPES",
    "_ID",
    "Ctx",
    "DataFolderBusy",
    "GiB",
    "ServerConfig",
    "Service",
    "SessionLocks",
    "UploadTarget",
    "iso_time",
    "warning_type",
]


class Service(Recovery):
    """The update-session server's state and operations (all rooms, one object).

    The two things a validation and a publish take from the process are named here, so a
    test (or a deployment) substitutes them in one place: the engine class and the folder
    fsync of this module.
    """

    def _engine(self) -> Engine:
        return Engine(self.registry, limits=self.config.limits)

    def _sync_dir(self, path: Path) -> None:
        _fsync_dir(path)
