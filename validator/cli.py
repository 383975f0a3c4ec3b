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
    from validator.render import Renderer
    from validator.results import LocalizableMessage, VapiError
    from validator.session import Session, SessionError

EXIT_VALID, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
COMMANDS = ("plugins", "hooks", "limits", "serve", "batch", "info")

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
  validator info PATH [--format text|json] describe an item from its metadata (OVF, ISO, disk)

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
        default="text",
        metavar="FORMAT",
        help="text for people (default); json/xml: the seed's representations "
        "(several inputs: json one line per input, xml one document; each names its input); "
        "junit: a testcase per input, a failure per problem; sarif: SARIF 2.1.0 for code "
        "scanning; or a format a plugin adds (the loaded plugins' formats are checked)",
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
        help="an option for plugins (for example ovf.trust_store=ca.pem); unknown keys are refused",
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


def _load_errors(reg: Registry, locale: str | None, out: Renderer) -> int:
    """A plugin that cannot be used stops the run (one line each, exit status 2)."""
    from validator.results import VapiError

    messages = [reg.catalogs.message(i, a) for i, a in reg.load_errors]
    for m in messages:
        print(f"validator: {reg.catalogs.message(m.id, m.args, locale).text()}", file=sys.stderr)
    out.error(None, VapiError("internal_server_error", messages))
    out.close()
    _report_problems(reg, locale)
    return EXIT_USAGE


def _renderer(
    parser: argparse.ArgumentParser,
    reg: Registry,
    opts: argparse.Namespace,
    locale: str | None,
) -> Renderer:
    """The output format asked for, from the renderer registry (``validator_renderers``);
    an unknown name is a usage error listing the known ones."""
    from validator.render import RenderOptions

    formats = reg.renderers()
    cls = formats.get(opts.format)
    if cls is None:
        known = ", ".join(formats) or "-"
        parser.error(
            reg.catalogs.message(
                "validator.core.cli.unknown_format", (opts.format, known), locale
            ).text()
        )
    options = RenderOptions(color=_use_color(opts.color, sys.stdout), quiet=opts.quiet)
    renderer: Renderer = cls(
        sys.stdout,
        catalogs=reg.catalogs,
        locale=locale,
        several=len(opts.paths) > 1,
        options=options,
    )
    return renderer


def _validate(argv: list[str]) -> int:
    parser = _parser()
    opts = parser.parse_args(argv)
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
    out = _renderer(parser, reg, opts, locale)
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
    # No locale for the engine: it answers with ids and arguments, the renderer localizes.
    engine = Engine(reg, limits=limits, progress=progress, options=options)
    status = EXIT_VALID
    if progress is not None:
        progress.__enter__()
    try:
        for raw in opts.paths:
            status = max(status, _validate_one(engine, raw, opts, locale, out))
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
    engine: Engine, raw: str, opts: argparse.Namespace, locale: str | None, out: Renderer
) -> int:
    from validator.results import VapiError
    from validator.session import SessionError

    catalogs = engine.registry.catalogs

    def text(message_id: str, *args: object) -> str:
        return catalogs.message(message_id, args, locale).text()

    try:
        session = open_input(engine, raw)
        result = engine.validate(session, opts.item_type)
    except SessionError as exc:
        _pause_progress(engine)
        print(f"validator: {text(exc.message_id, *exc.args_)}", file=sys.stderr)
        out.error(raw, _input_error(raw, exc, engine))
        return EXIT_USAGE
    except VapiError as exc:
        _pause_progress(engine)
        reasons = "; ".join(text(m.id, *m.args) for m in exc.messages)
        print(f"validator: {text('validator.core.cli.not_allowed', raw, reasons)}", file=sys.stderr)
        out.error(raw, exc)
        return EXIT_USAGE
    _pause_progress(engine)
    out.result(raw, result, len(session.files))
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
    if name == "info":
        return _info(argv)
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
    # Hooks the loaded plugins add (validator_add_hookspecs), with the module that adds them.
    reg = _registry()
    for name in sorted(vars(reg.pm.hook)):
        spec = getattr(getattr(reg.pm.hook, name), "spec", None)
        if spec is None or spec.namespace is hookspecs or not name.startswith("validator_"):
            continue
        module = getattr(spec.namespace, "__name__", "?")
        print(f"\n{name}{inspect.signature(spec.function)}  [added by {module}]")
        print("    " + inspect.cleandoc(spec.function.__doc__ or "").replace("\n", "\n    "))
    return EXIT_VALID


def _limits(argv: list[str]) -> int:
    argparse.ArgumentParser(
        prog="validator limits", description="List resource limits and defaults."
    ).parse_args(argv)
    from validator.limits import declared

    _registry()  # the plugins declare their limits
    shown: str | None = None
    for plugin, lim in declared():
        if plugin != shown:
            print(f"{'' if shown is None else chr(10)}# {plugin}")
            shown = plugin
        print(f"{lim.name}={lim.default}  # {lim.doc}")
    return EXIT_VALID


def _info(argv: list[str]) -> int:
    """``validator info PATH``: what the item type's ``validator_describe`` hook says."""
    p = argparse.ArgumentParser(
        prog="validator info",
        description="Describe an item from its metadata (an OVF package, an ISO image, a disk).",
    )
    p.add_argument("path", metavar="PATH")
    p.add_argument("-f", "--format", choices=("text", "json"), default="text")
    p.add_argument("-t", "--type", dest="item_type", metavar="TYPE")
    opts = p.parse_args(argv)
    from validator.engine import Engine
    from validator.session import SessionError

    engine = Engine(_registry())
    try:
        session = open_input(engine, opts.path)
        if opts.item_type:
            session.item_type = opts.item_type
        kind = engine.detect(session)
    except SessionError as exc:
        print(f"validator: {engine.message(exc.message_id, exc.args_).text()}", file=sys.stderr)
        return EXIT_USAGE
    if session.damage is not None:  # an archive cut short…: what was read of it proves nothing
        damage = session.damage
        print(
            f"validator: {engine.message(damage.message_id, damage.args_).text()}", file=sys.stderr
        )
        return EXIT_USAGE
    # Through the gateway (time budget, failures named by plugin); the first dict wins.
    facts, failures = engine.describe(session, kind)
    for failure in failures:
        print(f"validator: {engine.message(*failure.message()).text()}", file=sys.stderr)
    if facts is None:
        text = engine.message("validator.core.cli.no_description", (opts.path, kind)).text()
        print(f"validator: {text}", file=sys.stderr)
        return EXIT_USAGE
    facts = {"item_type": kind, **facts}
    if opts.format == "json":
        import json

        print(json.dumps(facts, indent=2, ensure_ascii=False, default=str))
        return EXIT_VALID
    print("\n".join(fact_lines(facts)))
    return EXIT_VALID


def _scalar(value: object) -> str:
    """One fact on one line: ``-`` for none, ``true``/``false``, other text flattened."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[]"
    if isinstance(value, dict):
        return "{}"
    return " ".join(str(value).split()) or '""'


def _is_block(value: object) -> bool:
    return isinstance(value, str) and "\n" in value.strip()


def _block_lines(text: str, indent: int) -> list[str]:
    """The lines of a text, indented, each with its runs of white space made one space
    (as :func:`_scalar` does), blank ones left out."""
    return [" " * indent + " ".join(line.split()) for line in text.splitlines() if line.strip()]


def fact_lines(value: object, indent: int = 0) -> list[str]:
    """``validator info``'s text: a mapping as ``key: value`` lines, nested ones
    indented by two spaces, a list's items as ``- `` lines (a mapping in a list:
    its first key on the ``- `` line, the others aligned under it); a text of
    several lines (a PEM certificate) as ``key: |`` and its lines indented."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list | tuple) and item:
                lines.append(f"{pad}{key}:")
                lines.extend(fact_lines(item, indent + 2))
            elif _is_block(item):
                lines.append(f"{pad}{key}: |")
                lines.extend(_block_lines(str(item), indent + 2))
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
    elif isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, dict | list | tuple) and item:
                inner = fact_lines(item, indent + 2)
                lines.append(f"{pad}- {inner[0][indent + 2 :]}")
                lines.extend(inner[1:])
            elif _is_block(item):
                lines.append(f"{pad}- |")
                lines.extend(_block_lines(str(item), indent + 2))
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(f"{pad}{_scalar(value)}")
    return lines
