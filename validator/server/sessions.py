"""Update sessions and their files: the state machine.

A session is ``ACTIVE`` until it is completed (``DONE``), canceled, failed or expired
(``ERROR``); only an ``ACTIVE`` session's files change. What changes a session's files holds
it alone (:class:`~validator.server.store.SessionLocks`), so ``validate`` never reads a
half-changed session. Every transition calls ``validator_server_session_changed``.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, overload

from validator.results import LocalizableMessage
from validator.server import args
from validator.server.auth import new_token
from validator.server.db import Row, Tx
from validator.server.store import Ctx, Store, iso_time, log
from validator.session import ChecksumAlgorithm, is_plain_name

ACTIVE, DONE, ERROR, CANCELED = "ACTIVE", "DONE", "ERROR", "CANCELED"

_HEX = re.compile(args.CHECKSUM_PATTERN)


class Sessions(Store):
    """Update sessions (create, keep-alive, update, end, expire) and their files."""

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
        # The item type says which files it keeps and which it refuses now (an OVF manifest
        # after its descriptor): the server knows no item type.
        kind = str(item["type"])
        keep = self.ask_item_type(kind, "kept_in_storage", [name], bool, True)
        # Asked outside the transaction (a plugin call holds no database lock); the
        # session's files cannot change meanwhile: file_add holds the session alone.
        # Read only if the type looks (OVF does for a .mf or .cert): most additions are
        # data files, and a session holds up to max_session_files names.
        present = _Names(
            lambda: [
                str(n["name"])
                for n in self._query(
                    "SELECT name FROM session_files WHERE session_id = ? AND name <> ?"
                    " ORDER BY seq",
                    (row["id"], name),
                )
            ]
        )
        refusal = self.ask_item_type(
            kind, "refuse_addition", [name, present], (tuple, type(None)), None
        )
        if refusal is not None:
            if _is_refusal(refusal):
                raise self.error(ctx, "invalid_argument", refusal[0], *(str(a) for a in refusal[1]))
            log.warning(
                "item type %s refused %s with %r: not (id, args), ignored", kind, name, refusal
            )
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


class _Names(Sequence[str]):
    """The names of a session's other files, read from the database when first used."""

    def __init__(self, read: Callable[[], list[str]]) -> None:
        self._read = read
        self._names: list[str] | None = None

    def _list(self) -> list[str]:
        if self._names is None:
            self._names = self._read()
        return self._names

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._list()[index]

    def __len__(self) -> int:
        return len(self._list())


def _is_refusal(answer: tuple[Any, ...]) -> bool:
    """``refuse_addition``'s answer has its documented shape: (message id, arguments)."""
    return len(answer) == 2 and isinstance(answer[0], str) and isinstance(answer[1], tuple | list)
