"""The HTTP layer: Starlette routes for ``/rest``, ``/api``, JSON-RPC and uploads.

Three wire forms reach the same operations of :class:`~validator.server.service.Service`:

- the legacy ``/rest/com/vmware/...`` forms of the seeds (id in the path as
  ``id:{id}``, in the query, or in a JSON or XML body; ``~action=``;
  results wrapped in ``{"value": …}``; XML when XML is sent or asked for);
- the current ``/api/...`` forms (``action=``; results not wrapped);
- vAPI JSON-RPC 2.0 on ``POST /api`` (what the official bindings send).

Every error is a vAPI error body of the caller's form; an unexpected
exception is logged and answered as ``internal_server_error``, never with
a traceback.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from validator import xmlsafe
from validator.messages import normalize_locale
from validator.registry import describe
from validator.results import ValidationResult, VapiError, result_to_xml
from validator.server import vapi_types as vt
from validator.server.service import Ctx, Service, iso_time

log = logging.getLogger("validator.server")

SESSION_HEADER = "vmware-api-session-id"
#: Bytes of an upload collected before they are written (and hashed) in a worker thread.
UPLOAD_BUFFER = 1 << 20
Fn = Callable[[Service, Ctx, dict[str, Any]], Any]


@dataclass(frozen=True)
class Op:
    service: str
    name: str
    fn: Fn
    output: vt.Type


_LS = "com.vmware.content.library.item.update_session"
_FS = "com.vmware.content.library.item.updatesession.file"
_ITEM = "com.vmware.content.library.item"
_IFILE = "com.vmware.content.library.item.file"

OPS: dict[tuple[str, str], Op] = {}


def _op(service: str, name: str, output: vt.Type, fn: Fn) -> None:
    OPS[(service, name)] = Op(service, name, fn, output)


for _svc in ("com.vmware.content.local_library", "com.vmware.content.library"):
    _op(_svc, "get", vt.LIBRARY_MODEL, lambda s, c, p: s.library_get(c, p.get("library_id")))
    _op(_svc, "list", vt.Lst(vt.STRING), lambda s, c, p: s.library_list(c))
_op(
    "com.vmware.content.local_library",
    "create",
    vt.STRING,
    lambda s, c, p: s.library_create(c, p.get("create_spec"), p.get("client_token")),
)
_op(
    _ITEM,
    "create",
    vt.STRING,
    lambda s, c, p: s.item_create(c, p.get("create_spec"), p.get("client_token")),
)
_op(_ITEM, "get", vt.ITEM_MODEL, lambda s, c, p: s.item_get(c, p.get("library_item_id")))
_op(_ITEM, "list", vt.Lst(vt.STRING), lambda s, c, p: s.item_list(c, p.get("library_id")))
_op(
    _IFILE,
    "list",
    vt.Lst(vt.ITEM_FILE_INFO),
    lambda s, c, p: s.item_files(c, p.get("library_item_id")),
)
_op(
    _IFILE,
    "get",
    vt.ITEM_FILE_INFO,
    lambda s, c, p: s.item_file_get(c, p.get("library_item_id"), p.get("name")),
)
_op(
    _LS,
    "create",
    vt.STRING,
    lambda s, c, p: s.session_create(c, p.get("create_spec"), p.get("client_token")),
)
_op(
    _LS,
    "get",
    vt.UPDATE_SESSION_MODEL,
    lambda s, c, p: s.session_get(c, p.get("update_session_id")),
)
_op(_LS, "list", vt.Lst(vt.STRING), lambda s, c, p: s.session_list(c, p.get("library_item_id")))
_op(_LS, "complete", "void", lambda s, c, p: s.complete(c, p.get("update_session_id")))
_op(
    _LS,
    "keep_alive",
    "void",
    lambda s, c, p: s.session_keep_alive(c, p.get("update_session_id"), p.get("client_progress")),
)
_op(_LS, "cancel", "void", lambda s, c, p: s.session_cancel(c, p.get("update_session_id")))
_op(
    _LS,
    "fail",
    "void",
    lambda s, c, p: s.session_fail(c, p.get("update_session_id"), p.get("client_error_message")),
)
_op(_LS, "delete", "void", lambda s, c, p: s.session_delete(c, p.get("update_session_id")))
_op(
    _LS,
    "update",
    "void",
    lambda s, c, p: s.session_update(c, p.get("update_session_id"), p.get("update_spec")),
)
_op(
    _FS, "validate", vt.VALIDATION_RESULT, lambda s, c, p: s.validate(c, p.get("update_session_id"))
)
_op(
    _FS,
    "add",
    vt.SESSION_FILE_INFO,
    lambda s, c, p: s.file_add(c, p.get("update_session_id"), p.get("file_spec")),
)
_op(
    _FS,
    "remove",
    "void",
    lambda s, c, p: s.file_remove(c, p.get("update_session_id"), p.get("file_name")),
)
_op(
    _FS,
    "list",
    vt.Lst(vt.SESSION_FILE_INFO),
    lambda s, c, p: s.file_list(c, p.get("update_session_id")),
)
_op(
    _FS,
    "get",
    vt.SESSION_FILE_INFO,
    lambda s, c, p: s.file_get(c, p.get("update_session_id"), p.get("file_name")),
)

# -- legacy /rest: (method, resource, ~action) → (service, op, id parameter) --------
_LEGACY_RESOURCES: dict[str, tuple[str, str]] = {
    "content/local-library": ("com.vmware.content.local_library", "library_id"),
    "content/library": ("com.vmware.content.library", "library_id"),
    "content/library/item": (_ITEM, "library_item_id"),
    "content/library/item/file": (_IFILE, "library_item_id"),
    "content/library/item/update-session": (_LS, "update_session_id"),
    "content/library/item/updatesession/file": (_FS, "update_session_id"),
}
_LEGACY_PATH = re.compile(r"^/rest/com/vmware/(?P<res>[a-z/-]+?)(?:/id:(?P<id>[^/]+))?/?$")
_LEGACY_ACTIONS: dict[str, dict[str | None, str]] = {
    "POST": {
        None: "create",
        "complete": "complete",
        "keep-alive": "keep_alive",
        "cancel": "cancel",
        "fail": "fail",
        "validate": "validate",
        "add": "add",
        "remove": "remove",
        "get": "get",
        "list": "list",
    },
    "DELETE": {None: "delete"},
    "PATCH": {None: "update"},
}

# -- current /api: (method, regex, action) → (service, op, body parameter) ----------
_ID = r"(?P<{}>[^/]+)"
_US = "/api/content/library/item/update-session"
_API_ROUTES: list[tuple[str, re.Pattern[str], str | None, str, str, str | None]] = [
    (m, re.compile("^" + p + "$"), a, s, o, b)
    for m, p, a, s, o, b in [
        (
            "POST",
            _US + "/" + _ID.format("update_session_id") + "/file",
            "validate",
            _FS,
            "validate",
            None,
        ),
        (
            "POST",
            _US + "/" + _ID.format("update_session_id") + "/file",
            None,
            _FS,
            "add",
            "file_spec",
        ),
        ("GET", _US + "/" + _ID.format("update_session_id") + "/file", None, _FS, "list", None),
        (
            "GET",
            _US + "/" + _ID.format("update_session_id") + "/file/" + _ID.format("file_name"),
            None,
            _FS,
            "get",
            None,
        ),
        (
            "DELETE",
            _US + "/" + _ID.format("update_session_id") + "/file/" + _ID.format("file_name"),
            None,
            _FS,
            "remove",
            None,
        ),
        ("POST", _US + "/" + _ID.format("update_session_id"), "complete", _LS, "complete", None),
        (
            "POST",
            _US + "/" + _ID.format("update_session_id"),
            "keep-alive",
            _LS,
            "keep_alive",
            None,
        ),
        ("POST", _US + "/" + _ID.format("update_session_id"), "cancel", _LS, "cancel", None),
        ("POST", _US + "/" + _ID.format("update_session_id"), "fail", _LS, "fail", None),
        ("GET", _US + "/" + _ID.format("update_session_id"), None, _LS, "get", None),
        ("DELETE", _US + "/" + _ID.format("update_session_id"), None, _LS, "delete", None),
        ("PATCH", _US + "/" + _ID.format("update_session_id"), None, _LS, "update", "update_spec"),
        ("POST", _US, None, _LS, "create", "create_spec"),
        ("GET", _US, None, _LS, "list", None),
        (
            "GET",
            "/api/content/library/item/" + _ID.format("library_item_id") + "/file",
            None,
            _IFILE,
            "list",
            None,
        ),
        (
            "GET",
            "/api/content/library/item/" + _ID.format("library_item_id"),
            None,
            _ITEM,
            "get",
            None,
        ),
        ("POST", "/api/content/library/item", None, _ITEM, "create", "create_spec"),
        ("GET", "/api/content/library/item", None, _ITEM, "list", None),
        (
            "POST",
            "/api/content/local-library",
            None,
            "com.vmware.content.local_library",
            "create",
            "create_spec",
        ),
        (
            "GET",
            "/api/content/local-library",
            None,
            "com.vmware.content.local_library",
            "list",
            None,
        ),
        (
            "GET",
            "/api/content/local-library/" + _ID.format("library_id"),
            None,
            "com.vmware.content.local_library",
            "get",
            None,
        ),
        ("GET", "/api/content/library", None, "com.vmware.content.library", "list", None),
        (
            "GET",
            "/api/content/library/" + _ID.format("library_id"),
            None,
            "com.vmware.content.library",
            "get",
            None,
        ),
    ]
]

_XML_NS = {
    _FS: "http://vmware.com/content/library/item/updatesession/file",
    _LS: "http://vmware.com/content/library/item/update_session",
}


class Server:
    """Binds a :class:`Service` to HTTP."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.max_body = service.config.max_body_bytes

    # -- helpers ------------------------------------------------------------
    def locale(self, request: Request) -> str | None:
        raw = request.headers.get("accept-language", "")
        first = raw.split(",")[0].split(";")[0].strip()
        if not first or first == "*":
            return None
        return normalize_locale(first)

    def ctx(self, request: Request, user: str) -> Ctx:
        return Ctx(user=user, locale=self.locale(request), base_url=str(request.base_url))

    def anonymous(self, request: Request) -> Ctx:
        return Ctx(user="", locale=self.locale(request), base_url=str(request.base_url))

    def unauthenticated(self, ctx: Ctx) -> VapiError:
        return self.service.error(ctx, "unauthenticated", "validator.server.auth.required")

    async def user(self, request: Request) -> str:
        token = request.headers.get(SESSION_HEADER, "")
        user = await run_in_threadpool(self.service.authenticate, token) if token else None
        if user is None:
            raise self.unauthenticated(self.anonymous(request))
        return user

    async def body(self, request: Request, ctx: Ctx) -> bytes:
        chunks: list[bytes] = []
        size = 0
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise self.service.error(
                ctx, "invalid_argument", "validator.server.arg.too_large", self.max_body
            )
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise self.service.error(
                    ctx, "invalid_argument", "validator.server.arg.too_large", self.max_body
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def parse_body(self, request: Request, ctx: Ctx, data: bytes) -> Any:
        if not data.strip():
            return None
        ctype = request.headers.get("content-type", "")
        if "xml" in ctype or data.lstrip().startswith(b"<"):
            try:
                tree = xmlsafe.parse(data, max_elements=10_000, max_depth=32)
            except xmlsafe.XmlRejected as exc:
                raise self.service.error(
                    ctx,
                    "invalid_argument",
                    "validator.server.arg.bad_body",
                    f"{exc.kind}: {exc.detail}",
                ) from None
            return _xml_to_value(tree.getroot())
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise self.service.error(
                ctx, "invalid_argument", "validator.server.arg.bad_body", describe(exc)
            ) from None

    async def call(self, op: Op, ctx: Ctx, params: dict[str, Any]) -> Any:
        return await run_in_threadpool(op.fn, self.service, ctx, params)

    def wants_xml(self, request: Request) -> bool:
        accept = request.headers.get("accept", "")
        ctype = request.headers.get("content-type", "")
        if "xml" in ctype:
            return True
        return ("application/xml" in accept or "text/xml" in accept) and "json" not in accept

    # -- responses ------------------------------------------------------------
    def rest_result(self, request: Request, op: Op | None, result: Any) -> Response:
        if result is None and (op is None or op.output == "void"):
            return Response(status_code=200)
        value = result.to_dict() if isinstance(result, ValidationResult) else result
        if self.wants_xml(request):
            if isinstance(result, ValidationResult):
                return Response(result_to_xml(result), media_type="application/xml")
            name = (op.name.replace("_", "-").title() if op else "Create") + "-Result"
            ns = _XML_NS.get(op.service if op else "", "http://vmware.com/vapi")
            return Response(_xml_document(name, ns, {"value": value}), media_type="application/xml")
        return _json({"value": value})

    def rest_error(self, request: Request, err: VapiError) -> Response:
        if self.wants_xml(request):
            return Response(
                _xml_document("Error", "http://vmware.com/vapi/std/errors", err.to_rest_dict()),
                status_code=err.http_status,
                media_type="application/xml",
            )
        return _json(err.to_rest_dict(), err.http_status)

    def internal(self, ctx: Ctx, exc: BaseException) -> VapiError:
        log.exception("internal error: %s", describe(exc))
        return self.service.error(
            ctx, "internal_server_error", "validator.server.internal", describe(exc)
        )

    # -- login ------------------------------------------------------------------
    async def login(self, request: Request, family: str) -> Response:
        ctx = self.anonymous(request)
        wrap = (lambda v: {"value": v}) if family == "rest" else (lambda v: v)
        try:
            if request.method == "POST":
                auth = request.headers.get("authorization", "")
                user = password = None
                if auth.lower().startswith("basic "):
                    try:
                        raw = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
                        user, _, password = raw.partition(":")
                    except (binascii.Error, UnicodeDecodeError):
                        user = None
                token = (
                    await run_in_threadpool(self.service.login, user, password or "")
                    if user
                    else None
                )
                if token is None:
                    raise self.service.error(
                        ctx, "unauthenticated", "validator.server.auth.bad_credentials"
                    )
                return _json(wrap(token), 201 if family == "api" else 200)
            token = request.headers.get(SESSION_HEADER, "")
            user = await run_in_threadpool(self.service.authenticate, token) if token else None
            if user is None:
                raise self.unauthenticated(ctx)
            if request.method == "DELETE":
                await run_in_threadpool(self.service.logout, token)
                return Response(status_code=200 if family == "rest" else 204)
            now = iso_time(time.time())
            return _json(wrap({"user": user, "created_time": now, "last_accessed_time": now}))
        except VapiError as err:
            return (
                self.rest_error(request, err)
                if family == "rest"
                else _json(err.to_api_dict(), err.http_status)
            )

    # -- /rest ------------------------------------------------------------------
    async def rest(self, request: Request) -> Response:
        path = request.url.path
        if path.rstrip("/") == "/rest/com/vmware/cis/session":
            return await self.login(request, "rest")
        ctx = self.anonymous(request)
        try:
            ctx = self.ctx(request, await self.user(request))
            op, params = await self.rest_op(request, ctx)
            result = await self.call(op, ctx, params)
            return self.rest_result(request, op, result)
        except VapiError as err:
            return self.rest_error(request, err)
        except Exception as exc:
            return self.rest_error(request, self.internal(ctx, exc))

    async def rest_op(self, request: Request, ctx: Ctx) -> tuple[Op, dict[str, Any]]:
        m = _LEGACY_PATH.match(request.url.path)
        resource = _LEGACY_RESOURCES.get(m.group("res")) if m else None
        action = request.query_params.get("~action")
        name: str | None = None
        if m and resource:
            if request.method == "GET" and action is None:
                name = "get" if m.group("id") else "list"
            else:
                name = _LEGACY_ACTIONS.get(request.method, {}).get(action)
        op = OPS.get((resource[0], name)) if resource and name else None
        if op is None or m is None or resource is None:
            raise self.service.error(
                ctx,
                "not_found",
                "validator.server.not_found.operation",
                request.method,
                request.url.path,
            )
        params: dict[str, Any] = {k: v for k, v in request.query_params.items() if k != "~action"}
        body = self.parse_body(request, ctx, await self.body(request, ctx))
        if isinstance(body, Mapping):
            params.update(body)
        elif body is not None:
            raise self.service.error(
                ctx, "invalid_argument", "validator.server.arg.bad_body", type(body).__name__
            )
        if m.group("id"):
            params[resource[1]] = m.group("id")
        if name == "get" and resource[0] == _IFILE and "file_name" in params:
            params.setdefault("name", params["file_name"])
        listing = "file_name" not in params and "name" not in params
        if name == "get" and request.method == "GET" and resource[0] in (_FS, _IFILE) and listing:
            op = OPS[(resource[0], "list")]  # GET …/file/id:{id}: the files
        return op, params

    # -- /api ---------------------------------------------------------------------
    async def api(self, request: Request) -> Response:
        path = request.url.path.rstrip("/")
        if path == "/api/session":
            return await self.login(request, "api")
        ctx = self.anonymous(request)
        try:
            if path == "/api" and request.method == "POST":
                return await self.jsonrpc(request)
            ctx = self.ctx(request, await self.user(request))
            action = request.query_params.get("action")
            for method, pattern, want, service, name, body_param in _API_ROUTES:
                match = pattern.match(path)
                if (
                    method != request.method
                    or match is None
                    or (want is not None and want != action)
                ):
                    continue
                params: dict[str, Any] = {
                    k: v for k, v in request.query_params.items() if k != "action"
                }
                params.update(match.groupdict())
                body = self.parse_body(request, ctx, await self.body(request, ctx))
                if body_param is not None:
                    params[body_param] = body
                elif isinstance(body, Mapping):
                    params.update(body)
                if name == "create":
                    token = request.headers.get("client-token")
                    if token:
                        params["client_token"] = token
                op = OPS[(service, name)]
                if service == _IFILE and "name" in params:
                    op = OPS[(service, "get")]
                result = await self.call(op, ctx, params)
                if result is None and op.output == "void":
                    return Response(status_code=204)
                if isinstance(result, ValidationResult):
                    result = result.to_dict()
                return _json(result, 201 if name == "create" else 200)
            raise self.service.error(
                ctx, "not_found", "validator.server.not_found.operation", request.method, path
            )
        except VapiError as err:
            return _json(err.to_api_dict(), err.http_status)
        except Exception as exc:
            return _json(self.internal(ctx, exc).to_api_dict(), 500)

    # -- JSON-RPC ---------------------------------------------------------------
    async def jsonrpc(self, request: Request) -> Response:
        ctx = self.anonymous(request)
        try:
            raw = json.loads(await self.body(request, ctx))
        except (ValueError, VapiError, RecursionError):
            return _json(
                {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}
            )
        if (
            not isinstance(raw, dict)
            or raw.get("jsonrpc") != "2.0"
            or raw.get("method") != "invoke"
        ):
            return _json(
                {
                    "jsonrpc": "2.0",
                    "id": None,
                    "error": {"code": -32600, "message": "Invalid Request"},
                }
            )
        rid = raw.get("id")
        params = raw.get("params")
        if not isinstance(params, dict):
            return _json(
                {
                    "jsonrpc": "2.0",
                    "id": rid,
                    "error": {"code": -32602, "message": "Invalid params"},
                }
            )
        service_id = params.get("serviceId")
        operation_id = params.get("operationId")
        vctx = _obj(params.get("ctx"))
        app_ctx = _obj(vctx.get("appCtx"))
        security = _obj(vctx.get("securityCtx"))
        locale = (
            next(
                (
                    app_ctx[k]
                    for k in ("locale", "$locale", "format-locale", "vapi-ctx-format-locale")
                    if isinstance(app_ctx.get(k), str)
                ),
                None,
            )
            or request.headers.get("vapi-ctx-locale")
            or request.headers.get("accept-language")
        )
        ctx = Ctx(
            user="",
            locale=normalize_locale(locale.split(",")[0]) if locale else None,
            base_url=str(request.base_url),
        )

        def answer(result: dict[str, Any]) -> Response:
            return _json({"jsonrpc": "2.0", "id": rid, "result": result})

        try:
            try:
                inputs = vt.decode(params.get("input"))
            except vt.DecodeError as exc:
                raise self.service.error(
                    ctx, "invalid_argument", "validator.server.arg.bad_body", str(exc)
                ) from None
            if not isinstance(inputs, dict):
                inputs = {}
            if service_id == "com.vmware.cis.session":
                return answer(await self.jsonrpc_session(request, ctx, operation_id, security))
            token = (
                security.get("sessionId") if isinstance(security.get("sessionId"), str) else None
            )
            token = token or request.headers.get(SESSION_HEADER, "")
            user = await run_in_threadpool(self.service.authenticate, token) if token else None
            if user is None:
                raise self.unauthenticated(ctx)
            ctx = Ctx(user=user, locale=ctx.locale, base_url=ctx.base_url)
            op = OPS.get((str(service_id), str(operation_id)))
            if op is None:
                raise self.service.error(
                    ctx,
                    "not_found",
                    "validator.server.not_found.operation",
                    service_id,
                    operation_id,
                )
            result = await self.call(op, ctx, inputs)
            if isinstance(result, ValidationResult):
                result = result.to_dict()
            output: Any = vt.encode(result, op.output)
            return answer({"output": output})
        except VapiError as err:
            return answer(
                {"error": vt.encode_error(err.error, [m.to_dict() for m in err.messages])}
            )
        except Exception as exc:
            failure = self.internal(ctx, exc)
            return answer(
                {"error": vt.encode_error(failure.error, [m.to_dict() for m in failure.messages])}
            )

    async def jsonrpc_session(
        self, request: Request, ctx: Ctx, operation: Any, security: Mapping[str, Any]
    ) -> dict[str, Any]:
        if operation == "create":
            user, password = security.get("userName"), security.get("password")
            if not isinstance(user, str) or not isinstance(password, str):
                auth = request.headers.get("authorization", "")
                if auth.lower().startswith("basic "):
                    with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                        user, _, password = (
                            base64.b64decode(auth[6:]).decode("utf-8").partition(":")
                        )
            token = (
                await run_in_threadpool(self.service.login, user, password)
                if isinstance(user, str) and isinstance(password, str)
                else None
            )
            if token is None:
                raise self.service.error(
                    ctx, "unauthenticated", "validator.server.auth.bad_credentials"
                )
            return {"output": vt.encode(token, "secret")}
        token = security.get("sessionId") or request.headers.get(SESSION_HEADER, "")
        user = await run_in_threadpool(self.service.authenticate, str(token)) if token else None
        if user is None:
            raise self.unauthenticated(ctx)
        if operation == "delete":
            await run_in_threadpool(self.service.logout, str(token))
            return {"output": None}
        if operation == "get":
            now = iso_time(time.time())
            info = {"user": user, "created_time": now, "last_accessed_time": now}
            return {"output": vt.encode(info, vt.CIS_SESSION_INFO)}
        raise self.service.error(
            ctx, "not_found", "validator.server.not_found.operation", "cis.session", operation
        )

    # -- uploads ------------------------------------------------------------------
    async def upload(self, request: Request) -> Response:
        ctx = self.anonymous(request)
        try:
            ctx = self.ctx(request, await self.user(request))
            target = await run_in_threadpool(
                self.service.upload_begin, ctx, request.path_params["token"]
            )
        except VapiError as err:
            return _json(err.to_api_dict(), err.http_status)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > target.limit:
            problem_early = ("validator.server.file.too_large", (target.name, target.limit))
            info = await run_in_threadpool(
                self.service.upload_finish, ctx, target, 0, {}, problem_early
            )
            return _json(
                {"error_type": "INVALID_ARGUMENT", "messages": [info["error_message"]]}, 400
            )
        hashers: dict[str, Any] = {"sha256": hashlib.sha256()}
        if target.checksum is not None:
            alg = target.checksum.algorithm.hashlib_name
            hashers.setdefault(alg, hashlib.new(alg))
        received = 0
        problem: tuple[str, tuple[object, ...]] | None = None
        reported = 0
        pending: list[bytes] = []
        pending_size = 0

        def flush(fh: Any, chunks: list[bytes]) -> None:
            # In a worker thread: disk writes and hashing (which releases the GIL)
            # never hold up the event loop.
            for data in chunks:
                fh.write(data)
                for h in hashers.values():
                    h.update(data)

        try:
            with open(target.part, "wb") as fh:
                try:
                    # Constant memory: at most one buffer of UPLOAD_BUFFER bytes per upload.
                    async for chunk in request.stream():
                        if received + len(chunk) > target.limit:
                            problem = (
                                "validator.server.file.too_large",
                                (target.name, target.limit),
                            )
                            break
                        pending.append(chunk)
                        pending_size += len(chunk)
                        received += len(chunk)
                        if pending_size >= UPLOAD_BUFFER:
                            await run_in_threadpool(flush, fh, pending)
                            pending, pending_size = [], 0
                        if received - reported >= 16 << 20:
                            reported = received
                            token = target.final.name
                            await run_in_threadpool(self.service.upload_progress, token, received)
                    await run_in_threadpool(flush, fh, pending)
                    fh.flush()
                    await run_in_threadpool(os.fsync, fh.fileno())
                except (ClientDisconnect, OSError):
                    problem = ("validator.server.file.interrupted", (target.name, received))
        except BaseException:
            problem = ("validator.server.file.interrupted", (target.name, received))
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(
                    self.service.upload_finish, ctx, target, received, {}, problem
                )
            raise
        digests = {k: h.hexdigest() for k, h in hashers.items()}
        with anyio.CancelScope(shield=True):
            info = await run_in_threadpool(
                self.service.upload_finish, ctx, target, received, digests, problem
            )
        if info.get("status") == "ERROR" and info.get("error_message"):
            msg = info["error_message"]
            return _json({"error_type": "INVALID_ARGUMENT", "messages": [msg]}, 400)
        return _json(info, 200)

    async def not_found(self, request: Request, exc: Exception) -> Response:
        ctx = self.anonymous(request)
        err = self.service.error(
            ctx,
            "not_found",
            "validator.server.not_found.operation",
            request.method,
            request.url.path,
        )
        if isinstance(exc, HTTPException) and exc.status_code == 405:
            err = self.service.error(
                ctx,
                "not_found",
                "validator.server.not_found.operation",
                request.method,
                request.url.path,
            )
        if request.url.path.startswith("/rest"):
            return self.rest_error(request, err)
        return _json(err.to_api_dict(), err.http_status)

    async def server_error(self, request: Request, exc: Exception) -> Response:
        err = self.internal(self.anonymous(request), exc)
        return _json(err.to_api_dict(), 500)


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _json(value: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(value, ensure_ascii=False), status_code=status, media_type="application/json"
    )


def _xml_to_value(el: Any) -> Any:
    children = list(el)
    if not children:
        return (el.text or "").strip()
    tag = str(el.tag).split("}")[-1]
    if tag.endswith("-array") or all(str(c.tag).split("}")[-1] == "array-item" for c in children):
        return [_xml_to_value(c) for c in children]
    out: dict[str, Any] = {}
    for c in children:
        name = str(c.tag).split("}")[-1]
        if name.endswith("-array"):
            out[name[: -len("-array")]] = [_xml_to_value(i) for i in c]
        else:
            out[name] = _xml_to_value(c)
    return out


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _xml_lines(name: str, value: Any, pad: str) -> list[str]:
    if isinstance(value, list):
        if not value:
            return [f"{pad}<{name}-array/>"]
        lines = [f"{pad}<{name}-array>"]
        for v in value:
            lines.extend(_xml_lines("array-item", v, pad + "  "))
        return [*lines, f"{pad}</{name}-array>"]
    if isinstance(value, dict):
        lines = [f"{pad}<{name}>"]
        for k, v in value.items():
            lines.extend(_xml_lines(k, v, pad + "  "))
        return [*lines, f"{pad}</{name}>"]
    if isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = "" if value is None else _xml_escape(str(value))
    return [f"{pad}<{name}>{text}</{name}>"]


def _xml_document(root: str, ns: str, value: Mapping[str, Any]) -> str:
    lines = [
        '<?xml version="1.0" ?>',
        f'<ns0:{root} xmlns:ns0="{ns}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
    ]
    for k, v in value.items():
        lines.extend(_xml_lines(k, v, "  "))
    lines.append(f"</ns0:{root}>")
    return "\n".join(lines) + "\n"


def build_routes(server: Server) -> list[Route]:
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return [
        Route("/rest/{path:path}", server.rest, methods=methods),
        Route("/api", server.api, methods=methods),
        Route("/api/{path:path}", server.api, methods=methods),
        Route("/cls/data/{token}", server.upload, methods=["PUT", "POST"]),
    ]


def make_starlette(server: Server, sweep_seconds: float) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:

            async def sweep() -> None:
                while True:
                    await anyio.sleep(sweep_seconds)
                    try:
                        await run_in_threadpool(server.service.expire)
                    except Exception as exc:  # keep sweeping
                        log.warning("expiry sweep failed: %s", describe(exc))

            tg.start_soon(sweep)
            yield
            tg.cancel_scope.cancel()

    return Starlette(
        routes=build_routes(server),
        lifespan=lifespan,
        exception_handlers={
            HTTPException: server.not_found,
            Exception: server.server_error,
        },
    )
