"""Shared helpers of the server tests (no tests here)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from validator.server import create_app
from validator.server.auth import Users, hash_password
from validator.server.service import ServerConfig, Service

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
BUNDLE = ("vm.mf", "vm.ovf", "vm-disk1.vmdk")  # metadata before the descriptor, as vCenter wants
PASSWORD = "s3cret-pw"


def fast_users() -> Users:
    # Cheap scrypt parameters: the tests log in often.
    return Users(
        {
            "alice": hash_password(PASSWORD, n=1 << 10),
            "bob": hash_password(PASSWORD, n=1 << 10),
        }
    )


def basic(user: str, password: str = PASSWORD) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


class Api:
    """A logged-in raw HTTP client for the /api forms."""

    def __init__(self, client: TestClient, user: str = "alice") -> None:
        self.client = client
        r = client.post("/api/session", headers=basic(user))
        assert r.status_code == 201, r.text
        self.token: str = r.json()
        self.h = {"vmware-api-session-id": self.token}

    def req(self, method: str, url: str, **kw: Any) -> Any:
        headers = {**self.h, **kw.pop("headers", {})}
        return self.client.request(method, url, headers=headers, **kw)

    def library(self) -> str:
        r = self.req("POST", "/api/content/local-library", json={"name": "lib"})
        assert r.status_code == 201, r.text
        return str(r.json())

    def item(self, kind: str = "ovf", library: str | None = None) -> str:
        lib = library or self.library()
        r = self.req(
            "POST",
            "/api/content/library/item",
            json={"library_id": lib, "name": "vm", "type": kind},
        )
        assert r.status_code == 201, r.text
        return str(r.json())

    def session(self, item: str, **spec: Any) -> str:
        r = self.req(
            "POST",
            "/api/content/library/item/update-session",
            json={"library_item_id": item, **spec},
        )
        assert r.status_code == 201, r.text
        return str(r.json())

    def add(self, sid: str, name: str, **spec: Any) -> dict[str, Any]:
        r = self.req(
            "POST",
            f"/api/content/library/item/update-session/{sid}/file",
            json={"name": name, "source_type": "PUSH", **spec},
        )
        assert r.status_code == 200, r.text
        info: dict[str, Any] = r.json()
        return info

    def upload(self, info: dict[str, Any], data: bytes) -> Any:
        uri = info["upload_endpoint"]["uri"]
        path = uri.split("://", 1)[1].split("/", 1)[1]
        return self.req("PUT", "/" + path, content=data)

    def push_bundle(self, sid: str, names: tuple[str, ...] = BUNDLE) -> None:
        for name in names:
            data = (SAMPLES / name).read_bytes()
            info = self.add(sid, name, size=len(data))
            r = self.upload(info, data)
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "READY"


@pytest.fixture
def server_env(tmp_path: Path, database: str | None) -> Iterator[tuple[TestClient, Service]]:
    """The application in-process, on SQLite and on PostgreSQL (``database``)."""
    config = ServerConfig(data_dir=tmp_path / "data", session_timeout=300, database=database)
    app = create_app(config, fast_users())
    with TestClient(app) as client:
        yield client, app.state.service
    app.state.service.close()


def dumps(value: Any) -> str:
    return json.dumps(value)


# -- a real PostgreSQL for the tests ----------------------------------------------------


def _pg_bindir() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "pg_ctl").exists():
            return candidate
    found = shutil.which("pg_ctl")
    return Path(found).resolve().parent if found else None


class PostgresCluster:
    """A throw-away PostgreSQL cluster on a free loopback port (``initdb`` + ``pg_ctl``).

    PostgreSQL refuses to run as root: as root the cluster belongs to (and runs as) the
    ``postgres`` user of Debian's ``postgresql`` package, through ``runuser``.
    """

    def __init__(self, *, durable: bool = False) -> None:
        """``durable``: PostgreSQL's own defaults (fsync on); else fast settings for tests
        (the tests kill server processes, never the database)."""
        bindir = _pg_bindir()
        if bindir is None:
            pytest.skip("PostgreSQL is not installed (Debian package postgresql)")
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="validator-pg-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.port = _free_port()
        self.data = self.root / "data"
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "validator",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=400"
        )
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        self._count = 0

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.as_user, str(self.bindir / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://validator@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        self._count += 1
        name = f"t{os.getpid()}_{self._count}"
        with psycopg.connect(
            self.url().replace("postgresql://", "postgresql://", 1), autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-W", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    yield cluster
    cluster.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


DATABASES = ["sqlite", "postgresql"]


@pytest.fixture(params=DATABASES)
def database(request: pytest.FixtureRequest) -> str | None:
    """``None`` (SQLite in the data folder, the default) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.new_database()
