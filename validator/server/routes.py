"""The server's route table: every vAPI operation once, and everything derived from it.

One :class:`Op` per operation names its handler (a :class:`~validator.server.service.Service`
method), its parameters with their schemas (:mod:`validator.server.args`), its result type,
a one-line summary and its ``/api`` forms. From the table (:data:`ROUTES`):

- the app (:mod:`validator.server.app`) routes ``/api`` requests (:attr:`Table.api_routes`),
  legacy ``/rest`` requests (:attr:`Table.legacy_resources`, :meth:`Table.legacy_op`) and
  JSON-RPC calls (:attr:`Table.ops`), and refuses the body fields an operation does not
  take (:attr:`ApiRoute.fields`, :attr:`Op.params`);
- the OpenAPI document (:mod:`validator.server.openapi`) describes the same forms with the
  same parameters, results and summaries.

A new endpoint is one :class:`Op` in the table (or ``ROUTES.with_ops(…)``) plus its handler.
Neither the app nor the document imports the other: both import this module.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from validator.server import args
from validator.server import vapi_types as vt

if TYPE_CHECKING:
    from validator.server.service import Ctx, Service

SESSION_HEADER = "vmware-api-session-id"
OPENAPI_PATH = "/api/openapi.json"

LS = "com.vmware.content.library.item.update_session"
FS = "com.vmware.content.library.item.updatesession.file"
ITEM = "com.vmware.content.library.item"
IFILE = "com.vmware.content.library.item.file"
LIB = "com.vmware.content.library"
LOCAL = "com.vmware.content.local_library"


class DocInputs(NamedTuple):
    """What a parameter's schema may depend on: the server's item types and upload bound."""

    item_types: tuple[str, ...]
    max_upload_bytes: int


Schema = Mapping[str, Any] | Callable[[DocInputs], Mapping[str, Any]]


@dataclass(frozen=True)
class Param:
    """One field of an operation's ``operation-input``."""

    name: str
    schema: Schema
    required: bool = False

    def schema_for(self, inputs: DocInputs) -> Mapping[str, Any]:
        return self.schema(inputs) if callable(self.schema) else self.schema


@dataclass(frozen=True)
class Form:
    """One ``/api`` form of an operation: ``{name}`` in the template is a path parameter."""

    method: str
    template: str
    action: str | None = None
    #: The parameter the JSON body is (``create_spec``…); ``None``: its fields are parameters.
    body: str | None = None
    #: The fields such a body may have (its vAPI structure's fields).
    fields: frozenset[str] = frozenset()
    #: A query parameter that makes this form answer as another operation of the same
    #: service: ``Switch("name", "get", …)`` on the item file ``list``.
    switch: Switch | None = None


@dataclass(frozen=True)
class Switch:
    """With ``param`` in the query, a form answers as operation ``op`` (its parameter)."""

    param: str
    op: str
    #: What the OpenAPI document says of the parameter.
    doc: str


@dataclass(frozen=True)
class Op:
    """A vAPI operation: ``Service.<method>(ctx, *params)``, in the order of ``inputs``."""

    service: str
    name: str
    #: The handler: a method of :class:`~validator.server.service.Service`.
    method: str
    inputs: tuple[Param, ...]
    output: vt.Type
    summary: str
    api: tuple[Form, ...] = ()

    @property
    def params(self) -> tuple[str, ...]:
        """The names of its ``operation-input`` fields (how every wire form names them)."""
        return tuple(p.name for p in self.inputs)

    @property
    def legacy(self) -> tuple[str, str | None]:
        """Its ``/rest`` form: HTTP method and ``~action`` (besides ``GET`` for get and list)."""
        special = {"create": ("POST", None), "delete": ("DELETE", None), "update": ("PATCH", None)}
        return special.get(self.name, ("POST", self.name.replace("_", "-")))

    def __call__(self, service: Service, ctx: Ctx, params: Mapping[str, Any]) -> Any:
        return getattr(service, self.method)(ctx, *(params.get(n) for n in self.params))


@dataclass(frozen=True)
class ApiRoute:
    """One ``/api`` form of one operation, as the app matches it."""

    method: str
    template: str
    action: str | None
    service: str
    op: str
    body: str | None = None
    fields: frozenset[str] = frozenset()
    switch: Switch | None = None

    @property
    def pattern(self) -> re.Pattern[str]:
        return _route_pattern(self.template)


@functools.cache
def _route_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts)
    )
    return re.compile("^" + regex + "$")


@dataclass(frozen=True)
class Resource:
    """A vAPI service's legacy ``/rest/com/vmware/…`` resource."""

    path: str
    #: The parameter ``…/id:{id}`` is.
    id_param: str
    #: The namespace of its XML answers.
    xml_ns: str = "http://vmware.com/vapi"


@dataclass(frozen=True)
class Table:
    """The operations, in order: ``/api`` forms are tried in this order (the first whose
    method, path and action match answers), and each legacy resource lists its actions so."""

    resources: Mapping[str, Resource]
    entries: tuple[Op, ...]

    def with_ops(self, *ops: Op, resources: Mapping[str, Resource] | None = None) -> Table:
        """This table with more operations (first) and resources: a server with more endpoints."""
        return dataclasses.replace(
            self,
            entries=(*ops, *self.entries),
            resources={**self.resources, **(resources or {})},
        )

    @functools.cached_property
    def ops(self) -> dict[tuple[str, str], Op]:
        return {(op.service, op.name): op for op in self.entries}

    @functools.cached_property
    def api_routes(self) -> list[ApiRoute]:
        return [
            ApiRoute(
                f.method, f.template, f.action, op.service, op.name, f.body, f.fields, f.switch
            )
            for op in self.entries
            for f in op.api
        ]

    @functools.cached_property
    def legacy_resources(self) -> dict[str, tuple[str, str]]:
        """``/rest`` resource path → (service, id parameter)."""
        return {r.path: (service, r.id_param) for service, r in self.resources.items()}

    def legacy_actions(self, service: str, method: str) -> list[tuple[str | None, Op]]:
        """The operations of ``service`` a ``/rest`` request of ``method`` names by
        ``~action`` (or by none), in table order."""
        return [
            (op.legacy[1], op)
            for op in self.entries
            if op.service == service and op.legacy[0] == method
        ]

    def legacy_op(self, service: str, method: str, action: str | None) -> Op | None:
        for named, op in self.legacy_actions(service, method):
            if named == action:
                return op
        return None

    def services(self) -> list[str]:
        return sorted({op.service for op in self.entries})


# -- the table ---------------------------------------------------------------------------
_SID = Param("update_session_id", args.ID, True)
_ITEM_ID = Param("library_item_id", args.ID, True)
_LIB_ID = Param("library_id", args.ID, True)
_CLIENT_TOKEN = Param("client_token", args.CLIENT_TOKEN)
_FILE_NAME = Param("file_name", args.FILE_NAME, True)
_US = "/api/content/library/item/update-session"
_USID = _US + "/{update_session_id}"
_SESSION_FIELDS = frozenset(vt.UPDATE_SESSION_MODEL.fields)


def _item_spec(inputs: DocInputs) -> Mapping[str, Any]:
    return args.item_spec(inputs.item_types)


def _file_spec(inputs: DocInputs) -> Mapping[str, Any]:
    return args.file_spec(inputs.max_upload_bytes)


def _libraries(service: str, prefix: str, kind: str, plural: str) -> list[Op]:
    return [
        Op(service, "get", "library_get", (_LIB_ID,), vt.LIBRARY_MODEL, f"Get a{kind}",
           (Form("GET", prefix + "/{library_id}"),)),
        Op(service, "list", "library_list", (), vt.Lst(vt.STRING), f"List {plural}",
           (Form("GET", prefix),)),
    ]  # fmt: skip


def _table() -> Table:
    session_ops = [
        Op(LS, "create", "session_create",
           (Param("create_spec", args.SESSION_SPEC, True), _CLIENT_TOKEN), vt.STRING,
           "Create an update session (one ACTIVE session per item)",
           (Form("POST", _US, body="create_spec", fields=_SESSION_FIELDS),)),
        Op(LS, "complete", "complete", (_SID,), "void",
           "Complete the session: validate and publish its files atomically",
           (Form("POST", _USID, "complete"),)),
        Op(LS, "keep_alive", "session_keep_alive",
           (_SID, Param("client_progress", args.PROGRESS)), "void",
           "Keep the session alive (and report progress)", (Form("POST", _USID, "keep-alive"),)),
        Op(LS, "cancel", "session_cancel", (_SID,), "void", "Cancel the session",
           (Form("POST", _USID, "cancel"),)),
        Op(LS, "fail", "session_fail",
           (_SID, Param("client_error_message", args.LONG_TEXT, True)), "void",
           "Fail the session with the client's message", (Form("POST", _USID, "fail"),)),
        Op(LS, "delete", "session_delete", (_SID,), "void", "Delete a session that is not ACTIVE",
           (Form("DELETE", _USID),)),
        Op(LS, "update", "session_update",
           (_SID, Param("update_spec", args.UPDATE_SPEC, True)), "void",
           "Update the session's warning behavior or progress",
           (Form("PATCH", _USID, body="update_spec", fields=_SESSION_FIELDS),)),
        Op(LS, "get", "session_get", (_SID,), vt.UPDATE_SESSION_MODEL, "Get an update session",
           (Form("GET", _USID),)),
        Op(LS, "list", "session_list", (Param("library_item_id", args.ID),), vt.Lst(vt.STRING),
           "List your update sessions", (Form("GET", _US),)),
    ]  # fmt: skip
    file_ops = [
        Op(FS, "validate", "validate", (_SID,), vt.VALIDATION_RESULT,
           "Validate the session's files (the type adapter's ValidationResult)",
           (Form("POST", _USID + "/file", "validate"),)),
        Op(FS, "add", "file_add", (_SID, Param("file_spec", _file_spec, True)),
           vt.SESSION_FILE_INFO, "Add a file (PUSH): answers its upload endpoint",
           (Form("POST", _USID + "/file", body="file_spec", fields=frozenset(
               ("name", "source_type", "source_endpoint", "size", "checksum_info"))),)),
        Op(FS, "remove", "file_remove", (_SID, _FILE_NAME), "void",
           "Remove a file from the session", (Form("DELETE", _USID + "/file/{file_name}"),)),
        Op(FS, "get", "file_get", (_SID, _FILE_NAME), vt.SESSION_FILE_INFO,
           "Get one of the session's files", (Form("GET", _USID + "/file/{file_name}"),)),
        Op(FS, "list", "file_list", (_SID,), vt.Lst(vt.SESSION_FILE_INFO),
           "List the session's files", (Form("GET", _USID + "/file"),)),
    ]  # fmt: skip
    item = "/api/content/library/item"
    item_ops = [
        Op(ITEM, "create", "item_create", (Param("create_spec", _item_spec, True), _CLIENT_TOKEN),
           vt.STRING, "Create a library item",
           (Form("POST", item, body="create_spec", fields=frozenset(vt.ITEM_MODEL.fields)),)),
        Op(ITEM, "get", "item_get", (_ITEM_ID,), vt.ITEM_MODEL, "Get a library item",
           (Form("GET", item + "/{library_item_id}"),)),
        Op(ITEM, "list", "item_list", (_LIB_ID,), vt.Lst(vt.STRING),
           "List the items of a library", (Form("GET", item),)),
        # ``GET …/item/{library_item_id}/file?name=`` is the item file service's ``get``.
        Op(IFILE, "get", "item_file_get", (_ITEM_ID, Param("name", args.FILE_NAME, True)),
           vt.ITEM_FILE_INFO, "Get one file of an item's current content"),
        Op(IFILE, "list", "item_files", (_ITEM_ID,), vt.Lst(vt.ITEM_FILE_INFO),
           "List the files of an item's current content",
           (Form("GET", item + "/{library_item_id}/file", switch=Switch(
               "name", "get", "With a name: that one file (the item file service's get)")),)),
    ]  # fmt: skip
    local = "/api/content/local-library"
    library_ops = [
        Op(LOCAL, "create", "library_create",
           (Param("create_spec", args.LIBRARY_SPEC, True), _CLIENT_TOKEN), vt.STRING,
           "Create a local library",
           (Form("POST", local, body="create_spec", fields=frozenset(vt.LIBRARY_MODEL.fields)),)),
        *_libraries(LOCAL, local, " local library", "local libraries"),
        *_libraries(LIB, "/api/content/library", " library", "libraries"),
    ]  # fmt: skip
    return Table(
        resources={
            LOCAL: Resource("content/local-library", "library_id"),
            LIB: Resource("content/library", "library_id"),
            ITEM: Resource("content/library/item", "library_item_id"),
            IFILE: Resource("content/library/item/file", "library_item_id"),
            LS: Resource(
                "content/library/item/update-session",
                "update_session_id",
                "http://vmware.com/content/library/item/update_session",
            ),
            FS: Resource(
                "content/library/item/updatesession/file",
                "update_session_id",
                "http://vmware.com/content/library/item/updatesession/file",
            ),
        },
        entries=(*session_ops, *file_ops, *item_ops, *library_ops),
    )


#: The server's operations.
ROUTES = _table()
