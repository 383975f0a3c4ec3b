"""Command line: ``validator PATH…`` (or ``python -m validator``), ``validator plugins``, ….

Exit status: 0 every input is valid, 1 some input has errors (a damaged
archive included: it is a finding about the item), 2 usage error, an input
that cannot be validated at all (no such path, unknown type, not received)
or a plugin that cannot be loaded.  With ``--format json``/``xml`` every input
gets a document, a vAPI error body when it cannot be validated (README,
"Output formats").  Imports are lazy: ``--help`` and small bundles start fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from validator.engine import Engine
    from validator.registry import Registry
    from validator.results import LocalizableMessage, ValidationResult, VapiError
    from validator.session import Session, SessionError

EXIT_VALID, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
COMMANDS = ("plugins", "hooks", "limits", "serve", "batch")

DESCRIPTION = """\
Validate content-library items offline, as the update session's `validate`
operation would: each PATH is a bundle folder, an OVF descriptor (.ovf) with
the files it references beside it, an archive or image a plugin reads (.ova,
.iso), or a session manifest (.yaml/.yml/.json, see docs/session-manifest.md).

other commands:
  validator plugins [--format text|json]   list plugins: name, version, item types, hooks
  validator hooks                          print the hook reference
  validator limits                         list resource limits and their defaults
  validator batch CATALOG                  validate a folder, glob or list of inputs
                                           (JSON Lines; see `validator batch --help`)

A PATH may be a URL (https://…, s3://…, file://…; the `remote` extra): it is
read in place by range requests, never downloaded whole.
"""

EPILOG = """\
exit status: 0 all inputs valid, 1 some input has errors (a damaged archive,
cut short or not a tar, too), 2 usage error, an input that cannot be validated
(no such path, unknown type, not received) or a plugin that cannot be loaded.
json/xml: a document for every input (a vAPI error body when it cannot be
validated); several inputs: each says which input it is.

environment: VALIDATOR_LOAD_PLUGINS=a,b loads only these third-party plugins
(empty: none); a plugin that fails to load stops the run unless left out of it.
NO_COLOR disables colour; LC_ALL/LC_MESSAGES/LANG choose the language of
`localized` messages when --locale is not given.
"""


class _Colors:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text


def _use_color(choice: str, stream: TextIO) -> bool:
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    return stream.isatty() and os.environ.get("TERM") != "dumb"


def _parser() -> argparse.ArgumentParser:
    from validator import __version__

    p = argparse.ArgumentParser(
        prog="validator",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="inputs to validate ('-': stdin)")
    p.add_argument(
        "-f",
        "--format",
        choices=("text", "json", "xml"),
        default="text",
        help="text for people (default); json/xml: the seed's representations "
        "(several inputs: json one line per input, xml one document; each names its input)",
    )
    p.add_argument(
        "-t",
        "--type",
        dest="item_type",
        metavar="TYPE",
        help="item type to validate as (default: detected)",
    )
    p.add_argument(
        "-l",
        "--locale",
        metavar="LOCALE",
        help="fill `localized` in this language (en, de, fr, ja)",
    )
    p.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="change a resource limit (see `validator limits`)",
    )
    p.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option for plugins (for example ovf.trust_store=ca.pem); "
        "unknown keys are refused",
    )
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour text output (default: on a terminal unless NO_COLOR is set)",
    )
    p.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="show bytes read and rate on standard error (default: on a terminal)",
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", help="text format: print nothing for valid inputs"
    )
    p.add_argument("--version", action="version", version=f"validator {__version__}")
    return p


class _ProgressLine:
    """Bytes read and rate on standard error, refreshed twice a second, on a terminal only."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.total = 0
        self.start = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._shown = False
        self._last = -1

    def __call__(self, n: int) -> None:
        with self._lock:
            self.total += n

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            elapsed = time.monotonic() - self.start
            if elapsed < 1.0:
                continue
            with self._lock:
                if self.total == self._last:
                    continue  # nothing new (and never over a result just printed)
                self._last = self.total
                mib = self.total / (1 << 20)
                self.stream.write(f"\r{mib:,.0f} MiB read, {mib / elapsed:,.0f} MiB/s ")
                self.stream.flush()
                self._shown = True

    def clear(self) -> None:
        """Erase the line before a result is printed, so the two never share a line."""
        with self._lock:
            if self._shown:
                self.stream.write("\r\033[K")
                self.stream.flush()
                self._shown = False
            self._last = self.total

    def __enter__(self) -> _ProgressLine:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.clear()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] in COMMANDS:
            return _command(args[0], args[1:])
        return _validate(args)
    except KeyboardInterrupt:
        print("validator: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_USAGE


def _registry() -> Registry:
    from validator.registry import default_registry

    return default_registry()


def _report_problems(reg: Registry, locale: str | None) -> None:
    """Registry problems that are not load errors (those stop a run before it starts)."""
    for message_id, margs in reg.problems:
        if (message_id, margs) in reg.load_errors:
            continue
        text = reg.catalogs.message(message_id, margs, locale).text()
        print(f"validator: {text}", file=sys.stderr)


class _Output:
    """Writes each input's document in the chosen format.

    ``json``: one document per input (indented for a single input, one compact
    line each for several, with an ``input`` key); ``xml``: the document of a
    single input, or one ``validator-results`` document holding every input's
    root element (with an ``input`` attribute) for several.
    """

    def __init__(self, fmt: str, several: bool) -> None:
        self.fmt = fmt
        self.several = several
        self.xml: list[str] = []

    def result(self, raw: str, result: ValidationResult) -> None:
        if self.fmt == "json":
            import json

            from validator.results import result_document

            doc = result_document(result, raw if self.several else None)
            print(json.dumps(doc, indent=None if self.several else 4, ensure_ascii=False))
        elif self.fmt == "xml":
            from validator.results import result_to_xml

            text = result_to_xml(
                result, warnings=True, input=raw if self.several else None,
                declaration=not self.several,
            )  # fmt: skip
            self._xml(text)

    def error(self, raw: str | None, err: VapiError) -> None:
        if self.fmt == "json":
            import json

            body = err.to_rest_dict()
            doc = body if raw is None or not self.several else {"input": raw, **body}
            print(json.dumps(doc, indent=None if self.several else 4, ensure_ascii=False))
        elif self.fmt == "xml":
            from validator.results import vapi_error_to_xml

            if raw is None or not self.several:  # the run's own error, or the only input
                sys.stdout.write(vapi_error_to_xml(err))
            else:
                self.xml.append(vapi_error_to_xml(err, input=raw, declaration=False))

    def _xml(self, text: str) -> None:
        if self.several:
            self.xml.append(text)
        else:
            sys.stdout.write(text)

    def close(self) -> None:
        if self.fmt == "xml" and self.several:
            out = ['<?xml version="1.0" ?>', "<validator-results>"]
            for text in self.xml:
                out.extend("  " + line for line in text.splitlines())
            out.append("</validator-results>")
            sys.stdout.write("\n".join(out) + "\n")
            self.xml.clear()


def _load_errors(reg: Registry, locale: str | None, out: _Output) -> int:
    """A plugin that cannot be used stops the run (one line each, exit status 2)."""
    from validator.results import VapiError

    messages = [reg.catalogs.message(i, a, locale) for i, a in reg.load_errors]
    for m in messages:
        print(f"validator: {m.text()}", file=sys.stderr)
    out.error(None, VapiError("internal_server_error", messages))
    _report_problems(reg, locale)
    return EXIT_USAGE


def _validate(argv: list[str]) -> int:
    opts = _parser().parse_args(argv)
    from validator.limits import Limits
    from validator.messages import locale_from_environment, normalize_locale

    limits = Limits()
    for assignment in opts.limit:
        try:
            limits = limits.with_assignment(assignment)
        except ValueError as exc:
            print(f"validator: {exc}", file=sys.stderr)
            return EXIT_USAGE
    locale = normalize_locale(opts.locale) if opts.locale else locale_from_environment()
    if opts.locale and locale is None:
        locale = "en"

    from validator.engine import Engine

    reg = _registry()
    out = _Output(opts.format, len(opts.paths) > 1)
    if reg.load_errors:
        return _load_errors(reg, locale, out)
    options: dict[str, str] = {}
    for assignment in opts.option:
        key, sep, value = assignment.partition("=")
        if not sep or not key.strip():
            text = reg.catalogs.message("validator.core.cli.bad_option", (assignment,), locale)
            print(f"validator: {text.text()}", file=sys.stderr)
            return EXIT_USAGE
        options[key.strip()] = value
    if options:
        known = reg.option_keys()
        for key in options:
            if key not in known:
                shown = ", ".join(sorted(known)) or "-"
                text = reg.catalogs.message(
                    "validator.core.cli.unknown_option", (key, shown), locale
                )
                print(f"validator: {text.text()}", file=sys.stderr)
                return EXIT_USAGE
    progress = None
    want_progress = opts.progress == "always" or (opts.progress == "auto" and sys.stderr.isatty())
    if want_progress:
        progress = _ProgressLine(sys.stderr)
    engine = Engine(reg, limits=limits, locale=locale, progress=progress, options=options)
    colors = _Colors(_use_color(opts.color, sys.stdout))
    status = EXIT_VALID
    if progress is not None:
        progress.__enter__()
    try:
        for raw in opts.paths:
            status = max(status, _validate_one(engine, raw, opts, colors, out))
    finally:
        if progress is not None:
            progress.__exit__(None, None, None)
        out.close()
        _report_problems(reg, locale)
    return status


def _pause_progress(engine: Engine) -> None:
    clear = getattr(engine.progress, "clear", None)
    if clear is not None:
        clear()


def _input_error(raw: str, exc: SessionError, engine: Engine) -> VapiError:
    """A input that cannot be validated, as a vAPI error: ``not_found`` when it does not
    exist, ``invalid_argument`` otherwise."""
    from validator.results import VapiError

    missing = raw != "-" and not os.path.lexists(raw)
    message = engine.message(exc.message_id, exc.args_)
    return VapiError("not_found" if missing else "invalid_argument", [message])


def _validate_one(
    engine: Engine, raw: str, opts: argparse.Namespace, colors: _Colors, out: _Output
) -> int:
    from validator.results import VapiError
    from validator.session import SessionError

    msg = engine.message
    try:
        session = open_input(engine, raw)
        result = engine.validate(session, opts.item_type)
    except SessionError as exc:
        _pause_progress(engine)
        print(f"validator: {msg(exc.message_id, exc.args_).text()}", file=sys.stderr)
        out.error(raw, _input_error(raw, exc, engine))
        return EXIT_USAGE
    except VapiError as exc:
        _pause_progress(engine)
        reasons = "; ".join(m.text() for m in exc.messages)
        print(
            f"validator: {msg('validator.core.cli.not_allowed', (raw, reasons)).text()}",
            file=sys.stderr,
        )
        out.error(raw, exc)
        return EXIT_USAGE
    _pause_progress(engine)
    if opts.format == "text":
        _emit_text(engine, raw, result, opts, colors, len(session.files))
    else:
        out.result(raw, result)
    return EXIT_INVALID if result.has_errors else EXIT_VALID


def open_input(engine: Engine, raw: str) -> Session:
    """A local path, or a URL (:mod:`validator.remote`, imported only for one)."""
    if "://" in raw:
        from validator.remote import is_url, local_path, open_url

        local = local_path(raw)
        if local is not None:
            return engine.open(Path(local))
        if is_url(raw):
            return open_url(engine, raw)
    return engine.open(Path(raw))


def _emit_text(
    engine: Engine,
    raw: str,
    result: ValidationResult,
    opts: argparse.Namespace,
    colors: _Colors,
    nfiles: int,
) -> None:
    msg = engine.message
    kind = result.item_type or "?"
    out = sys.stdout
    if not result.has_errors:
        if not opts.quiet:
            out.write(colors(msg("validator.core.cli.valid", (raw, kind, nfiles)).text(), "32"))
            out.write("\n")
    else:
        head = msg(
            "validator.core.cli.invalid",
            (raw, kind, len(result.missing_files), len(result.invalid_files)),
        ).text()
        out.write(colors(head, "1;31") + "\n")
        for name in result.missing_files:
            out.write("  " + colors(msg("validator.core.cli.missing", (name,)).text(), "31") + "\n")
        for err in result.invalid_files:
            ident = colors(f"[{err.error_message.id}]", "2")
            out.write(f"  {colors(err.name, '1')}: {err.error_message.text()} {ident}\n")
    for warn in result.warnings:
        text = msg("validator.core.cli.warning", (f"{warn.name}: {warn.error_message.text()}",))
        out.write("  " + colors(text.text(), "33") + "\n")


# -- other commands -----------------------------------------------------------


def _command(name: str, argv: list[str]) -> int:
    if name == "plugins":
        return _plugins(argv)
    if name == "hooks":
        return _hooks(argv)
    if name == "limits":
        return _limits(argv)
    if name == "serve":
        from validator.server import cli_main

        return cli_main(argv)
    if name == "batch":
        from validator.batch import main as batch_main

        return batch_main(argv)
    return EXIT_USAGE


def _plugins(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="validator plugins",
        description="List plugins (like `datasette plugins`), and those that failed to load.",
    )
    p.add_argument("-f", "--format", choices=("text", "json"), default="text")
    opts = p.parse_args(argv)
    reg = _registry()
    infos = reg.plugin_infos()
    # Load errors by plugin name (args[0]); a plugin that is not loaded gets an entry too.
    errors: dict[str, list[LocalizableMessage]] = {}
    for message_id, margs in reg.load_errors:
        errors.setdefault(margs[0], []).append(reg.catalogs.message(message_id, margs))
    loaded = {i.name for i in infos}
    failed = sorted(n for n in errors if n not in loaded)
    if opts.format == "json":
        import json

        entries = [
            {
                "name": i.name,
                "version": i.version,
                "builtin": i.builtin,
                "item_types": list(i.item_types),
                "hooks": list(i.hooks),
                "loaded": True,
                "errors": [m.to_dict() for m in errors.get(i.name, [])],
            }
            for i in infos
        ]
        entries += [
            {
                "name": name,
                "version": "",
                "builtin": False,
                "item_types": [],
                "hooks": [],
                "loaded": False,
                "errors": [m.to_dict() for m in errors[name]],
            }
            for name in failed
        ]
        print(json.dumps(entries, indent=2, ensure_ascii=False))
    else:
        for i in infos:
            origin = "built-in" if i.builtin else "third-party"
            types = ", ".join(i.item_types) or "-"
            print(f"{i.name} {i.version} ({origin})")
            print(f"  item types: {types}")
            print(f"  hooks: {', '.join(i.hooks)}")
            for m in errors.get(i.name, []):
                print(f"  error: {m.text()}")
        for name in failed:
            print(f"{name} (not loaded)")
            for m in errors[name]:
                print(f"  error: {m.text()}")
    _report_problems(reg, None)
    return EXIT_VALID


def _hooks(argv: list[str]) -> int:
    argparse.ArgumentParser(
        prog="validator hooks", description="Print the reference of every hook."
    ).parse_args(argv)
    import inspect

    from validator import hookspecs

    print(inspect.cleandoc(hookspecs.__doc__ or ""))
    for name in sorted(n for n in dir(hookspecs) if n.startswith("validator_")):
        fn = getattr(hookspecs, name)
        print(f"\n{name}{inspect.signature(fn)}")
        print("    " + inspect.cleandoc(fn.__doc__ or "").replace("\n", "\n    "))
    return EXIT_VALID


def _limits(argv: list[str]) -> int:
    argparse.ArgumentParser(
        prog="validator limits", description="List resource limits and defaults."
    ).parse_args(argv)
    from validator.limits import Limits

    for name, default in Limits.defaults().items():
        print(f"{name}={default}")
    return EXIT_VALID
