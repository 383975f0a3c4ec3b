"""What each argument of the server's operations may be: the bounds, once.

The service checks arguments against these constants (with its own messages), and the
route table (:mod:`validator.server.routes`) describes them with the JSON Schemas below,
which the OpenAPI document shows. A bound changes here, in both at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from validator.server import vapi_types as vt

#: An identifier (library, item, update session): what the service makes and accepts.
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}"
#: A name, and a description or client message (characters; no NUL in either).
TEXT_MAX = 255
LONG_TEXT_MAX = 4096
#: An item type as sent (the registry's types are the only ones accepted).
TYPE_MAX = 64
CLIENT_TOKEN_MAX = 128
PROGRESS_MAX = 100
WARNING_BEHAVIOR_MAX = 100
WARNING_TYPE_MAX = 255
STORAGE_BACKINGS_MAX = 16
BACKING_TYPES = ("DATASTORE", "OTHER")
BACKING_TEXT_MAX = 1024
SOURCE_TYPES = ("PUSH", "PULL", "NONE")
CHECKSUM_PATTERN = r"[0-9a-fA-F]{32,128}"
#: An upload endpoint's token (the last segment of ``/cls/data/{token}``).
UPLOAD_TOKEN_PATTERN = r"[A-Za-z0-9_-]+"
UPLOAD_TOKEN_MAX = 128
#: ``validator.session.is_plain_name``: bytes of UTF-8.
FILE_NAME_MAX = 255

# -- the same bounds as JSON Schema ------------------------------------------------------
ID: dict[str, Any] = {"type": "string", "pattern": f"^{ID_PATTERN}$"}
_NO_NUL = "^[^\\u0000]*$"
TEXT: dict[str, Any] = {"type": "string", "maxLength": TEXT_MAX, "pattern": _NO_NUL}
LONG_TEXT: dict[str, Any] = {"type": "string", "maxLength": LONG_TEXT_MAX, "pattern": _NO_NUL}
#: ``validator.session.is_plain_name``: no folder part, no control character, not ``.``/``..``.
FILE_NAME: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": FILE_NAME_MAX,
    "pattern": "^[^/\\\\\\u0000-\\u001f\\u007f]+$",
    "not": {"enum": [".", ".."]},
    "description": f"A plain file name: at most {FILE_NAME_MAX} bytes of UTF-8, no / or \\, "
    "no control character, not . or ..",
}
CLIENT_TOKEN: dict[str, Any] = {"type": "string", "maxLength": CLIENT_TOKEN_MAX}
PROGRESS: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": PROGRESS_MAX}
UPLOAD_TOKEN: dict[str, Any] = {
    "type": "string",
    "pattern": f"^{UPLOAD_TOKEN_PATTERN[:-1]}{{1,{UPLOAD_TOKEN_MAX}}}$",
}
WARNING_BEHAVIOR: dict[str, Any] = {
    "type": "array",
    "maxItems": WARNING_BEHAVIOR_MAX,
    "items": {
        "type": "object",
        "required": ["type", "ignored"],
        "properties": {
            "type": {
                "type": "string",
                "maxLength": WARNING_TYPE_MAX,
                "description": "A WarningType (SELF_SIGNED_CERTIFICATE, …) or a message id",
            },
            "ignored": {"type": "boolean"},
        },
    },
}


def optional(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` or ``null``: an optional vAPI field may be sent as null (unset)."""
    out = dict(schema)
    if isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


def spec(required: Iterable[str], **properties: Mapping[str, Any]) -> dict[str, Any]:
    """A structure's schema: its optional fields may be null."""
    required = list(required)
    out: dict[str, Any] = {
        "type": "object",
        "properties": {k: v if k in required else optional(v) for k, v in properties.items()},
    }
    if required:
        out["required"] = required
    return out


def _backing() -> dict[str, Any]:
    out = spec(
        ("type",),
        type={"type": "string", "enum": list(BACKING_TYPES)},
        datastore_id={"type": "string", "maxLength": BACKING_TEXT_MAX},
        storage_uri={"type": "string", "maxLength": BACKING_TEXT_MAX},
    )
    out["additionalProperties"] = False
    return out


LIBRARY_SPEC = spec(
    (),
    name=TEXT,
    description=LONG_TEXT,
    storage_backings={"type": "array", "maxItems": STORAGE_BACKINGS_MAX, "items": _backing()},
)
SESSION_SPEC = spec(("library_item_id",), library_item_id=ID, warning_behavior=WARNING_BEHAVIOR)
UPDATE_SPEC = spec((), warning_behavior=WARNING_BEHAVIOR, client_progress=PROGRESS)


def item_spec(item_types: Iterable[str]) -> dict[str, Any]:
    """An item's create spec: its type is one of the server's item types."""
    return spec(
        ("library_id", "name", "type"),
        library_id=ID,
        name=TEXT,
        type={"type": "string", "enum": sorted(item_types)},
        description=LONG_TEXT,
    )


def file_spec(max_upload_bytes: int) -> dict[str, Any]:
    """A session file's add spec: its declared size is at most an upload's."""
    return spec(
        ("name",),
        name=FILE_NAME,
        source_type={
            "type": "string",
            "enum": list(SOURCE_TYPES),
            "description": "PUSH (the default) only: PULL and NONE are unsupported",
        },
        size={"type": "integer", "minimum": 0, "maximum": max_upload_bytes},
        checksum_info=spec(
            ("checksum",),
            algorithm={"type": "string", "enum": list(vt.CHECKSUM_ALGORITHM.values)},
            checksum={"type": "string", "pattern": f"^{CHECKSUM_PATTERN}$"},
        ),
    )
