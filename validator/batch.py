"""``validator batch CATALOG``: many items in one run, on local processes or a Dask cluster.

CATALOG is a folder (local or at a URL: each ``.ova``, ``.iso``, ``.ovf``,
session manifest and sub-folder holding an ``.ovf`` directly inside it is an
item), a glob (``'catalog/*.ova'``, ``'s3://bucket/*.ova'``), or a file
listing inputs one a line (``#`` comments; relative paths are relative to
the list's folder).  Each item is validated by :func:`validate_item`, the
very function a Dask task runs: it opens the input as the CLI does
(:func:`validator.cli.open_input`) and validates it with an engine built
once per process.  Output: one JSON object per item (JSON Lines), a summary
on standard error.

Isolation: :func:`validate_item` turns every failure (an unreadable input, a
plugin that raised, an engine bug) into that item's ``error`` record, so a
batch never stops for one item.  A worker process that dies (killed, out of
memory, a crash in C code) loses the items it held: each of them is retried
once, alone, then reported as ``validator.core.batch.worker_lost``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

if TYPE_CHECKING:
    from validator.engine import Engine
    from validator.limits import Limits

EXIT_VALID, EXIT_INVALID, EXIT_ERROR = 0, 1, 2
#: Names that are items in a catalog folder (sub-folders holding an .ovf are too).
ITEM_SUFFIXES = (".ova", ".iso", ".ovf", ".yaml", ".yml", ".json")
MiB = 1 << 20


class Settings(NamedTuple):
    """How every item is validated (picklable: it travels to worker processes)."""

    limits: Limits
    locale: str | None = None
    options: tuple[tuple[str, str], ...] = ()
    item_type: str | None = None


class Item(NamedTuple):
    """One input of the catalog, with what tells whether it changed since an earlier run."""

    input: str
    size: int | None = None
    mtime: float | None = None
    etag: str | None = None


# -- the task ----------------------------------------------------------------------------

_ENGINES: dict[Settings, Engine] = {}


def _engine(settings: Settings) -> Engine:
    engine = _ENGINES.get(settings)
    if engine is None:
        from validator.engine import Engine
        from validator.registry import default_registry

        engine = Engine(
            default_registry(),
            limits=settings.limits,
            locale=settings.locale,
            options=dict(settings.options),
        )
        _ENGINES[settings] = engine
    return engine


def validate_item(item: Item, settings: Settings) -> dict[str, Any]:
    """Validate one input: its JSON Lines record, never an exception.

    ``status`` is ``valid``, ``invalid`` (``value`` is the seed's
    ``ValidationResult``) or ``error`` (``error`` is the one-line message the
    CLI would print, with its id and args).
    """
    started = time.perf_counter()
    record: dict[str, Any] = {"input": item.input, "size": item.size}
    if item.mtime is not None:
        record["mtime"] = item.mtime
    if item.etag is not None:
        record["etag"] = item.etag
    try:
        engine = _engine(settings)
    except Exception as exc:  # a broken installation: every item says so
        from validator.registry import describe

        record.update(status="error", error={"id": "", "default_message": describe(exc)})
        record["duration"] = round(time.perf_counter() - started, 6)
        return record
    message = engine.message
    try:
        from validator.cli import open_input
        from validator.results import VapiError
        from validator.session import SessionError

        try:
            session = open_input(engine, item.input)
            if record["size"] is None:  # the input's own size when the catalog had none
                record["size"] = sum(f.stored_size or 0 for f in session.files)
            result = engine.validate(session, settings.item_type)
        except SessionError as exc:
            record.update(status="error", error=message(exc.message_id, exc.args_).to_dict())
        except VapiError as exc:
            reasons = "; ".join(m.text() for m in exc.messages)
            error = message("validator.core.cli.not_allowed", (item.input, reasons))
            record.update(status="error", error=error.to_dict())
        else:
            record.update(
                status="invalid" if result.has_errors else "valid",
                item_type=result.item_type,
                value=result.to_dict(),
            )
    except Exception as exc:  # an engine or adapter bug: this item's error, not the batch's
        from validator.registry import describe

        error = message("validator.core.batch.failed", (item.input, describe(exc)))
        record.update(status="error", error=error.to_dict())
    record["duration"] = round(time.perf_counter() - started, 6)
    return record


def _lost(item: Item, settings: Settings, reason: str) -> dict[str, Any]:
    record: dict[str, Any] = {"input": item.input, "size": item.size}
    if item.mtime is not None:
        record["mtime"] = item.mtime
    if item.etag is not None:
        record["etag"] = item.etag
    from validator.registry import default_registry

    msg = default_registry().catalogs.message(
        "validator.core.batch.worker_lost", (item.input, reason), settings.locale
    )
    record.update(status="error", error=msg.to_dict(), duration=0.0)
    return record


# -- the catalog ---------------------------------------------------------------------------


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def list_items(catalog: str, options: dict[str, str]) -> list[Item]:
    """The items of a catalog (``SessionError`` when it cannot be read)."""
    from validator.remote import is_url, local_path

    local = local_path(catalog) if "://" in catalog else catalog
    if local is not None and not is_url(local):
        return _local_items(local, options)
    return _remote_items(catalog, options)


def _item_name(name: str) -> bool:
    return name.lower().endswith(ITEM_SUFFIXES)


def _local_item(path: Path) -> Item | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    if os.path.isdir(path):
        try:
            entries = [e for e in os.scandir(path) if e.is_file(follow_symlinks=False)]
        except OSError:
            return None
        if not any(e.name.lower().endswith(".ovf") for e in entries):
            return None
        stats = [e.stat(follow_symlinks=False) for e in entries]
        return Item(
            str(path),
            sum(s.st_size for s in stats),
            max([st.st_mtime, *(s.st_mtime for s in stats)]),
        )
    return Item(str(path), st.st_size, st.st_mtime)


def _local_items(catalog: str, options: dict[str, str]) -> list[Item]:
    from validator.session import SessionError

    if _is_glob(catalog):
        import glob

        paths = sorted(glob.glob(catalog))
        return [i for p in paths if (i := _local_item(Path(p))) is not None]
    path = Path(catalog)
    if path.is_dir():
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            raise SessionError(
                "validator.core.batch.catalog_unreadable", catalog, exc.strerror or exc
            ) from exc
        items = []
        for name in names:
            child = path / name
            if child.is_dir() or _item_name(name):
                found = _local_item(child)
                if found is not None:
                    items.append(found)
        return items
    if _item_name(path.name):
        found = _local_item(path)
        if found is None:
            raise SessionError("validator.core.batch.catalog_unreadable", catalog, "not found")
        return [found]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise SessionError("validator.core.batch.catalog_unreadable", catalog, reason) from exc
    return _listed(text, path.parent, options)


def _listed(text: str, base: Path | None, options: dict[str, str]) -> list[Item]:
    from validator.remote import client_for, is_url, local_path, options_of

    items = []
    for line in text.splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if is_url(entry) and local_path(entry) is None:
            try:
                client = client_for(entry, options_of(options))
                info = client.info(entry)
            except Exception:  # the item's own record will say why it cannot be read
                info = None
            if info is None or info.directory:
                items.append(Item(entry))
            else:
                items.append(Item(entry, info.size, info.mtime, info.etag))
            continue
        entry = local_path(entry) or entry
        path = Path(entry)
        if base is not None and not path.is_absolute():
            path = base / path
        items.append(_local_item(path) or Item(str(path)))
    return items


def _remote_items(catalog: str, options: dict[str, str]) -> list[Item]:
    from validator.remote import RemoteLocation, client_for, options_of
    from validator.session import SessionError

    client = client_for(catalog, options_of(options))
    if _is_glob(catalog):
        folder = client.parent(catalog)
        pattern = catalog[len(folder) :]
        names = [
            (n, u)
            for n, u in RemoteLocation(folder, client).listdir()
            if fnmatch.fnmatchcase(n.rstrip("/"), pattern)
        ]
        return [i for n, u in names if (i := _remote_item(n, u, client)) is not None]
    where = RemoteLocation(catalog, client)
    found = where.stat()
    if found.directory:
        return [i for n, u in where.listdir() if (i := _remote_item(n, u, client)) is not None]
    if _item_name(where.name):
        return [Item(catalog, found.size, found.mtime, found.etag)]
    try:
        source = where.source()
        with source.open() as fh:
            text = fh.read(16 * MiB).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise SessionError("validator.core.batch.catalog_unreadable", catalog, reason) from exc
    return _listed(text, None, options)


def _remote_item(name: str, url: str, client: Any) -> Item | None:
    from validator.remote import RemoteLocation

    if name.endswith("/"):
        inside = RemoteLocation(url, client).listdir()
        if not any(n.lower().endswith(".ovf") for n, _ in inside):
            return None
        return Item(url)
    if not _item_name(name):
        return None
    try:
        info = client.info(url)
    except OSError:
        return Item(url)
    if info is None:
        return None
    return Item(url, info.size, info.mtime, info.etag)


# -- resume ---------------------------------------------------------------------------------


def load_previous(path: Path) -> dict[str, dict[str, Any]]:
    """Records of an earlier run by input (the last one of an input wins)."""
    from validator.session import SessionError

    found: dict[str, dict[str, Any]] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                record = json.loads(line)
                if isinstance(record, dict) and isinstance(record.get("input"), str):
                    found[record["input"]] = record
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise SessionError("validator.core.batch.resume_unreadable", path, reason) from exc
    return found


def unchanged(item: Item, record: dict[str, Any] | None) -> bool:
    """The earlier record still holds: same size and ETag (or mtime), and it was a verdict."""
    if record is None or record.get("status") not in ("valid", "invalid"):
        return False
    if item.size is None or record.get("size") != item.size:
        return False
    if item.etag is not None:
        return bool(record.get("etag") == item.etag)
    return item.mtime is not None and record.get("mtime") == item.mtime


# -- running ----------------------------------------------------------------------------------

Emit = Callable[[dict[str, Any]], None]


def run_inline(items: Iterable[Item], settings: Settings, emit: Emit) -> None:
    """One after the other in this process (``--workers 0``; no isolation from crashes)."""
    for item in items:
        emit(validate_item(item, settings))


def _mp_context() -> Any:
    """``fork`` while this process has a single thread: workers start warm (modules, plugin
    registry and engine already loaded) in about a millisecond; else ``forkserver`` (a
    remote catalog's listing left fsspec's I/O thread running), or ``spawn``."""
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _warm(settings: Settings) -> None:
    """A worker's initializer: build the engine before the first item arrives."""
    _engine(settings)


#: Items of at most this many bytes may share one task (fewer round trips to the workers).
SMALL_ITEM = 1 << 20
#: At most this many small items per task.
MAX_CHUNK = 8


def validate_items(items: tuple[Item, ...], settings: Settings) -> list[dict[str, Any]]:
    """:func:`validate_item` for each of a few small items (one task of the local pool)."""
    return [validate_item(item, settings) for item in items]


def _chunk(pending: deque[Item], workers: int) -> tuple[Item, ...]:
    """The next task: one item, or several small ones while plenty are left."""
    size = max(1, min(MAX_CHUNK, len(pending) // (4 * workers)))
    out = [pending.popleft()]
    while (
        len(out) < size
        and pending
        and (out[0].size or 0) <= SMALL_ITEM
        and (pending[0].size or 0) <= SMALL_ITEM
        and out[0].size is not None
        and pending[0].size is not None
    ):
        out.append(pending.popleft())
    return tuple(out)


def run_pool(items: Iterable[Item], settings: Settings, emit: Emit, workers: int) -> None:
    """On ``workers`` local processes; an item whose worker died is retried once, alone.

    Small items (≤ :data:`SMALL_ITEM` bytes) travel up to :data:`MAX_CHUNK` to a
    task while many are left; a task lost with its worker has each of its items
    retried on its own.
    """
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    def pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            workers, mp_context=_mp_context(), initializer=_warm, initargs=(settings,)
        )

    _engine(settings)  # built once here: forked workers inherit it
    pending = deque(items)
    retry: deque[Item] = deque()
    running: dict[Future[list[dict[str, Any]]], tuple[tuple[Item, ...], int]] = {}
    executor = pool()
    try:
        while pending or retry or running:
            if retry and not running:  # a retried item runs alone: its crash is its own
                task: tuple[Item, ...] = (retry.popleft(),)
                running[executor.submit(validate_items, task, settings)] = (task, 1)
            while not retry and pending and len(running) < 2 * workers:
                task = _chunk(pending, workers)
                running[executor.submit(validate_items, task, settings)] = (task, 0)
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                task, attempt = running.pop(future)
                try:
                    for record in future.result():
                        emit(record)
                except BrokenProcessPool:
                    broken = True
                    _lost_once(task, attempt, retry, settings, emit)
            if broken:
                for future, (task, attempt) in list(running.items()):
                    future.cancel()
                    _lost_once(task, attempt, retry, settings, emit)
                running.clear()
                executor.shutdown(wait=True, cancel_futures=True)
                executor = pool()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _lost_once(
    task: tuple[Item, ...], attempt: int, retry: deque[Item], settings: Settings, emit: Emit
) -> None:
    for item in task:
        if attempt == 0:
            retry.append(item)
        else:
            emit(_lost(item, settings, "the worker process ended unexpectedly"))


def run_dask(items: Iterable[Item], settings: Settings, emit: Emit, address: str) -> None:
    """Each item a task on the Dask cluster at ``address``; a lost worker's item retried once.

    Connecting waits as long as Dask's ``distributed.comm.timeouts.connect`` says (30 s;
    ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=5s`` changes it).
    """
    from validator.session import SessionError

    try:
        import distributed
    except ImportError as exc:
        raise SessionError("validator.core.batch.needs_dask", exc.name or exc) from exc
    try:
        client: Any = getattr(distributed, "Client")(  # noqa: B009 (untyped)
            address, set_as_default=False
        )
    except (OSError, TimeoutError) as exc:
        raise SessionError("validator.core.batch.scheduler_unreachable", address, exc) from exc
    try:
        _run_on(client, distributed.as_completed, items, settings, emit)
    finally:
        client.close()


def _run_on(
    client: Any, as_completed: Any, items: Iterable[Item], settings: Settings, emit: Emit
) -> None:
    import uuid

    run = uuid.uuid4().hex[:8]
    meta: dict[str, tuple[Item, int]] = {}
    futures = []
    for i, item in enumerate(items):
        key = f"validate-{run}-{i}-0"
        meta[key] = (item, 0)
        futures.append(client.submit(validate_item, item, settings, key=key, pure=False))
    queue = as_completed(futures, loop=client.loop)
    for future in queue:
        item, attempt = meta.pop(future.key)
        try:
            emit(future.result())
        except Exception as exc:  # KilledWorker, a lost connection: the worker, not the item
            if attempt == 0:
                key = future.key[: future.key.rfind("-")] + "-1"
                meta[key] = (item, 1)
                queue.add(client.submit(validate_item, item, settings, key=key, pure=False))
            else:
                from validator.registry import describe

                emit(_lost(item, settings, describe(exc)))
        finally:
            future.release()


# -- the command -------------------------------------------------------------------------------


class Progress:
    """Items and bytes done, rate and ETA on standard error (a terminal only)."""

    def __init__(self, stream: TextIO, total_items: int, total_bytes: int) -> None:
        self.stream = stream
        self.total_items = total_items
        self.total_bytes = total_bytes
        self.items = 0
        self.bytes = 0
        self.start = time.monotonic()
        self._last = 0.0
        self._lock = threading.Lock()

    def update(self, record: dict[str, Any]) -> None:
        with self._lock:
            self.items += 1
            self.bytes += int(record.get("size") or 0)
            now = time.monotonic()
            if now - self._last < 0.2 and self.items < self.total_items:
                return
            self._last = now
            elapsed = max(now - self.start, 1e-6)
            rate = self.bytes / MiB / elapsed
            left = self.total_items - self.items
            eta = left * elapsed / self.items if self.items else 0.0
            self.stream.write(
                f"\r{self.items}/{self.total_items} items, {self.bytes / MiB:,.0f}/"
                f"{self.total_bytes / MiB:,.0f} MiB, {rate:,.1f} MiB/s, "
                f"ETA {int(eta) // 60}:{int(eta) % 60:02d} \033[K"
            )
            self.stream.flush()

    def clear(self) -> None:
        self.stream.write("\r\033[K")
        self.stream.flush()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="validator batch",
        description="Validate every item of a catalog: a folder (local or a URL; each .ova, "
        ".iso, .ovf, session manifest and folder holding an .ovf is an item), a glob, or a "
        "file listing inputs one a line. Prints one JSON object per item (JSON Lines) and a "
        "summary on standard error.",
        epilog="exit status: 0 every item valid, 1 some item invalid, 2 some item could not "
        "be validated (or a usage error). Dask: --scheduler tcp://HOST:8786 or "
        "DASK_SCHEDULER_ADDRESS (the 'dask' extra).",
    )
    p.add_argument("catalog", metavar="CATALOG", help="folder, glob or list file (or URL)")
    p.add_argument(
        "-w",
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="local worker processes (default: one per core; 0: in this process)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=os.environ.get("DASK_SCHEDULER_ADDRESS"),
        help="run the items on this Dask scheduler (default: $DASK_SCHEDULER_ADDRESS)",
    )
    p.add_argument("--resume", type=Path, metavar="FILE", help="skip items unchanged since FILE")
    p.add_argument("--output", type=Path, metavar="FILE", help="write the records here")
    p.add_argument("-t", "--type", dest="item_type", metavar="TYPE")
    p.add_argument("-l", "--locale", metavar="LOCALE")
    p.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary")
    return p


def _settings(opts: argparse.Namespace) -> Settings:
    from validator.limits import Limits
    from validator.messages import locale_from_environment, normalize_locale

    limits = Limits()
    for assignment in opts.limit:
        limits = limits.with_assignment(assignment)
    options: dict[str, str] = {}
    for assignment in opts.option:
        key, sep, value = assignment.partition("=")
        if not sep or not key:
            raise ValueError(f"--option needs KEY=VALUE, got {assignment!r}")
        options[key.strip()] = value
    locale = normalize_locale(opts.locale) if opts.locale else locale_from_environment()
    if opts.locale and locale is None:
        locale = "en"
    return Settings(limits, locale, tuple(sorted(options.items())), opts.item_type)


def main(argv: list[str]) -> int:
    opts = _parser().parse_args(argv)
    try:
        settings = _settings(opts)
    except ValueError as exc:
        print(f"validator: {exc}", file=sys.stderr)
        return EXIT_ERROR
    from validator.registry import default_registry
    from validator.session import SessionError

    registry = default_registry()
    catalogs = registry.catalogs

    def say(message_id: str, args: Iterable[object]) -> str:
        return catalogs.message(message_id, args, settings.locale).text()

    # As the plain command: a plugin that cannot be used, or an option no plugin reads,
    # stops the run before any item is validated.
    if registry.load_errors:
        for message_id, margs in registry.load_errors:
            print(f"validator: {say(message_id, margs)}", file=sys.stderr)
        return EXIT_ERROR
    if settings.options:
        known = registry.option_keys()
        for key, _value in settings.options:
            if key not in known:
                shown = ", ".join(sorted(known)) or "-"
                print(
                    f"validator: {say('validator.core.cli.unknown_option', (key, shown))}",
                    file=sys.stderr,
                )
                return EXIT_ERROR

    try:
        return _main(opts, settings, say)
    except SessionError as exc:
        print(f"validator: {say(exc.message_id, exc.args_)}", file=sys.stderr)
        return EXIT_ERROR


def _main(
    opts: argparse.Namespace, settings: Settings, say: Callable[[str, Iterable[object]], str]
) -> int:
    started = time.perf_counter()
    items = list_items(opts.catalog, dict(settings.options))
    if not items:
        print(f"validator: {say('validator.core.batch.empty', (opts.catalog,))}", file=sys.stderr)
        return EXIT_ERROR
    previous = load_previous(opts.resume) if opts.resume else {}
    kept = [previous[i.input] for i in items if unchanged(i, previous.get(i.input))]
    todo = [i for i in items if not unchanged(i, previous.get(i.input))]
    out: TextIO = sys.stdout
    if opts.output is not None:
        out = open(opts.output, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
    counts = {"valid": 0, "invalid": 0, "error": 0}
    total = {"bytes": 0}
    lock = threading.Lock()
    progress = None
    if opts.progress == "always" or (opts.progress == "auto" and sys.stderr.isatty()):
        progress = Progress(sys.stderr, len(todo), sum(i.size or 0 for i in todo))

    def write(record: dict[str, Any]) -> None:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()

    def emit(record: dict[str, Any]) -> None:
        with lock:
            counts[record.get("status", "error")] = counts.get(record["status"], 0) + 1
            total["bytes"] += int(record.get("size") or 0)
            write(record)
        if progress is not None:
            progress.update(record)

    try:
        for record in kept:
            with lock:
                counts[record["status"]] += 1
                write(record)
        if opts.scheduler:
            run_dask(todo, settings, emit, opts.scheduler)
        elif opts.workers <= 0:
            run_inline(todo, settings, emit)
        else:
            run_pool(todo, settings, emit, min(opts.workers, max(1, len(todo))))
    finally:
        if progress is not None:
            progress.clear()
        if out is not sys.stdout:
            out.close()
    elapsed = time.perf_counter() - started
    if not opts.quiet:
        mib = total["bytes"] / MiB
        summary = say(
            "validator.core.batch.summary",
            (
                len(items),
                counts["valid"],
                counts["invalid"],
                counts["error"],
                len(kept),
                f"{mib:,.1f}",
                f"{elapsed:.2f}",
                f"{mib / elapsed:,.1f}",
                f"{len(todo) / elapsed:,.1f}",
            ),
        )
        print(summary, file=sys.stderr)
    if counts["error"]:
        return EXIT_ERROR
    return EXIT_INVALID if counts["invalid"] else EXIT_VALID


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a JSON Lines results file (for scripts and tests)."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)
