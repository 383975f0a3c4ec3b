"""The HTTP layer: Starlette routes for ``/rest``, ``/api``, JSON-RPC and uploads.

Three wire forms reach the same operations of :class:`~validator.server.service.Service`,
all routed from one table (:mod:`validator.server.routes`, also the OpenAPI document's
source):

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
import math
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

import anyio
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from validator import xmlsafe
from validator.messages import normalize_locale
from validator.registry import describe
from validator.results import ValidationResult, VapiError, result_to_xml, xml_text
from validator.server import vapi_types as vt
from validator.server.auth import LoginThrottle
from validator.server.routes import (
    FS,
    IFILE,
    OPENAPI_PATH,
    ROUTES,
    SESSION_HEADER,
    Op,
    Table,
)
from validator.server.service import Ctx, Service, UploadTarget

log = logging.getLogger("validator.server")

#: Bytes of an upload collected before they are written (and hashed) in a worker thread.
UPLOAD_BUFFER = 1 << 20


class Throttled(VapiError):
    """``service_unavailable`` for a login refused before hashing; says when to retry."""

    def __init__(self, message: Any, retry_after: float) -> None:
        super().__init__("service_unavailable", [message])
        self.retry_after = max(1, math.ceil(retry_after))


#: The route table's derived forms, under the names the app has always had.
OPS = ROUTES.ops
API_ROUTES = ROUTES.api_routes
#: ``/rest/com/vmware/{resource}[/id:{id}]``: the resource is the table's, the id its object's.
_LEGACY_PATH = re.compile(r"^/rest/com/vmware/(?P<res>[a-z/-]+?)(?:/id:(?P<id>[^/]+))?/?$")


#: ``document(item_types, max_upload_bytes, table)``: the OpenAPI document of a server.
DocumentBuilder = Callable[[Iterable[str], int, Table], dict[str, Any]]


class Server:
    """Binds a :class:`Service` to HTTP."""

    def __init__(self, service: Service, document: DocumentBuilder, table: Table = ROUTES) -> None:
        self.service = service
        #: The operations this server answers (:mod:`validator.server.routes`).
        self.table = table
        #: Builds the OpenAPI document (:func:`validator.server.openapi.document`).
        self.document = document
        self.max_body = service.config.max_body_bytes
        self._openapi: bytes | None = None
        cfg = service.config
        self.throttle = LoginThrottle(
            per_client=cfg.login_failures_per_client,
            per_user=cfg.login_failures_per_user,
            window=cfg.login_fail_window,
        )
        #: Password hashing has its own few threads: a flood of logins never takes the
        #: worker threads every other request runs in (made in the event loop, lazily).
        self._hash_limiter: anyio.CapacityLimiter | None = None
        self._logins_waiting = 0

    # -- helpers ------------------------------------------------------------
    def path(self, request: Request, ctx: Ctx) -> str:
        """The request's path, percent-decoded as UTF-8 (strictly).

        Routing uses this, not ``request.url.path``: that one keeps ``%3F`` and
        ``%23`` encoded (a file named ``a?b`` would be looked up as ``a%3Fb``),
        and the server's own decoding replaces bytes that are not UTF-8 with
        U+FFFD (``%FF`` and ``%FE`` would name the same file).
        """
        raw = request.scope.get("raw_path")
        if not isinstance(raw, bytes):
            return str(request.scope["path"])
        try:
            return unquote_to_bytes(raw.partition(b"?")[0]).decode("utf-8")
        except UnicodeDecodeError:
            shown = raw.decode("ascii", "backslashreplace")
            raise self.service.error(
                ctx, "invalid_argument", "validator.server.arg.bad_path", shown
            ) from None

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
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.max_body:
                    raise self.service.error(
                        ctx, "invalid_argument", "validator.server.arg.too_large", self.max_body
                    )
                chunks.append(chunk)
        except ClientDisconnect:  # nobody reads the answer; not a server failure either
            raise self.service.error(
                ctx, "invalid_argument", "validator.server.arg.body_interrupted", size
            ) from None
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
            return load_json(data)
        except (ValueError, RecursionError) as exc:
            raise self.service.error(
                ctx, "invalid_argument", "validator.server.arg.bad_body", describe(exc)
            ) from None

    def known_fields(self, ctx: Ctx, body: Mapping[str, Any], fields: frozenset[str]) -> None:
        """An ``/api`` body's fields must be the operation's: a field it does not take (a
        legacy ``{"create_spec": …}`` wrapper, a typo) is refused, never ignored."""
        unknown = sorted(str(k) for k in body if k not in fields)
        if unknown:
            raise self.service.error(
                ctx,
                "invalid_argument",
                "validator.server.arg.unknown_field",
                unknown[0],
                ", ".join(sorted(fields)) or "-",
            )

    def not_an_object(self, ctx: Ctx, body: Any) -> VapiError:
        kind = {list: "array", str: "string", bool: "boolean", type(None): "null"}
        shown = kind.get(type(body), "number")
        return self.service.error(
            ctx, "invalid_argument", "validator.server.arg.body_not_object", shown
        )

    async def call(self, op: Op, ctx: Ctx, params: dict[str, Any]) -> Any:
        return await run_in_threadpool(op, self.service, ctx, params)

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
            resource = self.table.resources.get(op.service) if op else None
            ns = resource.xml_ns if resource else "http://vmware.com/vapi"
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
        # Only the kind of failure: its text may hold server paths (they go to the log).
        return self.service.error(
            ctx, "internal_server_error", "validator.server.internal", type(exc).__name__
        )

    # -- login ------------------------------------------------------------------
    async def check_login(self, request: Request, ctx: Ctx, user: str, password: str) -> str:
        """A new token for a good user and password; throttled, hashing bounded."""
        cfg = self.service.config
        client = request.client.host if request.client else "-"
        user_key = user[:128]
        wait = self.throttle.retry_after(client, user_key)
        if wait > 0:
            secs = max(1, math.ceil(wait))
            raise Throttled(
                self.service.message(ctx, "validator.server.auth.throttled", secs), secs
            )
        if self._logins_waiting >= cfg.login_queue:
            raise Throttled(self.service.message(ctx, "validator.server.auth.busy", 1), 1)
        if self._hash_limiter is None:
            self._hash_limiter = anyio.CapacityLimiter(cfg.login_workers)
        self._logins_waiting += 1
        try:
            token = await anyio.to_thread.run_sync(
                self.service.login, user, password, limiter=self._hash_limiter
            )
        finally:
            self._logins_waiting -= 1
        if token is None:
            self.throttle.failed(client, user_key)
            raise self.service.error(
                ctx, "unauthenticated", "validator.server.auth.bad_credentials"
            )
        return token

    def error_response(self, request: Request, err: VapiError, family: str) -> Response:
        response = (
            self.rest_error(request, err)
            if family == "rest"
            else _json(err.to_api_dict(), err.http_status)
        )
        if isinstance(err, Throttled):
            response.headers["Retry-After"] = str(err.retry_after)
        return response

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
                if not user:
                    raise self.service.error(
                        ctx, "unauthenticated", "validator.server.auth.bad_credentials"
                    )
                token = await self.check_login(request, ctx, user, password or "")
                return _json(wrap(token), 201 if family == "api" else 200)
            token = request.headers.get(SESSION_HEADER, "")
            user = await run_in_threadpool(self.service.authenticate, token) if token else None
            if user is None:
                raise self.unauthenticated(ctx)
            if request.method == "DELETE":
                await run_in_threadpool(self.service.logout, token)
                return Response(status_code=200 if family == "rest" else 204)
            info = await run_in_threadpool(self.service.token_info, token)
            if info is None:
                raise self.unauthenticated(ctx)
            return _json(wrap(info))
        except VapiError as err:
            return self.error_response(request, err, family)

    # -- /rest ------------------------------------------------------------------
    async def rest(self, request: Request) -> Response:
        ctx = self.anonymous(request)
        try:
            path = self.path(request, ctx)
            if path.rstrip("/") == "/rest/com/vmware/cis/session":
                return await self.login(request, "rest")
            ctx = self.ctx(request, await self.user(request))
            op, params = await self.rest_op(request, ctx, path)
            result = await self.call(op, ctx, params)
            return self.rest_result(request, op, result)
        except VapiError as err:
            return self.rest_error(request, err)
        except Exception as exc:
            return self.rest_error(request, self.internal(ctx, exc))

    async def rest_op(self, request: Request, ctx: Ctx, path: str) -> tuple[Op, dict[str, Any]]:
        m = _LEGACY_PATH.match(path)
        resource = self.table.legacy_resources.get(m.group("res")) if m else None
        action = request.query_params.get("~action")
        op: Op | None = None
        if m and resource:
            if request.method == "GET" and action is None:
                op = self.table.ops.get((resource[0], "get" if m.group("id") else "list"))
            else:
                op = self.table.legacy_op(resource[0], request.method, action)
        if op is not None and resource and m and m.group("id") and resource[1] not in op.params:
            op = None  # …/id:{id} names the object the operation is on: list and create have none
        if op is None or m is None or resource is None:
            raise self.service.error(
                ctx, "not_found", "validator.server.not_found.operation", request.method, path
            )
        params: dict[str, Any] = {k: v for k, v in request.query_params.items() if k != "~action"}
        body = self.parse_body(request, ctx, await self.body(request, ctx))
        if isinstance(body, Mapping):
            # The fields are the operation's parameters; one it does not take (another
            # action's, a typo) is refused, as in the /api form.
            taken = set(op.params) | ({"file_name"} if resource[0] == IFILE else set())
            self.known_fields(ctx, body, frozenset(taken))
            params.update(body)
        elif body is not None:
            raise self.not_an_object(ctx, body)
        if m.group("id"):
            params[resource[1]] = m.group("id")
        if op.name == "get" and resource[0] == IFILE and "file_name" in params:
            params.setdefault("name", params["file_name"])
        listing = "file_name" not in params and "name" not in params
        if op.name == "get" and request.method == "GET" and resource[0] in (FS, IFILE) and listing:
            op = self.table.ops[(resource[0], "list")]  # GET …/file/id:{id}: the files
        return op, params

    # -- /api ---------------------------------------------------------------------
    async def api(self, request: Request) -> Response:
        ctx = self.anonymous(request)
        try:
            path = self.path(request, ctx).rstrip("/")
            if path == "/api/session":
                return await self.login(request, "api")
            if path == "/api" and request.method == "POST":
                return await self.jsonrpc(request)
            ctx = self.ctx(request, await self.user(request))
            action = request.query_params.get("action")
            for route in self.table.api_routes:
                match = route.pattern.match(path)
                if (
                    route.method != request.method
                    or match is None
                    or (route.action is not None and route.action != action)
                ):
                    continue
                params: dict[str, Any] = {
                    k: v for k, v in request.query_params.items() if k != "action"
                }
                body = self.parse_body(request, ctx, await self.body(request, ctx))
                op = self.table.ops[(route.service, route.op)]
                if route.body is not None:
                    if isinstance(body, Mapping):
                        self.known_fields(ctx, body, route.fields)
                    params[route.body] = body
                elif isinstance(body, Mapping):
                    self.known_fields(ctx, body, frozenset(op.params))
                    params.update(body)
                elif body is not None:  # the body's fields are the parameters: an object
                    raise self.not_an_object(ctx, body)
                params.update(match.groupdict())  # the ids in the path win over the body's
                if route.op == "create":
                    token = request.headers.get("client-token")
                    if token:
                        params["client_token"] = token
                if route.switch is not None and route.switch.param in params:
                    op = self.table.ops[(route.service, route.switch.op)]
                result = await self.call(op, ctx, params)
                if result is None and op.output == "void":
                    return Response(status_code=204)
                if isinstance(result, ValidationResult):
                    result = result.to_dict()
                return _json(result, 201 if route.op == "create" else 200)
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
            raw = load_json(await self.body(request, ctx))
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
            op = self.table.ops.get((str(service_id), str(operation_id)))
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
            if not (isinstance(user, str) and user and isinstance(password, str)):
                raise self.service.error(
                    ctx, "unauthenticated", "validator.server.auth.bad_credentials"
                )
            token = await self.check_login(request, ctx, user, password)
            return {"output": vt.encode(token, "secret")}
        token = security.get("sessionId") or request.headers.get(SESSION_HEADER, "")
        user = await run_in_threadpool(self.service.authenticate, str(token)) if token else None
        if user is None:
            raise self.unauthenticated(ctx)
        if operation == "delete":
            await run_in_threadpool(self.service.logout, str(token))
            return {"output": None}
        if operation == "get":
            info = await run_in_threadpool(self.service.token_info, str(token))
            if info is None:
                raise self.unauthenticated(ctx)
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
            return await self.receive(request, ctx, target)
        except VapiError as err:  # also: the session ended while the bytes arrived
            return _json(err.to_api_dict(), err.http_status)

    async def receive(self, request: Request, ctx: Ctx, target: UploadTarget) -> Response:
        """Stream an upload's body to its ``.part`` file, then record how it ended."""
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
        idle = self.service.config.upload_idle_timeout
        received = 0
        problem: tuple[str, tuple[object, ...]] | None = None

        def flush(fh: Any, chunks: list[bytes]) -> bool:
            # In a worker thread: disk writes and hashing (which releases the GIL)
            # never hold up the event loop. False: the file was unlinked under us
            # (its session ended and its folder was removed): stop writing.
            for data in chunks:
                fh.write(data)
                for h in hashers.values():
                    h.update(data)
            return os.fstat(fh.fileno()).st_nlink > 0

        try:
            try:
                fh = open(target.part, "wb")  # noqa: SIM115 (closed below, in every case)
            except OSError:  # the session ended (its folder is gone) before the first byte
                problem = ("validator.server.file.interrupted", (target.name, 0))
            else:
                with fh:
                    problem, received = await self.stream_to(request, target, fh, idle, flush)
        except BaseException:
            problem = ("validator.server.file.interrupted", (target.name, received))
            with anyio.CancelScope(shield=True), contextlib.suppress(VapiError):
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

    async def stream_to(
        self, request: Request, target: UploadTarget, fh: Any, idle: float, flush: Any
    ) -> tuple[tuple[str, tuple[object, ...]] | None, int]:
        """Write the body to ``fh`` in constant memory: the problem that ended it, if any,
        and the number of bytes received."""
        received = reported = pending_size = 0
        pending: list[bytes] = []
        heartbeat, beat = min(10.0, idle / 3), time.monotonic()
        stream = request.stream().__aiter__()
        try:
            while True:
                with anyio.move_on_after(idle) as waiting:
                    try:
                        chunk = await stream.__anext__()
                    except StopAsyncIteration:
                        break
                if waiting.cancelled_caught:
                    return (
                        "validator.server.file.stalled",
                        (target.name, received, idle),
                    ), received
                if received + len(chunk) > target.limit:
                    return (
                        "validator.server.file.too_large",
                        (target.name, target.limit),
                    ), received
                pending.append(chunk)
                pending_size += len(chunk)
                received += len(chunk)
                # Constant memory: at most one buffer of UPLOAD_BUFFER bytes per upload.
                if pending_size >= UPLOAD_BUFFER:
                    if not await run_in_threadpool(flush, fh, pending):
                        return (
                            "validator.server.file.interrupted",
                            (target.name, received),
                        ), received
                    pending, pending_size = [], 0
                # Progress, and a heartbeat other servers read (session_files.seen).
                if received - reported >= 16 << 20 or time.monotonic() - beat >= heartbeat:
                    reported, beat = received, time.monotonic()
                    token = target.final.name
                    await run_in_threadpool(self.service.upload_progress, token, received)
            if not await run_in_threadpool(flush, fh, pending):
                return ("validator.server.file.interrupted", (target.name, received)), received
            fh.flush()
            await run_in_threadpool(os.fsync, fh.fileno())
        except (ClientDisconnect, OSError):
            return ("validator.server.file.interrupted", (target.name, received)), received
        return None, received

    # -- the OpenAPI document ---------------------------------------------------------
    async def openapi(self, request: Request) -> Response:
        """``GET /api/openapi.json``: the server's OpenAPI document (no credentials needed)."""
        if self._openapi is None:
            doc = self.document(
                self.service.registry.item_types, self.service.config.max_upload_bytes, self.table
            )
            self._openapi = json.dumps(doc, ensure_ascii=False, indent=1).encode()
        return Response(self._openapi, media_type="application/json")

    async def not_found(self, request: Request, exc: Exception) -> Response:
        """No route (404) or a method the route does not take (405): ``not_found`` either way."""
        ctx = self.anonymous(request)
        path = str(request.scope.get("path", ""))
        err = self.service.error(
            ctx, "not_found", "validator.server.not_found.operation", request.method, path
        )
        if path.startswith("/rest"):
            return self.rest_error(request, err)
        return _json(err.to_api_dict(), err.http_status)

    async def server_error(self, request: Request, exc: Exception) -> Response:
        err = self.internal(self.anonymous(request), exc)
        return _json(err.to_api_dict(), 500)


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _not_json(name: str) -> Any:
    # json.loads takes NaN and Infinity; they are not JSON, and json.dumps would echo them
    # (a JSON-RPC "id") into an answer that no JSON parser reads.
    raise ValueError(f"{name} is not JSON")


def load_json(data: bytes) -> Any:
    """A JSON body; ``ValueError`` also for a string that is not text (a lone surrogate).

    ``"\\udc80"`` is valid JSON syntax, but no UTF-8 encodes it: SQLite, a message and the
    answer would each fail on it later.
    """
    value = json.loads(data, parse_constant=_not_json)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                bad = item[exc.start]
                raise ValueError(f"a string holds the lone surrogate \\u{ord(bad):04x}") from None
    return value


def _json(value: Any, status: int = 200) -> Response:
    try:
        body = json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate got through: \\udc80 escapes are valid JSON
        body = json.dumps(value).encode("ascii")
    return Response(body, status_code=status, media_type="application/json")


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
        text = "" if value is None else xml_text(str(value))
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
        Route(OPENAPI_PATH, server.openapi, methods=["GET"]),
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
                        await run_in_threadpool(server.service.sweep)
                    except Exception as exc:  # keep sweeping
                        log.warning("expiry sweep failed: %s", describe(exc))

            tg.start_soon(sweep)
            yield
            tg.cancel_scope.cancel()

    return Starlette(
        routes=build_routes(server),
        lifespan=lifespan,
        middleware=[Middleware(HeaderLimit, server=server)],
        exception_handlers={
            HTTPException: server.not_found,
            Exception: server.server_error,
        },
    )


class HeaderLimit:
    """Refuses a request whose path and headers exceed ``max_header_bytes`` (a vAPI error)."""

    def __init__(self, app: ASGIApp, server: Server) -> None:
        self.app = app
        self.server = server
        self.limit = server.service.config.max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path") or b""
            size = len(raw) + len(scope.get("query_string", b""))
            size += sum(len(k) + len(v) + 4 for k, v in scope["headers"])
            if size > self.limit:
                err = self.server.service.error(
                    None, "invalid_argument", "validator.server.http.headers_too_large", self.limit
                )
                if str(scope.get("path", "")).startswith("/rest"):
                    response = _json(err.to_rest_dict(), err.http_status)
                else:
                    response = _json(err.to_api_dict(), err.http_status)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
