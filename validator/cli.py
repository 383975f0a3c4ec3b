"""Command line: ``validator PATH…`` (or ``python -m validator``), ``validator plugins``, ….

Exit status: 0 every input is valid, 1 some input has errors, 2 usage error
or an input that cannot be read or validated (not received, unknown type).
Imports are lazy: ``--help`` and small bundles start fast.
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
    from validator.results import ValidationResult

EXIT_VALID, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
COMMANDS = ("plugins", "hooks", "limits", "serve", "info")

DESCRIPTION = """\
Validate content-library items offline, as the update session's `validate`
operation would: each PATH is a bundle folder, an OVF descriptor (.ovf) with
the files it references beside it, an archive or image a plugin reads (.ova,
.iso), or a session manifest (.yaml/.yml/.json, see docs/session-manifest.md).

other commands:
  validator plugins [--format text|json]   list plugins: name, version, item types, hooks
  validator hooks                          print the hook reference
  validator limits                         list resource limits and their defaults
  validator info PATH [--format text|json] describe an item from its metadata (a disk image)
"""

EPILOG = """\
exit status: 0 all inputs valid, 1 some input has errors, 2 usage error or an
input that cannot be read or validated.

environment: VALIDATOR_LOAD_PLUGINS=a,b loads only these third-party plugins
(empty: none); NO_COLOR disables colour; LC_ALL/LC_MESSAGES/LANG choose the
language of `localized` messages when --locale is not given.
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
        "(json: one document per line when several inputs are given)",
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
        help="an option for plugins (for example ovf.trust_store=ca.pem)",
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
    for message_id, margs in reg.problems:
        text = reg.catalogs.message(message_id, margs, locale).text()
        print(f"validator: {text}", file=sys.stderr)


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
    options: dict[str, str] = {}
    for assignment in opts.option:
        key, sep, value = assignment.partition("=")
        if not sep or not key:
            print(f"validator: --option needs KEY=VALUE, got {assignment!r}", file=sys.stderr)
            return EXIT_USAGE
        options[key.strip()] = value
    locale = normalize_locale(opts.locale) if opts.locale else locale_from_environment()
    if opts.locale and locale is None:
        locale = "en"

    from validator.engine import Engine

    reg = _registry()
    progress = None
    want_progress = opts.progress == "always" or (opts.progress == "auto" and sys.stderr.isatty())
    if want_progress:
        progress = _ProgressLine(sys.stderr)
    engine = Engine(reg, limits=limits, locale=locale, progress=progress, options=options)
    colors = _Colors(_use_color(opts.color, sys.stdout))
    status = EXIT_VALID
    several = len(opts.paths) > 1
    if progress is not None:
        progress.__enter__()
    try:
        for raw in opts.paths:
            status = max(status, _validate_one(engine, raw, opts, colors, several))
    finally:
        if progress is not None:
            progress.__exit__(None, None, None)
        _report_problems(reg, locale)
    return status


def _pause_progress(engine: Engine) -> None:
    clear = getattr(engine.progress, "clear", None)
    if clear is not None:
        clear()


def _validate_one(
    engine: Engine, raw: str, opts: argparse.Namespace, colors: _Colors, several: bool
) -> int:
    from validator.results import VapiError
    from validator.session import SessionError

    msg = engine.message
    try:
        session = engine.open(Path(raw))
        result = engine.validate(session, opts.item_type)
    except SessionError as exc:
        _pause_progress(engine)
        print(f"validator: {msg(exc.message_id, exc.args_).text()}", file=sys.stderr)
        return EXIT_USAGE
    except VapiError as exc:
        _pause_progress(engine)
        reasons = "; ".join(m.text() for m in exc.messages)
        print(
            f"validator: {msg('validator.core.cli.not_allowed', (raw, reasons)).text()}",
            file=sys.stderr,
        )
        if opts.format == "json":
            import json

            print(json.dumps(exc.to_rest_dict(), indent=None if several else 4, ensure_ascii=False))
        return EXIT_USAGE
    _pause_progress(engine)
    _emit(engine, raw, result, opts, colors, several, len(session.files))
    return EXIT_INVALID if result.has_errors else EXIT_VALID


def _emit(
    engine: Engine,
    raw: str,
    result: ValidationResult,
    opts: argparse.Namespace,
    colors: _Colors,
    several: bool,
    nfiles: int,
) -> None:
    from validator.results import result_to_json, result_to_xml

    if opts.format == "json":
        print(result_to_json(result, indent=None if several else 4))
        return
    if opts.format == "xml":
        sys.stdout.write(result_to_xml(result))
        return
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
    if name == "info":
        return _info(argv)
    return EXIT_USAGE


def _plugins(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="validator plugins", description="List loaded plugins (like `datasette plugins`)."
    )
    p.add_argument("-f", "--format", choices=("text", "json"), default="text")
    opts = p.parse_args(argv)
    reg = _registry()
    infos = reg.plugin_infos()
    if opts.format == "json":
        import json

        print(
            json.dumps(
                [
                    {
                        "name": i.name,
                        "version": i.version,
                        "builtin": i.builtin,
                        "item_types": list(i.item_types),
                        "hooks": list(i.hooks),
                    }
                    for i in infos
                ],
                indent=2,
            )
        )
    else:
        for i in infos:
            origin = "built-in" if i.builtin else "third-party"
            types = ", ".join(i.item_types) or "-"
            print(f"{i.name} {i.version} ({origin})")
            print(f"  item types: {types}")
            print(f"  hooks: {', '.join(i.hooks)}")
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


def _info(argv: list[str]) -> int:
    """``validator info PATH``: what the item type's ``validator_describe`` hook says."""
    p = argparse.ArgumentParser(
        prog="validator info", description="Describe an item from its metadata (a disk image)."
    )
    p.add_argument("path", metavar="PATH")
    p.add_argument("-f", "--format", choices=("text", "json"), default="text")
    p.add_argument("-t", "--type", dest="item_type", metavar="TYPE")
    opts = p.parse_args(argv)
    from validator.checks import CheckContext
    from validator.engine import Engine
    from validator.session import SessionError

    engine = Engine(_registry())
    try:
        session = engine.open(Path(opts.path))
        if opts.item_type:
            session.item_type = opts.item_type
        kind = engine.detect(session)
        ctx = CheckContext(item_type=kind, limits=engine.limits, registry=engine.registry)
        facts = engine.registry.pm.hook.validator_describe(item_type=kind, session=session, ctx=ctx)
    except SessionError as exc:
        print(f"validator: {engine.message(exc.message_id, exc.args_).text()}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"validator: {opts.path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    if not isinstance(facts, dict):
        print(f"validator: {opts.path}: no description for item type {kind}", file=sys.stderr)
        return EXIT_USAGE
    facts = {"item_type": kind, **facts}
    if opts.format == "json":
        import json

        print(json.dumps(facts, indent=2, ensure_ascii=False, default=str))
        return EXIT_VALID
    for key, value in facts.items():
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value) or "-"
        print(f"{key}: {value}")
    return EXIT_VALID
