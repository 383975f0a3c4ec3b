"""The server's route table (``validator.server.routes``): one entry per endpoint.

- A new endpoint is one entry plus its handler: a copy of the table with one more
  operation reaches the app (``/api``, ``/rest``, JSON-RPC), its argument checks and the
  OpenAPI document; the app and the document do not import each other.
- The OpenAPI document stays what it was when the table replaced the four parallel tables
  (``tests/openapi/digests.json``: one digest per path and per component, so a change
  names the path or schema that moved; regenerate with ``python -m tests.test_server_routes``
  after a change to the document that is meant).
"""

from __future__ import annotations

import ast
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from tests.test_server_support import ROOT, Api, fast_users
from validator.server import args, build_server_registry, create_app
from validator.server import vapi_types as vt
from validator.server.openapi import document
from validator.server.routes import LS, ROUTES, Form, Op, Param
from validator.server.service import Ctx, ServerConfig, Service

DIGESTS = Path(__file__).parent / "openapi" / "digests.json"
#: The document the digests are of: both built-in item types, the default upload bound.
ITEM_TYPES = ("iso", "ovf")
MAX_UPLOAD = 64 << 30


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def digests(doc: dict[str, Any]) -> dict[str, Any]:
    """Per path and method, per component, and of the rest: what must not move."""
    rest = {k: v for k, v in doc.items() if k not in ("paths", "components")}
    components = doc["components"]
    return {
        "paths": {
            path: {method: _digest(op) for method, op in sorted(ops.items())}
            for path, ops in sorted(doc["paths"].items())
        },
        "components": {
            group: {name: _digest(value) for name, value in sorted(components[group].items())}
            for group in sorted(components)
        },
        "rest": _digest(rest),
        "order": _digest([list(doc["paths"]), {g: list(v) for g, v in components.items()}]),
    }


def test_the_openapi_document_is_unchanged() -> None:
    want = json.loads(DIGESTS.read_text())
    got = digests(document(ITEM_TYPES, MAX_UPLOAD))
    assert got["paths"].keys() == want["paths"].keys()
    for path, ops in want["paths"].items():
        assert got["paths"][path] == ops, path
    assert got["components"] == want["components"]
    assert got == want


if __name__ == "__main__":  # regenerate the digests
    DIGESTS.write_text(json.dumps(digests(document(ITEM_TYPES, MAX_UPLOAD)), indent=1) + "\n")
    sys.exit(0)


# -- a new endpoint is one entry plus its handler ----------------------------------------
class PeekService(Service):
    """The handler of the trial endpoint: a session's state, with the client's note."""

    def session_peek(self, ctx: Ctx, session_id: Any, note: Any) -> str:
        state = str(self.session_get(ctx, session_id)["state"])
        return f"{state}:{note}" if note else state


PEEK = Op(
    LS,
    "peek",
    "session_peek",
    (Param("update_session_id", args.ID, True), Param("note", args.TEXT)),
    vt.STRING,
    "Peek at a session's state",
    (Form("POST", "/api/content/library/item/update-session/{update_session_id}", "peek"),),
)


def test_a_new_endpoint_is_one_entry_plus_its_handler(tmp_path: Path) -> None:
    table = ROUTES.with_ops(PEEK)
    assert (LS, "peek") not in ROUTES.ops  # a copy: the server's own table is untouched
    config = ServerConfig(data_dir=tmp_path / "data")
    users = fast_users()
    service = PeekService(config, build_server_registry(), users)
    app = create_app(config, users, service=service, table=table)
    with TestClient(app) as client:
        api = Api(client)
        sid = api.session(api.item())
        usid = f"/api/content/library/item/update-session/{sid}"
        # The app: its /api form, its legacy /rest form, JSON-RPC.
        r = api.req("POST", usid, params={"action": "peek"}, json={"note": "hi"})
        assert (r.status_code, r.json()) == (200, "ACTIVE:hi")
        rest = f"/rest/com/vmware/content/library/item/update-session/id:{sid}"
        r = api.req("POST", rest, params={"~action": "peek"})
        assert (r.status_code, r.json()) == (200, {"value": "ACTIVE"})
        call = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "invoke",
            "params": {
                "serviceId": LS,
                "operationId": "peek",
                "input": {"STRUCTURE": {"operation-input": {"update_session_id": sid}}},
                "ctx": {"securityCtx": {"sessionId": api.token}},
            },
        }
        r = client.post("/api", json=call)
        assert r.json()["result"] == {"output": "ACTIVE"}, r.text
        # The argument checks: a field the entry does not name is refused, on both forms.
        for url, query in ((usid, {"action": "peek"}), (rest, {"~action": "peek"})):
            r = api.req("POST", url, params=query, json={"nope": 1})
            assert r.status_code == 400, r.text
            assert "validator.server.arg.unknown_field" in r.text
        # The OpenAPI document: the action, its parameter with the table's bounds, its
        # summary, on both forms; the server's own document is as it was.
        doc = client.get("/api/openapi.json").json()
        post = doc["paths"]["/api/content/library/item/update-session/{update_session_id}"]["post"]
        (action,) = [p for p in post["parameters"] if p["name"] == "action"]
        assert "peek" in action["schema"]["enum"]
        assert "peek: Peek at a session's state" in action["description"]
        body = post["requestBody"]["content"]["application/json"]["schema"]
        assert body["properties"]["note"]["maxLength"] == args.TEXT_MAX
        legacy = doc["paths"][
            "/rest/com/vmware/content/library/item/update-session/id:{update_session_id}"
        ]
        (tilde,) = [p for p in legacy["post"]["parameters"] if p["name"] == "~action"]
        assert "peek" in tilde["schema"]["enum"]
        assert digests(doc) != digests(document(service.registry.item_types, MAX_UPLOAD))
    service.close()


def _imports(module: str) -> set[str]:
    """The modules ``validator/server/{module}.py`` imports, anywhere in it."""
    tree = ast.parse((ROOT / "validator" / "server" / f"{module}.py").read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def test_no_import_cycle_between_the_app_and_the_document() -> None:
    """Both derive from the route table; neither imports the other."""
    assert "validator.server.openapi" not in _imports("app")
    assert "validator.server.app" not in _imports("openapi")
    assert "validator.server.routes" in _imports("app") & _imports("openapi")
