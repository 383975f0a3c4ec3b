"""The server against its own OpenAPI document (``GET /api/openapi.json``), with schemathesis.

Every operation of the document is called in-process (schemathesis's ASGI transport, the
real Starlette application) with requests generated from the document: schema-valid ones —
half of them aimed at the real library, items, update session, files and upload endpoint of
a fresh session instead of random identifiers — and schema-violating ones.  Each answer
must pass schemathesis's checks (no 5xx; status, content type, headers and body as
documented; schema-violating requests refused; operations that need credentials refuse
requests without) and :func:`vapi_error_body`: every error is the vAPI error body of its
URL family, its error type is the one REFERENCE §1 maps the HTTP status to, and every
message comes from a catalog.

``VALIDATOR_SCHEMATHESIS_EXAMPLES`` sets the examples per operation and mode (default 10)
for a longer run.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from lxml import etree
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from tests.test_server_support import (
    BUNDLE,
    DATABASES,
    PASSWORD,
    Api,
    PostgresCluster,
    fast_users,
    postgres,
)

__all__ = ["postgres"]  # the session fixture the PostgreSQL run of `served` uses
from validator.results import VapiError
from validator.server import build_server_registry, create_app
from validator.server.app import API_ROUTES, OPS
from validator.server.openapi import OPENAPI_PATH, document, inputs
from validator.server.service import ServerConfig, Service

load_all_checks()
CONTENT_CHECKS = CHECKS.get_by_names(["content_type_conformance", "response_schema_conformance"])
EXAMPLES = int(os.environ.get("VALIDATOR_SCHEMATHESIS_EXAMPLES", "10"))
CONFIG = ServerConfig(data_dir=Path("unused"))
_REGISTRY = build_server_registry()
DOC = document(_REGISTRY.item_types, CONFIG.max_upload_bytes)
#: Every operation of the document: ``METHOD /path``.
OPERATIONS = [f"{m.upper()} {p}" for p, methods in DOC["paths"].items() for m in methods]
#: Logging out would end the token every other request uses; tested by hand elsewhere.
SKIPPED = {"DELETE /api/session", "DELETE /rest/com/vmware/cis/session"}
#: HTTP status → the vAPI error types it stands for (REFERENCE §1).
STATUS_OF = {
    kind: VapiError(kind, []).http_status
    for kind in (
        "invalid_argument",
        "not_allowed_in_current_state",
        "already_exists",
        "unsupported",
        "resource_busy",
        "unauthenticated",
        "unauthorized",
        "not_found",
        "concurrent_change",
        "internal_server_error",
        "service_unavailable",
        "timed_out",
    )
}


class _LifespanInTestClient:
    """The application for schemathesis: its lifespan (the expiry sweeper) is the TestClient's.

    Declining the lifespan scope before receiving anything is how an ASGI application says
    it has none; schemathesis then just serves requests.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("the lifespan runs in the test's TestClient")
        await self.app(scope, receive, send)


@dataclass
class Served:
    client: TestClient
    service: Service
    api: Api
    schema: Any
    library: str
    published_item: str
    published_files: list[str]
    statuses: dict[int, int] = field(default_factory=dict)
    #: Operations run, and those with an id in the path that answered 2xx at least once.
    ran: set[str] = field(default_factory=set)
    reached: set[str] = field(default_factory=set)


@pytest.fixture(scope="module", params=DATABASES)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """The server in-process, on SQLite and on PostgreSQL (the whole run on each)."""
    database = None
    if request.param == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        database = cluster.new_database()
    # The run logs in with wrong credentials hundreds of times: the login throttle (its
    # 503 is documented; tests/test_server_defects.py tests it) would answer most of them.
    config = ServerConfig(
        data_dir=tmp_path_factory.mktemp("openapi") / "data",
        database=database,
        login_failures_per_client=1 << 30,
        login_failures_per_user=1 << 30,
    )
    app = create_app(config, fast_users())
    with TestClient(app) as client:
        api = Api(client)
        library = api.library()
        item = api.item(library=library)
        sid = api.session(item)
        api.push_bundle(sid)
        assert api.req("POST", f"/api/content/library/item/update-session/{sid}?action=complete")
        files = [f["name"] for f in api.req("GET", f"/api/content/library/item/{item}/file").json()]
        sm_config = SchemathesisConfig.from_dict(
            {
                "auth": {
                    "openapi": {
                        "session": {"api_key": api.token},
                        "basic": {"username": "alice", "password": PASSWORD},
                    }
                },
                "checks": {
                    # An operation group's actions need different fields (fail needs
                    # client_error_message, the others none) and /rest parameters may come
                    # in the path, the query or the body: "required" cannot say that, so a
                    # schema-valid request may rightly be refused (400 missing parameter).
                    "positive_data_acceptance": {"enabled": False},
                },
                # Unknown query parameters are ignored, as by most servers.
                "generation": {"allow-extra-parameters": False},
                "operations": [
                    {
                        # JSON-RPC answers every request with HTTP 200 (errors in the body).
                        # POST …/library?~action=list takes no parameter at all, so a body
                        # that is wrong for ~action=create or get is rightly ignored there.
                        "include-name": [
                            "POST /api",
                            "POST /rest/com/vmware/content/library",
                            "POST /rest/com/vmware/content/local-library",
                        ],
                        "checks": {"negative_data_rejection": {"enabled": False}},
                    }
                ],
            }
        )
        schema = schemathesis.openapi.from_asgi(
            OPENAPI_PATH, _LifespanInTestClient(app), config=sm_config
        )
        yield Served(client, app.state.service, api, schema, library, item, files)
    app.state.service.close()


@dataclass
class World:
    """Real values for the identifiers an operation takes, on a fresh session."""

    values: dict[str, list[str]]


@pytest.fixture
def world(served: Served) -> World:
    api = served.api
    item = api.item(library=served.library)
    sid = api.session(item)
    api.push_bundle(sid)
    waiting = api.add(sid, "extra.bin")  # no size: any body completes it
    tokens = [waiting["upload_endpoint"]["uri"].rsplit("/", 1)[1]]
    ended = api.session(api.item(library=served.library))
    assert api.req("POST", f"/api/content/library/item/update-session/{ended}?action=cancel")
    for f in api.req("GET", f"/api/content/library/item/update-session/{sid}/file").json():
        tokens.append(f["upload_endpoint"]["uri"].rsplit("/", 1)[1])
    names = [*BUNDLE, "extra.bin"]
    return World(
        {
            "library_id": [served.library],
            "library_item_id": [item, served.published_item],
            "update_session_id": [sid, sid, ended],
            "file_name": names,
            "name": served.published_files,
            "token": tokens,
        }
    )


def _aim(value: Any, world: World, pick: st.DataObject, depth: int = 0) -> Any:
    """``value`` with every field named like an identifier set to a real one."""
    if isinstance(value, dict) and depth < 3:
        out = {}
        for key, item in value.items():
            if key in world.values:
                out[key] = pick.draw(st.sampled_from(world.values[key]))
            else:
                out[key] = _aim(item, world, pick, depth + 1)
        return out
    return value


# -- the document ----------------------------------------------------------------------
def test_the_served_document(served: Served) -> None:
    r = served.client.get(OPENAPI_PATH)  # no credentials
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == json.loads(json.dumps(DOC))
    schemathesis.openapi.from_dict(r.json()).validate()  # the OpenAPI 3.1 meta-schema
    assert len(OPERATIONS) == 57


def test_inputs_name_each_operations_parameters() -> None:
    table = inputs(["ovf"], 1)
    assert set(table) == set(OPS)
    for key, op in OPS.items():
        assert list(table[key]) == list(op.params), key


def test_every_route_is_described_and_every_description_is_routed(served: Served) -> None:
    for route in API_ROUTES:
        spec = DOC["paths"][route.template][route.method.lower()]
        if route.action is not None:
            (action,) = [p for p in spec["parameters"] if p["name"] == "action"]
            assert route.action in action["schema"]["enum"]
    # Each described operation, with placeholder values, reaches an operation: whatever the
    # answer, it is not "there is no operation" (nor a 405 turned into one).  A token of its
    # own, and logging out last.
    api = Api(served.client)
    for label in sorted(OPERATIONS, key=lambda label: label in SKIPPED):
        method, path = label.split(" ", 1)
        spec = DOC["paths"][path][method.lower()]
        actions: list[str | None] = [None]
        for param in spec.get("parameters", []):
            if param["name"] in ("action", "~action"):
                actions = list(param["schema"]["enum"])
                if not param["required"]:
                    actions.append(None)
        url = re.sub(r"\{\w+\}", "x1", path)
        for action in actions:
            query = {"action" if path.startswith("/api") else "~action": action} if action else {}
            r = api.req(method, url, params=query, json={} if method != "GET" else None)
            ids = json.dumps(r.json()) if r.content else ""
            assert "validator.server.not_found.operation" not in ids, (label, action, r.text)


# -- the vAPI error body check ----------------------------------------------------------
def _messages_ok(messages: Any) -> None:
    assert isinstance(messages, list) and messages, f"no messages: {messages!r}"
    for m in messages:
        assert isinstance(m, dict) and isinstance(m.get("default_message"), str), m
        assert _REGISTRY.catalogs.template(m["id"]) is not None, f"{m['id']} is in no catalog"
        assert isinstance(m.get("args"), list) and all(isinstance(a, str) for a in m["args"]), m


def _kind_ok(kind: str, status: int) -> None:
    assert kind in STATUS_OF, f"unknown vAPI error type {kind!r}"
    assert STATUS_OF[kind] == status, f"{kind} is HTTP {STATUS_OF[kind]}, answered {status}"


def vapi_error_body(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every error answer is the vAPI error body of its family (REFERENCE §1, docs/server.md)."""
    status = response.status_code
    text = response.content.decode("utf-8", "replace")
    assert "Traceback" not in text, "a traceback in the answer"
    path = case.operation.path
    if path == "/api" and status == 200:  # JSON-RPC: a vAPI ERROR value in result.error
        error = (json.loads(text).get("result") or {}).get("error")
        if error is not None:
            ((name, value),) = error["ERROR"].items()
            kind = name.removeprefix("com.vmware.vapi.std.errors.")
            assert kind in STATUS_OF and value["error_type"]["OPTIONAL"] == kind.upper()
            _messages_ok([next(iter(m["STRUCTURE"].values())) for m in value["messages"]])
        return None
    if status < 400:
        return None
    ctype = response.headers.get("content-type", [""])[0]
    if path.startswith("/rest"):
        if "xml" in ctype:
            root = etree.fromstring(response.content)
            assert root.tag == "{http://vmware.com/vapi/std/errors}Error", root.tag
            kind = (root.findtext("type") or "").removeprefix("com.vmware.vapi.std.errors.")
            _kind_ok(kind, status)
            assert root.findtext("value/error_type") == kind.upper()
            ids = [m.findtext("id") for m in root.findall("value/messages-array/array-item")]
            assert ids and all(_REGISTRY.catalogs.template(i or "") for i in ids), ids
            return None
        body = json.loads(text)
        assert set(body) == {"type", "value"}, body
        kind = body["type"].removeprefix("com.vmware.vapi.std.errors.")
        _kind_ok(kind, status)
        assert body["value"]["error_type"] == kind.upper()
        _messages_ok(body["value"]["messages"])
        return None
    assert ctype.startswith("application/json"), ctype
    body = json.loads(text)
    assert set(body) == {"error_type", "messages"}, body
    _kind_ok(body["error_type"].lower(), status)
    _messages_ok(body["messages"])
    return None


# -- the run ----------------------------------------------------------------------------
_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=False,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    report_multiple_bugs=False,
)


@pytest.mark.parametrize("label", [o for o in OPERATIONS if o not in SKIPPED])
def test_operation_conforms(served: Served, world: World, label: str) -> None:
    method, path = label.split(" ", 1)
    operation = served.schema[path][method]

    empty_ok = (
        DOC["paths"][path][method.lower()]["responses"].get("200", {}).get("x-empty-body-actions")
    )

    def check(case: Any) -> None:
        response = case.call()
        excluded = []
        if empty_ok and response.status_code == 200 and not response.content:
            # A void action of a /rest URL that answers JSON for its other actions.
            assert (case.query or {}).get("~action") in empty_ok, "an empty answer"
            excluded = CONTENT_CHECKS
        case.validate_response(
            response, additional_checks=[vapi_error_body], excluded_checks=excluded
        )
        served.statuses[response.status_code] = served.statuses.get(response.status_code, 0) + 1
        if case.path_parameters and response.status_code < 300:
            served.reached.add(label)

    @_SETTINGS
    @given(
        case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        real=st.booleans(),
        pick=st.data(),
    )
    def positive(case: Any, real: bool, pick: st.DataObject) -> None:
        if real:
            case.path_parameters = _aim(case.path_parameters, world, pick)
            case.query = _aim(case.query, world, pick)
            if isinstance(case.body, dict):
                case.body = _aim(case.body, world, pick)
        check(case)

    @_SETTINGS
    @given(case=operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    def negative(case: Any) -> None:
        check(case)

    served.ran.add(label)
    positive()
    spec = DOC["paths"][path][method.lower()]
    if spec.get("parameters") or "requestBody" in spec or spec.get("security") != []:
        negative()  # else nothing in the request can violate the document


def test_the_run_reached_real_objects(served: Served) -> None:
    """The generated requests did more than bounce off random ids (runs after the above)."""
    with_ids = {o for o in OPERATIONS if "{" in o and o not in SKIPPED}
    if not with_ids <= served.ran:
        pytest.skip("only part of the operations ran")
    total = sum(served.statuses.values())
    ok = sum(n for status, n in served.statuses.items() if status < 300)
    assert total >= len(served.ran) * EXAMPLES and ok >= total // 10, served.statuses
    # Most operations on a library, item, session, file or upload endpoint succeeded on it
    # (typically 24-26 of 28).
    assert len(served.reached) >= len(with_ids) // 2, sorted(with_ids - served.reached)
