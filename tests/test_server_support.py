"""Shared helpers of the server tests (no tests here)."""

from __future__ import annotations

import base64
import json
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
def server_env(tmp_path: Path) -> Iterator[tuple[TestClient, Service]]:
    config = ServerConfig(data_dir=tmp_path / "data", session_timeout=300)
    app = create_app(config, fast_users())
    with TestClient(app) as client:
        yield client, app.state.service
    app.state.service.close()


def dumps(value: Any) -> str:
    return json.dumps(value)
