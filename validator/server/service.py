"""The operations of the server, independent of the wire format.

State lives in one SQLite database (WAL; ``synchronous=FULL`` for publishing) in the data
folder; file content lives beside it::

    DATA/state.sqlite3                 libraries, items, sessions, files, tokens
    DATA/uploads/SESSION/TOKEN         bytes of a session file (TOKEN.part while arriving)
    DATA/content/ITEM/VERSION-SESSION  the files of one content version of an item

Publishing (``complete``) is atomic: the new version's folder is filled
(hard links to the uploads, fsynced) while the item still points at its old
folder, then one transaction switches the item's content version and
folder, records the version's files and moves the session to ``DONE``.
Nothing refers to the new folder until that commit, so a crash before it
leaves the old content and an ``ACTIVE`` session; :meth:`Service.recover`
removes every folder that no item points at when the server starts.

Every method is synchronous (the web layer runs them in worker threads)
and raises :class:`~validator.results.VapiError` for the client.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import importlib
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import exc as sa_exc

from validator.engine import Engine
from validator.limits import Limits
from validator.registry import HookFailure, Registry
from validator.results import (
    LocalizableMessage,
    NotAllowedInCurrentState,
    ValidationError,
    ValidationResult,
    VapiError,
)
from validator.server import args
from validator.server.auth import Users, new_token, token_key
from validator.server.db import Database, Row, Tx, default_url
from validator.session import (
    ChecksumAlgorithm,
    ChecksumInfo,
    PathSource,
    Session,
    SessionError,
    SessionFile,
    TransferStatus,
    display_name,
    is_plain_name,
)

log = logging.getLogger("validator.server")
T = TypeVar("T")

GiB = 1 << 30
ACTIVE, DONE, ERROR, CANCELED = "ACTIVE", "DONE", "ERROR", "CANCELED"
WARNING_TYPES = (
    "SELF_SIGNED_CERTIFICATE",
    "EXPIRED_CERTIFICATE",
    "NOT_YET_VALID_CERTIFICATE",
    "UNTRUSTED_CERTIFICATE",
)
_WARNING_KEYWORDS = (
    ("self_signed", "SELF_SIGNED_CERTIFICATE"),
    ("not_yet_valid", "NOT_YET_VALID_CERTIFICATE"),
    ("expired", "EXPIRED_CERTIFICATE"),
    ("untrusted", "UNTRUSTED_CERTIFICATE"),
)
_ID = re.compile(args.ID_PATTERN)
#: The parameter that names an object of each kind (for "the parameter … is required").
_ID_PARAMS = {
    "library": "library_id",
    "library item": "library_item_id",
    "update session": "update_session_id",
}
_HEX = re.compile(args.CHECKSUM_PATTERN)
_METADATA_SUFFIXES = {"ovf": (".mf", ".cert")}
#: As vCenter does, an OVF item's manifest or certificate may not be added once
#: its descriptor is in the session (they must come first: the descriptor's
#: arrival is what a client's upload order keys on).
_DESCRIPTOR_SUFFIXES = {"ovf": ".ovf"}


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


@dataclass(frozen=True)
class UploadTarget:
    session_id: str
    user: str
    name: str
    part: Path
    final: Path
    size: int | None
    limit: int
    checksum: ChecksumInfo | None


def iso_time(t: float) -> str:
    """A vAPI DateTime: ``2026-11-22T08:00:00.000Z``."""
    d = datetime.fromtimestamp(t, UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def warning_type(message_id: str) -> str:
    """The ``WarningType`` a preview warning's message id stands for (else the id itself)."""
    last = message_id.rsplit(".", 1)[-1].lower()
    for name in WARNING_TYPES:
        if last == name.lower():
            return name
    for key, name in _WARNING_KEYWORDS:
        if key in last:
            return name
    return message_id


def _session_level(result: ValidationResult, session: Session) -> ValidationResult:
    """Problems of the session as a whole get an empty name, not the session's id.

    An adapter names such a problem (an OVF session without a descriptor, an ISO session
    without an image) by the session's origin, which for a CLI run is the path given;
    here that is the update session's id, which a client would take for a file name.
    """
    origin = session.origin
    if session.get(origin) is not None:  # a file really has that name
        return result

    def fix(entries: tuple[ValidationError, ...]) -> tuple[ValidationError, ...]:
        return tuple(dataclasses.replace(e, name="") if e.name == origin else e for e in entries)

    return dataclasses.replace(
        result, invalid_files=fix(result.invalid_files), warnings=fix(result.warnings)
    )


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Service:
    """The update-session server's state and operations."""

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

    # -- plumbing ---------------------------------------------------------
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

    # -- access -----------------------------------------------------------
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

    # -- libraries and items ----------------------------------------------
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

    # -- update sessions --------------------------------------------------
    def expire(self, now: float | None = None) -> int:
        """Move ACTIVE sessions whose keep-alive ran out to ERROR; returns how many."""
        now = time.time() if now is None else now
        # A session with an upload in progress is not idle, however long it takes (an
        # upload that stalls ends by itself after upload_idle_timeout, see upload_finish).
        idle = (
            "state = 'ACTIVE' AND expiration < ? AND NOT EXISTS (SELECT 1 FROM session_files f"
            " WHERE f.session_id = sessions.id AND f.status = 'TRANSFERRING')"
        )
        rows = self._query(f"SELECT * FROM sessions WHERE {idle}", (now,))
        expired = []
        for row in rows:
            # One being validated or completed right now is not idle either: skip it.
            with self._locks.exclusive(row["id"], wait=False) as got:
                if not got:
                    continue
                msg = self.message(
                    None, "validator.server.session.expired", row["id"], self.config.session_timeout
                )
                with self._tx() as db:
                    changed = db.execute(
                        f"UPDATE sessions SET state = 'ERROR', error_message = ?"
                        f" WHERE id = ? AND {idle}",
                        (json.dumps(msg.to_dict()), row["id"], now),
                    ).rowcount
                if changed:
                    self._discard_uploads(row["id"])
                    expired.append(row)
        for row in expired:
            self._changed(row, ACTIVE, ERROR)
        return len(expired)

    def _changed(self, row: Row, old: str | None, new: str) -> None:
        self.hook(
            "validator_server_session_changed",
            session_id=row["id"],
            user=row["owner"],
            library_item_id=row["item_id"],
            old_state=old,
            new_state=new,
        )

    def _session_row(self, ctx: Ctx, session_id: Any) -> Row:
        session_id = self.check_id(ctx, session_id, "update session")
        self.expire()
        rows = self._query(
            "SELECT * FROM sessions WHERE id = ? AND owner = ?", (session_id, ctx.user)
        )
        if not rows:
            raise self.error(ctx, "not_found", "validator.server.not_found.session", session_id)
        return rows[0]

    def _active_row(self, ctx: Ctx, session_id: Any) -> Row:
        row = self._session_row(ctx, session_id)
        if row["state"] != ACTIVE:
            raise self.error(
                ctx,
                "not_allowed_in_current_state",
                "validator.server.session.not_active",
                row["id"],
                row["state"],
            )
        return row

    @contextlib.contextmanager
    def _exclusive(self, ctx: Ctx, session_id: Any) -> Iterator[Row]:
        """The ACTIVE session, held alone (after any validate or complete running on it)."""
        sid = str(self._session_row(ctx, session_id)["id"])  # not_found before waiting
        with self._locks.exclusive(sid):
            yield self._active_row(ctx, sid)

    def _touch(self, db: Tx, session_id: str) -> None:
        db.execute(
            "UPDATE sessions SET expiration = ? WHERE id = ?",
            (time.time() + self.config.session_timeout, session_id),
        )

    def _warning_behavior(self, ctx: Ctx, value: Any) -> list[dict[str, Any]]:
        if value is None:
            return []
        if not isinstance(value, list) or len(value) > args.WARNING_BEHAVIOR_MAX:
            raise self.error(
                ctx, "invalid_argument", "validator.server.arg.invalid", "warning_behavior", value
            )
        out = []
        for entry in value:
            if (
                not isinstance(entry, Mapping)
                or not isinstance(entry.get("type"), str)
                or len(entry["type"]) > args.WARNING_TYPE_MAX
                or not isinstance(entry.get("ignored"), bool)
            ):
                raise self.error(
                    ctx,
                    "invalid_argument",
                    "validator.server.arg.invalid",
                    "warning_behavior",
                    entry,
                )
            out.append({"type": entry["type"], "ignored": entry["ignored"]})
        return out

    def session_create(self, ctx: Ctx, spec: Any, client_token: Any = None) -> str:
        spec = self._spec(ctx, spec, "create_spec")
        token = self._client_token(ctx, client_token)
        item = self._item_row(ctx, spec.get("library_item_id"))
        behavior = self._warning_behavior(ctx, spec.get("warning_behavior"))
        self.expire()
        now = time.time()
        made = {"library_item_id": item["id"], "warning_behavior": behavior}

        def create(db: Tx) -> tuple[str, bool]:
            if token is not None:
                row = db.execute(
                    "SELECT id, client_spec FROM sessions WHERE owner = ? AND client_token = ?",
                    (ctx.user, token),
                ).fetchone()
                if (found := self._reused(ctx, row, token, made)) is not None:
                    return found, False
            busy = db.execute(
                "SELECT id FROM sessions WHERE item_id = ? AND state = 'ACTIVE'", (item["id"],)
            ).fetchone()
            if busy is not None:
                raise self.error(
                    ctx,
                    "resource_busy",
                    "validator.server.session.item_busy",
                    item["id"],
                    busy["id"] if self._owner(busy["id"]) == ctx.user else "-",
                )
            session_id = str(uuid.uuid4())
            db.execute(
                "INSERT INTO sessions (id, owner, item_id, state, client_token, base_version,"
                " expiration, warning_behavior, created, client_spec)"
                " VALUES (?, ?, ?, 'ACTIVE', ?, ?, ?, ?, ?, ?)",
                (
                    session_id,
                    ctx.user,
                    item["id"],
                    token,
                    item["content_version"],
                    now + self.config.session_timeout,
                    json.dumps(behavior),
                    now,
                    json.dumps(made) if token else None,
                ),
            )
            return session_id, True

        session_id, made_now = self._once(create)
        if not made_now:
            return session_id
        self._changed(
            self._query("SELECT * FROM sessions WHERE id = ?", (session_id,))[0], None, ACTIVE
        )
        return session_id

    def _owner(self, session_id: str) -> str | None:
        rows = self._query("SELECT owner FROM sessions WHERE id = ?", (session_id,))
        return str(rows[0]["owner"]) if rows else None

    def _session_model(self, row: Row) -> dict[str, Any]:
        model: dict[str, Any] = {
            "id": row["id"],
            "library_item_id": row["item_id"],
            "library_item_content_version": str(row["base_version"]),
            "state": row["state"],
            "client_progress": row["client_progress"],
            "expiration_time": iso_time(row["expiration"]),
            "warning_behavior": json.loads(row["warning_behavior"]),
        }
        if row["error_message"]:
            model["error_message"] = json.loads(row["error_message"])
        if row["preview_info"] and row["state"] == ACTIVE:  # the API's union allows it only then
            model["preview_info"] = json.loads(row["preview_info"])
        return model

    def session_get(self, ctx: Ctx, session_id: Any) -> dict[str, Any]:
        return self._session_model(self._session_row(ctx, session_id))

    def session_list(self, ctx: Ctx, library_item_id: Any = None) -> list[str]:
        self.expire()
        if library_item_id is None:  # an empty id is not "all": it is not an id
            rows = self._query(
                "SELECT id FROM sessions WHERE owner = ? ORDER BY created", (ctx.user,)
            )
        else:
            item = self._item_row(ctx, library_item_id)
            rows = self._query(
                "SELECT id FROM sessions WHERE owner = ? AND item_id = ? ORDER BY created",
                (ctx.user, item["id"]),
            )
        return [str(r["id"]) for r in rows]

    def session_keep_alive(self, ctx: Ctx, session_id: Any, client_progress: Any = None) -> None:
        row = self._active_row(ctx, session_id)
        progress = self._progress(ctx, client_progress)
        with self._tx() as db:
            self._touch(db, row["id"])
            if progress is not None:
                db.execute(
                    "UPDATE sessions SET client_progress = ? WHERE id = ?", (progress, row["id"])
                )

    def _progress(self, ctx: Ctx, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not 0 <= value <= args.PROGRESS_MAX
        ):
            raise self.error(
                ctx, "invalid_argument", "validator.server.arg.invalid", "client_progress", value
            )
        return value

    def session_update(self, ctx: Ctx, session_id: Any, spec: Any) -> None:
        spec = self._spec(ctx, spec, "update_spec")
        behavior = (
            self._warning_behavior(ctx, spec["warning_behavior"])
            if "warning_behavior" in spec
            else None
        )
        progress = self._progress(ctx, spec.get("client_progress"))
        # warning_behavior decides what complete accepts: not changed under it.
        with self._exclusive(ctx, session_id) as row, self._tx() as db:
            self._touch(db, row["id"])
            if behavior is not None:
                db.execute(
                    "UPDATE sessions SET warning_behavior = ? WHERE id = ?",
                    (json.dumps(behavior), row["id"]),
                )
            if progress is not None:
                db.execute(
                    "UPDATE sessions SET client_progress = ? WHERE id = ?", (progress, row["id"])
                )

    def _end(
        self, ctx: Ctx, session_id: Any, state: str, message: LocalizableMessage | None
    ) -> None:
        with self._exclusive(ctx, session_id) as row:
            with self._tx() as db:
                db.execute(
                    "UPDATE sessions SET state = ?, error_message = ?"
                    " WHERE id = ? AND state = 'ACTIVE'",
                    (state, json.dumps(message.to_dict()) if message else None, row["id"]),
                )
                self._end_transfers(db, str(row["id"]), state)
            self._discard_uploads(row["id"])
        self._changed(row, ACTIVE, state)

    def _end_transfers(self, db: Tx, session_id: str, state: str) -> None:
        """Uploads still arriving in a session that ends are over: they end ``ERROR``."""
        for f in db.execute(
            "SELECT name FROM session_files WHERE session_id = ? AND status = 'TRANSFERRING'",
            (session_id,),
        ).fetchall():
            msg = self.message(
                None, "validator.server.file.session_ended", f["name"], session_id, state
            )
            db.execute(
                "UPDATE session_files SET status = 'ERROR', received_size = NULL, sha256 = NULL,"
                " error_message = ? WHERE session_id = ? AND name = ?",
                (json.dumps(msg.to_dict()), session_id, f["name"]),
            )

    def session_cancel(self, ctx: Ctx, session_id: Any) -> None:
        self._end(ctx, session_id, CANCELED, None)

    def session_fail(self, ctx: Ctx, session_id: Any, client_error_message: Any) -> None:
        if (
            not isinstance(client_error_message, str)
            or len(client_error_message) > args.LONG_TEXT_MAX
        ):
            raise self.error(
                ctx, "invalid_argument", "validator.server.arg.missing", "client_error_message"
            )
        msg = self.message(None, "validator.server.session.client_failed", client_error_message)
        self._end(ctx, session_id, ERROR, msg)

    def session_delete(self, ctx: Ctx, session_id: Any) -> None:
        row = self._session_row(ctx, session_id)
        if row["state"] == ACTIVE:
            raise self.error(
                ctx, "not_allowed_in_current_state", "validator.server.session.is_active", row["id"]
            )
        with self._tx() as db:
            db.execute("DELETE FROM session_files WHERE session_id = ?", (row["id"],))
            db.execute("DELETE FROM sessions WHERE id = ?", (row["id"],))
        self._discard_uploads(row["id"])
        self._changed(row, row["state"], "DELETED")

    def _discard_uploads(self, session_id: str) -> None:
        shutil.rmtree(self.data / "uploads" / session_id, ignore_errors=True)

    # -- session files ----------------------------------------------------
    def _file_info(self, ctx: Ctx, row: Row) -> dict[str, Any]:
        info: dict[str, Any] = {
            "name": row["name"],
            "source_type": row["source_type"],
            "bytes_transferred": row["bytes_transferred"],
            "status": row["status"],
            "keep_in_storage": bool(row["keep_in_storage"]),
        }
        # File.Info.size is set once the file is fully received (REFERENCE §2), not when
        # a size was only declared.
        if row["received_size"] is not None:
            info["size"] = row["received_size"]
        if row["checksum_alg"]:
            info["checksum_info"] = {"algorithm": row["checksum_alg"], "checksum": row["checksum"]}
        # The API's union: a PUSH file always carries its upload endpoint.
        info["upload_endpoint"] = {
            "uri": f"{ctx.base_url.rstrip('/')}/cls/data/{row['upload_token']}"
        }
        if row["error_message"]:
            info["error_message"] = json.loads(row["error_message"])
        return info

    def file_add(self, ctx: Ctx, session_id: Any, spec: Any) -> dict[str, Any]:
        spec = self._spec(ctx, spec, "file_spec")
        with self._exclusive(ctx, session_id) as row:
            return self._file_add(ctx, row, spec)

    def _file_add(self, ctx: Ctx, row: Row, spec: Mapping[str, Any]) -> dict[str, Any]:
        name = spec.get("name")
        if not isinstance(name, str) or not is_plain_name(name):
            raise self.error(ctx, "invalid_argument", "validator.server.arg.bad_name", name)
        source = spec.get("source_type", "PUSH")
        if source != "PUSH":
            if source in ("PULL", "NONE"):
                raise self.error(
                    ctx, "unsupported", "validator.server.arg.unsupported_source", source
                )
            raise self.error(
                ctx, "invalid_argument", "validator.server.arg.invalid", "source_type", source
            )
        size = spec.get("size")
        if size is not None and (
            not isinstance(size, int)
            or isinstance(size, bool)
            or not 0 <= size <= self.config.max_upload_bytes
        ):
            raise self.error(ctx, "invalid_argument", "validator.server.arg.invalid", "size", size)
        alg = checksum = None
        info = spec.get("checksum_info")
        if info is not None:
            if not isinstance(info, Mapping):
                raise self.error(
                    ctx, "invalid_argument", "validator.server.arg.invalid", "checksum_info", info
                )
            alg = info.get("algorithm") or "SHA1"
            checksum = info.get("checksum")
            if alg not in ChecksumAlgorithm.__members__ or not (
                isinstance(checksum, str) and _HEX.fullmatch(checksum)
            ):
                raise self.error(
                    ctx, "invalid_argument", "validator.server.arg.invalid", "checksum_info", info
                )
            checksum = checksum.lower()
        item = self._query("SELECT type FROM items WHERE id = ?", (row["item_id"],))[0]
        suffixes = _METADATA_SUFFIXES.get(str(item["type"]), ())
        keep = not name.lower().endswith(suffixes) if suffixes else True
        token = new_token()
        with self._tx() as db:
            old = db.execute(
                "SELECT * FROM session_files WHERE session_id = ? AND name = ?", (row["id"], name)
            ).fetchone()
            if old is not None and old["status"] == "TRANSFERRING":
                raise self.error(
                    ctx,
                    "resource_busy",
                    "validator.server.session.busy",
                    row["id"],
                    name,
                )
            count = db.execute(
                "SELECT COUNT(*) AS n, COALESCE(MAX(seq), 0) AS m FROM session_files"
                " WHERE session_id = ?",
                (row["id"],),
            ).one()
            if old is None and count["n"] >= self.config.max_session_files:
                raise self.error(
                    ctx,
                    "invalid_argument",
                    "validator.server.arg.too_many_files",
                    self.config.max_session_files,
                )
            descriptor_suffix = _DESCRIPTOR_SUFFIXES.get(str(item["type"]))
            if not keep and descriptor_suffix is not None:
                names = db.execute(
                    "SELECT name FROM session_files WHERE session_id = ?", (row["id"],)
                ).fetchall()
                first = next(
                    (n["name"] for n in names if n["name"].lower().endswith(descriptor_suffix)),
                    None,
                )
                if first is not None:
                    raise self.error(
                        ctx,
                        "invalid_argument",
                        "validator.server.arg.metadata_after_descriptor",
                        name,
                        first,
                    )
            seq = old["seq"] if old is not None else count["m"] + 1
            db.execute(
                "DELETE FROM session_files WHERE session_id = ? AND name = ?", (row["id"], name)
            )
            db.execute(
                "INSERT INTO session_files (session_id, name, seq, source_type, size,"
                " checksum_alg, checksum, status, bytes_transferred, received_size, sha256,"
                " error_message, upload_token, keep_in_storage)"
                " VALUES (?, ?, ?, 'PUSH', ?, ?, ?, 'WAITING_FOR_TRANSFER', 0, NULL, NULL, NULL,"
                " ?, ?)",
                (row["id"], name, seq, size, alg, checksum, token, int(keep)),
            )
            self._touch(db, row["id"])
            new = db.execute(
                "SELECT * FROM session_files WHERE session_id = ? AND name = ?", (row["id"], name)
            ).one()
        if old is not None:
            self._unlink_upload(row["id"], old["upload_token"])
        return self._file_info(ctx, new)

    def _unlink_upload(self, session_id: str, token: str) -> None:
        base = self.data / "uploads" / session_id
        for path in (base / token, base / f"{token}.part"):
            with contextlib.suppress(OSError):
                path.unlink()

    def _file_row(self, ctx: Ctx, session_id: str, name: Any) -> Row:
        if not isinstance(name, str) or not is_plain_name(name):
            raise self.error(ctx, "invalid_argument", "validator.server.arg.bad_name", name)
        rows = self._query(
            "SELECT * FROM session_files WHERE session_id = ? AND name = ?", (session_id, name)
        )
        if not rows:
            raise self.error(ctx, "not_found", "validator.server.not_found.file", session_id, name)
        return rows[0]

    def file_get(self, ctx: Ctx, session_id: Any, file_name: Any) -> dict[str, Any]:
        row = self._session_row(ctx, session_id)
        return self._file_info(ctx, self._file_row(ctx, row["id"], file_name))

    def file_list(self, ctx: Ctx, session_id: Any) -> list[dict[str, Any]]:
        row = self._session_row(ctx, session_id)
        rows = self._query(
            "SELECT * FROM session_files WHERE session_id = ? ORDER BY seq", (row["id"],)
        )
        return [self._file_info(ctx, r) for r in rows]

    def file_remove(self, ctx: Ctx, session_id: Any, file_name: Any) -> None:
        with self._exclusive(ctx, session_id) as row:
            frow = self._file_row(ctx, row["id"], file_name)
            if frow["status"] == "TRANSFERRING":
                raise self.error(
                    ctx, "resource_busy", "validator.server.session.busy", row["id"], frow["name"]
                )
            with self._tx() as db:
                db.execute(
                    "DELETE FROM session_files WHERE session_id = ? AND name = ?",
                    (row["id"], frow["name"]),
                )
                self._touch(db, row["id"])
            self._unlink_upload(row["id"], frow["upload_token"])

    # -- uploads ----------------------------------------------------------
    def upload_begin(self, ctx: Ctx, token: str) -> UploadTarget:
        """Claim an upload endpoint: the file becomes TRANSFERRING."""
        if (
            not token
            or len(token) > args.UPLOAD_TOKEN_MAX
            or not re.fullmatch(args.UPLOAD_TOKEN_PATTERN, token)
        ):
            raise self.error(ctx, "not_found", "validator.server.not_found.upload", "-")
        self.expire()
        found = self._query(
            "SELECT f.session_id, s.owner FROM session_files f"
            " JOIN sessions s ON s.id = f.session_id WHERE f.upload_token = ?",
            (token,),
        )
        if not found or found[0]["owner"] != ctx.user:
            raise self.error(ctx, "not_found", "validator.server.not_found.upload", "-")
        with self._locks.exclusive(str(found[0]["session_id"])):
            return self._upload_begin(ctx, token)

    def _upload_begin(self, ctx: Ctx, token: str) -> UploadTarget:
        with self._tx() as db:
            frow = db.execute(
                "SELECT f.*, s.owner, s.state FROM session_files f"
                " JOIN sessions s ON s.id = f.session_id WHERE f.upload_token = ?",
                (token,),
            ).fetchone()
            if frow is None or frow["owner"] != ctx.user:
                raise self.error(ctx, "not_found", "validator.server.not_found.upload", "-")
            sid = frow["session_id"]
            if frow["state"] != ACTIVE:
                raise self.error(
                    ctx,
                    "not_allowed_in_current_state",
                    "validator.server.session.not_active",
                    sid,
                    frow["state"],
                )
            if frow["status"] not in ("WAITING_FOR_TRANSFER", "ERROR"):
                raise self.error(
                    ctx,
                    "not_allowed_in_current_state",
                    "validator.server.file.not_uploadable",
                    frow["name"],
                    frow["status"],
                )
            db.execute(
                "UPDATE session_files SET status = 'TRANSFERRING', bytes_transferred = 0,"
                " received_size = NULL, sha256 = NULL, error_message = NULL, seen = ?"
                " WHERE upload_token = ?",
                (time.time(), token),
            )
            self._touch(db, sid)
        base = self.data / "uploads" / sid
        base.mkdir(parents=True, exist_ok=True)
        checksum = (
            ChecksumInfo(ChecksumAlgorithm(frow["checksum_alg"]), frow["checksum"])
            if frow["checksum_alg"]
            else None
        )
        size = frow["size"]
        limit = self.config.max_upload_bytes if size is None else size
        return UploadTarget(
            sid, ctx.user, frow["name"], base / f"{token}.part", base / token, size, limit, checksum
        )

    def upload_progress(self, token: str, n: int) -> None:
        """Bytes received so far; also says this upload is alive (``seen``)."""
        with self._tx() as db:
            db.execute(
                "UPDATE session_files SET bytes_transferred = ?, seen = ? WHERE upload_token = ?",
                (n, time.time(), token),
            )

    def upload_finish(
        self,
        ctx: Ctx,
        target: UploadTarget,
        received: int,
        digests: Mapping[str, str],
        problem: tuple[str, tuple[object, ...]] | None,
    ) -> dict[str, Any]:
        """Record how an upload ended: READY, or ERROR with the reason.

        In a session that ended meanwhile (cancel, fail, expiry, complete) the file ends
        ``ERROR`` and the client gets ``not_allowed_in_current_state``.
        """
        with self._locks.exclusive(target.session_id):
            return self._upload_finish(ctx, target, received, digests, problem)

    def _upload_finish(
        self,
        ctx: Ctx,
        target: UploadTarget,
        received: int,
        digests: Mapping[str, str],
        problem: tuple[str, tuple[object, ...]] | None,
    ) -> dict[str, Any]:
        token = target.final.name
        states = self._query("SELECT state FROM sessions WHERE id = ?", (target.session_id,))
        state = str(states[0]["state"]) if states else "DELETED"
        if state != ACTIVE:
            with contextlib.suppress(OSError):
                target.part.unlink()
            msg = self.message(
                None, "validator.server.file.session_ended", target.name, target.session_id, state
            )
            with self._tx() as db:
                db.execute(
                    "UPDATE session_files SET status = 'ERROR', bytes_transferred = ?,"
                    " received_size = NULL, sha256 = NULL, error_message = ?"
                    " WHERE upload_token = ? AND status = 'TRANSFERRING'",
                    (received, json.dumps(msg.to_dict()), token),
                )
            self.hook(
                "validator_server_file_received",
                session_id=target.session_id,
                user=target.user,
                name=target.name,
                status="ERROR",
                bytes_transferred=received,
            )
            raise self.error(
                ctx,
                "not_allowed_in_current_state",
                "validator.server.session.not_active",
                target.session_id,
                state,
            )
        if problem is None and target.size is not None and received != target.size:
            problem = ("validator.server.file.short", (target.name, received, target.size))
        if problem is None and target.checksum is not None:
            alg = target.checksum.algorithm
            actual = digests.get(alg.hashlib_name, "")
            if actual != target.checksum.checksum.lower():
                problem = (
                    "validator.server.file.checksum_mismatch",
                    (target.name, alg.value, actual, target.checksum.checksum),
                )
        if problem is None:
            try:
                os.replace(target.part, target.final)
                _fsync_dir(target.final.parent)
            except OSError:  # the partial file is gone: not received
                problem = ("validator.server.file.interrupted", (target.name, received))
        if problem is not None:
            with contextlib.suppress(OSError):
                target.part.unlink()
        message = self.message(None, problem[0], *problem[1]) if problem else None
        with self._tx() as db:
            db.execute(
                "UPDATE session_files SET status = ?, bytes_transferred = ?, received_size = ?,"
                " sha256 = ?, error_message = ? WHERE upload_token = ?",
                (
                    "ERROR" if problem else "READY",
                    received,
                    None if problem else received,
                    digests.get("sha256"),
                    json.dumps(message.to_dict()) if message else None,
                    token,
                ),
            )
            if problem is None or problem[0] != "validator.server.file.stalled":
                # A stalled upload is no activity: its session expires as if it had not begun.
                self._touch(db, target.session_id)
            frow = db.execute(
                "SELECT * FROM session_files WHERE upload_token = ?", (token,)
            ).fetchone()
        status = "ERROR" if problem else "READY"
        self.hook(
            "validator_server_file_received",
            session_id=target.session_id,
            user=target.user,
            name=target.name,
            status=status,
            bytes_transferred=received,
        )
        if frow is None:  # removed meanwhile
            return {"name": target.name, "status": status}
        return self._file_info(ctx, frow)

    # -- validate and complete --------------------------------------------
    def _engine_session(self, row: Row, item_type: str) -> Session:
        session = Session(origin=str(row["id"]), item_type=item_type)
        base = self.data / "uploads" / str(row["id"])
        for f in self._query(
            "SELECT * FROM session_files WHERE session_id = ? ORDER BY seq", (row["id"],)
        ):
            status = TransferStatus(f["status"])
            source = None
            if status == TransferStatus.READY and f["received_size"] is not None:
                source = PathSource(base / f["upload_token"], int(f["received_size"]))
            checksum = (
                ChecksumInfo(ChecksumAlgorithm(f["checksum_alg"]), f["checksum"])
                if f["checksum_alg"]
                else None
            )
            session.files.append(
                SessionFile(
                    name=f["name"],
                    source=source,
                    status=status,
                    size=f["size"],
                    checksum_info=checksum,
                )
            )
        return session

    def _run_engine(self, ctx: Ctx, row: Row) -> tuple[ValidationResult, Session]:
        item = self._query("SELECT type FROM items WHERE id = ?", (row["item_id"],))[0]
        session = self._engine_session(row, str(item["type"]))
        engine = Engine(self.registry, limits=self.config.limits, locale=ctx.locale)
        try:
            result = engine.validate(session, str(item["type"]))
        except SessionError as exc:
            msg = self.registry.catalogs.message(exc.message_id, exc.args_, ctx.locale)
            raise VapiError("invalid_argument", [msg]) from None
        result = _session_level(result, session)
        self._store_preview(row, result, session)
        return result, session

    def _preview(self, row: Row, result: ValidationResult) -> dict[str, Any]:
        behavior = json.loads(row["warning_behavior"])
        ignored = {b["type"] for b in behavior if b.get("ignored")}
        warnings = []
        for w in result.warnings:
            kind = warning_type(w.error_message.id)
            warnings.append(
                {
                    "type": kind,
                    "message": w.error_message.to_dict(),
                    "ignored": kind in ignored or w.error_message.id in ignored,
                    "file": w.name,
                }
            )
        return {"state": "AVAILABLE", "warnings": warnings}

    def _certificate_preview(self, session: Session, result: ValidationResult) -> dict[str, Any]:
        """``certificate_info`` and ``cert_chain`` of a signed OVF package (REFERENCE §3).

        Only for a certificate the OVF adapter accepted (no invalid-file entry: its
        signature verified); its self-signed, expired … verdicts are the preview warnings.
        """
        if result.item_type != "ovf" or "ovf" not in self.registry.item_types:
            return {}
        descriptor = self.registry.item_types["ovf"].primary_file(session)
        if not descriptor or not descriptor.lower().endswith(".ovf"):
            return {}
        name = descriptor[: -len(".ovf")] + ".cert"
        file = session.get(name)
        if file is None or file.source is None or any(e.name == name for e in result.invalid_files):
            return {}
        try:
            from cryptography import x509

            # The built-in adapter's own PEM reader and self-signed test (installed as
            # validator_plugins, registry.DEFAULT_PLUGINS): the same verdict as its warning.
            certificate = importlib.import_module("validator_plugins.ovf.certificate")
            with file.source.open() as fh:
                data = fh.read(self.config.limits.manifest_bytes + 1)
            if len(data) > self.config.limits.manifest_bytes:
                return {}
            blocks: list[bytes] = certificate.pem_certificates(data)
            leaf = x509.load_pem_x509_certificate(blocks[0])
            info = {
                "issuer": leaf.issuer.rfc4514_string(),
                "subject": leaf.subject.rfc4514_string(),
                "self_signed": bool(certificate.is_self_signed(leaf)),
                "x509": blocks[0].decode("ascii"),
            }
        except (ImportError, OSError, ValueError, IndexError) as exc:  # accepted, so unexpected
            log.warning("session %s: no certificate_info for %s: %s", session.origin, name, exc)
            return {}
        return {"certificate_info": info, "cert_chain": [b.decode("ascii") for b in blocks]}

    def _store_preview(self, row: Row, result: ValidationResult, session: Session) -> None:
        preview = self._preview(row, result)
        stored = {
            "state": preview["state"],
            **self._certificate_preview(session, result),
            "warnings": [{k: v for k, v in w.items() if k != "file"} for w in preview["warnings"]],
        }
        with self._tx() as db:
            db.execute(
                "UPDATE sessions SET preview_info = ? WHERE id = ?",
                (json.dumps(stored), row["id"]),
            )

    def validate(self, ctx: Ctx, session_id: Any) -> ValidationResult:
        # Held for the whole run: complete, cancel, add … wait until every file was read.
        sid = str(self._session_row(ctx, session_id)["id"])
        with self._locks.shared(sid):
            row = self._active_row(ctx, sid)
            with self._tx() as db:
                self._touch(db, row["id"])
            result, _ = self._run_engine(ctx, row)
        return result

    def complete(self, ctx: Ctx, session_id: Any) -> None:
        # Concurrent operations on the session wait for it, then find it DONE (or still
        # ACTIVE when it refused): never resource_busy, which complete does not list.
        with self._exclusive(ctx, session_id) as row:
            result, _ = self._run_engine(ctx, row)
            if result.has_errors:
                invalid = list(dict.fromkeys(e.name for e in result.invalid_files))
                summary = self.message(
                    ctx,
                    "validator.server.session_has_missing_or_invalid_files",
                    ", ".join(result.missing_files) or "-",
                    ", ".join(invalid) or "-",
                )
                raise NotAllowedInCurrentState(
                    [summary, *(e.error_message for e in result.invalid_files)]
                )
            preview = self._preview(row, result)
            blocking = [w for w in preview["warnings"] if not w["ignored"]]
            if blocking:
                raise NotAllowedInCurrentState(
                    [
                        self.message(
                            ctx,
                            "validator.server.session.warning_not_ignored",
                            w["type"],
                            w["file"],
                            w["message"]["default_message"],
                        )
                        for w in blocking
                    ]
                )
            self._publish(ctx, row)

    def _publish(self, ctx: Ctx, row: Row) -> None:
        sid = str(row["id"])
        item_id = str(row["item_id"])
        files = self._query("SELECT * FROM session_files WHERE session_id = ? ORDER BY seq", (sid,))
        item = self._query("SELECT * FROM items WHERE id = ?", (item_id,))[0]
        version = int(item["content_version"]) + 1
        dirname = f"{version}-{sid}"
        target = self.data / "content" / item_id / dirname
        # The new folder: nothing refers to it until the transaction below commits.
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        kept: list[Row] = []
        for f in files:
            if not f["keep_in_storage"]:
                continue
            src = self.data / "uploads" / sid / f["upload_token"]
            dst = target / f["name"]
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
                with open(dst, "rb") as fh:
                    os.fsync(fh.fileno())
            kept.append(f)
        _fsync_dir(target)
        _fsync_dir(target.parent)
        old_dir = item["content_dir"]
        with self.db.tx(durable=True) as db:
            state = db.execute(
                "SELECT state FROM sessions WHERE id = ?" + db.for_update, (sid,)
            ).fetchone()
            if state is None or state["state"] != ACTIVE:
                shutil.rmtree(target, ignore_errors=True)
                raise self.error(
                    ctx,
                    "not_allowed_in_current_state",
                    "validator.server.session.not_active",
                    sid,
                    state["state"] if state else "DELETED",
                )
            db.execute("DELETE FROM item_files WHERE item_id = ?", (item_id,))
            db.executemany(
                "INSERT INTO item_files VALUES (?, ?, ?, ?)",
                [(item_id, f["name"], f["received_size"], f["sha256"] or "") for f in kept],
            )
            db.execute(
                "UPDATE items SET content_version = ?, content_dir = ?, modified = ? WHERE id = ?",
                (version, dirname, time.time(), item_id),
            )
            db.execute(
                "UPDATE sessions SET state = 'DONE', client_progress = 100 WHERE id = ?", (sid,)
            )
        if old_dir:
            shutil.rmtree(self.data / "content" / item_id / str(old_dir), ignore_errors=True)
        self._discard_uploads(sid)
        self._changed(row, ACTIVE, DONE)
        self.hook(
            "validator_server_content_published",
            library_item_id=item_id,
            session_id=sid,
            user=row["owner"],
            content_version=version,
            files=[str(f["name"]) for f in kept],
        )

    # -- start-up -----------------------------------------------------------
    def recover(self) -> dict[str, int]:
        """Make disk and database agree after a crash; returns what was repaired.

        On SQLite this server is alone on its data folder: every upload still
        TRANSFERRING was cut by the crash. On PostgreSQL other servers may be running:
        only uploads nobody has fed for longer than twice the upload idle timeout are
        ended, and a folder is removed only while its session is held here (a publish
        or an upload in progress elsewhere holds it), after the database was read again.
        """
        fixed = {
            "uploads_interrupted": self.end_stale_uploads(everything=not self.db.shared),
            "content_dirs_removed": 0,
            "upload_dirs_removed": 0,
        }
        content = self.data / "content"
        for item_dir in content.iterdir():
            for version_dir in sorted(item_dir.iterdir()) if item_dir.is_dir() else []:
                sid = version_dir.name.partition("-")[2]
                with self._locks.exclusive(sid or version_dir.name, wait=False) as got:
                    if not got:  # being published right now
                        continue
                    rows = self._query(
                        "SELECT content_dir FROM items WHERE id = ?", (item_dir.name,)
                    )
                    if rows and rows[0]["content_dir"] == version_dir.name:
                        continue
                    shutil.rmtree(version_dir, ignore_errors=True)
                    fixed["content_dirs_removed"] += 1
            with contextlib.suppress(OSError):
                item_dir.rmdir()  # only when empty: an item without content
        for session_dir in (self.data / "uploads").iterdir():
            with self._locks.exclusive(session_dir.name, wait=False) as got:
                if not got:
                    continue
                rows = self._query("SELECT state FROM sessions WHERE id = ?", (session_dir.name,))
                if not rows or rows[0]["state"] != ACTIVE:
                    shutil.rmtree(session_dir, ignore_errors=True)
                    fixed["upload_dirs_removed"] += 1
                    continue
                keep = set()
                for f in self._query(
                    "SELECT upload_token, status FROM session_files WHERE session_id = ?",
                    (session_dir.name,),
                ):
                    if f["status"] == "READY":
                        keep.add(str(f["upload_token"]))
                    elif f["status"] == "TRANSFERRING":  # arriving at another server
                        keep.add(f"{f['upload_token']}.part")
                for path in session_dir.iterdir():
                    if path.name not in keep:
                        with contextlib.suppress(OSError):
                            path.unlink()
        self.expire()
        return fixed

    def end_stale_uploads(self, *, everything: bool = False, now: float | None = None) -> int:
        """Uploads still TRANSFERRING that no server feeds end ERROR (file.restarted).

        ``everything``: all of them (a lone server that restarted). Otherwise those whose
        bytes last arrived more than twice the upload idle timeout ago: a live server
        refreshes ``seen`` while bytes arrive and ends a stalled upload itself.
        """
        now = time.time() if now is None else now
        cutoff = now - (2 * self.config.upload_idle_timeout + 5)
        sql = "SELECT * FROM session_files WHERE status = 'TRANSFERRING'"
        if not everything:
            sql += " AND (seen IS NULL OR seen < ?)"
        rows = self._query(sql, () if everything else (cutoff,))
        ended = 0
        for f in rows:
            with self._locks.exclusive(str(f["session_id"]), wait=False) as got:
                if not got:
                    continue
                msg = self.message(None, "validator.server.file.restarted", f["name"])
                with self._tx() as db:
                    changed = db.execute(
                        "UPDATE session_files SET status = 'ERROR', received_size = NULL,"
                        " error_message = ? WHERE upload_token = ? AND status = 'TRANSFERRING'"
                        + ("" if everything else " AND (seen IS NULL OR seen < ?)"),
                        (json.dumps(msg.to_dict()), f["upload_token"])
                        + (() if everything else (cutoff,)),
                    ).rowcount
                if changed:
                    ended += 1
                    self._unlink_upload(str(f["session_id"]), str(f["upload_token"]))
        return ended

    def sweep(self) -> None:
        """What every server does every few seconds: expiry, and (several servers) the
        uploads of a server that died."""
        if self.db.shared:
            self.end_stale_uploads()
        self.expire()

    def check_consistency(self) -> list[str]:
        """Problems between database and disk (empty when consistent); used by tests."""
        problems = []
        for item in self._query("SELECT * FROM items"):
            files = self._query("SELECT * FROM item_files WHERE item_id = ?", (item["id"],))
            if item["content_dir"] is None:
                if files:
                    problems.append(f"item {item['id']}: files without a content folder")
                continue
            folder = self.data / "content" / item["id"] / item["content_dir"]
            if not folder.is_dir():
                problems.append(f"item {item['id']}: content folder missing")
                continue
            names = {p.name for p in folder.iterdir()}
            if names != {f["name"] for f in files}:
                problems.append(f"item {item['id']}: folder holds {sorted(names)}")
            for f in files:
                path = folder / f["name"]
                if path.is_file():
                    digest = hashlib.sha256(path.read_bytes()).hexdigest()
                    if digest != f["sha256"]:
                        problems.append(f"item {item['id']}: {f['name']} content differs")
        for s in self._query("SELECT * FROM sessions WHERE state = 'ACTIVE'"):
            for f in self._query(
                "SELECT * FROM session_files WHERE session_id = ? AND status = 'TRANSFERRING'",
                (s["id"],),
            ):
                problems.append(f"session {s['id']}: {f['name']} still TRANSFERRING")
        return problems
