"""The result types of the seed API and their wire representations.

``ValidationResult``, ``ValidationError`` and ``LocalizableMessage`` mirror
``com.vmware.content.library.item.updatesession.file.validation_result``,
``…validation_error`` and ``com.vmware.vapi.std.localizable_message``.
:func:`result_to_json` and :func:`result_to_xml` produce exactly the
representations of ``shared/spec/seeds/003_*.txt``: the JSON ``{"value": …}``
wrapper with keys in the seed's (sorted) order, and the ``Validate-Result``
XML document with the seed's namespace and element names.

``localized`` (REFERENCE §3) is only written when a locale was asked for, so
that the default output is field for field the seed's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

FILE_NS = "http://vmware.com/content/library/item/updatesession/file"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
ERRORS_PREFIX = "com.vmware.vapi.std.errors."


@dataclass(frozen=True, slots=True)
class LocalizableMessage:
    """A message with a stable ``id``, English ``default_message`` and ``args``."""

    id: str
    default_message: str
    args: tuple[str, ...] = ()
    localized: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "args": list(self.args),
            "default_message": self.default_message,
            "id": self.id,
        }
        if self.localized is not None:
            data["localized"] = self.localized
        return data

    def text(self) -> str:
        """The text to show a person: the localized one when there is one."""
        return self.localized if self.localized is not None else self.default_message


@dataclass(frozen=True, slots=True)
class ValidationError:
    """One invalid file and why (``validation_error`` in the seed)."""

    name: str
    error_message: LocalizableMessage

    def to_dict(self) -> dict[str, Any]:
        return {"error_message": self.error_message.to_dict(), "name": self.name}


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """The answer of ``validate``.

    ``missing_files`` is a set in the API; it is kept sorted here so that the
    output is deterministic.  ``warnings`` are not part of the seed's wire
    format: they carry the preview warnings (for example certificate
    warnings, REFERENCE §3) for the CLI and for servers' ``preview_info``.
    """

    missing_files: tuple[str, ...] = ()
    invalid_files: tuple[ValidationError, ...] = ()
    warnings: tuple[ValidationError, ...] = ()
    item_type: str | None = None

    @property
    def has_errors(self) -> bool:
        return bool(self.missing_files or self.invalid_files)

    def to_dict(self) -> dict[str, Any]:
        """The unwrapped ``validation_result`` structure."""
        return {
            "has_errors": self.has_errors,
            "invalid_files": [e.to_dict() for e in self.invalid_files],
            "missing_files": list(self.missing_files),
        }


def result_to_json(result: ValidationResult, *, indent: int | None = 4) -> str:
    """The legacy REST representation: ``{"value": {…}}``."""
    import json

    return json.dumps({"value": result.to_dict()}, indent=indent, ensure_ascii=False)


def _xml_text(value: str) -> str:
    # xml.sax.saxutils.escape would do, but importing it pulls in urllib and
    # email (40 ms of start-up); these three replacements are all it does.
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _message_xml(msg: LocalizableMessage, pad: str) -> list[str]:
    lines = [f"{pad}<error_message>"]
    lines.append(f"{pad}  <default_message>{_xml_text(msg.default_message)}</default_message>")
    lines.append(f"{pad}  <id>{_xml_text(msg.id)}</id>")
    if msg.args:
        lines.append(f"{pad}  <args-array>")
        lines.extend(f"{pad}    <array-item>{_xml_text(a)}</array-item>" for a in msg.args)
        lines.append(f"{pad}  </args-array>")
    else:
        lines.append(f"{pad}  <args-array/>")
    if msg.localized is not None:
        lines.append(f"{pad}  <localized>{_xml_text(msg.localized)}</localized>")
    lines.append(f"{pad}</error_message>")
    return lines


def result_to_xml(result: ValidationResult) -> str:
    """The ``Validate-Result`` document of the seed."""
    out = [
        '<?xml version="1.0" ?>',
        f'<ns0:Validate-Result xmlns:ns0="{FILE_NS}" xmlns:xsi="{XSI_NS}">',
        "  <value>",
        f"    <has_errors>{'true' if result.has_errors else 'false'}</has_errors>",
    ]
    if result.missing_files:
        out.append("    <missing_files-array>")
        out.extend(f"      <array-item>{_xml_text(n)}</array-item>" for n in result.missing_files)
        out.append("    </missing_files-array>")
    else:
        out.append("    <missing_files-array/>")
    if result.invalid_files:
        out.append("    <invalid_files-array>")
        for err in result.invalid_files:
            out.append("      <array-item>")
            out.extend(_message_xml(err.error_message, "        "))
            out.append(f"        <name>{_xml_text(err.name)}</name>")
            out.append("      </array-item>")
        out.append("    </invalid_files-array>")
    else:
        out.append("    <invalid_files-array/>")
    out.append("  </value>")
    out.append("</ns0:Validate-Result>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------
# vAPI errors (REFERENCE §1): the engine raises these where the seed says the
# operation fails rather than returning a result.

_HTTP_STATUS = {
    "not_allowed_in_current_state": 400,
    "invalid_argument": 400,
    "already_exists": 400,
    "unsupported": 400,
    "resource_busy": 400,
    "unauthenticated": 401,
    "unauthorized": 403,
    "not_found": 404,
    "concurrent_change": 409,
    "internal_server_error": 500,
    "service_unavailable": 503,
    "timed_out": 504,
}


class VapiError(Exception):
    """A vAPI standard error with its localizable messages."""

    def __init__(self, error: str, messages: Sequence[LocalizableMessage]) -> None:
        if error not in _HTTP_STATUS:
            raise ValueError(f"unknown vAPI error type {error!r}")
        super().__init__("; ".join(m.text() for m in messages) or error)
        self.error = error
        self.messages = tuple(messages)

    @property
    def error_type(self) -> str:
        return self.error.upper()

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS[self.error]

    def to_rest_dict(self) -> dict[str, Any]:
        """The legacy ``/rest`` error body."""
        return {
            "type": ERRORS_PREFIX + self.error,
            "value": {
                "error_type": self.error_type,
                "messages": [m.to_dict() for m in self.messages],
            },
        }

    def to_api_dict(self) -> dict[str, Any]:
        """The current ``/api`` error body."""
        return {"error_type": self.error_type, "messages": [m.to_dict() for m in self.messages]}


class NotAllowedInCurrentState(VapiError):
    def __init__(self, messages: Iterable[LocalizableMessage]) -> None:
        super().__init__("not_allowed_in_current_state", list(messages))


@dataclass(slots=True)
class Problem:
    """One finding of a check before it becomes a :class:`ValidationError`.

    ``order`` keeps the result deterministic whatever order threads finish in.
    """

    name: str
    message_id: str
    args: tuple[str, ...]
    warning: bool = False
    order: tuple[Any, ...] = field(default=())
