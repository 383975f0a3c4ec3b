"""Uploads and publishing: how a session file's bytes arrive and how a session's files
become an item's content.

An upload claims its endpoint (the file becomes ``TRANSFERRING``), the web layer streams
the body to ``TOKEN.part``, and :meth:`Uploads.upload_finish` records how it ended
(``READY`` after the size and checksum agree, else ``ERROR`` with the reason).

Publishing (``complete``) is atomic: the new version's folder is filled (hard links to
the uploads, fsynced) while the item still points at its old folder, then one
transaction switches the item's content version and folder, records the version's files
and moves the session to ``DONE``. Nothing refers to the new folder until that commit, so
a crash before it leaves the old content and an ``ACTIVE`` session, which recovery
(:mod:`validator.server.recovery`) cleans up.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from validator.engine import Engine
from validator.render import localize
from validator.results import NotAllowedInCurrentState, ValidationError, ValidationResult, VapiError
from validator.server import args
from validator.server.db import Row
from validator.server.sessions import ACTIVE, DONE, Sessions
from validator.server.store import Ctx, log
from validator.session import (
    ChecksumAlgorithm,
    ChecksumInfo,
    PathSource,
    Session,
    SessionError,
    SessionFile,
    TransferStatus,
)

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
        return tuple(e._replace(name="") if e.name == origin else e for e in entries)

    return result._replace(invalid_files=fix(result.invalid_files), warnings=fix(result.warnings))


class Uploads(Sessions):
    """A session file's bytes: claim the endpoint, progress, how the upload ended."""

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
                self._sync_dir(target.final.parent)
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


class Publishing(Uploads):
    """``validate`` and ``complete``: the engine on a session's files, and the atomic publish."""

    def _engine(self) -> Engine:
        """The engine a validation runs in (the facade names it: a seam for tests). It
        answers in message ids, arguments and English; each request's language is applied
        after, by :func:`validator.render.localize`."""
        return Engine(self.registry, limits=self.config.limits)

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
        engine = self._engine()
        try:
            result = engine.validate(session, str(item["type"]))
        except SessionError as exc:
            msg = self.registry.catalogs.message(exc.message_id, exc.args_, ctx.locale)
            raise VapiError("invalid_argument", [msg]) from None
        # The request's language, applied once at the edge (the engine is the same for all).
        result = localize(_session_level(result, session), self.registry.catalogs, ctx.locale)
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

    def _signature_preview(self, session: Session, result: ValidationResult) -> dict[str, Any]:
        """``certificate_info`` and ``cert_chain`` (REFERENCE §3) of a signed item, from
        what its type's ``validator_describe`` hook says (the server knows no item type):
        only for a signature that verifies, whose self-signed, expired … verdicts are the
        preview warnings. The facts it reads are documented with the hook."""
        if result.item_type is None:
            return {}
        facts, failures = self._engine().describe(session, result.item_type)
        for failure in failures:
            log.warning(
                "session %s: plugin %s failed in %s: %s",
                session.origin,
                failure.plugin,
                failure.hook,
                failure.error,
            )
        return signature_preview(facts)

    def _store_preview(self, row: Row, result: ValidationResult, session: Session) -> None:
        preview = self._preview(row, result)
        stored = {
            "state": preview["state"],
            **self._signature_preview(session, result),
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
        self._sync_dir(target)
        self._sync_dir(target.parent)
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


def signature_preview(facts: Mapping[str, Any] | None) -> dict[str, Any]:
    """The preview's ``certificate_info`` and ``cert_chain`` from ``validator_describe``
    facts: their ``signature`` mapping when ``signature_verifies`` is true and it lists
    ``certificates`` (PEM, the signer's first); else nothing."""
    sig = facts.get("signature") if isinstance(facts, Mapping) else None
    if not isinstance(sig, Mapping) or sig.get("signature_verifies") is not True:
        return {}
    pems = sig.get("certificates")
    if not isinstance(pems, list | tuple) or not pems or not all(isinstance(p, str) for p in pems):
        return {}
    info = {
        "issuer": str(sig.get("issuer", "")),
        "subject": str(sig.get("subject", "")),
        "self_signed": sig.get("self_signed") is True,
        "x509": pems[0],
    }
    return {"certificate_info": info, "cert_chain": list(pems)}
