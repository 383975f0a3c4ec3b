"""Rendering at the edge: results become text, JSON, XML, JUnit or SARIF here, once.

The engine answers with message ids and their arguments (and the English
``default_message``, which is part of the seed's result); nothing in it knows
an output format or a language other than English.  After validation the
caller picks a :class:`Renderer` by name from the renderer registry and hands
it each input's outcome; the renderer localizes (:func:`localize`) and writes.

Renderers are contributed by plugins through the ``validator_renderers`` hook
(the core plugin contributes the built-in ones: :data:`BUILTIN`), so a new
output format is one class in one place::

    class CsvRenderer(Renderer):
        name = "csv"
        summary = "one line per problem"

        def result(self, input: str, result: ValidationResult, files: int) -> None:
            for e in localize(result, self.catalogs, self.locale).invalid_files:
                self.out.write(f"{input},{e.name},{e.error_message.id}\\n")

    @hookimpl
    def validator_renderers():
        return [CsvRenderer]

A server calls :func:`render_document` (or :func:`localize`) with the locale
of each request; no engine is built for a language.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, TextIO

from validator.results import (
    LocalizableMessage,
    ValidationError,
    ValidationResult,
    VapiError,
    _xml_attr,
    xml_text,
)

if TYPE_CHECKING:
    from validator.messages import Catalogs


class RenderOptions(NamedTuple):
    """Presentation choices of the caller (the CLI's ``--color`` and ``-q``)."""

    color: bool = False
    quiet: bool = False


#: No colour, nothing left out.
PLAIN = RenderOptions()


def localize_message(
    msg: LocalizableMessage, catalogs: Catalogs, locale: str | None
) -> LocalizableMessage:
    """The message rendered again from its id and arguments, ``localized`` in ``locale``."""
    if locale is None:
        return msg
    return catalogs.message(msg.id, msg.args, locale)


def localize(result: ValidationResult, catalogs: Catalogs, locale: str | None) -> ValidationResult:
    """``result`` with every message's ``localized`` filled in ``locale`` (unchanged for
    ``None``).  Used once per output, after validation."""
    if locale is None:
        return result

    def entries(items: Iterable[ValidationError]) -> tuple[ValidationError, ...]:
        return tuple(
            ValidationError(e.name, localize_message(e.error_message, catalogs, locale))
            for e in items
        )

    return ValidationResult(
        missing_files=result.missing_files,
        invalid_files=entries(result.invalid_files),
        warnings=entries(result.warnings),
        item_type=result.item_type,
    )


def localize_error(err: VapiError, catalogs: Catalogs, locale: str | None) -> VapiError:
    """A vAPI error with its messages localized in ``locale``."""
    if locale is None:
        return err
    return VapiError(err.error, [localize_message(m, catalogs, locale) for m in err.messages])


class Renderer:
    """One output format.  Subclasses set :attr:`name` (the ``--format`` value) and
    :attr:`summary`, and implement :meth:`result` (and :meth:`error`, :meth:`close`
    when they need them).

    One renderer object writes one run: :meth:`result` or :meth:`error` is called
    for each input in the order given (``several``: more than one input), then
    :meth:`close` once.  A format that is one document for the whole run
    collects in :meth:`result` and writes in :meth:`close`.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    #: The media type of what it writes (a server's ``Content-Type``).
    media_type: ClassVar[str] = "text/plain"

    def __init__(
        self,
        out: TextIO,
        *,
        catalogs: Catalogs,
        locale: str | None = None,
        several: bool = False,
        options: RenderOptions = PLAIN,
    ) -> None:
        self.out = out
        self.catalogs = catalogs
        self.locale = locale
        self.several = several
        self.options = options

    def text(self, message_id: str, *args: object) -> str:
        """A catalog message in the renderer's language."""
        return self.catalogs.message(message_id, args, self.locale).text()

    def result(self, input: str, result: ValidationResult, files: int) -> None:
        """One input's result (``files``: how many files its session held)."""
        raise NotImplementedError

    def error(self, input: str | None, err: VapiError) -> None:
        """An input that could not be validated (``input`` ``None``: the whole run)."""

    def close(self) -> None:
        """After the last input."""


# -- the built-in renderers -------------------------------------------------------


class TextRenderer(Renderer):
    """For people: one line per input, then one per problem (colour on request)."""

    name = "text"
    summary = "for people (default); coloured only on a terminal"

    def _c(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.options.color else text

    def result(self, input: str, result: ValidationResult, files: int) -> None:
        result = localize(result, self.catalogs, self.locale)
        item_type = result.item_type or "?"
        out, c = self.out, self._c
        if not result.has_errors:
            if not self.options.quiet:
                out.write(c(self.text("validator.core.cli.valid", input, item_type, files), "32"))
                out.write("\n")
        else:
            head = self.text(
                "validator.core.cli.invalid",
                input,
                item_type,
                len(result.missing_files),
                len(result.invalid_files),
            )
            out.write(c(head, "1;31") + "\n")
            for name in result.missing_files:
                out.write("  " + c(self.text("validator.core.cli.missing", name), "31") + "\n")
            for err in result.invalid_files:
                ident = c(f"[{err.error_message.id}]", "2")
                out.write(f"  {c(err.name, '1')}: {err.error_message.text()} {ident}\n")
        for warn in result.warnings:
            text = self.text(
                "validator.core.cli.warning", f"{warn.name}: {warn.error_message.text()}"
            )
            out.write("  " + c(text, "33") + "\n")

    def error(self, input: str | None, err: VapiError) -> None:
        return None  # the CLI says it on standard error, one line


class JsonRenderer(Renderer):
    """The seed's ``{"value": …}`` document; several inputs: one compact line each."""

    name = "json"
    summary = "the seed's {\"value\": …} document (several inputs: one line each)"
    media_type = "application/json"

    def _write(self, doc: Mapping[str, Any]) -> None:
        import json

        self.out.write(
            json.dumps(doc, indent=None if self.several else 4, ensure_ascii=False) + "\n"
        )

    def result(self, input: str, result: ValidationResult, files: int) -> None:
        from validator.results import result_document

        result = localize(result, self.catalogs, self.locale)
        self._write(result_document(result, input if self.several else None))

    def error(self, input: str | None, err: VapiError) -> None:
        body = localize_error(err, self.catalogs, self.locale).to_rest_dict()
        self._write(body if input is None or not self.several else {"input": input, **body})


class XmlRenderer(Renderer):
    """The seed's ``Validate-Result`` document; several inputs: one ``validator-results``."""

    name = "xml"
    summary = "the seed's Validate-Result document (several inputs: one validator-results)"
    media_type = "application/xml"

    def __init__(self, out: TextIO, **kwargs: Any) -> None:
        super().__init__(out, **kwargs)
        self.parts: list[str] = []

    def result(self, input: str, result: ValidationResult, files: int) -> None:
        from validator.results import result_to_xml

        result = localize(result, self.catalogs, self.locale)
        text = result_to_xml(
            result, warnings=True, input=input if self.several else None,
            declaration=not self.several,
        )  # fmt: skip
        if self.several:
            self.parts.append(text)
        else:
            self.out.write(text)

    def error(self, input: str | None, err: VapiError) -> None:
        from validator.results import vapi_error_to_xml

        err = localize_error(err, self.catalogs, self.locale)
        if input is None or not self.several:  # the run's own error, or the only input
            self.out.write(vapi_error_to_xml(err))
        else:
            self.parts.append(vapi_error_to_xml(err, input=input, declaration=False))

    def close(self) -> None:
        if self.several and self.parts:
            out = ['<?xml version="1.0" ?>', "<validator-results>"]
            for text in self.parts:
                out.extend("  " + line for line in text.splitlines())
            out.append("</validator-results>")
            self.out.write("\n".join(out) + "\n")
            self.parts.clear()


class JunitRenderer(Renderer):
    """JUnit XML for CI systems: one ``testcase`` per input, one ``failure`` per problem.

    A missing file is a failure (``type`` ``validator.core.missing``), an invalid
    file a failure whose ``type`` is the message id; an input that cannot be
    validated is an ``error`` (``type``: the vAPI error).  Warnings go to the
    test case's ``system-out``.  One ``testsuite`` named ``validator``.
    """

    name = "junit"
    summary = "JUnit XML: a testcase per input, a failure per problem (CI test reports)"
    media_type = "application/xml"

    def __init__(self, out: TextIO, **kwargs: Any) -> None:
        super().__init__(out, **kwargs)
        self.cases: list[str] = []
        self.failures = 0
        self.errors = 0

    def _case(self, input: str, classname: str, body: list[str]) -> None:
        head = f'    <testcase name="{_xml_attr(input)}" classname="{_xml_attr(classname)}"'
        if not body:
            self.cases.append(head + "/>")
            return
        self.cases.append(head + ">")
        self.cases.extend("      " + line for line in body)
        self.cases.append("    </testcase>")

    def result(self, input: str, result: ValidationResult, files: int) -> None:
        result = localize(result, self.catalogs, self.locale)
        body: list[str] = []
        for name in result.missing_files:
            text = self.text("validator.core.cli.missing", name)
            body.append(
                f'<failure type="validator.core.missing" message="{_xml_attr(text)}">'
                f"{xml_text(name)}</failure>"
            )
        for err in result.invalid_files:
            msg = err.error_message
            text = f"{err.name}: {msg.text()}"
            body.append(
                f'<failure type="{_xml_attr(msg.id)}" message="{_xml_attr(text)}">'
                f"{xml_text(text)} [{xml_text(msg.id)}]</failure>"
            )
        if result.warnings:
            lines = [
                self.text("validator.core.cli.warning", f"{w.name}: {w.error_message.text()}")
                for w in result.warnings
            ]
            body.append(f"<system-out>{xml_text(chr(10).join(lines))}</system-out>")
        self.failures += len(result.missing_files) + len(result.invalid_files)
        self._case(input, f"validator.{result.item_type or 'unknown'}", body)

    def error(self, input: str | None, err: VapiError) -> None:
        err = localize_error(err, self.catalogs, self.locale)
        text = "; ".join(m.text() for m in err.messages)
        self.errors += 1
        self._case(
            input if input is not None else "validator",
            "validator",
            [
                f'<error type="com.vmware.vapi.std.errors.{err.error}" '
                f'message="{_xml_attr(text)}">{xml_text(text)}</error>'
            ],
        )

    def close(self) -> None:
        tests = sum(1 for c in self.cases if c.startswith("    <testcase"))
        counts = f'tests="{tests}" failures="{self.failures}" errors="{self.errors}"'
        out = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<testsuites name="validator" {counts}>',
            f'  <testsuite name="validator" {counts} skipped="0">',
            *self.cases,
            "  </testsuite>",
            "</testsuites>",
        ]
        self.out.write("\n".join(out) + "\n")


#: A catalog template that names a line: ``… (line {1}) …``.  The argument in that
#: place is the problem's line in its file (SARIF ``region.startLine``).  Compiled on
#: first use (``re`` caches it): only the sarif format needs it.
_LINE = r"\bline \{(\d+)\}"

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"


class SarifRenderer(Renderer):
    """SARIF 2.1.0 for code scanning (GitHub, GitLab): each problem a ``result``.

    ``ruleId`` is the message id (every id used is a ``rule`` of the driver, its
    English template the rule's description); ``level`` ``error`` or
    ``warning``; the location is the problem's file — beside the input when the
    input is a descriptor or manifest, inside the folder when it is a folder,
    else the input itself (an archive or image, with the member's name as a
    logical location) — and its line where the message's English template
    says ``line {N}``.  An input that cannot be validated is a
    ``toolExecutionNotification`` of the run's invocation.
    """

    name = "sarif"
    summary = "SARIF 2.1.0: each problem a result on its file and line (code scanning)"
    media_type = "application/sarif+json"

    def __init__(self, out: TextIO, **kwargs: Any) -> None:
        super().__init__(out, **kwargs)
        self.rules: dict[str, int] = {}
        self.results: list[dict[str, Any]] = []
        self.notifications: list[dict[str, Any]] = []

    def _rule(self, message_id: str) -> int:
        return self.rules.setdefault(message_id, len(self.rules))

    def _line(self, msg: LocalizableMessage) -> int | None:
        template = self.catalogs.template(msg.id) or ""
        m = re.search(_LINE, template)
        if m is None:
            return None
        index = int(m.group(1))
        if index >= len(msg.args):
            return None
        try:
            line = int(msg.args[index])
        except ValueError:
            return None
        return line if line > 0 else None

    @staticmethod
    def _uri(path: str) -> str:
        from urllib.parse import quote

        return quote(path.replace(os.sep, "/"), safe="/:@!$&'()*+,;=-._~")

    def _location(self, input: str, name: str, line: int | None) -> dict[str, Any]:
        base = input
        member: str | None = None
        if input != "-" and os.path.isdir(input):
            base = os.path.join(input, name)
        elif input == "-":
            base, member = "-", name
        elif os.path.basename(input) != name:
            beside = os.path.join(os.path.dirname(input), name)
            if os.path.lexists(beside):
                base = beside
            else:
                member = name
        physical: dict[str, Any] = {"artifactLocation": {"uri": self._uri(base)}}
        if line is not None:
            physical["region"] = {"startLine": line}
        location: dict[str, Any] = {"physicalLocation": physical}
        if member is not None:
            location["logicalLocations"] = [{"name": member, "kind": "member"}]
        return location

    def _add(
        self, input: str, name: str, msg: LocalizableMessage, level: str, line: int | None
    ) -> None:
        self.results.append(
            {
                "ruleId": msg.id,
                "ruleIndex": self._rule(msg.id),
                "level": level,
                "message": {"text": f"{name}: {msg.text()}"},
                "locations": [self._location(input, name, line)],
            }
        )

    def result(self, input: str, result: ValidationResult, files: int) -> None:
        result = localize(result, self.catalogs, self.locale)
        for name in result.missing_files:
            msg = self.catalogs.message("validator.core.cli.missing", (name,), self.locale)
            self._add(input, name, msg, "error", None)
        for err in result.invalid_files:
            msg = err.error_message
            self._add(input, err.name, msg, "error", self._line(msg))
        for warn in result.warnings:
            msg = warn.error_message
            self._add(input, warn.name, msg, "warning", self._line(msg))

    def error(self, input: str | None, err: VapiError) -> None:
        err = localize_error(err, self.catalogs, self.locale)
        for msg in err.messages:
            note: dict[str, Any] = {
                "level": "error",
                "message": {"text": msg.text()},
                "descriptor": {"id": msg.id},
            }
            if input is not None:
                note["locations"] = [self._location(input, os.path.basename(input), None)]
            self.notifications.append(note)

    def close(self) -> None:
        import json

        from validator import __version__

        rules = [
            {
                "id": rule,
                "shortDescription": {"text": self.catalogs.template(rule) or rule},
            }
            for rule in self.rules
        ]
        run: dict[str, Any] = {
            "tool": {
                "driver": {
                    "name": "validator",
                    "version": __version__,
                    "rules": rules,
                }
            },
            "invocations": [
                {
                    "executionSuccessful": not self.notifications,
                    "toolExecutionNotifications": self.notifications,
                }
            ],
            "results": self.results,
        }
        if self.locale is not None:
            run["language"] = self.locale
        doc = {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}
        self.out.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


#: The renderers the core plugin contributes (``validator_renderers``), in listing order.
BUILTIN: tuple[type[Renderer], ...] = (
    TextRenderer,
    JsonRenderer,
    XmlRenderer,
    JunitRenderer,
    SarifRenderer,
)
BUILTIN_NAMES = tuple(r.name for r in BUILTIN)


class Outcome(NamedTuple):
    """One input as a renderer takes it: a result (and its session's file count) or an
    error."""

    input: str
    result: ValidationResult | None = None
    files: int = 0
    error: VapiError | None = None


def render_document(
    renderer: type[Renderer],
    outcomes: Iterable[Outcome],
    catalogs: Catalogs,
    locale: str | None = None,
    options: RenderOptions = PLAIN,
) -> str:
    """The whole output of ``renderer`` for ``outcomes``, as a string (for a server:
    one call per request, in that request's locale)."""
    items = list(outcomes)
    buf = io.StringIO()
    r = renderer(buf, catalogs=catalogs, locale=locale, several=len(items) > 1, options=options)
    for item in items:
        if item.result is not None:
            r.result(item.input, item.result, item.files)
        elif item.error is not None:
            r.error(item.input, item.error)
    r.close()
    return buf.getvalue()
