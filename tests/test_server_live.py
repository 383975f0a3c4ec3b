"""The server as a user runs it: ``python -m validator serve`` on 127.0.0.1, a free port.

The official bindings (when installed), raw vAPI JSON-RPC, an upload cut
off mid-body, a bounded load test, and SIGKILL during uploads and during
complete followed by a restart and a consistency check.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_server_support import PASSWORD, ROOT, SAMPLES, basic, database, postgres
from validator.server.auth import Users, hash_password
from validator.server.service import ServerConfig, Service

__all__ = ["database", "postgres"]

API_US = "/api/content/library/item/update-session"
SLOW_ENV = "VALIDATOR_TEST_SLOW_VALIDATE"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Live:
    """A server subprocess that can be killed and started again on the same data."""

    def __init__(
        self,
        tmp: Path,
        extra_env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
        database: str | None = None,
        data: Path | None = None,
        users: Path | None = None,
    ) -> None:
        #: ``None``: SQLite in the data folder; else a PostgreSQL URL (``--database``).
        self.database = database
        self.extra_args = [*(extra_args or []), *(["--database", database] if database else [])]
        #: The server's standard error (its log), for tests that read it.
        self.log = tmp / "server.log"
        self.data = data or tmp / "data"
        self.users = users or tmp / "users"
        if users is None:
            lines = [f"{u}:{hash_password(PASSWORD, n=1 << 10)}\n" for u in ("alice", "bob")]
            self.users.write_text("".join(lines))
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(extra_env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *plugins: str) -> None:
        args = [
            sys.executable,
            "-m",
            "validator",
            "serve",
            "--port",
            str(self.port),
            "--data",
            str(self.data),
            "--users",
            str(self.users),
            "--log-level",
            "warning",
        ]
        for p in plugins:
            args += ["--plugin", p]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [*args, *self.extra_args], cwd=ROOT, env=self.env, stderr=log
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/api/session", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self, user: str = "alice") -> Client:
        return Client(self.url, user)

    def service(self) -> Service:
        """The server's state opened directly (only while the server is stopped)."""
        config = ServerConfig(data_dir=self.data, database=self.database)
        return Service(config, _registry(), Users({}))


def _registry() -> Any:
    from validator.server import build_server_registry

    return build_server_registry()


class Client:
    def __init__(self, base: str, user: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=30)
        r = self.http.post("/api/session", headers=basic(user))
        assert r.status_code == 201, r.text
        self.token = r.json()
        self.http.headers["vmware-api-session-id"] = self.token
        self.latencies: list[float] = []

    def req(self, method: str, url: str, **kw: Any) -> httpx.Response:
        t = time.perf_counter()
        r = self.http.request(method, url, **kw)
        self.latencies.append(time.perf_counter() - t)
        return r

    def new_item(self) -> str:
        lib = self.req("POST", "/api/content/local-library", json={"name": "l"}).json()
        r = self.req(
            "POST",
            "/api/content/library/item",
            json={"library_id": lib, "name": "vm", "type": "ovf"},
        )
        return str(r.json())

    def new_session(self, item: str) -> str:
        r = self.req("POST", API_US, json={"library_item_id": item})
        assert r.status_code == 201, r.text
        return str(r.json())

    def push(self, sid: str, names: tuple[str, ...] = ("vm.mf", "vm.ovf", "vm-disk1.vmdk")) -> None:
        for name in names:
            data = (SAMPLES / name).read_bytes()
            r = self.req(
                "POST",
                f"{API_US}/{sid}/file",
                json={"name": name, "source_type": "PUSH", "size": len(data)},
            )
            assert r.status_code == 200, r.text
            r = self.req("PUT", r.json()["upload_endpoint"]["uri"], content=data)
            assert r.status_code == 200 and r.json()["status"] == "READY", r.text

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def live(tmp_path: Path, database: str | None) -> Iterator[Live]:
    """A server subprocess, on SQLite and on PostgreSQL."""
    server = Live(tmp_path, database=database)
    server.start()
    yield server
    server.stop()


# -- the official bindings --------------------------------------------------------


def test_official_bindings(live: Live) -> None:
    pytest.importorskip("com.vmware.content_client")
    import requests

    def mod(name: str) -> Any:  # the bindings ship no type information
        return importlib.import_module(name)

    Session = mod("com.vmware.cis_client").Session
    File = mod("com.vmware.content.library.item.updatesession_client").File
    item_client = mod("com.vmware.content.library.item_client")
    ItemFile, UpdateSession = item_client.File, item_client.UpdateSession
    UpdateSessionModel = item_client.UpdateSessionModel
    Item = mod("com.vmware.content.library_client").Item
    ItemModel = mod("com.vmware.content.library_client").ItemModel
    LibraryModel = mod("com.vmware.content_client").LibraryModel
    LocalLibrary = mod("com.vmware.content_client").LocalLibrary
    errors = mod("com.vmware.vapi.std.errors_client")
    NotAllowedInCurrentState, NotFound = errors.NotAllowedInCurrentState, errors.NotFound
    ResourceBusy, Unauthenticated = errors.ResourceBusy, errors.Unauthenticated
    get_requests_connector = mod("vmware.vapi.lib.connect").get_requests_connector
    LegacySecurityContextFilter = mod(
        "vmware.vapi.security.client.security_context_filter"
    ).LegacySecurityContextFilter
    create_session_security_context = mod(
        "vmware.vapi.security.session"
    ).create_session_security_context
    create_user_password_security_context = mod(
        "vmware.vapi.security.user_password"
    ).create_user_password_security_context
    StubConfigurationFactory = mod("vmware.vapi.stdlib.client.factories").StubConfigurationFactory

    http = requests.Session()

    def config(sec: Any) -> Any:
        connector = get_requests_connector(
            session=http,
            url=live.url + "/api",
            provider_filter_chain=[LegacySecurityContextFilter(security_context=sec)],
        )
        return StubConfigurationFactory.new_std_configuration(connector)

    with pytest.raises(Unauthenticated):
        Session(config(create_user_password_security_context("alice", "wrong"))).create()
    token = Session(config(create_user_password_security_context("alice", PASSWORD))).create()
    stub = config(create_session_security_context(token))
    with pytest.raises(Unauthenticated):
        File(config(create_session_security_context("bogus"))).validate("obj-103")

    lib = LocalLibrary(stub).create(
        create_spec=LibraryModel(name="lib", type=LibraryModel.LibraryType.LOCAL)
    )
    assert LocalLibrary(stub).get(lib).name == "lib"
    assert lib in mod("com.vmware.content_client").Library(stub).list()
    item = Item(stub).create(create_spec=ItemModel(library_id=lib, name="vm", type="ovf"))
    assert Item(stub).list(lib) == [item]
    sessions = UpdateSession(stub)
    sid = sessions.create(create_spec=UpdateSessionModel(library_item_id=item), client_token="c1")
    assert (
        sessions.create(create_spec=UpdateSessionModel(library_item_id=item), client_token="c1")
        == sid
    )
    with pytest.raises(ResourceBusy):
        sessions.create(create_spec=UpdateSessionModel(library_item_id=item))
    files = File(stub)
    with pytest.raises(NotFound) as nf:
        files.validate("obj-103")
    assert nf.value.messages[0].args == ["obj-103"]

    # Validate before the bytes arrived: NotAllowedInCurrentState.
    info = files.add(sid, File.AddSpec(name="vm-disk1.vmdk", source_type=File.SourceType.PUSH))
    with pytest.raises(NotAllowedInCurrentState):
        files.validate(sid)
    for name in ("vm.mf", "vm.ovf", "vm-disk1.vmdk"):
        data = (SAMPLES / name).read_bytes()
        info = files.add(
            sid, File.AddSpec(name=name, source_type=File.SourceType.PUSH, size=len(data))
        )
        r = http.put(info.upload_endpoint.uri, data=data, headers={"vmware-api-session-id": token})
        assert r.status_code == 200
    assert {f.name: str(f.status) for f in files.list(sid)} == {
        "vm.ovf": "READY",
        "vm-disk1.vmdk": "READY",
        "vm.mf": "READY",
    }
    assert files.get(sid, "vm.mf").keep_in_storage is False
    result = files.validate(sid)
    assert result.has_errors is False and result.missing_files == set()
    model = sessions.get(sid)
    assert model.state == "ACTIVE" and model.preview_info.state == "AVAILABLE"
    sessions.keep_alive(sid, client_progress=90)
    sessions.complete(sid)
    assert sessions.get(sid).state == "DONE"
    with pytest.raises(NotAllowedInCurrentState):
        sessions.complete(sid)
    assert sorted(f.name for f in ItemFile(stub).list(item)) == ["vm-disk1.vmdk", "vm.ovf"]
    assert Item(stub).get(item).content_version == "2"
    # A refused complete: a missing disk, reported with the bindings' exception.
    sid2 = sessions.create(create_spec=UpdateSessionModel(library_item_id=item))
    data = (SAMPLES / "vm.ovf").read_bytes()
    info = files.add(sid2, File.AddSpec(name="vm.ovf", source_type=File.SourceType.PUSH))
    http.put(info.upload_endpoint.uri, data=data, headers={"vmware-api-session-id": token})
    result = files.validate(sid2)
    assert result.has_errors and result.missing_files == {"vm-disk1.vmdk"}
    with pytest.raises(NotAllowedInCurrentState) as na:
        sessions.complete(sid2)
    assert na.value.messages[0].id.endswith("session_has_missing_or_invalid_files")
    files.remove(sid2, "vm.ovf")
    assert files.list(sid2) == []
    WarningBehavior = mod("com.vmware.content.library.item.updatesession_client").WarningBehavior
    behavior = WarningBehavior(type="SELF_SIGNED_CERTIFICATE", ignored=True)
    sessions.update(sid2, UpdateSessionModel(warning_behavior=[behavior]))
    assert sessions.get(sid2).warning_behavior[0].ignored is True
    assert sid2 in sessions.list(library_item_id=item)
    sessions.fail(sid2, "client gave up")
    failed = sessions.get(sid2)
    assert failed.state == "ERROR" and "client gave up" in failed.error_message.default_message
    sessions.delete(sid2)
    with pytest.raises(NotFound):
        sessions.get(sid2)
    Session(stub).delete()


def test_raw_jsonrpc_shapes(live: Live) -> None:
    """The captured request of REFERENCE §2 and the answers the bindings accept."""
    http = httpx.Client(base_url=live.url, timeout=10)
    login = {
        "jsonrpc": "2.0",
        "method": "invoke",
        "id": "1",
        "params": {
            "serviceId": "com.vmware.cis.session",
            "operationId": "create",
            "input": {"STRUCTURE": {"operation-input": {}}},
            "ctx": {
                "appCtx": {"opId": "x"},
                "securityCtx": {
                    "schemeId": "com.vmware.vapi.std.security.user_pass",
                    "userName": "alice",
                    "password": PASSWORD,
                },
            },
        },
    }
    answer = http.post("/api", json=login).json()
    token = answer["result"]["output"]["SECRET"]
    call: dict[str, Any] = {
        "jsonrpc": "2.0",
        "method": "invoke",
        "id": "7",
        "params": {
            "serviceId": "com.vmware.content.library.item.updatesession.file",
            "operationId": "validate",
            "input": {"STRUCTURE": {"operation-input": {"update_session_id": "obj-103"}}},
            "ctx": {
                "appCtx": {"opId": "y"},
                "securityCtx": {
                    "schemeId": "com.vmware.vapi.std.security.session_id",
                    "sessionId": token,
                },
            },
        },
    }
    r = http.post(
        "/api",
        json=call,
        headers={
            "vapi-service": "com.vmware.content.library.item.updatesession.file",
            "vapi-operation": "validate",
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == "7" and body["jsonrpc"] == "2.0"
    error = body["result"]["error"]["ERROR"]["com.vmware.vapi.std.errors.not_found"]
    assert error["error_type"] == {"OPTIONAL": "NOT_FOUND"}
    assert error["data"] == {"OPTIONAL": None}
    msg = error["messages"][0]["STRUCTURE"]["com.vmware.vapi.std.localizable_message"]
    assert msg["args"] == ["obj-103"] and msg["params"] == {"OPTIONAL": None}
    # Without a session: unauthenticated.
    call["params"]["ctx"] = {"appCtx": {}}
    body = http.post("/api", json=call).json()
    assert "com.vmware.vapi.std.errors.unauthenticated" in body["result"]["error"]["ERROR"]
    assert http.post("/api", content=b"not json").json()["error"]["code"] == -32700
    http.close()


def test_first_start_creates_a_users_file(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "validator", "serve", "--port", str(port), "--data", str(tmp_path)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "user 'admin', password " in line, line
        password = line.rsplit(" ", 1)[1].strip()
        assert (tmp_path / "users").exists()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/api/session", auth=("admin", password))
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert r.status_code == 201
        assert (tmp_path / "state.sqlite3").exists()
    finally:
        proc.terminate()
        proc.wait(10)


# -- interrupted uploads -------------------------------------------------------------


def test_upload_cut_off_mid_body(live: Live) -> None:
    c = live.client()
    sid = c.new_session(c.new_item())
    r = c.req("POST", f"{API_US}/{sid}/file", json={"name": "vm-disk1.vmdk", "size": 65536})
    uri = r.json()["upload_endpoint"]["uri"]
    path = "/" + uri.split("/", 3)[3]
    with socket.create_connection(("127.0.0.1", live.port)) as s:
        head = (
            f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 65536\r\n"
            f"vmware-api-session-id: {c.token}\r\n\r\n"
        )
        s.sendall(head.encode() + b"x" * 1000)
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    info: dict[str, Any] = {}
    while time.monotonic() < deadline:
        info = c.req("GET", f"{API_US}/{sid}/file/vm-disk1.vmdk").json()
        if info["status"] != "TRANSFERRING":
            break
        time.sleep(0.05)
    assert info["status"] == "ERROR", info
    assert info["error_message"]["id"] == "validator.server.file.interrupted"
    assert c.req("POST", f"{API_US}/{sid}/file?action=validate").status_code == 400
    # The client retries on the same endpoint and succeeds.
    data = (SAMPLES / "vm-disk1.vmdk").read_bytes()
    assert c.req("PUT", uri, content=data).json()["status"] == "READY"
    c.close()


# -- load ------------------------------------------------------------------------------


def test_concurrent_sessions(live: Live, capsys: pytest.CaptureFixture[str]) -> None:
    n_sessions = 20
    clients = [live.client("alice" if i % 2 else "bob") for i in range(n_sessions)]
    items = [c.new_item() for c in clients]
    # Contention: many clients ask for a session on one item, exactly one wins.
    contended = clients[0].new_item()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(
            pool.map(
                lambda c: c.req("POST", API_US, json={"library_item_id": contended}).status_code,
                clients[:8],
            )
        )
    assert codes.count(201) == 1 and codes.count(400) == 7
    for c in clients:
        c.latencies.clear()

    def run(i: int) -> str:
        c = clients[i]
        sid = c.new_session(items[i])
        c.push(sid)
        r = c.req("POST", f"{API_US}/{sid}/file?action=validate")
        assert r.json()["has_errors"] is False
        r = c.req("POST", f"{API_US}/{sid}?action=complete")
        assert r.status_code == 204, r.text
        return sid

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(n_sessions) as pool:
        sids = list(pool.map(run, range(n_sessions)))
    elapsed = time.perf_counter() - start
    latencies = sorted(x for c in clients for x in c.latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    for c, sid, item in zip(clients, sids, items, strict=True):
        assert c.req("GET", f"{API_US}/{sid}").json()["state"] == "DONE"
        files = c.req("GET", f"/api/content/library/item/{item}/file").json()
        assert {f["name"]: f["size"] for f in files} == {"vm.ovf": 2927, "vm-disk1.vmdk": 65536}
        c.close()
    figures = {
        "sessions": n_sessions,
        "requests": len(latencies),
        "seconds": round(elapsed, 2),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p99_ms": round(p99 * 1000, 1),
    }
    with capsys.disabled():
        print(f"\nserver load: {json.dumps(figures)}")
    live.stop()
    service = live.service()
    assert service.check_consistency() == []
    service.close()


# -- kills -------------------------------------------------------------------------------


@pytest.mark.slow
def test_kill_during_upload_and_complete(tmp_path: Path, database: str | None) -> None:
    # A short upload idle timeout: on PostgreSQL a restarted server ends only uploads
    # nobody fed for twice that (another server may be feeding them).
    live = Live(tmp_path, {SLOW_ENV: "1"}, ["--upload-idle-timeout", "1"], database=database)
    live.start("tests.test_server_live")
    try:
        c = live.client()
        item_a = c.new_item()
        sid_a = c.new_session(item_a)
        c.push(sid_a)
        assert c.req("POST", f"{API_US}/{sid_a}?action=complete").status_code == 204
        # An upload in progress when the server dies.
        item_b = c.new_item()
        sid_b = c.new_session(item_b)
        r = c.req("POST", f"{API_US}/{sid_b}/file", json={"name": "big.vmdk", "size": 64 << 20})
        uri = r.json()["upload_endpoint"]["uri"]

        def body() -> Iterator[bytes]:
            for _ in range(64):
                yield b"\0" * (1 << 20)
                time.sleep(0.01)

        errors: list[BaseException] = []

        def upload() -> None:
            try:
                c2 = live.client()
                c2.req("PUT", uri, content=body())
            except BaseException as exc:  # the server dies under it
                errors.append(exc)

        t = threading.Thread(target=upload)
        t.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            info = c.req("GET", f"{API_US}/{sid_b}/file/big.vmdk").json()
            if info["status"] == "TRANSFERRING":
                break
            time.sleep(0.02)
        # A complete in progress (validation slowed by the plugin below) on a second item.
        sid_c = c.new_session(item_a)
        c.push(sid_c)
        done = threading.Event()

        def complete() -> None:
            with contextlib.suppress(BaseException):
                live.client().req("POST", f"{API_US}/{sid_c}?action=complete")
            done.set()

        threading.Thread(target=complete).start()
        time.sleep(0.3)
        live.kill()
        t.join(10)
        done.wait(10)
        c.close()

        service = live.service()
        if database is not None:
            # Several servers may share PostgreSQL: recovery leaves an upload alone until
            # nobody has fed it for twice the idle timeout (60 s by default, as this
            # service is configured); let that time pass.
            assert service.end_stale_uploads(now=time.time() + 200) == 1
        service.recover()
        assert service.check_consistency() == []
        service.close()
        live.env.pop(SLOW_ENV, None)
        live.start()
        c = live.client()
        deadline = time.monotonic() + 20
        while (info := c.req("GET", f"{API_US}/{sid_b}/file/big.vmdk").json())[
            "status"
        ] == "TRANSFERRING" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert info["status"] == "ERROR", info
        assert info["error_message"]["id"] == "validator.server.file.restarted"
        # The complete was cut off: the old content is still the item's, the session ACTIVE.
        item = c.req("GET", f"/api/content/library/item/{item_a}").json()
        session = c.req("GET", f"{API_US}/{sid_c}").json()
        assert (item["content_version"], session["state"]) == ("2", "ACTIVE")
        # … and it can be completed now.
        assert c.req("POST", f"{API_US}/{sid_c}?action=complete").status_code == 204
        assert c.req("GET", f"/api/content/library/item/{item_a}").json()["content_version"] == "3"
        # Kills at arbitrary moments of further completes: always old or new, never a mix.
        for delay in (0.0, 0.005, 0.02):
            sid = c.new_session(item_a)
            c.push(sid)
            before = c.req("GET", f"/api/content/library/item/{item_a}").json()["content_version"]

            def fire(sid: str = sid) -> None:
                with contextlib.suppress(BaseException):
                    live.client().req("POST", f"{API_US}/{sid}?action=complete")

            threading.Thread(target=fire).start()
            time.sleep(delay)
            live.kill()
            time.sleep(0.1)
            live.start()
            c.close()
            c = live.client()
            version = c.req("GET", f"/api/content/library/item/{item_a}").json()["content_version"]
            state = c.req("GET", f"{API_US}/{sid}").json()["state"]
            assert (version, state) in [(before, "ACTIVE"), (str(int(before) + 1), "DONE")]
            if state == "ACTIVE":
                assert c.req("POST", f"{API_US}/{sid}?action=cancel").status_code == 204
        c.close()
    finally:
        live.stop()
    service = live.service()
    assert service.check_consistency() == []
    service.close()


# A plugin for the kill test (loaded with --plugin tests.test_server_live): slows
# validation down while the environment variable is set, so that a kill lands
# inside complete.
from validator.hookspecs import hookimpl  # noqa: E402


@hookimpl
def validator_check_session(item_type: str) -> None:
    if os.environ.get(SLOW_ENV):
        time.sleep(1.0)
