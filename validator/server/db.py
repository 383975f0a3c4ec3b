"""The server's database: SQLite (embedded default) or PostgreSQL, through SQLAlchemy Core.

The same SQL and the same schema serve both. The schema is versioned with Alembic
(:mod:`validator.server.migrations`): :meth:`Database.upgrade` brings a new or an existing
database to the newest revision at start (a database made before Alembic was used, the
first schema, is recognised and stamped as the baseline revision first).

- **SQLite** (``sqlite:///DATA/state.sqlite3``, the default): one connection, WAL, every
  write transaction ``BEGIN IMMEDIATE`` and serialized by a process lock; one server
  process per data folder.
- **PostgreSQL** (``postgresql://…``, psycopg 3): a connection pool; several server
  processes share the database and a data folder on shared storage. What must happen
  once across them — ``complete``, an upload's end, expiry, recovery — is held by
  PostgreSQL advisory locks (:class:`PgSessionLocks`), which the server releases when
  its connection ends, a killed process included.

Statements are written with ``?`` placeholders, as for the standard library's sqlite3,
and rows come back as plain dicts.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

Row = dict[str, Any]
_PLACEHOLDER = re.compile(r"\?")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: The advisory lock every server holds while it upgrades the schema (PostgreSQL).
_MIGRATION_LOCK = 0x76616C6964  # "valid"


def _named(sql: str, args: Sequence[Any]) -> tuple[sa.TextClause, dict[str, Any]]:
    counter = iter(range(len(args) + 1))
    named = _PLACEHOLDER.sub(lambda _m: f":p{next(counter)}", sql)
    return sa.text(named), {f"p{i}": v for i, v in enumerate(args)}


class Result:
    """What a statement answered: its rows (as dicts, read at once) and its row count."""

    def __init__(self, rows: list[Row], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> Row | None:
        return self.rows[0] if self.rows else None

    def one(self) -> Row:
        """The single row a statement must have answered (an aggregate, a row just written)."""
        if len(self.rows) != 1:
            raise LookupError(f"expected one row, got {len(self.rows)}")
        return self.rows[0]

    def fetchall(self) -> list[Row]:
        return self.rows

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)


class Tx:
    """One transaction on one connection."""

    def __init__(self, conn: Connection, for_update: str) -> None:
        self.conn = conn
        #: `` FOR UPDATE`` on PostgreSQL (row locks); empty on SQLite, whose write
        #: transactions are exclusive already.
        self.for_update = for_update

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Result:
        statement, params = _named(sql, args)
        result = self.conn.execute(statement, params)
        rows = [dict(r) for r in result.mappings()] if result.returns_rows else []
        return Result(rows, result.rowcount if not result.returns_rows else len(rows))

    def executemany(self, sql: str, many: Sequence[Sequence[Any]]) -> None:
        if not many:
            return
        statement, _ = _named(sql, many[0])
        self.conn.execute(statement, [_named(sql, args)[1] for args in many])


def default_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'state.sqlite3'}"


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for a session id."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class Database:
    def __init__(self, url: str) -> None:
        self.url = sa.engine.make_url(url)
        self.kind = self.url.get_backend_name()
        if self.kind == "sqlite":
            self.engine: Engine = sa.create_engine(
                self.url,
                poolclass=StaticPool,
                connect_args={"check_same_thread": False},
            )
            sa.event.listen(self.engine, "connect", _sqlite_connect)
            sa.event.listen(self.engine, "begin", _sqlite_begin)
            #: SQLite: one connection, one transaction at a time in this process.
            self.lock: contextlib.AbstractContextManager[Any] = threading.RLock()
        elif self.kind == "postgresql":
            if self.url.drivername in ("postgresql", "postgres"):
                self.url = self.url.set(drivername="postgresql+psycopg")
            # Up to 100 connections per server: each of the worker threads (40) may hold a
            # session lock on one connection while it runs a statement on another.
            self.engine = sa.create_engine(
                self.url, pool_size=10, max_overflow=90, pool_pre_ping=True
            )
            self.lock = contextlib.nullcontext()
        else:
            raise ValueError(
                f"unsupported database {self.url.drivername!r}: use sqlite or postgresql"
            )
        self.for_update = " FOR UPDATE" if self.kind == "postgresql" else ""
        #: The transaction this thread has open: statements inside it (a lookup while
        #: a write is prepared) join it instead of opening another.
        self._local = threading.local()

    @property
    def shared(self) -> bool:
        """Whether several server processes may use this database at once."""
        return self.kind == "postgresql"

    def close(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def tx(self, *, durable: bool = False) -> Iterator[Tx]:
        """A write transaction; ``durable``: its commit survives a power loss (SQLite:
        ``synchronous=FULL`` for it; PostgreSQL commits are durable already)."""
        outer: Tx | None = getattr(self._local, "tx", None)
        if outer is not None:
            yield outer
            return
        with self.lock, self.engine.connect() as conn:
            # Outside any transaction (SQLite refuses it inside), on the DB-API connection.
            raw: Any = conn.connection.dbapi_connection
            if durable and self.kind == "sqlite":
                raw.execute("PRAGMA synchronous=FULL")
            try:
                with conn.begin():
                    self._local.tx = tx = Tx(conn, self.for_update)
                    try:
                        yield tx
                    finally:
                        self._local.tx = None
            finally:
                if durable and self.kind == "sqlite":
                    raw.execute("PRAGMA synchronous=NORMAL")

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        outer: Tx | None = getattr(self._local, "tx", None)
        if outer is not None:
            return outer.execute(sql, args).rows
        with self.lock, self.engine.connect() as conn, conn.begin():
            return Tx(conn, "").execute(sql, args).rows

    # -- schema ---------------------------------------------------------------------
    def upgrade(self) -> str:
        """Bring the schema to the newest revision; returns it."""
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext

        with self.lock, self.engine.connect() as conn:
            if self.kind == "postgresql":  # several servers may start at once
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
                conn.commit()
            try:
                config = Config()
                config.set_main_option("script_location", str(MIGRATIONS))
                config.attributes["connection"] = conn
                current = MigrationContext.configure(conn).get_current_revision()
                tables = set(sa.inspect(conn).get_table_names())
                if current is None and "sessions" in tables:
                    # Made by a server before Alembic: the first schema, the baseline.
                    command.stamp(config, "0001")
                    conn.commit()
                command.upgrade(config, "head")
                conn.commit()
                head = MigrationContext.configure(conn).get_current_revision()
            finally:
                if self.kind == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
                    conn.commit()
        return str(head)

    def session_locks(self) -> Any:
        from validator.server.store import SessionLocks

        return PgSessionLocks(self.engine) if self.kind == "postgresql" else SessionLocks()


def _sqlite_connect(dbapi_connection: Any, record: Any) -> None:
    # pysqlite's own transaction handling is off: SQLAlchemy's "begin" event sends
    # BEGIN IMMEDIATE (the SQLAlchemy documentation's recipe for SQLite).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


class PgSessionLocks:
    """Per-session reader/writer locks across server processes: PostgreSQL advisory locks.

    Each lock is held on a connection of its own for as long as the operation runs;
    a server that dies loses its connections, and with them its locks. PostgreSQL
    queues a shared request behind a waiting exclusive one, so validations cannot
    starve ``complete``.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextlib.contextmanager
    def _held(self, session_id: str, fn: str, wait: bool) -> Iterator[bool]:
        key = lock_key(session_id)
        conn = self.engine.connect()
        try:
            if wait:
                conn.execute(sa.text(f"SELECT {fn}(:k)"), {"k": key})
                got = True
            else:
                got = bool(conn.execute(sa.text(f"SELECT {fn}(:k)"), {"k": key}).scalar())
            conn.commit()  # the lock is the session's, not the transaction's
        except BaseException:
            conn.invalidate()  # never back to the pool holding a lock
            conn.close()
            raise
        try:
            yield got
        finally:
            try:
                if got:
                    unlock = "pg_advisory_unlock_shared" if "shared" in fn else "pg_advisory_unlock"
                    conn.execute(sa.text(f"SELECT {unlock}(:k)"), {"k": key})
                    conn.commit()
            except BaseException:
                conn.invalidate()
                raise
            finally:
                conn.close()

    @contextlib.contextmanager
    def shared(self, session_id: str) -> Iterator[None]:
        with self._held(session_id, "pg_advisory_lock_shared", True):
            yield

    @contextlib.contextmanager
    def exclusive(self, session_id: str, *, wait: bool = True) -> Iterator[bool]:
        fn = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
        with self._held(session_id, fn, wait) as got:
            yield got
