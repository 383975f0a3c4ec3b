"""Recovery: disk and database made to agree after a crash, and what every server sweeps.

At start-up :meth:`Recovery.recover` removes every content folder no item points at and
every upload no ``ACTIVE`` session holds, and ends uploads nobody feeds; every few seconds
:meth:`Recovery.sweep` expires idle sessions (and, with several servers, ends the uploads
of a server that died).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time

from validator.server.sessions import ACTIVE
from validator.server.uploads import Publishing


class Recovery(Publishing):
    """Start-up repair, stale uploads, the periodic sweep and a consistency check."""

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
