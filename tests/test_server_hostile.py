"""Hostile requests to the reference server: every answer a vAPI error body, never a 500.

In-process (TestClient) for what the application decides, raw HTTP on a loopback socket to
``python -m validator serve`` for what only a real server shows: header blocks too large
for the HTTP parser, bodies larger than allowed (declared or streamed), slow uploads while
others are served, and requests cut off mid-body.  Each test that names a bug pins its fix.
(tests/test_server.py covers DOCTYPEs, a malformed JSON body, a 2 MiB body, too long ids in
a body and other users' sessions; tests/test_server_live.py an upload cut off mid-body.)
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from starlette.testclient import TestClient

from tests.test_server_live import Live
from tests.test_server_support import SAMPLES, Api, database, fast_users, postgres, server_env
from validator.server import create_app
from validator.server.service import ServerConfig, Service

__all__ = ["database", "postgres", "server_env"]

Env = tuple[TestClient, Service]
API_US = "/api/content/library/item/update-session"
REST_US = "/rest/com/vmware/content/library/item/update-session"
REST_FILE = "/rest/com/vmware/content/library/item/updatesession/file"
JSON = {"Content-Type": "application/json"}


def api_error(r: Any, status: int, error_type: str, message_id: str | None = None) -> None:
    """``r`` is the /api vAPI error body of ``error_type`` (and ``message_id``)."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error_type", "messages"} and body["error_type"] == error_type, body
    if message_id is not None:
        assert body["messages"][0]["id"] == message_id, body


def rest_error(r: Any, status: int, error_type: str, message_id: str | None = None) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"] == "com.vmware.vapi.std.errors." + error_type.lower(), body
    assert body["value"]["error_type"] == error_type
    if message_id is not None:
        assert body["value"]["messages"][0]["id"] == message_id, body


# -- ids ----------------------------------------------------------------------------------


def test_an_id_is_matched_whole(server_env: Env) -> None:
    """Bug: ``^…$`` with ``re.match`` took ``abc\\n`` for an id (``$`` matches before a final
    newline): it was looked up and echoed, newline included, as not found."""
    client, _ = server_env
    api = Api(client)
    r = api.req("GET", "/api/content/library/abc%0A")
    api_error(r, 400, "INVALID_ARGUMENT", "validator.server.arg.bad_id")
    assert r.json()["messages"][0]["args"][0] == "abc\\x0a"  # shown escaped, on one line
    sid = api.session(api.item())
    checksum = {"algorithm": "SHA256", "checksum": "ab" * 32 + "\n"}
    r = api.req("POST", f"{API_US}/{sid}/file", json={"name": "a", "checksum_info": checksum})
    api_error(r, 400, "INVALID_ARGUMENT", "validator.server.arg.invalid")


def test_an_empty_id_is_not_a_filter(server_env: Env) -> None:
    """Bug: ``?library_item_id=`` listed every session, as if no item had been named."""
    client, _ = server_env
    api = Api(client)
    api.session(api.item())
    api_error(api.req("GET", f"{API_US}?library_item_id="), 400, "INVALID_ARGUMENT")
    rest_error(api.req("GET", f"{REST_US}?library_item_id="), 400, "INVALID_ARGUMENT")
    assert len(api.req("GET", API_US).json()) == 1


@pytest.mark.parametrize(
    "path",
    [
        "/api/content/library/" + "a" * 10_000,
        "/api/content/library/item/%2e%2e",  # httpx would resolve a literal ".."
        "/api/content/library/item/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        f"{API_US}/..%2F..%2Fstate.sqlite3/file",
        f"{API_US}/%2e%2e/file/..%2fusers",
        "/api/content/library/item/update-session/a%00b",
        "/rest/com/vmware/content/library/item/id:..%2F..%2Fetc",
        "/rest/com/vmware/content/library/item/id:%2e%2e",
        "/rest/com/vmware/content/library/id:" + "9" * 10_000,
        "/cls/data/..%2F..%2Fstate.sqlite3",
        "/cls/data/" + "x" * 10_000,
    ],
)
def test_hostile_ids_in_the_path(server_env: Env, path: str) -> None:
    client, service = server_env
    api = Api(client)
    before = sorted(p.name for p in service.data.iterdir())
    for method in ("GET", "POST", "PUT", "DELETE"):
        r = api.req(method, path, content=b"x" if method == "PUT" else None)
        assert r.status_code in (400, 404), (method, path, r.text[:200])
        if path.startswith("/rest"):
            assert r.json()["type"].startswith("com.vmware.vapi.std.errors.")
        else:
            assert r.json()["error_type"] in ("INVALID_ARGUMENT", "NOT_FOUND")
    assert sorted(p.name for p in service.data.iterdir()) == before


def test_non_utf8_percent_encoding_in_the_path(server_env: Env) -> None:
    """Bug: ``%FF`` was decoded to U+FFFD, so ``%FE`` and ``%FF`` named the same file."""
    client, _ = server_env
    api = Api(client)
    sid = api.session(api.item())
    for path in [
        f"{API_US}/{sid}/file/%FF",
        f"{API_US}/{sid}/file/a%C0%AF",  # an overlong "/"
        "/api/content/library/%ED%A0%80",  # a UTF-8-encoded surrogate
    ]:
        api_error(api.req("GET", path), 400, "INVALID_ARGUMENT", "validator.server.arg.bad_path")
    r = api.req("GET", f"{REST_FILE}/id:%FF")
    rest_error(r, 400, "INVALID_ARGUMENT", "validator.server.arg.bad_path")


def test_file_names_with_url_characters(server_env: Env) -> None:
    """Bug: routing used ``request.url.path``, which keeps ``%3F`` and ``%23`` encoded: a
    file named ``a?b`` was looked up as ``a%3Fb`` and could not be got or removed."""
    client, _ = server_env
    api = Api(client)
    sid = api.session(api.item())
    for name, encoded in [("a?b", "a%3Fb"), ("c#d", "c%23d"), ("50%", "50%25"), ("é", "%C3%A9")]:
        api.add(sid, name)
        r = api.req("GET", f"{API_US}/{sid}/file/{encoded}")
        assert r.status_code == 200 and r.json()["name"] == name, r.text
        assert api.req("DELETE", f"{API_US}/{sid}/file/{encoded}").status_code == 204
    assert api.req("GET", f"{API_US}/{sid}/file").json() == []


def test_the_path_names_the_object(server_env: Env) -> None:
    """Bugs: an id in the body overrode the one in the /api path (``POST …/A?action=cancel``
    with ``{"update_session_id": "B"}`` canceled B); and /rest took ``…/id:{id}`` for
    operations on no object (``POST …/update-session/id:X`` created a session)."""
    client, _ = server_env
    api = Api(client)
    a, b = api.session(api.item()), api.session(api.item())
    r = api.req("POST", f"{API_US}/{a}?action=cancel", json={"update_session_id": b})
    assert r.status_code == 204
    assert api.req("GET", f"{API_US}/{a}").json()["state"] == "CANCELED"
    assert api.req("GET", f"{API_US}/{b}").json()["state"] == "ACTIVE"
    item = api.item()
    spec = {"create_spec": {"library_item_id": item}}
    rest_error(api.req("POST", f"{REST_US}/id:{b}", json=spec), 404, "NOT_FOUND")
    rest_error(
        api.req("POST", f"/rest/com/vmware/content/library/id:{b}?~action=list"), 404, "NOT_FOUND"
    )
    assert api.req("GET", f"{API_US}?library_item_id={item}").json() == []


# -- bodies -------------------------------------------------------------------------------


def test_a_body_of_fields_must_be_an_object(server_env: Env) -> None:
    """Bug: /api ignored a body that was not an object (``[1]`` to keep-alive was a 204)."""
    client, _ = server_env
    api = Api(client)
    sid = api.session(api.item())
    for body in (b"[1]", b'"text"', b"42", b"true"):  # (null: no parameters, like no body)
        r = api.req("POST", f"{API_US}/{sid}?action=keep-alive", content=body, headers=JSON)
        api_error(r, 400, "INVALID_ARGUMENT", "validator.server.arg.body_not_object")
        r = api.req("POST", f"{REST_US}/id:{sid}?~action=keep-alive", content=body, headers=JSON)
        rest_error(r, 400, "INVALID_ARGUMENT", "validator.server.arg.body_not_object")


@pytest.mark.parametrize(
    "body",
    [
        b'{"update_session_id": "\\udc80"}',
        b'{"\\ud800": 1}',
        b'{"update_session_id": ["x", {"y": "a\\udfffb"}]}',
    ],
)
def test_lone_surrogates_in_json(server_env: Env, body: bytes) -> None:
    """Bug: ``"\\udc80"`` is valid JSON syntax but no text; the server stored or echoed it,
    and SQLite or the answer's UTF-8 encoding failed: 500 (JSON-RPC too)."""
    client, _ = server_env
    api = Api(client)
    r = api.req("POST", f"{REST_FILE}?~action=validate", content=body, headers=JSON)
    rest_error(r, 400, "INVALID_ARGUMENT", "validator.server.arg.bad_body")
    spec = body.replace(b"update_session_id", b"name")
    r = api.req("POST", "/api/content/local-library", content=spec, headers=JSON)
    api_error(r, 400, "INVALID_ARGUMENT", "validator.server.arg.bad_body")
    r = api.req("POST", API_US, content=body.replace(b"update_", b"library_item_"), headers=JSON)
    api_error(r, 400, "INVALID_ARGUMENT")
    rpc = b'{"jsonrpc": "2.0", "method": "invoke", "id": "\\udc80", "params": {}}'
    assert client.post("/api", content=rpc).json()["error"]["code"] == -32700


def test_nan_is_not_json(server_env: Env) -> None:
    """Bug: ``json.loads`` takes ``NaN``; a JSON-RPC request with ``"id": NaN`` got an answer
    echoing ``NaN``, which no JSON parser reads."""
    client, _ = server_env
    api = Api(client)
    rpc = b'{"jsonrpc": "2.0", "method": "invoke", "id": NaN, "params": {}}'
    r = client.post("/api", content=rpc)
    answer = json.loads(r.text, parse_constant=lambda name: pytest.fail(f"{name} answered"))
    assert answer["error"]["code"] == -32700
    for body in (b'{"update_session_id": NaN}', b"[Infinity]", b"-Infinity"):
        r = api.req("POST", f"{REST_FILE}?~action=validate", content=body, headers=JSON)
        rest_error(r, 400, "INVALID_ARGUMENT", "validator.server.arg.bad_body")


@pytest.mark.parametrize(
    "body",
    [
        b'<ns0:Validate-Input xmlns:ns0="x"><update_session_id>abc',  # cut short
        b'<?xml version="1.0"?><a>\xff\xfe</a>',  # not UTF-8
        b"<a><update_session_id>\x01</update_session_id></a>",  # a control character
        b"<a><update_session_id>a&#xD800;b</update_session_id></a>",  # a surrogate reference
        b'<?xml version="1.1"?><a><update_session_id>a&#x1c;b</update_session_id></a>',
        b"<a>" * 40 + b"</a>" * 40,  # deeper than allowed
        b'{"update_session_id": "x"',  # JSON cut short, sent as XML
    ],
)
def test_malformed_xml_bodies(server_env: Env, body: bytes) -> None:
    """An XML error answer is well-formed whatever it echoes.  Bug: a control character
    from the request went into the XML error document as is (not XML 1.0)."""
    client, _ = server_env
    api = Api(client)
    xml = {"Content-Type": "application/xml"}
    r = api.req("POST", f"{REST_FILE}?~action=validate", content=body, headers=xml)
    assert r.status_code in (400, 404), r.text
    root = etree.fromstring(r.content)  # well-formed, or this raises
    assert root.tag == "{http://vmware.com/vapi/std/errors}Error"
    assert (root.findtext("type") or "").startswith("com.vmware.vapi.std.errors.")


def test_xml_answers_escape_what_xml_cannot_hold(server_env: Env) -> None:
    client, _ = server_env
    api = Api(client)
    # A name with U+FFFE (allowed in a file name, not in XML 1.0), echoed in an XML error.
    sid = api.session(api.item())
    r = api.req(
        "POST",
        f"{REST_FILE}/id:{sid}?~action=get",
        json={"file_name": "a\ufffeb"},
        headers={"Accept": "application/xml"},
    )
    assert r.status_code == 404
    root = etree.fromstring(r.content)
    assert root.findtext("value/messages-array/array-item/args-array/array-item[2]") == "a\\ufffeb"
    # A control character (what schemathesis sent): refused as a name, echoed in the error.
    r = api.req(
        "POST",
        f"{REST_FILE}/id:{sid}?~action=get",
        json={"file_name": "a\x1cb"},
        headers={"Accept": "application/xml"},
    )
    assert r.status_code == 400
    root = etree.fromstring(r.content)
    assert root.findtext("value/messages-array/array-item/args-array/array-item") == "a\\x1cb"


# -- headers --------------------------------------------------------------------------------


def test_headers_too_large_in_process(server_env: Env) -> None:
    client, _ = server_env
    api = Api(client)
    big = {"X-Padding": "p" * 20_000}
    r = api.req("GET", "/api/content/library", headers=big)
    api_error(r, 400, "INVALID_ARGUMENT", "validator.server.http.headers_too_large")
    r = api.req("GET", "/rest/com/vmware/content/library", headers=big)
    rest_error(r, 400, "INVALID_ARGUMENT", "validator.server.http.headers_too_large")
    assert api.req("GET", "/api/content/library").status_code == 200


def test_header_limit_is_a_setting(tmp_path: Path) -> None:
    config = ServerConfig(data_dir=tmp_path, max_header_bytes=64 << 10)
    app = create_app(config, fast_users())
    with TestClient(app) as client:
        api = Api(client)
        assert api.req("GET", "/api/content/library", headers={"X-P": "p" * 40_000}).is_success
    app.state.service.close()


# -- a real server on loopback ------------------------------------------------------------


@pytest.fixture
def live(tmp_path: Path, database: str | None) -> Iterator[Live]:
    # A short session timeout: a slow upload must keep its session alive by itself.
    # On SQLite and on PostgreSQL (``database``), as the rest of the server suite.
    server = Live(tmp_path, extra_args=["--session-timeout", "1"], database=database)
    server.start()
    yield server
    server.stop()


def raw(port: int, data: bytes, *, pause: float = 0.0, rest: bytes = b"") -> bytes:
    """Send ``data`` (then ``rest`` after ``pause`` seconds) and read the answer until close.

    The server may answer a request it refuses (headers too large, a body over the limit)
    and close before the whole request is sent: the rest of the write then fails with a
    broken pipe or a reset. That is the server's right, not a failure: the answer it sent
    first is still read and checked.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            rest = b""  # refused and closed mid-request: read what it answered
        if rest:
            time.sleep(pause)
            with contextlib.suppress(OSError):  # the server answered and closed first
                s.sendall(rest)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
                if b"\r\n\r\n" in out and _complete(out):
                    break
        except (ConnectionResetError, TimeoutError):
            pass
    return out


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def parse(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    assert b"content-type: application/json" in head.lower(), head
    assert b"Traceback" not in body
    return status, json.loads(body)


def test_unparseable_and_oversized_requests(live: Live) -> None:
    """Bug: a request uvicorn's parser refuses (a header block over its limit, a garbled
    request line) was answered ``Invalid HTTP request received.`` in plain text."""
    c = live.client()
    token = c.token
    get = b"GET /api/content/library HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    too_large, bad = "validator.server.http.headers_too_large", "validator.server.http.bad_request"
    cases = [
        # 100 KB of headers in one write: the parser takes it; the application refuses.
        (get + b"X-Big: " + b"a" * 100_000 + b"\r\n\r\n", too_large),
        # 1 MB: more than the parser holds unfinished; it refuses.
        (get + b"X-Big: " + b"a" * 1_000_000 + b"\r\n\r\n", bad),
        (b"GARBAGE\r\n\r\n", bad),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", bad),
        (b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n", bad),
        (
            b"GET /api/content/library/" + b"i" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n"
            b"vmware-api-session-id: " + token.encode() + b"\r\nConnection: close\r\n\r\n",
            too_large,
        ),
    ]
    for request, message_id in cases:
        status, body = parse(raw(live.port, request))
        assert status == 400 and body["error_type"] == "INVALID_ARGUMENT", body
        assert body["messages"][0]["id"] == message_id
    # Still serving.
    assert c.req("GET", "/api/content/library").status_code == 200
    c.close()


def test_bodies_beyond_the_limit(live: Live) -> None:
    c = live.client()
    sid = c.new_session(c.new_item())
    head = (
        f"POST {REST_FILE}?~action=validate HTTP/1.1\r\nHost: x\r\n"
        f"vmware-api-session-id: {c.token}\r\nContent-Type: application/json\r\n"
    ).encode()
    # Declared far beyond the limit: refused before any byte of the body is read.
    t = time.monotonic()
    answer = raw(live.port, head + b"Content-Length: 104857600\r\n\r\n" + b"{" * 1000)
    status, body = parse(answer)
    assert status == 400 and body["value"]["messages"][0]["id"] == "validator.server.arg.too_large"
    assert time.monotonic() - t < 5
    # Chunked, no length: refused once 1 MiB has arrived.
    chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
    answer = raw(
        live.port,
        head + b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 20,
        pause=0.1,
        rest=chunk * 20 + b"0\r\n\r\n",
    )
    status, body = parse(answer)
    assert status == 400 and body["value"]["messages"][0]["id"] == "validator.server.arg.too_large"
    # A JSON body cut off mid-way: no internal error, and the server goes on.
    with socket.create_connection(("127.0.0.1", live.port)) as s:
        s.sendall(head + b"Content-Length: 5000\r\n\r\n" + b'{"update_session_id": "')
        time.sleep(0.2)
    time.sleep(0.3)
    r = c.req("POST", f"{API_US}/{sid}/file?action=validate")
    assert r.status_code == 200, r.text
    assert "internal error" not in live.log.read_text()
    c.close()


def test_slow_uploads_and_cut_uploads_while_others_are_served(live: Live) -> None:
    """A slow upload (longer than the session timeout) ends READY; one cut off mid-body ends
    ERROR; meanwhile other clients are served promptly, and the data stays consistent."""
    c = live.client()
    disk = (SAMPLES / "vm-disk1.vmdk").read_bytes()
    sid = c.new_session(c.new_item())
    c.push(sid, ("vm.mf", "vm.ovf"))
    slow = c.req(
        "POST", f"{API_US}/{sid}/file", json={"name": "vm-disk1.vmdk", "size": len(disk)}
    ).json()
    cut = c.req("POST", f"{API_US}/{sid}/file", json={"name": "extra.bin", "size": 10_000}).json()

    def path(info: dict[str, Any]) -> str:
        return "/" + info["upload_endpoint"]["uri"].split("/", 3)[3]

    def slow_upload() -> bytes:
        head = (
            f"PUT {path(slow)} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(disk)}\r\n"
            f"vmware-api-session-id: {c.token}\r\nConnection: close\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", live.port), timeout=30) as s:
            s.sendall(head)
            step = max(1, len(disk) // 15)
            for i in range(0, len(disk), step):  # about 1.5 s, beyond the 1 s timeout
                s.sendall(disk[i : i + step])
                time.sleep(0.1)
            out = b""
            while chunk := s.recv(65536):
                out += chunk
        return out

    def cut_upload() -> None:
        head = (
            f"PUT {path(cut)} HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n"
            f"vmware-api-session-id: {c.token}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", live.port)) as s:
            s.sendall(head + b"x" * 3000)
            time.sleep(0.5)

    other = live.client("bob")
    other_sid = other.new_session(other.new_item())
    other.push(other_sid)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        uploading = pool.submit(slow_upload)
        cutting = pool.submit(cut_upload)
        latencies = []
        while not uploading.done():
            t = time.monotonic()
            r = other.req("POST", f"{API_US}/{other_sid}/file?action=validate")
            latencies.append(time.monotonic() - t)
            assert r.status_code == 200 and r.json()["has_errors"] is False
            assert other.req("POST", f"{API_US}/{other_sid}?action=keep-alive").status_code == 204
            time.sleep(0.05)
        cutting.result()
        answer = uploading.result()
    assert len(latencies) >= 5 and max(latencies) < 2.0, latencies
    status, info = parse(answer)
    assert status == 200 and info["status"] == "READY", info
    deadline = time.monotonic() + 10
    while c.req("GET", f"{API_US}/{sid}/file/extra.bin").json()["status"] == "TRANSFERRING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    got = c.req("GET", f"{API_US}/{sid}/file/extra.bin").json()
    assert got["status"] == "ERROR"
    assert got["error_message"]["id"] == "validator.server.file.interrupted"
    assert c.req("GET", f"{API_US}/{sid}").json()["state"] == "ACTIVE"
    assert c.req("DELETE", f"{API_US}/{sid}/file/extra.bin").status_code == 204
    assert c.req("POST", f"{API_US}/{sid}?action=complete").status_code == 204
    other.close()
    c.close()
    live.stop()
    service = live.service()
    try:
        assert service.check_consistency() == []
    finally:
        service.close()


def test_many_slow_clients_do_not_block_the_server(live: Live) -> None:
    """Connections that send half a request and wait (slowloris) hold no worker: the
    server answers others meanwhile."""
    c = live.client()
    socks = []
    try:
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", live.port))
            s.sendall(b"POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            socks.append(s)
        t = time.monotonic()
        for _ in range(10):
            assert c.req("GET", "/api/content/library").status_code == 200
        assert time.monotonic() - t < 5
    finally:
        for s in socks:
            s.close()
    c.close()
