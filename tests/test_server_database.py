"""The server's database: the schema's migrations (Alembic) on SQLite and PostgreSQL.

An existing data folder or database made by an earlier server is upgraded at start and
keeps its content; the first schema (before migrations were versioned) is the baseline.
"""

from __future__ import annotations

import concurrent.futures
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from tests.test_server_support import PostgresCluster, fast_users, postgres
from validator.hookspecs import hookimpl
from validator.server import build_server_registry, create_service
from validator.server.auth import Users
from validator.server.db import MIGRATIONS, Database
from validator.server.service import Ctx, ServerConfig, Service

__all__ = ["postgres"]

ALICE = Ctx(user="alice")

#: What ``validator serve`` created in ``DATA/state.sqlite3`` before its schema was
#: versioned (copied from the server of that time: it must not change).
FIRST_SCHEMA = """
CREATE TABLE IF NOT EXISTS libraries (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL DEFAULT '',
    owner TEXT NOT NULL, client_token TEXT, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY, library_id TEXT NOT NULL REFERENCES libraries(id),
    name TEXT NOT NULL, description TEXT NOT NULL DEFAULT '', type TEXT NOT NULL,
    owner TEXT NOT NULL, client_token TEXT, content_version INTEGER NOT NULL DEFAULT 1,
    content_dir TEXT, created REAL NOT NULL, modified REAL NOT NULL);
CREATE TABLE IF NOT EXISTS item_files (
    item_id TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL,
    PRIMARY KEY (item_id, name));
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, item_id TEXT NOT NULL, state TEXT NOT NULL,
    client_token TEXT, client_progress INTEGER NOT NULL DEFAULT 0,
    base_version INTEGER NOT NULL, expiration REAL NOT NULL,
    error_message TEXT, warning_behavior TEXT NOT NULL DEFAULT '[]', preview_info TEXT,
    created REAL NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS one_active_session ON sessions(item_id) WHERE state = 'ACTIVE';
CREATE UNIQUE INDEX IF NOT EXISTS session_token ON sessions(owner, client_token);
CREATE TABLE IF NOT EXISTS session_files (
    session_id TEXT NOT NULL, name TEXT NOT NULL, seq INTEGER NOT NULL,
    source_type TEXT NOT NULL, size INTEGER, checksum_alg TEXT, checksum TEXT,
    status TEXT NOT NULL, bytes_transferred INTEGER NOT NULL DEFAULT 0,
    received_size INTEGER, sha256 TEXT, error_message TEXT, upload_token TEXT NOT NULL UNIQUE,
    keep_in_storage INTEGER NOT NULL, PRIMARY KEY (session_id, name));
CREATE TABLE IF NOT EXISTS tokens (
    key TEXT PRIMARY KEY, user TEXT NOT NULL, created REAL NOT NULL, last REAL NOT NULL);
"""


ROWS = [
    "INSERT INTO libraries VALUES ('lib-1', 'old', '', 'alice', 'tok', 1.0)",
    "INSERT INTO items (id, library_id, name, description, type, owner, client_token,"
    " content_version, content_dir, created, modified)"
    " VALUES ('item-1', 'lib-1', 'vm', '', 'ovf', 'alice', NULL, 1, NULL, 1.0, 1.0)",
    "INSERT INTO sessions (id, owner, item_id, state, client_token, base_version, expiration,"
    " created) VALUES ('s-1', 'alice', 'item-1', 'CANCELED', 'st', 1, 2.0, 1.0)",
]


def _service(data: Path, database: str | None = None) -> Service:
    config = ServerConfig(data_dir=data, database=database)
    return Service(config, build_server_registry(), Users({}))


def _check_upgraded(service: Service) -> None:
    assert service.library_get(ALICE, "lib-1")["storage_backings"] == []
    assert service.item_get(ALICE, "item-1")["name"] == "vm"
    assert service.session_get(ALICE, "s-1")["state"] == "CANCELED"
    # Tokens used before specs were recorded still answer their objects.
    assert service.library_create(ALICE, {"name": "other"}, "tok") == "lib-1"
    assert service.session_create(ALICE, {"library_item_id": "item-1"}, "st") == "s-1"
    # New columns work.
    lib = service.library_create(ALICE, {"name": "n", "storage_backings": [{"type": "OTHER"}]})
    assert service.library_get(ALICE, lib)["storage_backings"] == [{"type": "OTHER"}]


def test_a_sqlite_data_folder_of_the_first_schema_is_upgraded(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    db = sqlite3.connect(data / "state.sqlite3")
    db.executescript(FIRST_SCHEMA)
    for statement in ROWS:
        db.execute(statement)
    db.commit()
    db.close()
    service = _service(data)
    try:
        _check_upgraded(service)
    finally:
        service.close()
    # Stamped and upgraded once: a second start finds it current.
    db = sqlite3.connect(data / "state.sqlite3")
    assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("0002",)]
    db.close()
    service = _service(data)
    service.close()


def test_a_new_sqlite_data_folder_is_at_the_newest_revision(tmp_path: Path) -> None:
    service = _service(tmp_path / "data")
    assert service.db.upgrade() == "0002"
    service.close()


def test_a_postgresql_database_at_the_baseline_is_upgraded(
    tmp_path: Path, postgres: PostgresCluster
) -> None:
    url = postgres.new_database()
    database = Database(url)
    with database.engine.connect() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.commit()
        for statement in ROWS:
            conn.execute(sa.text(statement))
        conn.commit()
    database.close()
    service = _service(tmp_path / "data", url)
    try:
        assert service.db.upgrade() == "0002"
        _check_upgraded(service)
    finally:
        service.close()


class _Changes:
    """Records every session state change a server reports (its hook)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None, str]] = []
        self.lock = threading.Lock()

    @hookimpl
    def validator_server_session_changed(
        self, session_id: str, old_state: str | None, new_state: str
    ) -> None:
        with self.lock:
            self.seen.append((session_id, old_state, new_state))


def test_expiry_and_recovery_by_several_servers_at_once(
    tmp_path: Path, postgres: PostgresCluster
) -> None:
    """Three servers on one database sweep and recover at the same moments: each idle
    session expires exactly once, each with its uploads removed, and nothing else."""
    url = postgres.new_database()
    changes = _Changes()
    config = ServerConfig(data_dir=tmp_path / "data", database=url, session_timeout=0.5)
    servers = [create_service(config, fast_users(), [("changes", changes)]) for _ in range(3)]
    first = servers[0]
    try:
        lib = first.library_create(ALICE, {"name": "l"})
        idle, busy = [], []
        for i in range(12):
            item = first.item_create(ALICE, {"library_id": lib, "name": f"i{i}", "type": "iso"})
            sid = first.session_create(ALICE, {"library_item_id": item})
            info = first.file_add(ALICE, sid, {"name": "image.iso", "size": 4})
            target = first.upload_begin(ALICE, info["upload_endpoint"]["uri"].rsplit("/", 1)[1])
            target.part.write_bytes(b"data")
            if i % 3:  # received: an idle session with an upload on disk
                first.upload_finish(ALICE, target, 4, {}, None)
                idle.append(sid)
            else:  # still arriving at some server: not idle, left alone
                first.upload_progress(target.final.name, 2)
                busy.append((sid, target))
        time.sleep(0.6)
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            jobs = [pool.submit(s.recover) for s in servers]
            jobs += [pool.submit(s.sweep) for s in servers for _ in range(3)]
            for job in jobs:
                job.result()
        expired = [c for c in changes.seen if c[1:] == ("ACTIVE", "ERROR")]
        assert sorted(c[0] for c in expired) == sorted(idle)  # each once
        for sid in idle:
            assert first.session_get(ALICE, sid)["state"] == "ERROR"
            assert not (config.data_dir / "uploads" / sid).exists()
        for sid, target in busy:
            assert first.session_get(ALICE, sid)["state"] == "ACTIVE"
            assert first.file_get(ALICE, sid, "image.iso")["status"] == "TRANSFERRING"
            assert target.part.exists()  # another server's upload in progress is kept
    finally:
        for s in servers:
            s.close()


def test_serve_refuses_a_database_it_cannot_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from validator.server import cli_main

    data = str(tmp_path / "data")
    assert cli_main(["--data", data, "--database", "mysql://x/y", "--port", "0"]) == 2
    assert "cannot open the database: unsupported database" in capsys.readouterr().err
    url = "postgresql://nobody@127.0.0.1:1/none"  # nothing listens on port 1
    assert cli_main(["--data", data, "--database", url, "--port", "0"]) == 2
    assert "cannot open the database" in capsys.readouterr().err
