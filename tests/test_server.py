"""The reference server in-process (Starlette TestClient): every URL and body form of the seeds."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from starlette.testclient import TestClient

from tests.test_server_support import (
    BUNDLE,
    SAMPLES,
    Api,
    basic,
    database,
    fast_users,
    postgres,
    server_env,
)
from validator.checks import CheckContext, Reporter
from validator.hookspecs import hookimpl
from validator.server import create_app, example_plugin
from validator.server.auth import Users, hash_password, verify_password
from validator.server.service import ServerConfig, Service

__all__ = ["database", "postgres", "server_env"]

REST_US = "/rest/com/vmware/content/library/item/update-session"
REST_FILE = "/rest/com/vmware/content/library/item/updatesession/file"
API_US = "/api/content/library/item/update-session"
VALIDATE_XML = """<?xml version="1.0" ?>
<ns0:Validate-Input xmlns:ns0="http://vmware.com/content/library/item/updatesession/file" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <update_session_id>{sid}</update_session_id>
</ns0:Validate-Input>"""
COMPLETE_XML = """<?xml version="1.0" ?>
<ns0:Complete-Input xmlns:ns0="http://vmware.com/content/library/item/update_session" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<update_session_id>{sid}</update_session_id>
</ns0:Complete-Input>"""

Env = tuple[TestClient, Service]


def validate_forms(sid: str) -> list[tuple[str, dict[str, Any]]]:
    """The four request forms of the seed's validate."""
    return [
        (f"{REST_FILE}/id:{sid}?~action=validate", {}),
        (f"{REST_FILE}?~action=validate", {"json": {"update_session_id": sid}}),
        (
            f"{REST_FILE}?~action=validate",
            {
                "content": VALIDATE_XML.format(sid=sid),
                "headers": {"Content-Type": "application/xml"},
            },
        ),
        (f"{REST_FILE}?~action=validate&update_session_id={sid}", {}),
    ]


def complete_forms(sid: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{REST_US}/id:{sid}?~action=complete", {}),
        (f"{REST_US}?~action=complete", {"json": {"update_session_id": sid}}),
        (
            f"{REST_US}?~action=complete",
            {
                "content": COMPLETE_XML.format(sid=sid),
                "headers": {"Content-Type": "application/xml"},
            },
        ),
        (f"{REST_US}?~action=complete&update_session_id={sid}", {}),
    ]


# -- access ---------------------------------------------------------------------


def test_nothing_but_login_answers_without_credentials(server_env: Env) -> None:
    client, _ = server_env
    for method, url in [
        ("POST", f"{REST_FILE}/id:obj-103?~action=validate"),
        ("POST", f"{REST_US}/id:obj-103?~action=complete"),
        ("GET", "/rest/com/vmware/content/library"),
        ("POST", f"{API_US}/obj-103/file?action=validate"),
        ("GET", "/api/content/library"),
        ("PUT", "/cls/data/abc"),
    ]:
        r = client.request(method, url)
        assert r.status_code == 401, (url, r.text)
        body = r.json()
        if url.startswith("/rest"):
            assert body["type"] == "com.vmware.vapi.std.errors.unauthenticated"
            assert body["value"]["error_type"] == "UNAUTHENTICATED"
        else:
            assert body["error_type"] == "UNAUTHENTICATED"
    r = client.post(f"{REST_US}/id:x?~action=complete", headers={"vmware-api-session-id": "nope"})
    assert r.status_code == 401


def test_login_forms_and_logout(server_env: Env) -> None:
    client, _ = server_env
    r = client.post("/rest/com/vmware/cis/session", headers=basic("alice"))
    assert r.status_code == 200
    token = r.json()["value"]
    h = {"vmware-api-session-id": token}
    assert client.get("/rest/com/vmware/content/library", headers=h).json() == {"value": []}
    assert client.get("/api/session", headers=h).json()["user"] == "alice"
    assert client.post("/api/session", headers=basic("alice", "wrong")).status_code == 401
    assert client.post("/rest/com/vmware/cis/session", headers=basic("eve")).status_code == 401
    assert client.post("/api/session").status_code == 401
    assert client.delete("/rest/com/vmware/cis/session", headers=h).status_code == 200
    assert client.get("/api/content/library", headers=h).status_code == 401


def test_password_hashes() -> None:
    encoded = hash_password("pw", n=1 << 10)
    assert encoded.startswith("scrypt$1024$")
    assert verify_password("pw", encoded)
    assert not verify_password("pw2", encoded)
    assert not verify_password("pw", "garbage")
    import base64
    import hashlib

    salt = b"0123456789abcdef"
    digest = hashlib.pbkdf2_hmac("sha256", b"pw", salt, 1000)
    b64 = base64.urlsafe_b64encode
    pb = f"pbkdf2_sha256$1000${b64(salt).decode().rstrip('=')}${b64(digest).decode().rstrip('=')}"
    assert verify_password("pw", pb)


def test_users_file(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(f"# comment\n\nalice:{hash_password('pw', n=1 << 10)}\n")
    users = Users.load(path)
    assert users.check("alice", "pw") and not users.check("alice", "x")
    assert not users.check("nobody", "pw")
    path.write_text("not a line\n")
    with pytest.raises(ValueError):
        Users.load(path)


def test_users_see_only_their_own_sessions(server_env: Env) -> None:
    client, _ = server_env
    alice, bob = Api(client, "alice"), Api(client, "bob")
    item = alice.item()
    sid = alice.session(item)
    info = alice.add(sid, "vm.ovf")
    assert bob.req("GET", f"{API_US}/{sid}").status_code == 404
    assert bob.req("POST", f"{API_US}/{sid}/file?action=validate").status_code == 404
    assert bob.req("POST", f"{REST_US}/id:{sid}?~action=complete").status_code == 404
    assert sid not in bob.req("GET", API_US).json()
    assert sid in alice.req("GET", API_US).json()
    # The upload endpoint needs the owner's token too.
    assert bob.upload(info, b"x").status_code == 404
    uri = info["upload_endpoint"]["uri"]
    assert client.put("/" + uri.split("/", 3)[3], content=b"x").status_code == 401
    # Bob cannot open a second session on the item either (one ACTIVE per item).
    r = bob.req("POST", API_US, json={"library_item_id": item})
    assert r.status_code == 400 and r.json()["error_type"] == "RESOURCE_BUSY"
    assert sid not in r.text


# -- the seeds: validate and complete ------------------------------------------


def test_validate_and_complete_unknown_session_every_form(server_env: Env) -> None:
    client, _ = server_env
    api = Api(client)
    for url, kw in validate_forms("obj-103") + complete_forms("obj-103"):
        r = api.req("POST", url, **kw)
        assert r.status_code == 404, (url, r.text)
        if "xml" in kw.get("headers", {}).get("Content-Type", ""):
            root = etree.fromstring(r.content)
            assert root.findtext("type") == "com.vmware.vapi.std.errors.not_found"
            continue
        body = r.json()
        assert body["type"] == "com.vmware.vapi.std.errors.not_found"
        assert body["value"]["error_type"] == "NOT_FOUND"
        assert body["value"]["messages"][0]["args"] == ["obj-103"]
    for url in [f"{API_US}/obj-103/file?action=validate", f"{API_US}/obj-103?action=complete"]:
        r = api.req("POST", url)
        assert r.status_code == 404
        assert r.json()["error_type"] == "NOT_FOUND"


def test_full_flow_legacy_forms(server_env: Env) -> None:
    client, service = server_env
    api = Api(client)
    item = api.item()
    sid = api.session(item)
    api.push_bundle(sid)
    for url, kw in validate_forms(sid):
        r = api.req("POST", url, **kw)
        assert r.status_code == 200, r.text
        if "headers" in kw:  # XML sent: XML answered, the seed's document
            assert r.headers["content-type"].startswith("application/xml")
            root = etree.fromstring(r.content)
            assert (
                root.tag
                == "{http://vmware.com/content/library/item/updatesession/file}Validate-Result"
            )
            assert root.findtext("value/has_errors") == "false"
        else:
            assert r.json() == {
                "value": {"has_errors": False, "invalid_files": [], "missing_files": []}
            }
    r = api.req(
        "POST", f"{REST_FILE}/id:{sid}?~action=validate", headers={"Accept": "application/xml"}
    )
    assert r.text.startswith('<?xml version="1.0" ?>\n<ns0:Validate-Result')
    # Nothing is visible before complete.
    assert api.req("GET", f"/api/content/library/item/{item}/file").json() == []
    url, kw = complete_forms(sid)[2]
    r = api.req("POST", url, **kw)
    assert r.status_code == 200, r.text
    files = api.req("GET", f"/api/content/library/item/{item}/file").json()
    assert sorted(f["name"] for f in files) == ["vm-disk1.vmdk", "vm.ovf"]  # .mf not kept
    assert api.req("GET", f"/api/content/library/item/{item}").json()["content_version"] == "2"
    legacy = api.req("GET", f"/rest/com/vmware/content/library/item/file?library_item_id={item}")
    assert legacy.json()["value"] == files
    # Not ACTIVE any more: every form answers not_allowed_in_current_state.
    for url, kw in validate_forms(sid) + complete_forms(sid):
        r = api.req("POST", url, **kw)
        assert r.status_code == 400, (url, r.text)
        if "headers" not in kw:
            assert r.json()["type"] == "com.vmware.vapi.std.errors.not_allowed_in_current_state"
    assert service.check_consistency() == []
    path = service.item_content_path(item, "vm-disk1.vmdk")
    assert path is not None and path.read_bytes() == (SAMPLES / "vm-disk1.vmdk").read_bytes()


def test_full_flow_api_forms(server_env: Env) -> None:
    client, _ = server_env
    api = Api(client)
    item = api.item()
    sid = api.session(item, warning_behavior=[])
    api.push_bundle(sid)
    r = api.req("GET", f"{API_US}/{sid}/file/vm.ovf")
    assert r.json()["status"] == "READY" and r.json()["size"] == 2927
    r = api.req("POST", f"{API_US}/{sid}/file?action=validate")
    assert r.json() == {"has_errors": False, "invalid_files": [], "missing_files": []}
    r = api.req("POST", f"{API_US}/{sid}?action=keep-alive", json={"client_progress": 50})
    assert r.status_code == 204
    assert api.req("GET", f"{API_US}/{sid}").json()["client_progress"] == 50
    r = api.req("POST", f"{API_US}/{sid}?action=complete")
    assert r.status_code == 204, r.text
    model = api.req("GET", f"{API_US}/{sid}").json()
    assert model["state"] == "DONE" and model["library_item_content_version"] == "1"
    # A second session sees version 2 as its base, and complete moves to 3.
    sid2 = api.session(item)
    api.push_bundle(sid2)
    assert api.req("POST", f"{API_US}/{sid2}?action=complete").status_code == 204
    assert api.req("GET", f"/api/content/library/item/{item}").json()["content_version"] == "3"


def test_file_not_received_is_not_allowed(server_env: Env) -> None:
    client, _ = server_env
    api = Api(client)
    sid = api.session(api.item())
    api.add(sid, "vm.ovf")
    for url, kw in validate_forms(sid)[:2] + complete_forms(sid)[:2]:
        r = api.req("POST", url, **kw)
        assert r.status_code == 400, r.text
        value = r.json()["value"]
        assert value["error_type"] == "NOT_ALLOWED_IN_CURRENT_STATE"
        assert "vm.ovf" in value["messages"][0]["default_message"]
        assert "WAITING_FOR_TRANSFER" in value["messages"][0]["default_message"]


def test_complete_refuses_missing_and_invalid_files(server_env: Env) -> None:
    client, service = server_env
    api = Api(client)
    item = api.item()
    sid = api.session(item)
    api.push_bundle(sid, ("vm.mf", "vm.ovf"))
    r = api.req("POST", f"{API_US}/{sid}/file?action=validate")
    assert r.json()["missing_files"] == ["vm-disk1.vmdk"]
    r = api.req("POST", f"{REST_US}/id:{sid}?~action=complete")
    assert r.status_code == 400
    msg = r.json()["value"]["messages"][0]
    assert msg["id"].endswith("session_has_missing_or_invalid_files")
    assert msg["args"][0] == "vm-disk1.vmdk"
    # A broken descriptor: invalid, also refused, listing the file.
    api.push_bundle(sid, ("vm-disk1.vmdk",))
    bad = b"<Envelope><not-closed>"
    info = api.add(sid, "vm.ovf", size=len(bad))
    assert api.upload(info, bad).status_code == 200
    r = api.req("POST", f"{API_US}/{sid}?action=complete")
    assert r.status_code == 400
    body = r.json()
    assert body["error_type"] == "NOT_ALLOWED_IN_CURRENT_STATE"
    assert "vm.ovf" in body["messages"][0]["args"][1]
    assert len(body["messages"]) > 1  # the summary, then each invalid file's own message
    assert api.req("GET", f"{API_US}/{sid}").json()["state"] == "ACTIVE"
    assert api.req("GET", f"/api/content/library/item/{item}/file").json() == []
    assert service.check_consistency() == []


def test_uploads_short_too_long_and_checksum(server_env: Env) -> None:
    client, _ = server_env
    api = Api(client)
    sid = api.session(api.item())
    data = (SAMPLES / "vm.ovf").read_bytes()
    info = api.add(sid, "vm.ovf", size=len(data))
    assert info["status"] == "WAITING_FOR_TRANSFER" and info["keep_in_storage"] is True
    r = api.upload(info, data[:100])
    assert r.status_code == 400
    assert r.json()["messages"][0]["id"] == "validator.server.file.short"
    got = api.req("GET", f"{API_US}/{sid}/file/vm.ovf").json()
    assert got["status"] == "ERROR" and got["bytes_transferred"] == 100
    r = api.req("POST", f"{API_US}/{sid}/file?action=validate")
    assert r.status_code == 400 and r.json()["error_type"] == "NOT_ALLOWED_IN_CURRENT_STATE"
    # Retrying the same endpoint after an error is allowed; too many bytes are refused.
    r = api.upload(info, data + b"more")
    assert r.status_code == 400
    assert r.json()["messages"][0]["id"] == "validator.server.file.too_large"
    assert api.upload(info, data).status_code == 200
    # READY: the endpoint does not take new bytes (add the file again for that).
    assert api.upload(info, data).status_code == 400
    # The manifest comes before the descriptor (vCenter's rule): take the descriptor out first.
    refused = api.req(
        "POST", f"{API_US}/{sid}/file", json={"name": "vm.mf", "source_type": "PUSH"}
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["messages"][0]["id"] == "validator.ovf.session.metadata_after_descriptor"
    assert api.req("DELETE", f"{API_US}/{sid}/file/vm.ovf").status_code == 204
    bad = api.add(sid, "vm.mf", checksum_info={"algorithm": "SHA256", "checksum": "ab" * 32})
    assert bad["keep_in_storage"] is False
    r = api.upload(bad, (SAMPLES / "vm.mf").read_bytes())
    assert r.status_code == 400
    assert r.json()["messages"][0]["id"] == "validator.server.file.checksum_mismatch"
    import hashlib

    mf = (SAMPLES / "vm.mf").read_bytes()
    good = api.add(
        sid, "vm.mf", checksum_info={"algorithm": "SHA1", "checksum": hashlib.sha1(mf).hexdigest()}
    )
    assert api.upload(good, mf).json()["status"] == "READY"
    # The old endpoint of a re-added file is gone.
    assert api.upload(bad, mf).status_code == 404


def test_session_lifecycle(server_env: Env) -> None:
    client, _ = server_env
    api = Api(client)
    item = api.item()
    sid = api.session(item)
    r = api.req("DELETE", f"{API_US}/{sid}")
    assert r.status_code == 400 and r.json()["error_type"] == "NOT_ALLOWED_IN_CURRENT_STATE"
    assert api.req("POST", f"{REST_US}/id:{sid}?~action=cancel").status_code == 200
    assert api.req("GET", f"{REST_US}/id:{sid}").json()["value"]["state"] == "CANCELED"
    assert api.req("POST", f"{REST_US}/id:{sid}?~action=cancel").status_code == 400
    assert api.req("DELETE", f"{REST_US}/id:{sid}").status_code == 200
    assert api.req("GET", f"{API_US}/{sid}").status_code == 404
    # fail → ERROR with the client's message.
    sid = api.session(item)
    r = api.req("POST", f"{API_US}/{sid}?action=fail", json={"client_error_message": "disk full"})
    assert r.status_code == 204
    model = api.req("GET", f"{API_US}/{sid}").json()
    assert model["state"] == "ERROR" and "disk full" in model["error_message"]["default_message"]
    # client_token: the same token gives the same session, on both URL families.
    s1 = api.req(
        "POST", REST_US, json={"client_token": "tok-1", "create_spec": {"library_item_id": item}}
    ).json()["value"]
    s2 = api.req(
        "POST", API_US, json={"library_item_id": item}, headers={"Client-Token": "tok-1"}
    ).json()
    assert s1 == s2
    assert api.req("GET", f"{REST_US}?library_item_id={item}").json()["value"][-1] == s1
    # warning_behavior update (PATCH), then keep-alive in the legacy form.
    spec = {"warning_behavior": [{"type": "SELF_SIGNED_CERTIFICATE", "ignored": True}]}
    r = api.req("PATCH", f"{REST_US}/id:{s1}", json={"update_spec": spec})
    assert r.status_code == 200, r.text
    assert api.req("GET", f"{API_US}/{s1}").json()["warning_behavior"] == spec["warning_behavior"]
    r = api.req("POST", f"{REST_US}/id:{s1}?~action=keep-alive", json={"client_progress": 7})
    assert r.status_code == 200
    r = api.req("POST", f"{REST_US}/id:{s1}?~action=keep-alive", json={"client_progress": 700})
    assert r.status_code == 400 and r.json()["value"]["error_type"] == "INVALID_ARGUMENT"


def test_session_files_add_get_list_remove(server_env: Env) -> None:
    client, _ = server_env
    api = Api(client)
    sid = api.session(api.item())
    for bad in ["../etc/passwd", "a/b", "", "..", "x\x00y", "c:\\x"]:
        r = api.req("POST", f"{API_US}/{sid}/file", json={"name": bad, "source_type": "PUSH"})
        assert r.status_code == 400, bad
        assert r.json()["error_type"] == "INVALID_ARGUMENT"
    r = api.req("POST", f"{API_US}/{sid}/file", json={"name": "a", "source_type": "PULL"})
    assert r.status_code == 400 and r.json()["error_type"] == "UNSUPPORTED"
    r = api.req("POST", f"{API_US}/{sid}/file", json={"name": "a", "size": -1})
    assert r.status_code == 400
    r = api.req(
        "POST",
        f"{REST_FILE}/id:{sid}?~action=add",
        json={"file_spec": {"name": "vm.ovf", "source_type": "PUSH"}},
    )
    assert r.status_code == 200 and r.json()["value"]["name"] == "vm.ovf"
    assert r.json()["value"]["upload_endpoint"]["uri"].startswith("http://testserver/cls/data/")
    r = api.req("POST", f"{REST_FILE}/id:{sid}?~action=get", json={"file_name": "vm.ovf"})
    assert r.json()["value"]["status"] == "WAITING_FOR_TRANSFER"
    assert [f["name"] for f in api.req("GET", f"{API_US}/{sid}/file").json()] == ["vm.ovf"]
    legacy = api.req("GET", f"{REST_FILE}?update_session_id={sid}").json()["value"]
    assert [f["name"] for f in legacy] == ["vm.ovf"]
    assert api.req("GET", f"{REST_FILE}/id:{sid}").json()["value"] == legacy
    r = api.req("POST", f"{REST_FILE}/id:{sid}?~action=remove", json={"file_name": "vm.ovf"})
    assert r.status_code == 200
    assert api.req("GET", f"{API_US}/{sid}/file/vm.ovf").status_code == 404
    assert api.req("DELETE", f"{API_US}/{sid}/file/vm.ovf").status_code == 404


def test_ids_bodies_and_paths_are_validated(server_env: Env) -> None:
    client, _ = server_env
    api = Api(client)
    r = api.req("POST", f"{REST_FILE}?~action=validate", json={"update_session_id": "a" * 500})
    assert r.status_code == 400 and r.json()["value"]["error_type"] == "INVALID_ARGUMENT"
    r = api.req("POST", f"{REST_FILE}?~action=validate", json={"update_session_id": 5})
    assert r.status_code == 400
    r = api.req("POST", f"{REST_FILE}?~action=validate")
    assert r.status_code == 400
    doctype = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>'
    r = api.req(
        "POST",
        f"{REST_FILE}?~action=validate",
        content=doctype,
        headers={"Content-Type": "application/xml"},
    )
    assert r.status_code == 400 and b"INVALID_ARGUMENT" in r.content
    r = api.req(
        "POST",
        f"{REST_FILE}?~action=validate",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400
    r = api.req("POST", f"{REST_FILE}?~action=validate", content=b"x" * (2 << 20))
    assert r.status_code == 400
    assert r.json()["value"]["messages"][0]["id"] == "validator.server.arg.too_large"
    for method, url in [
        ("GET", "/rest/com/vmware/nothing"),
        ("POST", f"{REST_FILE}?~action=explode"),
        ("GET", "/api/nothing/here"),
        ("GET", "/elsewhere"),
    ]:
        r = api.req(method, url)
        assert r.status_code == 404, url
        assert "NOT_FOUND" in r.text
    r = api.req(
        "POST",
        "/api/content/library/item",
        json={"library_id": api.library(), "name": "x", "type": "no-such-type"},
    )
    assert r.status_code == 400 and "no-such-type" in r.text
    r = api.req(
        "POST", "/api/content/library/item", json={"library_id": "nope", "name": "x", "type": "ovf"}
    )
    assert r.status_code == 404


def test_iso_and_plugin_item_types(server_env: Env) -> None:
    client, service = server_env
    api = Api(client)
    lib = api.library()
    for kind in sorted(service.registry.item_types):
        item = api.item(kind, lib)
        assert api.req("GET", f"/api/content/library/item/{item}").json()["type"] == kind
    items = api.req("GET", f"/api/content/library/item?library_id={lib}").json()
    assert len(items) == len(service.registry.item_types)
    assert lib in api.req("GET", "/rest/com/vmware/content/library").json()["value"]
    assert api.req("GET", f"/api/content/library/{lib}").json()["type"] == "LOCAL"


def test_accept_language_fills_localized(server_env: Env) -> None:
    client, _ = server_env
    api = Api(client)
    r = api.req(
        "POST", f"{REST_FILE}/id:obj-103?~action=validate", headers={"Accept-Language": "de-DE"}
    )
    msg = r.json()["value"]["messages"][0]
    assert msg["default_message"] == "No update session with the identifier obj-103 exists."
    assert msg["localized"] == "Es gibt keine Aktualisierungssitzung mit der Kennung obj-103."
    r = api.req("POST", f"{API_US}/obj-103?action=complete", headers={"Accept-Language": "ja"})
    assert "obj-103" in r.json()["messages"][0]["localized"]
    r = api.req("POST", f"{API_US}/obj-103?action=complete")
    assert "localized" not in r.json()["messages"][0]


def test_server_catalogs_complete() -> None:
    import re
    import tomllib

    base = Path(__file__).resolve().parent.parent / "validator" / "server" / "catalogs"
    cats = {
        loc: tomllib.loads((base / f"{loc}.toml").read_text()) for loc in ["en", "de", "fr", "ja"]
    }
    for loc, cat in cats.items():
        assert cat.keys() == cats["en"].keys(), loc
        for key, text in cat.items():
            assert key.startswith("validator.server.")
            assert set(re.findall(r"\{\d+\}", text)) == set(re.findall(r"\{\d+\}", cats["en"][key]))
    # Every id the server code uses is in the catalog.
    src = "".join(p.read_text() for p in (base.parent).glob("*.py"))
    used = set(re.findall(r'"(validator\.server\.[a-z_.]+)"', src))
    assert used and used <= cats["en"].keys(), used - cats["en"].keys()


# -- expiry, preview warnings and hooks -----------------------------------------


def test_sessions_expire(tmp_path: Path) -> None:
    app = create_app(ServerConfig(data_dir=tmp_path, session_timeout=0.3), fast_users())
    with TestClient(app) as client:
        api = Api(client)
        sid = api.session(api.item())
        time.sleep(0.15)
        assert api.req("POST", f"{API_US}/{sid}?action=keep-alive").status_code == 204
        time.sleep(0.15)
        assert api.req("GET", f"{API_US}/{sid}").json()["state"] == "ACTIVE"
        time.sleep(0.5)
        model = api.req("GET", f"{API_US}/{sid}").json()
        assert model["state"] == "ERROR"
        assert model["error_message"]["id"] == "validator.server.session.expired"
        r = api.req("POST", f"{API_US}/{sid}?action=complete")
        assert r.status_code == 400
    app.state.service.close()


class WarnPlugin:
    """Reports a certificate warning on every OVF session (as the OVF adapter does)."""

    @hookimpl
    def validator_check_session(self, item_type: str, ctx: CheckContext, report: Reporter) -> None:
        if item_type == "ovf":
            report.warning("vm.ovf", "validator.core.plugin.failed", "warn", "x", "self-signed")


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    @hookimpl
    def validator_server_session_changed(
        self, session_id: str, old_state: str | None, new_state: str
    ) -> None:
        self.events.append(
            ("changed", {"session_id": session_id, "old_state": old_state, "new_state": new_state})
        )

    @hookimpl
    def validator_server_file_received(self, name: str, status: str) -> None:
        self.events.append(("file", {"name": name, "status": status}))

    @hookimpl
    def validator_server_content_published(
        self, library_item_id: str, content_version: int, files: list[str]
    ) -> None:
        self.events.append(
            (
                "published",
                {
                    "library_item_id": library_item_id,
                    "content_version": content_version,
                    "files": files,
                },
            )
        )


class Broken:
    @hookimpl
    def validator_server_session_changed(self) -> None:
        raise RuntimeError("a deployment hook that fails")


@pytest.fixture
def warn_env(tmp_path: Path) -> Iterator[tuple[TestClient, Recorder]]:
    rec = Recorder()
    app = create_app(
        ServerConfig(data_dir=tmp_path),
        fast_users(),
        [("warn", WarnPlugin()), ("recorder", rec), ("broken", Broken())],
    )
    with TestClient(app) as client:
        yield client, rec
    app.state.service.close()


def test_preview_warning_blocks_complete_until_ignored(
    warn_env: tuple[TestClient, Recorder],
) -> None:
    client, rec = warn_env
    api = Api(client)
    item = api.item()
    sid = api.session(item)
    api.push_bundle(sid)
    r = api.req("POST", f"{API_US}/{sid}/file?action=validate")
    assert r.json()["has_errors"] is False
    preview = api.req("GET", f"{API_US}/{sid}").json()["preview_info"]
    assert preview["state"] == "AVAILABLE"
    (warning,) = preview["warnings"]
    assert warning["ignored"] is False
    r = api.req("POST", f"{API_US}/{sid}?action=complete")
    assert r.status_code == 400
    assert r.json()["messages"][0]["id"] == "validator.server.session.warning_not_ignored"
    behavior = [{"type": warning["type"], "ignored": True}]
    r = api.req("PATCH", f"{API_US}/{sid}", json={"warning_behavior": behavior})
    assert r.status_code == 204
    assert api.req("POST", f"{API_US}/{sid}?action=complete").status_code == 204
    kinds = [k for k, _ in rec.events]
    assert kinds.count("file") == 3 and kinds.count("published") == 1
    changes = [(e["old_state"], e["new_state"]) for k, e in rec.events if k == "changed"]
    assert changes == [(None, "ACTIVE"), ("ACTIVE", "DONE")]
    published = next(e for k, e in rec.events if k == "published")
    assert published["content_version"] == 2 and published["library_item_id"] == item
    assert sorted(published["files"]) == ["vm-disk1.vmdk", "vm.ovf"]


def _signed_certificate(mf: bytes, *, tamper: bool = False) -> tuple[bytes, bytes]:
    """A ``vm.cert`` signing ``mf`` with a fresh self-signed RSA certificate, and its PEM."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Corp"),
            x509.NameAttribute(NameOID.COMMON_NAME, "ovf signer"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    signature = key.sign(mf + (b"x" if tamper else b""), padding.PKCS1v15(), hashes.SHA256())
    return f"SHA256(vm.mf)= {signature.hex()}\n".encode() + pem, pem


def test_preview_info_carries_the_certificate_of_a_signed_ovf(server_env: Env) -> None:
    client, _ = server_env
    api = Api(client)
    sid = api.session(api.item())
    api.push_bundle(sid, ("vm.mf",))
    cert, pem = _signed_certificate((SAMPLES / "vm.mf").read_bytes())
    info = api.add(sid, "vm.cert", size=len(cert))
    assert info["keep_in_storage"] is False
    assert api.upload(info, cert).status_code == 200
    api.push_bundle(sid, ("vm.ovf", "vm-disk1.vmdk"))
    r = api.req("POST", f"{API_US}/{sid}/file?action=validate")
    assert r.json()["has_errors"] is False, r.text
    preview = api.req("GET", f"{API_US}/{sid}").json()["preview_info"]
    assert preview["certificate_info"] == {
        "issuer": "CN=ovf signer,O=Example Corp",
        "subject": "CN=ovf signer,O=Example Corp",
        "self_signed": True,
        "x509": pem.decode(),
    }
    assert preview["cert_chain"] == [pem.decode()]
    assert [w["type"] for w in preview["warnings"]] == ["SELF_SIGNED_CERTIFICATE"]
    # The same through JSON-RPC, as the bindings' CertificateInfo structure.
    call = {
        "jsonrpc": "2.0",
        "method": "invoke",
        "id": "1",
        "params": {
            "serviceId": "com.vmware.content.library.item.update_session",
            "operationId": "get",
            "input": {"STRUCTURE": {"operation-input": {"update_session_id": sid}}},
            "ctx": {"securityCtx": {"sessionId": api.token}},
        },
    }
    out = client.post("/api", json=call).json()["result"]["output"]
    model = out["STRUCTURE"]["com.vmware.content.library.item.update_session_model"]
    preview_rpc = model["preview_info"]["OPTIONAL"]["STRUCTURE"][
        "com.vmware.content.library.item.updatesession.preview_info"
    ]
    info_rpc = preview_rpc["certificate_info"]["OPTIONAL"]["STRUCTURE"][
        "com.vmware.content.library.item.updatesession.certificate_info"
    ]
    assert info_rpc["self_signed"] is True and info_rpc["subject"] == "CN=ovf signer,O=Example Corp"
    # A signature that does not verify: the certificate is an invalid file, not shown.
    bad, _ = _signed_certificate((SAMPLES / "vm.mf").read_bytes(), tamper=True)
    api.req("DELETE", f"{API_US}/{sid}/file/vm.ovf")  # a certificate comes before the descriptor
    info = api.add(sid, "vm.cert", size=len(bad))
    assert api.upload(info, bad).status_code == 200
    api.push_bundle(sid, ("vm.ovf",))
    r = api.req("POST", f"{API_US}/{sid}/file?action=validate")
    assert [e["name"] for e in r.json()["invalid_files"]] == ["vm.cert"]
    preview = api.req("GET", f"{API_US}/{sid}").json()["preview_info"]
    assert "certificate_info" not in preview and "cert_chain" not in preview
    # Unsigned: no certificate_info either.
    api.req("DELETE", f"{API_US}/{sid}/file/vm.cert")
    assert api.req("POST", f"{API_US}/{sid}/file?action=validate").json()["has_errors"] is False
    assert "certificate_info" not in api.req("GET", f"{API_US}/{sid}").json()["preview_info"]


def test_example_plugin_writes_audit_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "audit.jsonl"
    monkeypatch.setenv(example_plugin.ENV, str(log))
    app = create_app(
        ServerConfig(data_dir=tmp_path / "data"), fast_users(), [("audit", example_plugin)]
    )
    with TestClient(app) as client:
        api = Api(client)
        sid = api.session(api.item())
        api.push_bundle(sid, BUNDLE)
        assert api.req("POST", f"{API_US}/{sid}?action=complete").status_code == 204
    app.state.service.close()
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in events] == [
        "session_changed",
        "file_received",
        "file_received",
        "file_received",
        "session_changed",
        "content_published",
    ]
    assert events[-1]["version"] == 2 and events[-2]["new"] == "DONE"


# -- robustness and the command ---------------------------------------------------


def test_unexpected_exceptions_are_vapi_errors(
    server_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, service = server_env
    api = Api(client)

    def boom(*args: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(service, "library_list", boom)
    r = api.req("GET", "/rest/com/vmware/content/library")
    assert r.status_code == 500
    assert r.json()["type"] == "com.vmware.vapi.std.errors.internal_server_error"
    assert "Traceback" not in r.text
    r = api.req("GET", "/api/content/library")
    assert r.status_code == 500 and r.json()["error_type"] == "INTERNAL_SERVER_ERROR"
    call = {
        "jsonrpc": "2.0",
        "method": "invoke",
        "id": "1",
        "params": {
            "serviceId": "com.vmware.content.library",
            "operationId": "list",
            "input": {"STRUCTURE": {"operation-input": {}}},
            "ctx": {"securityCtx": {"sessionId": api.token}},
        },
    }
    body = client.post("/api", json=call).json()
    assert "com.vmware.vapi.std.errors.internal_server_error" in body["result"]["error"]["ERROR"]


def test_jsonrpc_in_process(server_env: Env) -> None:
    client, _ = server_env
    api = Api(client)
    item = api.item()

    def call(service: str, op: str, inputs: dict[str, Any], **ctx: Any) -> Any:
        body = {
            "jsonrpc": "2.0",
            "method": "invoke",
            "id": "9",
            "params": {
                "serviceId": service,
                "operationId": op,
                "input": {"STRUCTURE": {"operation-input": inputs}},
                "ctx": {"appCtx": {}, "securityCtx": {"sessionId": api.token}, **ctx},
            },
        }
        return client.post("/api", json=body).json()["result"]

    spec = {
        "STRUCTURE": {
            "com.vmware.content.library.item.update_session_model": {
                "library_item_id": {"OPTIONAL": item}
            }
        }
    }
    sid = call(
        "com.vmware.content.library.item.update_session",
        "create",
        {"create_spec": spec, "client_token": {"OPTIONAL": None}},
    )["output"]
    out = call(
        "com.vmware.content.library.item.updatesession.file",
        "validate",
        {"update_session_id": sid},
    )["output"]
    result = out["STRUCTURE"][
        "com.vmware.content.library.item.updatesession.file.validation_result"
    ]
    assert result["has_errors"] is True
    assert call(
        "com.vmware.content.library.item.update_session", "cancel", {"update_session_id": sid}
    ) == {"output": None}
    res = call("com.vmware.nothing", "x", {})
    assert "com.vmware.vapi.std.errors.not_found" in res["error"]["ERROR"]
    bad = client.post("/api", json={"jsonrpc": "2.0", "method": "other", "id": 1}).json()
    assert bad["error"]["code"] == -32600


def test_hash_password_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    from validator.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    assert main(["serve", "--hash-password", "carol"]) == 0
    line = capsys.readouterr().out.strip()
    name, _, encoded = line.partition(":")
    assert name == "carol" and verify_password("pw", encoded)
    assert main(["serve", "--hash-password", "bad name"]) == 2


def test_default_users_file(tmp_path: Path) -> None:
    from validator.server.auth import create_default_users

    password = create_default_users(tmp_path / "users")
    assert Users.load(tmp_path / "users").check("admin", password)
    assert (tmp_path / "users").stat().st_mode & 0o777 == 0o600


class Crash(BaseException):
    """Stands for the process dying at that point (nothing after it runs)."""


def _prepared(tmp_path: Path) -> tuple[TestClient, Service, Api, str, str]:
    app = create_app(ServerConfig(data_dir=tmp_path), fast_users())
    client = TestClient(app, raise_server_exceptions=False)
    api = Api(client)
    item = api.item()
    sid = api.session(item)
    api.push_bundle(sid)
    assert api.req("POST", f"{API_US}/{sid}?action=complete").status_code == 204
    sid = api.session(item)
    api.push_bundle(sid)
    return client, app.state.service, api, item, sid


def _restart(tmp_path: Path, old: Service) -> Service:
    old.close()
    service = Service(ServerConfig(data_dir=tmp_path), old.registry, fast_users())
    service.recover()
    assert service.check_consistency() == []
    return service


def test_crash_before_the_publishing_commit_rolls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, service, _api, item, sid = _prepared(tmp_path)
    from validator.server import service as service_module

    calls = {"n": 0}

    def die(path: Path) -> None:  # the new folder is filled, the commit not yet made
        calls["n"] += 1
        raise Crash

    monkeypatch.setattr(service_module, "_fsync_dir", die)
    with pytest.raises(Crash):
        service.complete(service_module.Ctx(user="alice"), sid)
    assert calls["n"] == 1
    assert len(list((tmp_path / "content" / item).iterdir())) == 2  # old + half-made new
    monkeypatch.undo()
    service = _restart(tmp_path, service)
    ctx = service_module.Ctx(user="alice")
    assert service.item_get(ctx, item)["content_version"] == "2"
    assert service.session_get(ctx, sid)["state"] == "ACTIVE"
    assert len(list((tmp_path / "content" / item).iterdir())) == 1
    service.complete(ctx, sid)  # and it can be completed after the restart
    assert service.item_get(ctx, item)["content_version"] == "3"
    assert service.check_consistency() == []
    service.close()
    client.close()


def test_crash_after_the_publishing_commit_rolls_forward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, service, _api, item, sid = _prepared(tmp_path)
    from validator.server import service as service_module

    def die(self: Service, session_id: str) -> None:  # committed; cleanup not done
        raise Crash

    monkeypatch.setattr(service_module.Service, "_discard_uploads", die)
    monkeypatch.setattr("shutil.rmtree", lambda *a, **k: None)
    with pytest.raises(Crash):
        service.complete(service_module.Ctx(user="alice"), sid)
    monkeypatch.undo()
    assert len(list((tmp_path / "content" / item).iterdir())) == 2
    service = _restart(tmp_path, service)
    ctx = service_module.Ctx(user="alice")
    assert service.item_get(ctx, item)["content_version"] == "3"
    assert service.session_get(ctx, sid)["state"] == "DONE"
    assert len(list((tmp_path / "content" / item).iterdir())) == 1
    assert not (tmp_path / "uploads" / sid).exists()
    service.close()
    client.close()


def test_upload_larger_than_declared_is_refused_before_reading(server_env: Env) -> None:
    client, _ = server_env
    api = Api(client)
    sid = api.session(api.item())
    info = api.add(sid, "vm.ovf", size=10)
    r = api.upload(info, b"x" * 100)
    assert r.status_code == 400
    assert r.json()["messages"][0]["id"] == "validator.server.file.too_large"
    assert api.req("GET", f"{API_US}/{sid}/file/vm.ovf").json()["status"] == "ERROR"


def test_idle_tokens_stop_working(tmp_path: Path) -> None:
    config = ServerConfig(data_dir=tmp_path, token_idle_seconds=0.2)
    app = create_app(config, fast_users())
    with TestClient(app) as client:
        api = Api(client)
        assert api.req("GET", "/api/content/library").status_code == 200
        time.sleep(0.3)
        assert api.req("GET", "/api/content/library").status_code == 401
    app.state.service.close()


def test_one_server_per_data_folder(server_env: Env) -> None:
    """On SQLite one server per data folder; on PostgreSQL several share it."""
    from validator.server.service import DataFolderBusy

    _, service = server_env
    if not service.db.shared:
        with pytest.raises(DataFolderBusy):
            Service(service.config, service.registry, fast_users())
        return
    second = Service(service.config, service.registry, fast_users())
    second.close()
