"""The server's OpenAPI 3.1 description, served at ``GET /api/openapi.json``.

It is generated from the tables the server routes with, so it neither describes an
operation the server does not answer nor misses one it does (tests/test_server_openapi.py
checks both ways):

- paths, methods and actions: ``API_ROUTES`` (``/api``), ``_LEGACY_RESOURCES`` and
  ``_LEGACY_ACTIONS`` (``/rest``) of :mod:`validator.server.app`;
- results: each operation's vAPI output type (:mod:`validator.server.vapi_types`, the
  types the JSON-RPC encoding uses), turned into JSON Schema;
- errors: the vAPI error body of each family, one response per HTTP status with the
  error types that status stands for (REFERENCE §1).

Only the operations' inputs (:func:`inputs`: the vAPI ``operation-input`` of each
operation, with the bounds the service enforces) and one-line summaries are written
here.  Item types are the registry's, so the document is built per server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from validator.results import ERRORS_PREFIX, VapiError
from validator.server import vapi_types as vt
from validator.server.app import (
    _FS,
    _IFILE,
    _ITEM,
    _LEGACY_ACTIONS,
    _LEGACY_RESOURCES,
    _LIB,
    _LOCAL,
    _LS,
    API_ROUTES,
    OPENAPI_PATH,
    OPS,
    SESSION_HEADER,
    ApiRoute,
    Op,
)

#: The error types the server raises, by HTTP status (REFERENCE §1 maps them).
ERROR_TYPES = (
    "invalid_argument",
    "not_allowed_in_current_state",
    "unsupported",
    "resource_busy",
    "unauthenticated",
    "not_found",
    "internal_server_error",
    "service_unavailable",
)
_STATUS_TEXT = {
    400: "The arguments or the state do not allow the operation",
    401: "No valid session token (or, to log in, no valid user name and password)",
    404: "No such library, item, update session, file, upload endpoint or operation",
    500: "The server failed unexpectedly (logged; never a traceback)",
    503: "Login refused before the password is checked: too many failed logins from this "
    "client or for this user, or too many logins in progress (see the Retry-After header)",
}


def error_types_by_status() -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for kind in ERROR_TYPES:
        out.setdefault(VapiError(kind, []).http_status, []).append(kind)
    return out


# -- inputs -----------------------------------------------------------------------
#: ``validator.server.service._ID``: what an identifier may be.
ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"}
_NO_NUL = "^[^\\u0000]*$"
TEXT = {"type": "string", "maxLength": 255, "pattern": _NO_NUL}
LONG_TEXT = {"type": "string", "maxLength": 4096, "pattern": _NO_NUL}
#: ``validator.session.is_plain_name``: no folder part, no control character, not ``.``/``..``.
FILE_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "pattern": "^[^/\\\\\\u0000-\\u001f\\u007f]+$",
    "not": {"enum": [".", ".."]},
    "description": "A plain file name: at most 255 bytes of UTF-8, no / or \\, "
    "no control character, not . or ..",
}
CLIENT_TOKEN = {"type": "string", "maxLength": 128}
PROGRESS = {"type": "integer", "minimum": 0, "maximum": 100}
WARNING_BEHAVIOR = {
    "type": "array",
    "maxItems": 100,
    "items": {
        "type": "object",
        "required": ["type", "ignored"],
        "properties": {
            "type": {
                "type": "string",
                "maxLength": 255,
                "description": "A WarningType (SELF_SIGNED_CERTIFICATE, …) or a message id",
            },
            "ignored": {"type": "boolean"},
        },
    },
}


@dataclass(frozen=True)
class Param:
    schema: Mapping[str, Any]
    required: bool = False


def optional(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` or ``null``: an optional vAPI field may be sent as null (unset)."""
    out = dict(schema)
    if isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


def _spec(required: Iterable[str], **properties: Mapping[str, Any]) -> dict[str, Any]:
    required = list(required)
    out: dict[str, Any] = {
        "type": "object",
        "properties": {k: v if k in required else optional(v) for k, v in properties.items()},
    }
    if required:
        out["required"] = required
    return out


def inputs(
    item_types: Iterable[str], max_upload_bytes: int
) -> dict[tuple[str, str], dict[str, Param]]:
    """Each operation's parameters (its vAPI ``operation-input``)."""
    backing = _spec(
        ("type",),
        type={"type": "string", "enum": ["DATASTORE", "OTHER"]},
        datastore_id={"type": "string", "maxLength": 1024},
        storage_uri={"type": "string", "maxLength": 1024},
    )
    backing["additionalProperties"] = False
    library_spec = _spec(
        (),
        name=TEXT,
        description=LONG_TEXT,
        storage_backings={"type": "array", "maxItems": 16, "items": backing},
    )
    item_spec = _spec(
        ("library_id", "name", "type"),
        library_id=ID,
        name=TEXT,
        type={"type": "string", "enum": sorted(item_types)},
        description=LONG_TEXT,
    )
    session_spec = _spec(
        ("library_item_id",), library_item_id=ID, warning_behavior=WARNING_BEHAVIOR
    )
    update_spec = _spec((), warning_behavior=WARNING_BEHAVIOR, client_progress=PROGRESS)
    file_spec = _spec(
        ("name",),
        name=FILE_NAME,
        source_type={
            "type": "string",
            "enum": ["PUSH", "PULL", "NONE"],
            "description": "PUSH (the default) only: PULL and NONE are unsupported",
        },
        size={"type": "integer", "minimum": 0, "maximum": max_upload_bytes},
        checksum_info=_spec(
            ("checksum",),
            algorithm={"type": "string", "enum": list(vt.CHECKSUM_ALGORITHM.values)},
            checksum={"type": "string", "pattern": "^[0-9a-fA-F]{32,128}$"},
        ),
    )
    session_id = {"update_session_id": Param(ID, True)}
    table: dict[tuple[str, str], dict[str, Param]] = {
        (_LOCAL, "create"): {
            "create_spec": Param(library_spec, True),
            "client_token": Param(CLIENT_TOKEN),
        },
        (_ITEM, "create"): {
            "create_spec": Param(item_spec, True),
            "client_token": Param(CLIENT_TOKEN),
        },
        (_ITEM, "get"): {"library_item_id": Param(ID, True)},
        (_ITEM, "list"): {"library_id": Param(ID, True)},
        (_IFILE, "list"): {"library_item_id": Param(ID, True)},
        (_IFILE, "get"): {"library_item_id": Param(ID, True), "name": Param(FILE_NAME, True)},
        (_LS, "create"): {
            "create_spec": Param(session_spec, True),
            "client_token": Param(CLIENT_TOKEN),
        },
        (_LS, "get"): session_id,
        (_LS, "list"): {"library_item_id": Param(ID)},
        (_LS, "complete"): session_id,
        (_LS, "keep_alive"): {**session_id, "client_progress": Param(PROGRESS)},
        (_LS, "cancel"): session_id,
        (_LS, "fail"): {**session_id, "client_error_message": Param(LONG_TEXT, True)},
        (_LS, "delete"): session_id,
        (_LS, "update"): {**session_id, "update_spec": Param(update_spec, True)},
        (_FS, "validate"): session_id,
        (_FS, "add"): {**session_id, "file_spec": Param(file_spec, True)},
        (_FS, "remove"): {**session_id, "file_name": Param(FILE_NAME, True)},
        (_FS, "list"): session_id,
        (_FS, "get"): {**session_id, "file_name": Param(FILE_NAME, True)},
    }
    for service in (_LIB, _LOCAL):
        table[(service, "get")] = {"library_id": Param(ID, True)}
        table[(service, "list")] = {}
    return table


SUMMARIES: dict[tuple[str, str], str] = {
    (_LOCAL, "create"): "Create a local library",
    (_LOCAL, "get"): "Get a local library",
    (_LOCAL, "list"): "List local libraries",
    (_LIB, "get"): "Get a library",
    (_LIB, "list"): "List libraries",
    (_ITEM, "create"): "Create a library item",
    (_ITEM, "get"): "Get a library item",
    (_ITEM, "list"): "List the items of a library",
    (_IFILE, "list"): "List the files of an item's current content",
    (_IFILE, "get"): "Get one file of an item's current content",
    (_LS, "create"): "Create an update session (one ACTIVE session per item)",
    (_LS, "get"): "Get an update session",
    (_LS, "list"): "List your update sessions",
    (_LS, "complete"): "Complete the session: validate and publish its files atomically",
    (_LS, "keep_alive"): "Keep the session alive (and report progress)",
    (_LS, "cancel"): "Cancel the session",
    (_LS, "fail"): "Fail the session with the client's message",
    (_LS, "delete"): "Delete a session that is not ACTIVE",
    (_LS, "update"): "Update the session's warning behavior or progress",
    (_FS, "validate"): "Validate the session's files (the type adapter's ValidationResult)",
    (_FS, "add"): "Add a file (PUSH): answers its upload endpoint",
    (_FS, "remove"): "Remove a file from the session",
    (_FS, "list"): "List the session's files",
    (_FS, "get"): "Get one of the session's files",
}


# -- vAPI types as JSON Schema ----------------------------------------------------------
def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


class _Schemas:
    """JSON Schemas of vAPI types; structures become named components."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def of(self, typ: vt.Type) -> dict[str, Any]:
        if isinstance(typ, vt.Opt):
            return self.of(typ.element)
        if isinstance(typ, vt.Lst):
            return {"type": "array", "items": self.of(typ.element)}
        if isinstance(typ, vt.Enum):
            return {"type": "string", "enum": list(typ.values)}
        if isinstance(typ, vt.Struct):
            if typ.name not in self.components:
                self.components[typ.name] = {}  # recursion guard
                self.components[typ.name] = {
                    "type": "object",
                    "properties": {k: self.of(v) for k, v in typ.fields.items()},
                    "required": [k for k, v in typ.fields.items() if not isinstance(v, vt.Opt)],
                    # The answers are checked against this document: nothing undocumented.
                    "additionalProperties": False,
                }
            return _ref(typ.name)
        if typ in ("string", "secret"):
            return {"type": "string"}
        if typ in ("integer", "boolean"):
            return {"type": typ}
        raise ValueError(f"no JSON Schema for vAPI type {typ!r}")


# -- the document ---------------------------------------------------------------------
_JSON = "application/json"
_XML = "application/xml"
_XML_TEXT = {"type": "string", "description": "An XML document (the seed's forms)"}


def _errors(family: str) -> dict[str, Any]:
    return {
        str(status): {"$ref": f"#/components/responses/{family}Error{status}"}
        for status in (400, 401, 404, 500)
    }


def _error_components(schemas: _Schemas) -> tuple[dict[str, Any], dict[str, Any]]:
    message = schemas.of(vt.LOCALIZABLE_MESSAGE)
    components: dict[str, Any] = {}
    responses: dict[str, Any] = {}
    for status, kinds in error_types_by_status().items():
        upper = [k.upper() for k in kinds]
        api = f"ApiError{status}"
        components[api] = {
            "type": "object",
            "required": ["error_type", "messages"],
            "additionalProperties": False,
            "properties": {
                "error_type": {"type": "string", "enum": upper},
                "messages": {"type": "array", "items": message},
            },
        }
        rest = f"RestError{status}"
        components[rest] = {
            "type": "object",
            "required": ["type", "value"],
            "additionalProperties": False,
            "properties": {
                "type": {"type": "string", "enum": [ERRORS_PREFIX + k for k in kinds]},
                "value": _ref(api),
            },
        }
        text = f"{_STATUS_TEXT[status]}: {', '.join(kinds)}"
        responses[api] = {"description": text, "content": {_JSON: {"schema": _ref(api)}}}
        responses[rest] = {
            "description": text + " (XML when XML was sent or asked for)",
            "content": {_JSON: {"schema": _ref(rest)}, _XML: {"schema": _XML_TEXT}},
        }
    return components, responses


def _one(schemas: list[dict[str, Any]]) -> dict[str, Any]:
    unique = [s for i, s in enumerate(schemas) if s not in schemas[:i]]
    return unique[0] if len(unique) == 1 else {"oneOf": unique}


def _label(op: Op) -> str:
    return SUMMARIES.get((op.service, op.name), f"{op.service} {op.name}")


class _Builder:
    def __init__(self, item_types: Iterable[str], max_upload_bytes: int) -> None:
        self.schemas = _Schemas()
        self.inputs = inputs(item_types, max_upload_bytes)
        self.paths: dict[str, dict[str, Any]] = {}

    def add(self, path: str, method: str, operation: dict[str, Any]) -> None:
        self.paths.setdefault(path, {})[method.lower()] = operation

    def output(self, op: Op) -> dict[str, Any] | None:
        return None if op.output == "void" else self.schemas.of(op.output)

    # -- /api ------------------------------------------------------------------------
    def api(self) -> None:
        groups: dict[tuple[str, str], list[ApiRoute]] = {}
        for route in API_ROUTES:
            groups.setdefault((route.template, route.method), []).append(route)
        for (template, method), routes in groups.items():
            self.add(template, method, self.api_operation(template, method, routes))

    def api_operation(self, template: str, method: str, routes: list[ApiRoute]) -> dict[str, Any]:
        ops = [OPS[(r.service, r.op)] for r in routes]
        in_path = _path_names(template)
        parameters: list[dict[str, Any]] = [
            {"name": n, "in": "path", "required": True, "schema": self.inputs_of(ops[0])[n].schema}
            for n in in_path
        ]
        actions = [r.action for r in routes]
        if any(a is not None for a in actions):
            named = [a for a in actions if a is not None]
            parameters.append(
                {
                    "name": "action",
                    "in": "query",
                    "required": None not in actions,
                    "schema": {"type": "string", "enum": named},
                    "description": "; ".join(
                        f"{r.action or '(none)'}: {_label(op)}"
                        for r, op in zip(routes, ops, strict=True)
                    ),
                }
            )
        body_props: dict[str, Any] = {}
        body_schemas: list[dict[str, Any]] = []
        body_required = False
        for route, op in zip(routes, ops, strict=True):
            params = self.inputs_of(op)
            if route.body is not None:
                body_schemas.append(dict(params[route.body].schema))
                body_required = body_required or (params[route.body].required and len(routes) == 1)
                continue
            for name, param in params.items():
                if name in in_path or name == "client_token":
                    continue
                if method in ("GET", "DELETE"):
                    if not any(p["name"] == name for p in parameters):
                        parameters.append(
                            {
                                "name": name,
                                "in": "query",
                                "required": param.required,
                                "schema": param.schema,
                            }
                        )
                else:
                    body_props[name] = optional(param.schema)
        if routes[0].service == _IFILE and routes[0].op == "list":
            parameters.append(
                {
                    "name": "name",
                    "in": "query",
                    "required": False,
                    "schema": FILE_NAME,
                    "description": "With a name: that one file (the item file service's get)",
                }
            )
            ops = [*ops, OPS[(_IFILE, "get")]]
        if any(r.op == "create" for r in routes):
            parameters.append(
                {"name": "Client-Token", "in": "header", "required": False, "schema": CLIENT_TOKEN}
            )
        operation: dict[str, Any] = {
            "operationId": _operation_id("api", method, template),
            "summary": " | ".join(dict.fromkeys(_label(op) for op in ops)),
            "tags": [routes[0].service],
            "parameters": parameters,
        }
        if body_props:
            body_schemas.append({"type": "object", "properties": body_props})
        if body_schemas:
            operation["requestBody"] = {
                "required": body_required,
                "content": {_JSON: {"schema": _one(body_schemas)}},
            }
        responses: dict[str, Any] = {}
        outputs = [s for s in (self.output(op) for op in ops) if s is not None]
        if outputs:
            status = "201" if routes[0].op == "create" else "200"
            responses[status] = {
                "description": "The result",
                "content": {_JSON: {"schema": _one(outputs)}},
            }
        if any(self.output(op) is None for op in ops):
            responses["204"] = {"description": "Done (no result)"}
        responses.update(_errors("Api"))
        operation["responses"] = responses
        return operation

    def inputs_of(self, op: Op) -> dict[str, Param]:
        table = self.inputs[(op.service, op.name)]
        return {name: table[name] for name in op.params}

    # -- /rest -----------------------------------------------------------------------
    def rest(self) -> None:
        for resource, (service, id_param) in _LEGACY_RESOURCES.items():
            for with_id in (False, True):
                path = f"/rest/com/vmware/{resource}" + (
                    "/id:{" + id_param + "}" if with_id else ""
                )
                for method in ("GET", "POST", "DELETE", "PATCH"):
                    operation = self.rest_operation(path, service, id_param, method, with_id)
                    if operation is not None:
                        self.add(path, method, operation)

    def rest_operation(
        self, path: str, service: str, id_param: str, method: str, with_id: bool
    ) -> dict[str, Any] | None:
        actions: list[tuple[str | None, Op]] = []
        if method == "GET":
            name = "get" if with_id else "list"
            if service in (_FS, _IFILE) and with_id:
                name = "list"  # GET …/file/id:{id} lists; with file_name (or name) it gets
            actions.append((None, OPS[(service, name)]))
            if service in (_FS, _IFILE):
                actions.append((None, OPS[(service, "get")]))
        for action, op_name in _LEGACY_ACTIONS.get(method, {}).items():
            if method != "GET" and (service, op_name) in OPS:
                actions.append((action, OPS[(service, op_name)]))
        if with_id:  # …/id:{id} names the object: only operations on one take it
            actions = [(a, op) for a, op in actions if id_param in op.params]
        if not actions:
            return None
        parameters: list[dict[str, Any]] = []
        if with_id:
            parameters.append({"name": id_param, "in": "path", "required": True, "schema": ID})
        named = [a for a, _ in actions if a is not None]
        if named:
            parameters.append(
                {
                    "name": "~action",
                    "in": "query",
                    "required": all(a is not None for a, _ in actions),
                    "schema": {"type": "string", "enum": list(dict.fromkeys(named))},
                    "description": "; ".join(f"{a or '(none)'}: {_label(op)}" for a, op in actions),
                }
            )
        # Every parameter may come in the query, or in a JSON (or XML) body.
        fields: dict[str, Any] = {}
        for _, op in actions:
            for name, param in self.inputs_of(op).items():
                if not (with_id and name == id_param):
                    fields.setdefault(name, param.schema)
        if service == _IFILE and "name" in fields:
            fields.setdefault("file_name", fields["name"])
        if method == "GET":
            parameters.extend(
                {"name": n, "in": "query", "required": False, "schema": s}
                for n, s in fields.items()
                if s.get("type") == "string"
            )
        operation: dict[str, Any] = {
            "operationId": _operation_id("rest", method, path),
            "summary": " | ".join(dict.fromkeys(_label(op) for _, op in actions)),
            "tags": [service],
            "parameters": parameters,
        }
        if method != "GET" and fields:
            operation["requestBody"] = {
                "required": False,
                "description": "The operation's parameters (also accepted in the query, "
                "or as the seed's XML input document)",
                "content": {
                    _JSON: {
                        "schema": {
                            "type": "object",
                            "properties": {n: optional(f) for n, f in fields.items()},
                        }
                    },
                    _XML: {"schema": _XML_TEXT},
                },
            }
        outputs = [s for s in (self.output(op) for _, op in actions) if s is not None]
        void = [a for a, op in actions if op.output == "void"]
        text = 'The result, as {"value": …} (XML when XML was sent or asked for)'
        if void:
            text += f"; an empty body for {', '.join(a or '(none)' for a in void)}"
        ok: dict[str, Any] = {"description": text}
        if outputs and void:
            # The same URL and method answer JSON for some actions and nothing for others.
            ok["x-empty-body-actions"] = [a for a in void if a is not None]
        if outputs:
            ok["content"] = {
                _JSON: {
                    "schema": {
                        "type": "object",
                        "required": ["value"],
                        "additionalProperties": False,
                        "properties": {"value": _one(outputs)},
                    }
                },
                _XML: {"schema": _XML_TEXT},
            }
        operation["responses"] = {"200": ok, **_errors("Rest")}
        return operation

    # -- login, uploads, JSON-RPC, this document ------------------------------------------
    def fixed(self, max_upload_bytes: int) -> None:
        info = self.schemas.of(vt.CIS_SESSION_INFO)
        token = {"type": "string", "description": "The session token"}
        for family, ok, wrap in (("api", "201", False), ("rest", "200", True)):
            path = "/api/session" if family == "api" else "/rest/com/vmware/cis/session"
            errors = _errors("Api" if family == "api" else "Rest")

            def body(schema: dict[str, Any], wrap: bool = wrap) -> dict[str, Any]:
                if wrap:
                    schema = {
                        "type": "object",
                        "required": ["value"],
                        "additionalProperties": False,
                        "properties": {"value": schema},
                    }
                return {_JSON: {"schema": schema}}

            self.add(
                path,
                "POST",
                {
                    "operationId": f"{family}_session_create",
                    "summary": "Log in (HTTP Basic): answers a session token",
                    "tags": ["com.vmware.cis.session"],
                    "security": [{"basic": []}],
                    "responses": {
                        ok: {"description": "The token", "content": body(token)},
                        **errors,
                        "503": {"$ref": f"#/components/responses/{family.title()}Error503"},
                    },
                },
            )
            self.add(
                path,
                "GET",
                {
                    "operationId": f"{family}_session_get",
                    "summary": "Who is logged in with this token",
                    "tags": ["com.vmware.cis.session"],
                    "responses": {
                        "200": {"description": "The session", "content": body(info)},
                        **errors,
                    },
                },
            )
            done = {"description": "Logged out"}
            self.add(
                path,
                "DELETE",
                {
                    "operationId": f"{family}_session_delete",
                    "summary": "Log out: the token stops working",
                    "tags": ["com.vmware.cis.session"],
                    "responses": {"200" if wrap else "204": done, **errors},
                },
            )
        upload = {
            "summary": "Upload a session file's bytes to its upload endpoint",
            "tags": ["upload"],
            "description": "The endpoint is the upload_endpoint.uri that add answered. The file "
            "becomes READY, or ERROR when fewer or more bytes than its declared size arrive, the "
            "connection is cut, or the checksum does not match (400 with the reason).",
            "parameters": [
                {
                    "name": "token",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"},
                }
            ],
            "requestBody": {
                "required": False,
                "content": {
                    "application/octet-stream": {
                        "schema": {
                            "type": "string",
                            "format": "binary",
                            "maxLength": max_upload_bytes,
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "The file's info (READY)",
                    "content": {_JSON: {"schema": self.schemas.of(vt.SESSION_FILE_INFO)}},
                },
                **_errors("Api"),
            },
        }
        for method in ("PUT", "POST"):
            self.add(
                "/cls/data/{token}", method, {**upload, "operationId": f"upload_{method.lower()}"}
            )
        self.add(
            "/api",
            "POST",
            {
                "operationId": "jsonrpc_invoke",
                "summary": "vAPI JSON-RPC 2.0 (what the official bindings send)",
                "tags": ["jsonrpc"],
                "description": "Credentials travel in params.ctx.securityCtx (user_pass to log in, "
                "session_id after); an error is a vAPI ERROR value in result.error, or a "
                "JSON-RPC error for a request that is not one. Always HTTP 200.",
                "security": [],
                "requestBody": {
                    "required": True,
                    "content": {_JSON: {"schema": _ref("JsonRpcRequest")}},
                },
                "responses": {
                    "200": {
                        "description": "The JSON-RPC answer",
                        "content": {_JSON: {"schema": _ref("JsonRpcResponse")}},
                    }
                },
            },
        )
        self.add(
            OPENAPI_PATH,
            "GET",
            {
                "operationId": "openapi",
                "summary": "This document (no credentials needed)",
                "tags": ["meta"],
                "security": [],
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {_JSON: {"schema": {"type": "object"}}},
                    }
                },
            },
        )


def _jsonrpc_components() -> dict[str, Any]:
    services = sorted({service for service, _ in OPS} | {"com.vmware.cis.session"})
    # The JSON-RPC form tags each message: {"STRUCTURE": {"…localizable_message": {…}}}.
    tagged_message = {
        "type": "object",
        "required": ["STRUCTURE"],
        "properties": {"STRUCTURE": {"type": "object"}},
    }
    vapi_error = {
        "type": "object",
        "required": ["ERROR"],
        "additionalProperties": False,
        "properties": {
            "ERROR": {
                "type": "object",
                "minProperties": 1,
                "maxProperties": 1,
                "propertyNames": {"enum": [ERRORS_PREFIX + k for k in ERROR_TYPES]},
                "additionalProperties": {
                    "type": "object",
                    "required": ["messages", "data", "error_type"],
                    "properties": {
                        "messages": {"type": "array", "items": tagged_message},
                        "data": {"type": "object"},
                        "error_type": {
                            "type": "object",
                            "properties": {"OPTIONAL": {"enum": [k.upper() for k in ERROR_TYPES]}},
                        },
                    },
                },
            }
        },
    }
    return {
        "JsonRpcRequest": {
            "type": "object",
            "required": ["jsonrpc", "method", "params"],
            "properties": {
                "jsonrpc": {"const": "2.0"},
                "method": {"const": "invoke"},
                "id": {"type": ["string", "integer", "null"]},
                "params": {
                    "type": "object",
                    "required": ["serviceId", "operationId", "input", "ctx"],
                    "properties": {
                        "serviceId": {"type": "string", "enum": services},
                        "operationId": {"type": "string"},
                        "input": {"type": "object"},
                        "ctx": {"type": "object"},
                    },
                },
            },
        },
        "JsonRpcResponse": {
            "type": "object",
            "required": ["jsonrpc", "id"],
            "properties": {
                "jsonrpc": {"const": "2.0"},
                "id": {},
                "result": {
                    "type": "object",
                    "properties": {"output": {}, "error": _ref("JsonRpcVapiError")},
                },
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
                },
            },
        },
        "JsonRpcVapiError": vapi_error,
    }


def _path_names(template: str) -> list[str]:
    return re.findall(r"\{(\w+)\}", template)


def _operation_id(family: str, method: str, path: str) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "_", path.removeprefix("/" + family).strip("/"))
    return f"{family}_{method.lower()}_{words.strip('_')}"


def document(item_types: Iterable[str], max_upload_bytes: int) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a server with these item types."""
    builder = _Builder(item_types, max_upload_bytes)
    builder.api()
    builder.rest()
    builder.fixed(max_upload_bytes)
    errors, responses = _error_components(builder.schemas)
    schemas = {**builder.schemas.components, **errors, **_jsonrpc_components()}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "validator: reference update-session server",
            "version": "1",
            "description": "Content-library update sessions with validate and complete "
            "(docs/server.md). Every error is a vAPI error body: "
            '{"error_type", "messages"} under /api and on upload endpoints, '
            '{"type", "value": {"error_type", "messages"}} under /rest, an ERROR value in '
            "JSON-RPC.",
        },
        "security": [{"session": []}],
        "paths": dict(sorted(builder.paths.items())),
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "header", "name": SESSION_HEADER},
                "basic": {"type": "http", "scheme": "basic"},
            },
            "schemas": dict(sorted(schemas.items())),
            "responses": responses,
        },
    }
