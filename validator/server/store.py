"""The server's store: the database and the data folder, and the records that are plain rows.

:class:`Store` opens the database (SQLite in the data folder, or PostgreSQL) and holds the
folder's lock; it runs transactions, makes localized errors, calls server hooks and checks
the arguments every operation shares (ids, texts, specs, client tokens: bounds from
:mod:`validator.server.args`). Login tokens, libraries and items live here; the session
state machine builds on it (:mod:`validator.server.sessions`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import exc as sa_exc

from validator.calls import PLUGIN_ERRORS, call_bounded, describe
from validator.limits import Limits
from validator.registry import HookFailure, Registry
from validator.results import LocalizableMessage, VapiError
from validator.server import args
from validator.server.auth import Users, new_token, token_key
from validator.server.db import Database, Row, Tx, default_url
from validator.session import display_name, is_plain_name

log = logging.getLogger("validator.server")

T = TypeVar("T")


GiB = 1 << 30

_ID = re.compile(args.ID_PATTERN)

#: The parameter that names an object of each kind (for "the parameter … is required").
_ID_PARAMS = {
    "library": "library_id",
    "library item": "library_item_id",
    "update session": "update_session_id",
}


class DataFolderBusy(RuntimeError):
    """Another server process uses the data folder."""


class SessionLocks:
    """Per-session reader/writer locks: ``validate`` reads, what changes files writes.

    ``validate`` holds a shared lock for its whole run, so ``complete`` (which
    moves the uploads into the item), ``cancel``, ``fail``, ``add``, ``remove``
    and the end of an upload wait until it has read what it reports on, and it
    never reads a half-published or half-removed session. Operations that find
    the session no longer ACTIVE after waiting answer ``not_allowed_in_current_state``.
    A waiting writer blocks new readers, so a stream of validations cannot
    starve ``complete``.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        #: session id → readers holding it (> 0) or -1 for a writer
        self._held: dict[str, int] = {}
        self._writers_waiting: dict[str, int] = {}

    @contextlib.contextmanager
    def shared(self, session_id: str) -> Iterator[None]:
        with self._cond:
            while self._held.get(session_id, 0) < 0 or self._writers_waiting.get(session_id):
                self._cond.wait()
            self._held[session_id] = self._held.get(session_id, 0) + 1
        try:
            yield
        finally:
            with self._cond:
                self._held[session_id] -= 1
                if not self._held[session_id]:
                    del self._held[session_id]
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self, session_id: str, *, wait: bool = True) -> Iterator[bool]:
        """Hold the session alone; with ``wait=False`` yield ``False`` at once when busy."""
        with self._cond:
            busy = bool(self._held.get(session_id, 0)) and not wait
            if not busy:
                self._writers_waiting[session_id] = self._writers_waiting.get(session_id, 0) + 1
                try:
                    while self._held.get(session_id, 0):
                        self._cond.wait()
                finally:
                    self._writers_waiting[session_id] -= 1
                    if not self._writers_waiting[session_id]:
                        del self._writers_waiting[session_id]
                self._held[session_id] = -1
        if busy:
            yield False
            return
        try:
            yield True
        finally:
            with self._cond:
                del self._held[session_id]
                self._cond.notify_all()


@dataclass(frozen=True)
class ServerConfig:
    """What ``validator serve`` is told on its command line."""

    data_dir: Path
    session_timeout: float = 300.0
    max_upload_bytes: int = 64 * GiB
    max_body_bytes: int = 1 << 20
    #: Request line and headers; more is refused whatever way it arrives (h11 alone
    #: refuses only a block still incomplete after 16 KiB, one read can bring 256 KiB).
    max_header_bytes: int = 16 << 10
    max_session_files: int = 1000
    #: An upload that receives no byte for this long ends ERROR (validator.server.file.stalled).
    upload_idle_timeout: float = 60.0
    #: A login token unused for this long stops working.
    token_idle_seconds: float = 24 * 3600.0
    #: Password hashes (scrypt) computed at once; more logins wait, without a thread.
    login_workers: int = 2
    #: Logins waiting for a hash worker; more are refused at once (service_unavailable).
    login_queue: int = 32
    #: Failed logins in ``login_fail_window`` seconds after which a client (or, for a
    #: client that failed too, a user name) is refused until the window has passed.
    login_failures_per_client: int = 10
    login_failures_per_user: int = 20
    login_fail_window: float = 60.0
    limits: Limits = field(default_factory=Limits)
    #: ``sqlite:///PATH`` or ``postgresql://…``; ``None``: SQLite in the data folder.
    database: str | None = None


@dataclass(frozen=True)
class Ctx:
    """Who asks, in which language, and the base URL upload endpoints are built on."""

    user: str
    locale: str | None = None
    base_url: str = "http://127.0.0.1"


def iso_time(t: float) -> str:
    """A vAPI DateTime: ``2026-11-22T08:00:00.000Z``."""
    d = datetime.fromtimestamp(t, UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Store:
    """The database, the data folder and the plain records: tokens, libraries, items."""

    def __init__(self, config: ServerConfig, registry: Registry, users: Users) -> None:
        self.config = config
        self.registry = registry
        self.users = users
        self.data = config.data_dir
        self.data.mkdir(parents=True, exist_ok=True)
        self.db = Database(config.database or default_url(self.data))
        self._lockfile = None
        if not self.db.shared:
            # One server per data folder on SQLite: recovery removes what no item points
            # at, which would break a second server's publish in progress. On PostgreSQL
            # several servers share the folder; what they must do once is held by
            # advisory locks (validator.server.db.PgSessionLocks).
            self._lockfile = open(self.data / "server.lock", "a+b")  # noqa: SIM115
            try:
                fcntl.flock(self._lockfile.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self._lockfile.close()
                self.db.close()
                raise DataFolderBusy(str(self.data)) from None
        (self.data / "uploads").mkdir(exist_ok=True)
        (self.data / "content").mkdir(exist_ok=True)
        self.db.upgrade()
        #: validate reads a session's files; complete, cancel, add … change them (see SessionLocks).
        self._locks: Any = self.db.session_locks()

    def close(self) -> None:
        self.db.close()
        if self._lockfile is not None:
            self._lockfile.close()  # releases the folder's lock

    def _sync_dir(self, path: Path) -> None:
        """Make a folder's entries durable (the facade names it: a seam for tests)."""
        _fsync_dir(path)

    def _tx(self) -> contextlib.AbstractContextManager[Tx]:
        return self.db.tx()

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return self.db.query(sql, args)

    def message(self, ctx: Ctx | None, message_id: str, *args: object) -> LocalizableMessage:
        # Arguments often echo what a client sent: never echo a megabyte back.
        shown = [a if len(a) <= 4096 else a[:4096] + "…" for a in map(str, args)]
        return self.registry.catalogs.message(message_id, shown, ctx.locale if ctx else None)

    def error(self, ctx: Ctx | None, kind: str, message_id: str, *args: object) -> VapiError:
        return VapiError(kind, [self.message(ctx, message_id, *args)])

    def hook(self, hook_name: str, **kwargs: Any) -> None:
        """Call a server hook; a failing implementation is logged, never raised."""
        for plugin, result in self.registry.call_each(hook_name, kwargs):
            if isinstance(result, HookFailure):
                log.warning("plugin %s failed in %s: %s", plugin, hook_name, result.error)

    def ask_item_type(
        self,
        kind: str,
        question: str,
        args: Sequence[Any],
        accept: type | tuple[type, ...],
        default: Any,
    ) -> Any:
        """An item type's answer to one of the server's questions (an
        :class:`~validator.checks.ItemType` method such as ``kept_in_storage``), through
        the gateway: under the plugin time budget; a failure, or an answer not of type
        ``accept``, is logged with the plugin's name and ``default`` is taken (as it is
        for a type no loaded plugin adapts)."""
        adapter = self.registry.item_types.get(kind)
        if adapter is None:
            return default
        plugin = self.registry.item_type_plugin.get(kind, "?")
        label = f"{kind}.{question}"
        try:
            answer = call_bounded(
                getattr(adapter, question),
                list(args),
                self.config.limits.plugin_seconds,
                plugin,
                label,
            )
        except PLUGIN_ERRORS as exc:
            log.warning("plugin %s failed in %s: %s", plugin, label, describe(exc))
            return default
        if not isinstance(answer, accept):
            log.warning("plugin %s answered %s with a %s", plugin, label, type(answer).__name__)
            return default
        return answer

    def check_id(self, ctx: Ctx, value: Any, what: str) -> str:
        if value is None:  # not given: say which parameter, not "None is not an id"
            param = _ID_PARAMS.get(what, what)
            raise self.error(ctx, "invalid_argument", "validator.server.arg.missing", param)
        if not isinstance(value, str) or not _ID.fullmatch(value):  # match's $ allows "id\n"
            shown = repr(value) if not isinstance(value, str) else display_name(value)
            shown = shown if len(shown) <= 64 else shown[:64] + "…"
            raise self.error(ctx, "invalid_argument", "validator.server.arg.bad_id", shown, what)
        return value

    def _text(
        self,
        ctx: Ctx,
        spec: Mapping[str, Any],
        key: str,
        *,
        required: bool,
        limit: int = args.TEXT_MAX,
    ) -> str | None:
        value = spec.get(key)
        if value is None:
            if required:
                raise self.error(ctx, "invalid_argument", "validator.server.arg.missing", key)
            return None
        if not isinstance(value, str) or len(value) > limit or "\x00" in value:
            raise self.error(ctx, "invalid_argument", "validator.server.arg.invalid", key, value)
        return value

    def _spec(self, ctx: Ctx, value: Any, key: str) -> Mapping[str, Any]:
        if value is None:
            raise self.error(ctx, "invalid_argument", "validator.server.arg.missing", key)
        if not isinstance(value, Mapping):
            raise self.error(ctx, "invalid_argument", "validator.server.arg.invalid", key, value)
        return value

    def _client_token(self, ctx: Ctx, value: Any) -> str | None:
        if value is None or value == "":
            return None
        if not isinstance(value, str) or len(value) > args.CLIENT_TOKEN_MAX:
            raise self.error(
                ctx, "invalid_argument", "validator.server.arg.invalid", "client_token", value
            )
        return value

    def _once(self, fn: Callable[[Tx], T]) -> T:
        """``fn`` in a transaction. With several servers (PostgreSQL) two creates can race
        to a unique index (one ACTIVE session per item, one object per client token):
        the loser runs once more and then sees the winner's row."""
        try:
            with self._tx() as db:
                return fn(db)
        except sa_exc.IntegrityError:
            with self._tx() as db:
                return fn(db)

    def _reused(self, ctx: Ctx, row: Row | None, token: str, spec: Mapping[str, Any]) -> str | None:
        """The id a client token already made, if it was made with the same spec."""
        if row is None:
            return None
        if row["client_spec"] is not None and json.loads(row["client_spec"]) != spec:
            raise self.error(
                ctx, "invalid_argument", "validator.server.arg.client_token_reused", token
            )
        return str(row["id"])

    def login(self, user: str, password: str) -> str | None:
        if not self.users.check(user, password):
            return None
        token = new_token()
        now = time.time()
        with self._tx() as db:
            db.execute("INSERT INTO tokens VALUES (?, ?, ?, ?)", (token_key(token), user, now, now))
        return token

    def authenticate(self, token: str) -> str | None:
        if not token or len(token) > 256:
            return None
        key = token_key(token)
        rows = self._query('SELECT "user", last FROM tokens WHERE key = ?', (key,))
        if not rows:
            return None
        now = time.time()
        if now - rows[0]["last"] > self.config.token_idle_seconds:
            with self._tx() as db:
                db.execute("DELETE FROM tokens WHERE key = ?", (key,))
            return None
        if now - rows[0]["last"] > 60:  # one write a minute per token at most
            with self._tx() as db:
                db.execute("UPDATE tokens SET last = ? WHERE key = ?", (now, key))
        return str(rows[0]["user"])

    def token_info(self, token: str) -> dict[str, str] | None:
        """``cis.session.Info`` of a valid token: its user, when it was made and last used."""
        user = self.authenticate(token)
        if user is None:
            return None
        rows = self._query("SELECT created, last FROM tokens WHERE key = ?", (token_key(token),))
        if not rows:
            return None
        return {
            "user": user,
            "created_time": iso_time(rows[0]["created"]),
            "last_accessed_time": iso_time(rows[0]["last"]),
        }

    def logout(self, token: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM tokens WHERE key = ?", (token_key(token),))

    def library_create(self, ctx: Ctx, spec: Any, client_token: Any = None) -> str:
        spec = self._spec(ctx, spec, "create_spec")
        name = self._text(ctx, spec, "name", required=False) or "library"
        description = (
            self._text(ctx, spec, "description", required=False, limit=args.LONG_TEXT_MAX) or ""
        )
        backings = self._storage_backings(ctx, spec.get("storage_backings"))
        token = self._client_token(ctx, client_token)
        made = {"name": name, "description": description, "storage_backings": backings}

        def create(db: Tx) -> str:
            if token is not None:
                row = db.execute(
                    "SELECT id, client_spec FROM libraries WHERE owner = ? AND client_token = ?",
                    (ctx.user, token),
                ).fetchone()
                if (found := self._reused(ctx, row, token, made)) is not None:
                    return found
            lib_id = str(uuid.uuid4())
            db.execute(
                "INSERT INTO libraries (id, name, description, owner, client_token, created,"
                " client_spec, storage_backings) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    lib_id,
                    name,
                    description,
                    ctx.user,
                    token,
                    time.time(),
                    json.dumps(made) if token else None,
                    json.dumps(backings),
                ),
            )
            return lib_id

        return self._once(create)

    def _storage_backings(self, ctx: Ctx, value: Any) -> list[dict[str, str]]:
        """``storage_backings`` of a library create spec: kept and answered as given."""
        if value is None:
            return []
        if not isinstance(value, list) or len(value) > args.STORAGE_BACKINGS_MAX:
            raise self.error(
                ctx, "invalid_argument", "validator.server.arg.invalid", "storage_backings", value
            )
        out = []
        for entry in value:
            ok = (
                isinstance(entry, Mapping)
                and entry.get("type") in args.BACKING_TYPES
                and set(entry) <= {"type", "datastore_id", "storage_uri"}
                and all(
                    entry.get(k) is None
                    or (isinstance(entry[k], str) and len(entry[k]) <= args.BACKING_TEXT_MAX)
                    for k in ("datastore_id", "storage_uri")
                )
            )
            if not ok:
                raise self.error(
                    ctx,
                    "invalid_argument",
                    "validator.server.arg.invalid",
                    "storage_backings",
                    entry,
                )
            out.append({k: v for k, v in entry.items() if v is not None})
        return out

    def _library_row(self, ctx: Ctx, library_id: Any) -> Row:
        library_id = self.check_id(ctx, library_id, "library")
        rows = self._query("SELECT * FROM libraries WHERE id = ?", (library_id,))
        if not rows:
            raise self.error(ctx, "not_found", "validator.server.not_found.library", library_id)
        return rows[0]

    def library_get(self, ctx: Ctx, library_id: Any) -> dict[str, Any]:
        row = self._library_row(ctx, library_id)
        return {
            "id": row["id"],
            "name": row["name"],
            "description": row["description"],
            "type": "LOCAL",
            "creation_time": iso_time(row["created"]),
            "storage_backings": json.loads(row["storage_backings"] or "[]"),
        }

    def library_list(self, ctx: Ctx) -> list[str]:
        return [str(r["id"]) for r in self._query("SELECT id FROM libraries ORDER BY created")]

    def item_create(self, ctx: Ctx, spec: Any, client_token: Any = None) -> str:
        spec = self._spec(ctx, spec, "create_spec")
        library = self._library_row(ctx, spec.get("library_id"))
        name = self._text(ctx, spec, "name", required=True)
        kind = self._text(ctx, spec, "type", required=True, limit=args.TYPE_MAX)
        description = (
            self._text(ctx, spec, "description", required=False, limit=args.LONG_TEXT_MAX) or ""
        )
        if kind not in self.registry.item_types:
            known = ", ".join(sorted(self.registry.item_types))
            raise self.error(
                ctx, "invalid_argument", "validator.server.arg.unknown_type", kind, known
            )
        token = self._client_token(ctx, client_token)
        made = {"library_id": library["id"], "name": name, "type": kind, "description": description}
        now = time.time()

        def create(db: Tx) -> str:
            if token is not None:
                row = db.execute(
                    "SELECT id, client_spec FROM items WHERE owner = ? AND client_token = ?",
                    (ctx.user, token),
                ).fetchone()
                if (found := self._reused(ctx, row, token, made)) is not None:
                    return found
            item_id = str(uuid.uuid4())
            db.execute(
                "INSERT INTO items (id, library_id, name, description, type, owner, client_token,"
                " content_version, content_dir, created, modified, client_spec)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 1, NULL, ?, ?, ?)",
                (
                    item_id,
                    library["id"],
                    name,
                    description,
                    kind,
                    ctx.user,
                    token,
                    now,
                    now,
                    json.dumps(made) if token else None,
                ),
            )
            return item_id

        return self._once(create)

    def _item_row(self, ctx: Ctx, item_id: Any) -> Row:
        item_id = self.check_id(ctx, item_id, "library item")
        rows = self._query("SELECT * FROM items WHERE id = ?", (item_id,))
        if not rows:
            raise self.error(ctx, "not_found", "validator.server.not_found.item", item_id)
        return rows[0]

    def item_get(self, ctx: Ctx, item_id: Any) -> dict[str, Any]:
        row = self._item_row(ctx, item_id)
        size = self._query(
            "SELECT COALESCE(SUM(size), 0) AS s FROM item_files WHERE item_id = ?", (row["id"],)
        )[0]["s"]
        return {
            "id": row["id"],
            "library_id": row["library_id"],
            "name": row["name"],
            "description": row["description"],
            "type": row["type"],
            "content_version": str(row["content_version"]),
            "creation_time": iso_time(row["created"]),
            "last_modified_time": iso_time(row["modified"]),
            "size": int(size),
            "cached": True,
        }

    def item_list(self, ctx: Ctx, library_id: Any) -> list[str]:
        library = self._library_row(ctx, library_id)
        rows = self._query(
            "SELECT id FROM items WHERE library_id = ? ORDER BY created", (library["id"],)
        )
        return [str(r["id"]) for r in rows]

    def _item_file_info(self, row: Row, version: int) -> dict[str, Any]:
        return {
            "name": row["name"],
            "size": row["size"],
            "cached": True,
            "version": str(version),
            "checksum_info": {"algorithm": "SHA256", "checksum": row["sha256"]},
        }

    def item_files(self, ctx: Ctx, item_id: Any) -> list[dict[str, Any]]:
        # One read transaction: the version and its files always belong together.
        with self._tx() as db:
            item = self._item_row(ctx, item_id)
            rows = list(
                db.execute(
                    "SELECT * FROM item_files WHERE item_id = ? ORDER BY name", (item["id"],)
                )
            )
        return [self._item_file_info(r, item["content_version"]) for r in rows]

    def item_file_get(self, ctx: Ctx, item_id: Any, name: Any) -> dict[str, Any]:
        for info in self.item_files(ctx, item_id):
            if info["name"] == name:
                return info
        raise self.error(ctx, "not_found", "validator.server.not_found.item_file", item_id, name)

    def item_content_path(self, item_id: str, name: str) -> Path | None:
        """Where the current content of an item's file is (for tests and deployments)."""
        rows = self._query("SELECT content_dir FROM items WHERE id = ?", (item_id,))
        if not rows or rows[0]["content_dir"] is None or not is_plain_name(name):
            return None
        return self.data / "content" / item_id / str(rows[0]["content_dir"]) / name
