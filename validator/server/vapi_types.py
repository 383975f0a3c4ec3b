"""The vAPI JSON-RPC 2.0 data encoding (REFERENCE §2), for the types the server answers with.

The official bindings' runtime (``vmware.vapi.data.serializers.jsonrpc``)
tags every structure with its type name and every optional value with
``OPTIONAL``::

    {"STRUCTURE": {"com.vmware.vapi.std.localizable_message": {"id": "…", …}}}
    {"OPTIONAL": null}          {"SECRET": "…"}          [ … ]   "text"  42  true

:func:`decode` turns such a value into plain JSON (structures become
objects keyed by field name, as in the REST forms); :func:`encode` does the
reverse for a value of a known :data:`Type`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Struct:
    name: str
    fields: dict[str, Type]


@dataclass(frozen=True)
class Opt:
    element: Type


@dataclass(frozen=True)
class Lst:
    element: Type


@dataclass(frozen=True)
class Enum:
    """A vAPI enumeration: encoded as a string; ``values`` are those the server uses."""

    name: str
    values: tuple[str, ...]


#: A primitive is named by a string: ``string``, ``integer``, ``boolean``, ``secret``, ``void``.
Type = Struct | Opt | Lst | Enum | str


class DecodeError(ValueError):
    """A JSON-RPC data value that does not follow the encoding."""


def decode(value: Any, depth: int = 0) -> Any:
    """Plain JSON for a vAPI JSON-RPC data value."""
    if depth > 32:
        raise DecodeError("nesting too deep")
    if isinstance(value, list):
        return [decode(v, depth + 1) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        raise DecodeError("a tagged value has exactly one key")
    ((tag, inner),) = value.items()
    if tag in ("STRUCTURE", "ERROR"):
        if not isinstance(inner, dict) or len(inner) != 1:
            raise DecodeError("a structure has exactly one type name")
        ((_name, fields),) = inner.items()
        if not isinstance(fields, dict):
            raise DecodeError("structure fields must be an object")
        return {str(k): decode(v, depth + 1) for k, v in fields.items()}
    if tag == "OPTIONAL":
        return None if inner is None else decode(inner, depth + 1)
    if tag in ("SECRET", "BLOB"):
        return inner
    raise DecodeError(f"unknown tag {tag!r}")


def encode(value: Any, typ: Type) -> Any:
    """The vAPI JSON-RPC encoding of ``value`` (plain JSON) as type ``typ``."""
    if isinstance(typ, Opt):
        return {"OPTIONAL": None if value is None else encode(value, typ.element)}
    if isinstance(typ, Lst):
        return [encode(v, typ.element) for v in (value or [])]
    if isinstance(typ, Struct):
        fields = {}
        for name, ftype in typ.fields.items():
            item = value.get(name) if isinstance(value, dict) else None
            if item is None and not isinstance(ftype, Opt):
                raise ValueError(f"{typ.name}.{name} is required")
            fields[name] = encode(item, ftype)
        return {"STRUCTURE": {typ.name: fields}}
    if typ == "secret":
        return {"SECRET": value}
    if typ == "void":
        return None
    return value


STRING, INTEGER, BOOLEAN = "string", "integer", "boolean"
_ITEM = "com.vmware.content.library.item"
_UPDATESESSION = f"{_ITEM}.updatesession"

SESSION_STATE = Enum(f"{_ITEM}.update_session_model.state", ("ACTIVE", "DONE", "ERROR", "CANCELED"))
FILE_STATUS = Enum(
    f"{_UPDATESESSION}.file.status",
    ("WAITING_FOR_TRANSFER", "TRANSFERRING", "READY", "VALIDATING", "ERROR"),
)
SOURCE_TYPE = Enum(f"{_UPDATESESSION}.file.source_type", ("NONE", "PUSH", "PULL"))
CHECKSUM_ALGORITHM = Enum(f"{_ITEM}.file.checksum_algorithm", ("SHA1", "MD5", "SHA256", "SHA512"))
PREVIEW_STATE = Enum(
    f"{_UPDATESESSION}.preview_info.state",
    ("UNAVAILABLE", "NOT_APPLICABLE", "PREPARING", "AVAILABLE"),
)
LIBRARY_TYPE = Enum("com.vmware.content.library_model.library_type", ("LOCAL", "SUBSCRIBED"))

LOCALIZABLE_MESSAGE = Struct(
    "com.vmware.vapi.std.localizable_message",
    {
        "id": STRING,
        "default_message": STRING,
        "args": Lst(STRING),
        "params": Opt(STRING),  # always unset here
        "localized": Opt(STRING),
    },
)
WARNING_BEHAVIOR = Struct(
    f"{_UPDATESESSION}.warning_behavior", {"type": STRING, "ignored": BOOLEAN}
)
PREVIEW_WARNING = Struct(
    f"{_UPDATESESSION}.preview_warning_info",
    # A WarningType (SELF_SIGNED_CERTIFICATE, …) or, for another plugin's warning, its message id.
    {"type": STRING, "message": LOCALIZABLE_MESSAGE, "ignored": BOOLEAN},
)
CERTIFICATE_INFO = Struct(
    f"{_UPDATESESSION}.certificate_info",
    {"issuer": STRING, "subject": STRING, "self_signed": BOOLEAN, "x509": STRING},
)
PREVIEW_INFO = Struct(
    f"{_UPDATESESSION}.preview_info",
    {
        "state": PREVIEW_STATE,
        "certificate_info": Opt(CERTIFICATE_INFO),
        "warnings": Opt(Lst(PREVIEW_WARNING)),
        "cert_chain": Opt(Lst(STRING)),
    },
)
UPDATE_SESSION_MODEL = Struct(
    "com.vmware.content.library.item.update_session_model",
    {
        "id": Opt(STRING),
        "library_item_id": Opt(STRING),
        "library_item_content_version": Opt(STRING),
        "error_message": Opt(LOCALIZABLE_MESSAGE),
        "client_progress": Opt(INTEGER),
        "state": Opt(SESSION_STATE),
        "expiration_time": Opt(STRING),
        "preview_info": Opt(PREVIEW_INFO),
        "warning_behavior": Opt(Lst(WARNING_BEHAVIOR)),
    },
)
CHECKSUM_INFO = Struct(
    "com.vmware.content.library.item.file.checksum_info",
    {"algorithm": Opt(CHECKSUM_ALGORITHM), "checksum": STRING},
)
TRANSFER_ENDPOINT = Struct(
    "com.vmware.content.library.item.transfer_endpoint",
    {"uri": STRING, "ssl_certificate_thumbprint": Opt(STRING), "ssl_certificate": Opt(STRING)},
)
SESSION_FILE_INFO = Struct(
    f"{_UPDATESESSION}.file.info",
    {
        "name": STRING,
        "source_type": SOURCE_TYPE,
        "size": Opt(INTEGER),
        "checksum_info": Opt(CHECKSUM_INFO),
        "source_endpoint": Opt(TRANSFER_ENDPOINT),
        "upload_endpoint": Opt(TRANSFER_ENDPOINT),
        "bytes_transferred": INTEGER,
        "status": FILE_STATUS,
        "error_message": Opt(LOCALIZABLE_MESSAGE),
        "keep_in_storage": Opt(BOOLEAN),
    },
)
VALIDATION_RESULT = Struct(
    f"{_UPDATESESSION}.file.validation_result",
    {
        "has_errors": BOOLEAN,
        "missing_files": Lst(STRING),
        "invalid_files": Lst(
            Struct(
                f"{_UPDATESESSION}.file.validation_error",
                {"name": STRING, "error_message": LOCALIZABLE_MESSAGE},
            )
        ),
    },
)
ITEM_FILE_INFO = Struct(
    "com.vmware.content.library.item.file.info",
    {
        "checksum_info": Opt(CHECKSUM_INFO),
        "name": STRING,
        "size": INTEGER,
        "cached": BOOLEAN,
        "version": STRING,
        "file_download_endpoint": Opt(STRING),
    },
)
ITEM_MODEL = Struct(
    "com.vmware.content.library.item_model",
    {
        "id": Opt(STRING),
        "library_id": Opt(STRING),
        "content_version": Opt(STRING),
        "creation_time": Opt(STRING),
        "description": Opt(STRING),
        "last_modified_time": Opt(STRING),
        "name": Opt(STRING),
        "cached": Opt(BOOLEAN),
        "size": Opt(INTEGER),
        "type": Opt(STRING),
    },
)
STORAGE_BACKING = Struct(
    "com.vmware.content.library.storage_backing",
    {
        "type": Enum("com.vmware.content.library.storage_backing.type", ("DATASTORE", "OTHER")),
        "datastore_id": Opt(STRING),
        "storage_uri": Opt(STRING),
    },
)
LIBRARY_MODEL = Struct(
    "com.vmware.content.library_model",
    {
        "id": Opt(STRING),
        "creation_time": Opt(STRING),
        "description": Opt(STRING),
        "name": Opt(STRING),
        "type": Opt(LIBRARY_TYPE),
        "storage_backings": Opt(Lst(STORAGE_BACKING)),
    },
)
CIS_SESSION_INFO = Struct(
    "com.vmware.cis.session.info",
    {"user": STRING, "created_time": STRING, "last_accessed_time": STRING},
)


def encode_error(error: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """A vAPI standard error value (``result.error`` of a JSON-RPC answer)."""
    return {
        "ERROR": {
            f"com.vmware.vapi.std.errors.{error}": {
                "messages": [encode(m, LOCALIZABLE_MESSAGE) for m in messages],
                "data": {"OPTIONAL": None},
                "error_type": {"OPTIONAL": error.upper()},
            }
        }
    }
