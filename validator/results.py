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

Beside the seed's ``value`` (never inside it), the CLI adds what the seed
has no field for: ``warnings`` (preview warnings, the shape of
``invalid_files`` entries) when there are any, and ``input`` (which input a
document belongs to) when several are validated at once; vAPI errors are
written as the server writes them (:meth:`VapiError.to_rest_dict`,
:func:`vapi_error_to_xml`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

FILE_NS = "http://vmware.com/content/library/item/updatesession/file"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
ERRORS_PREFIX = "com.vmware.vapi.std.errors."


# The value types are NamedTuples: immutable, compared by value, picklable (a batch
# sends results between processes) and changed with ``_replace``. Not frozen
# dataclasses: on Python 3.11 defining one costs 0.6-1 ms of every run's start-up
# (its methods are compiled from source), a NamedTuple a tenth of that
# (bench/startup.py, docs/performance.md).


class LocalizableMessage(NamedTuple):
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


class ValidationError(NamedTuple):
    """One invalid file and why (``validation_error`` in the seed)."""

    name: str
    error_message: LocalizableMessage

    def to_dict(self) -> dict[str, Any]:
        return {"error_message": self.error_message.to_dict(), "name": self.name}


class ValidationResult(NamedTuple):
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


def result_document(result: ValidationResult, input: str | None = None) -> dict[str, Any]:
    """The CLI's JSON document: the seed's ``{"value": {…}}``, with ``input`` first when
    given and ``warnings`` (``invalid_files``-shaped entries) when there are any."""
    doc: dict[str, Any] = {} if input is None else {"input": input}
    doc["value"] = result.to_dict()
    if result.warnings:
        doc["warnings"] = [w.to_dict() for w in result.warnings]
    return doc


#: What XML 1.0 cannot hold (most C0 controls, surrogates, U+FFFE/U+FFFF). Written as the
#: characters refused rather than the complement of those allowed: the same set (a ``str``
#: holds nothing above U+10FFFF), but compiling the complement's ranges took 7-9 ms of
#: every run's start-up. Compiled by ``re`` when first needed (it keeps it): a run whose
#: output is not XML, or holds only printable text, never pays for it.
_NOT_XML = "[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]"


def xml_text(value: str) -> str:
    """``value`` as XML character data; what XML 1.0 cannot hold is shown escaped (``\\x01``)."""
    # xml.sax.saxutils.escape would do, but importing it pulls in urllib and
    # email (40 ms of start-up); these replacements are all it does.  What XML
    # 1.0 cannot hold at all (a control character in a name) is shown escaped,
    # so that every document stays well-formed.
    text = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if text.isprintable():  # nothing XML refuses is printable: the usual case
        return text
    return re.sub(_NOT_XML, _xml_escape_char, text)


def _xml_escape_char(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 256 else f"\\u{code:04x}"


def _xml_attr(value: str) -> str:
    return xml_text(value).replace('"', "&quot;")


def _message_xml(msg: LocalizableMessage, pad: str) -> list[str]:
    lines = [f"{pad}<error_message>"]
    lines.append(f"{pad}  <default_message>{xml_text(msg.default_message)}</default_message>")
    lines.append(f"{pad}  <id>{xml_text(msg.id)}</id>")
    if msg.args:
        lines.append(f"{pad}  <args-array>")
        lines.extend(f"{pad}    <array-item>{xml_text(a)}</array-item>" for a in msg.args)
        lines.append(f"{pad}  </args-array>")
    else:
        lines.append(f"{pad}  <args-array/>")
    if msg.localized is not None:
        lines.append(f"{pad}  <localized>{xml_text(msg.localized)}</localized>")
    lines.append(f"{pad}</error_message>")
    return lines


def _error_items(errors: Iterable[ValidationError], pad: str) -> list[str]:
    out: list[str] = []
    for err in errors:
        out.append(f"{pad}<array-item>")
        out.extend(_message_xml(err.error_message, pad + "  "))
        out.append(f"{pad}  <name>{xml_text(err.name)}</name>")
        out.append(f"{pad}</array-item>")
    return out


def result_to_xml(
    result: ValidationResult,
    *,
    warnings: bool = False,
    input: str | None = None,
    declaration: bool = True,
) -> str:
    """The ``Validate-Result`` document of the seed.

    ``warnings``: a ``warnings-array`` after ``value`` when there are any;
    ``input``: an ``input`` attribute on the root; ``declaration=False``: the
    element alone, to go inside another document.
    """
    attr = "" if input is None else f' input="{_xml_attr(input)}"'
    out = [
        '<?xml version="1.0" ?>',
        f'<ns0:Validate-Result xmlns:ns0="{FILE_NS}" xmlns:xsi="{XSI_NS}"{attr}>',
        "  <value>",
        f"    <has_errors>{'true' if result.has_errors else 'false'}</has_errors>",
    ]
    if result.missing_files:
        out.append("    <missing_files-array>")
        out.extend(f"      <array-item>{xml_text(n)}</array-item>" for n in result.missing_files)
        out.append("    </missing_files-array>")
    else:
        out.append("    <missing_files-array/>")
    if result.invalid_files:
        out.append("    <invalid_files-array>")
        out.extend(_error_items(result.invalid_files, "      "))
        out.append("    </invalid_files-array>")
    else:
        out.append("    <invalid_files-array/>")
    out.append("  </value>")
    if warnings and result.warnings:
        out.append("  <warnings-array>")
        out.extend(_error_items(result.warnings, "    "))
        out.append("  </warnings-array>")
    out.append("</ns0:Validate-Result>")
    return "\n".join(out[0 if declaration else 1 :]) + "\n"


ERRORS_NS = "http://vmware.com/vapi/std/errors"


def vapi_error_to_xml(
    err: VapiError, *, input: str | None = None, declaration: bool = True
) -> str:
    """A vAPI error as the server writes it in XML: an ``Error`` document in namespace
    ``http://vmware.com/vapi/std/errors`` holding the ``/rest`` body (``type``,
    ``value`` with ``error_type`` and ``messages-array``)."""
    attr = "" if input is None else f' input="{_xml_attr(input)}"'
    out = [
        '<?xml version="1.0" ?>',
        f'<ns0:Error xmlns:ns0="{ERRORS_NS}" xmlns:xsi="{XSI_NS}"{attr}>',
        f"  <type>{ERRORS_PREFIX}{err.error}</type>",
        "  <value>",
        f"    <error_type>{err.error_type}</error_type>",
    ]
    if err.messages:
        out.append("    <messages-array>")
        for msg in err.messages:
            out.append("      <array-item>")
            out.extend(_message_xml(msg, "      ")[1:-1])
            out.append("      </array-item>")
        out.append("    </messages-array>")
    else:
        out.append("    <messages-array/>")
    out.append("  </value>")
    out.append("</ns0:Error>")
    return "\n".join(out[0 if declaration else 1 :]) + "\n"


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


class Finding(NamedTuple):
    """One thing a check reported (an error or a ``warning``), by message id and
    arguments, before it becomes a :class:`ValidationError` of the result.

    ``order`` keeps the result deterministic whatever order threads finish in.
    (The OVF adapter's ``(message id, args)`` pairs are not findings: they name
    no file yet.)
    """

    name: str
    message_id: str
    args: tuple[str, ...]
    warning: bool = False
    order: tuple[Any, ...] = ()


#: The former name of :class:`Finding` (``Reporter.problems`` holds findings).
Problem = Finding
