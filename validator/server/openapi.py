"""The server's OpenAPI 3.1 description, served at ``GET /api/openapi.json``.

It is generated from the route table the server routes with
(:mod:`validator.server.routes`), so it neither describes an operation the server does
not answer nor misses one it does (tests/test_server_openapi.py checks both ways):

- paths, methods, actions, parameters (with the bounds of :mod:`validator.server.args`,
  which the service checks) and summaries: the table's entries, their ``/api`` forms and
  their legacy ``/rest`` resources;
- results: each operation's vAPI output type (:mod:`validator.server.vapi_types`, the
  types the JSON-RPC encoding uses), turned into JSON Schema;
- errors: the vAPI error body of each family, one response per HTTP status with the
  error types that status stands for (REFERENCE §1).

Only login, uploads, JSON-RPC and this document itself are described here by hand.
Item types are the registry's, so the document is built per server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from validator.results import ERRORS_PREFIX, VapiError
from validator.server import vapi_types as vt
from validator.server.args import CLIENT_TOKEN, ID, UPLOAD_TOKEN, optional
from validator.server.routes import (
    FS,
    IFILE,
    OPENAPI_PATH,
    ROUTES,
    SESSION_HEADER,
    ApiRoute,
    DocInputs,
    Op,
    Table,
)

__all__ = ["OPENAPI_PATH", "Param", "document", "inputs"]

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
@dataclass(frozen=True)
class Param:
    schema: Mapping[str, Any]
    required: bool = False


def inputs(
    item_types: Iterable[str], max_upload_bytes: int, table: Table = ROUTES
) -> dict[tuple[str, str], dict[str, Param]]:
    """Each operation's parameters (its vAPI ``operation-input``), from the route table."""
    given = DocInputs(tuple(item_types), max_upload_bytes)
    return {
        key: {p.name: Param(p.schema_for(given), p.required) for p in op.inputs}
        for key, op in table.ops.items()
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
    return op.summary or f"{op.service} {op.name}"


class _Builder:
    def __init__(self, item_types: Iterable[str], max_upload_bytes: int, table: Table) -> None:
        self.schemas = _Schemas()
        self.table = table
        self.inputs = inputs(item_types, max_upload_bytes, table)
        self.paths: dict[str, dict[str, Any]] = {}

    def add(self, path: str, method: str, operation: dict[str, Any]) -> None:
        self.paths.setdefault(path, {})[method.lower()] = operation

    def output(self, op: Op) -> dict[str, Any] | None:
        return None if op.output == "void" else self.schemas.of(op.output)

    # -- /api ------------------------------------------------------------------------
    def api(self) -> None:
        groups: dict[tuple[str, str], list[ApiRoute]] = {}
        for route in self.table.api_routes:
            groups.setdefault((route.template, route.method), []).append(route)
        for (template, method), routes in groups.items():
            self.add(template, method, self.api_operation(template, method, routes))

    def api_operation(self, template: str, method: str, routes: list[ApiRoute]) -> dict[str, Any]:
        ops = [self.table.ops[(r.service, r.op)] for r in routes]
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
        for route in routes:
            if route.switch is None:
                continue
            switched = self.table.ops[(route.service, route.switch.op)]
            parameters.append(
                {
                    "name": route.switch.param,
                    "in": "query",
                    "required": False,
                    "schema": self.inputs_of(switched)[route.switch.param].schema,
                    "description": route.switch.doc,
                }
            )
            ops = [*ops, switched]
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
        for resource, (service, id_param) in self.table.legacy_resources.items():
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
            if service in (FS, IFILE) and with_id:
                name = "list"  # GET …/file/id:{id} lists; with file_name (or name) it gets
            actions.append((None, self.table.ops[(service, name)]))
            if service in (FS, IFILE):
                actions.append((None, self.table.ops[(service, "get")]))
        actions.extend(self.table.legacy_actions(service, method))
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
        if service == IFILE and "name" in fields:
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
                    "schema": UPLOAD_TOKEN,
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


def _jsonrpc_components(table: Table) -> dict[str, Any]:
    services = sorted({*table.services(), "com.vmware.cis.session"})
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


def document(
    item_types: Iterable[str], max_upload_bytes: int, table: Table = ROUTES
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a server with these item types and operations."""
    builder = _Builder(item_types, max_upload_bytes, table)
    builder.api()
    builder.rest()
    builder.fixed(max_upload_bytes)
    errors, responses = _error_components(builder.schemas)
    schemas = {**builder.schemas.components, **errors, **_jsonrpc_components(table)}
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
