"""The engine: runs the registered hooks over a session and builds the ValidationResult.

Nothing here knows an item type: what a session needs and what is wrong with
it comes from the hook implementations (see :mod:`validator.hookspecs` for the
order of the phases).  Every received file is read at most once by the
engine, in chunks of ``limits.read_chunk_bytes`` into one reused buffer, and
all stream checks and requested digests of that file are fed from that one
read; independent files are processed in parallel threads (``hashlib``
releases the GIL, so hashing scales with cores).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from validator import calls
from validator.calls import (
    PLUGIN_ERRORS,
    Abandoned,
    HookFailure,
    PluginTimeout,
    Slot,
    Supervisor,
    as_list,
    describe,
)
from validator.checks import CheckContext, FileCheck, ReaderCheck, Reporter, StreamCheck
from validator.limits import Limits
from validator.registry import Registry, default_registry
from validator.results import (
    Finding,
    LocalizableMessage,
    NotAllowedInCurrentState,
    ValidationError,
    ValidationResult,
    VapiError,
)
from validator.session import DamagedInput, Session, SessionError, SessionFile

if TYPE_CHECKING:
    from validator.remote import RemoteLocation

Progress = Callable[[int], None]
#: Below this many bytes in all, files are read in the calling thread.
PARALLEL_MIN_BYTES = 8 << 20

PHASE_REJECTED, PHASE_PREPARE, PHASE_REQUIRED, PHASE_FILES, PHASE_SESSION = range(5)


class _Digests(StreamCheck):
    """The digests other checks asked for, computed in the file's single read."""

    label = "digest"

    def __init__(self, name: str, ctx: CheckContext) -> None:
        self.name = name
        self.ctx = ctx
        self.hashers: dict[str, Any] = {}

    def update(self, data: memoryview) -> None:
        for h in self.hashers.values():
            h.update(data)

    def finish(self, report: Reporter) -> None:
        for alg, h in self.hashers.items():
            self.ctx.set_digest(self.name, alg, h.hexdigest())


class _ReadAhead:
    """Reads a file into a few rotating buffers on its own thread, one chunk ahead.

    Copying from the page cache (or a pipe) then overlaps with the checks of
    the previous chunk: ``readinto`` and ``hashlib`` both release the GIL, so
    a single large file is read and hashed on two cores.  A yielded chunk is
    valid until the next one is asked for.
    """

    DEPTH = 3

    def __init__(self, fh: Any, size: int) -> None:
        self._fh = fh
        self._size = size
        self._free: queue.SimpleQueue[bytearray | None] = queue.SimpleQueue()
        self._full: queue.SimpleQueue[tuple[bytearray | None, int, BaseException | None]] = (
            queue.SimpleQueue()
        )
        for _ in range(self.DEPTH):
            self._free.put(bytearray(size))
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="validator-read")
        self._thread.start()

    def _run(self) -> None:
        fh = self._fh
        readinto = getattr(fh, "readinto", None)
        try:
            while True:
                buf = self._free.get()
                if buf is None or self._stop:
                    return
                if readinto is not None:
                    n = readinto(memoryview(buf)) or 0
                else:
                    data = fh.read(self._size)
                    n = len(data)
                    buf[:n] = data
                self._full.put((buf, n, None))
                if not n:
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._full.put((None, 0, exc))

    def __iter__(self) -> Iterator[memoryview]:
        while True:
            buf, n, exc = self._full.get()
            if exc is not None:
                raise exc
            if buf is None or not n:
                return
            yield memoryview(buf)[:n]
            self._free.put(buf)

    def close(self) -> None:
        """Stop reading (after the current read) and wait for the thread."""
        self._stop = True
        self._free.put(None)
        self._thread.join()


class _UnitState:
    """Per work unit: one reporter per check (a shared check reports once), failures."""

    def __init__(self) -> None:
        self.reports: dict[Any, Reporter] = {}
        self.failed: set[int] = set()
        self.unreadable: set[str] = set()

    def report_for(self, check: FileCheck, order: tuple[Any, ...]) -> Reporter:
        report = self.reports.get(id(check))
        if report is None:
            report = self.reports[id(check)] = Reporter(order)
        return report


class Engine:
    """Validates sessions with the plugins of a :class:`~validator.registry.Registry`.

    The result holds message ids, arguments and the English ``default_message``;
    rendering and localization belong to the output (:mod:`validator.render`).
    ``locale``, kept for callers that want a localized result from ``validate``
    itself, applies :func:`validator.render.localize` to it once at the end.
    ``progress`` is called with the number of bytes read after each chunk (from
    worker threads).
    """

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        limits: Limits | None = None,
        locale: str | None = None,
        progress: Progress | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.registry = registry if registry is not None else default_registry()
        self.limits = limits if limits is not None else Limits()
        self.locale = locale
        self.progress = progress
        self.options = dict(options or {})

    def bounded(self, fn: Callable[..., Any], args: list[Any], plugin: str, label: str) -> Any:
        """Call plugin code under the time budget (:func:`validator.calls.call_bounded`):
        :class:`~validator.calls.PluginTimeout` past ``limits.plugin_seconds``."""
        return calls.call_bounded(fn, args, self.limits.plugin_seconds, plugin, label)

    def replies(
        self, hook: str, kwargs: dict[str, Any], accept: type | tuple[type, ...] | None = None
    ) -> Iterator[calls.Reply]:
        """Every implementation of ``hook``, each on its own under the time budget, its
        values checked against ``accept`` (:func:`validator.calls.call_each`)."""
        return calls.call_each(
            self.registry.pm, hook, kwargs, seconds=self.limits.plugin_seconds, accept=accept
        )

    def describe(
        self, session: Session, item_type: str
    ) -> tuple[dict[str, Any] | None, list[HookFailure]]:
        """What ``validator_describe`` says about a session of ``item_type``: the first
        implementation's facts (``None``: none describes it) and the failures of those
        asked before it, each called through the gateway (``validator info`` and a
        server's preview)."""
        ctx = CheckContext(item_type=item_type, limits=self.limits, registry=self.registry)
        failures: list[HookFailure] = []
        kwargs = {"item_type": item_type, "session": session, "ctx": ctx}
        for reply in self.replies("validator_describe", kwargs, accept=dict):
            failures.extend(reply.failures)
            if reply.values:
                return reply.values[0], failures
        return None, failures

    # -- inputs -----------------------------------------------------------
    def open(self, path: Path) -> Session:
        """Turn a path into a session (``validator_open_session``); ``SessionError`` if not.

        A damaged input (:class:`~validator.session.DamagedInput`: an archive cut
        short…) is a session all the same, whose validation reports the damage.
        """
        return self._open("validator_open_session", {"path": path, "limits": self.limits}, path)

    def open_remote(self, location: RemoteLocation) -> Session:
        """Turn a URL into a session (``validator_open_remote``), as :meth:`open` does a path."""
        kwargs = {"location": location, "limits": self.limits}
        return self._open("validator_open_remote", kwargs, location.url)

    def _open(self, hook: str, kwargs: dict[str, Any], path: object) -> Session:
        for plugin, result in self.registry.call_each(
            hook, kwargs, seconds=self.limits.plugin_seconds
        ):
            if isinstance(result, HookFailure):
                if isinstance(result.exception, DamagedInput):
                    damage = result.exception
                    return Session(origin=str(path), item_type=damage.item_type, damage=damage)
                if isinstance(result.exception, SessionError):
                    raise result.exception
                if isinstance(result.exception, PluginTimeout):
                    raise SessionError(
                        "validator.core.input.plugin_timeout",
                        path,
                        plugin,
                        self.limits.plugin_seconds,
                    )
                raise SessionError("validator.core.input.plugin_failed", path, plugin, result.error)
            if result is None:
                continue
            if not isinstance(result, Session):
                raise SessionError(
                    "validator.core.input.plugin_bad_result", path, plugin, type(result).__name__
                )
            return result
        raise SessionError("validator.core.input.unsupported", path)

    def detect(self, session: Session) -> str:
        """The item type of a session: its own, or the best ``ItemType.detect`` score."""
        types = self.registry.item_types
        if session.item_type is not None:
            if session.item_type not in types:
                known = ", ".join(sorted(types)) or "none"
                raise SessionError(
                    "validator.core.input.unknown_type", session.origin, session.item_type, known
                )
            return session.item_type
        scores: list[tuple[int, str]] = []
        for name, item in types.items():
            try:
                plugin = self.registry.item_type_plugin.get(name, "?")
                score = int(self.bounded(item.detect, [session], plugin, f"{name}.detect"))
            except PLUGIN_ERRORS as exc:
                plugin = self.registry.item_type_plugin.get(name, "?")
                self.registry.problem(
                    "validator.core.registry.detect_failed", plugin, name, describe(exc)
                )
                continue
            if score > 0:
                scores.append((score, name))
        if not scores:
            raise SessionError(
                "validator.core.input.no_type", session.origin, ", ".join(sorted(types))
            )
        scores.sort(reverse=True)
        if len(scores) > 1 and scores[0][0] == scores[1][0]:
            raise SessionError(
                "validator.core.input.ambiguous_type", session.origin, scores[0][1], scores[1][1]
            )
        return scores[0][1]

    # -- validation -------------------------------------------------------
    def message(self, message_id: str, args: Iterable[object] = ()) -> LocalizableMessage:
        """A message by id and arguments, English only (the output localizes it)."""
        return self.registry.catalogs.message(message_id, args)

    def _localized(self, result: ValidationResult) -> ValidationResult:
        if self.locale is None:
            return result
        from validator.render import localize

        return localize(result, self.registry.catalogs, self.locale)

    def check_received(self, session: Session) -> None:
        """Raise the seed's ``not_allowed_in_current_state`` unless every file was received."""
        messages = []
        for f in session.files:
            if f.received:
                continue
            if f.source is not None and f.size is not None and f.size != f.source.size:
                messages.append(
                    self.message(
                        "validator.core.session.file_size_mismatch",
                        (f.name, f.size, f.source.size),
                    )
                )
            else:
                messages.append(
                    self.message("validator.core.session.file_not_received", (f.name, f.status))
                )
        if messages:
            raise NotAllowedInCurrentState(messages)

    def validate(self, session: Session, item_type: str | None = None) -> ValidationResult:
        """Validate a session; raises ``NotAllowedInCurrentState`` or ``SessionError``.

        A damaged input (found when it was opened, or while a sequential session
        is read) gives a result with that one problem and nothing else.
        """
        if item_type is not None:
            session.item_type = item_type
        detected = self.detect(session)
        if session.damage is not None:
            return self._localized(self._damaged(session.damage, detected))
        if not session.sequential:
            try:
                self.check_received(session)
            except VapiError as exc:
                if self.locale is None:
                    raise
                from validator.render import localize_error

                raise NotAllowedInCurrentState(
                    localize_error(exc, self.registry.catalogs, self.locale).messages
                ) from None
        ctx = CheckContext(
            item_type=detected,
            limits=self.limits,
            locale=self.locale,
            options=dict(self.options),
            registry=self.registry,
        )
        item = self.registry.item_types[detected]
        try:
            plugin = self.registry.item_type_plugin.get(detected, "?")
            primary = self.bounded(item.primary_file, [session], plugin, f"{detected}.primary_file")
        except PLUGIN_ERRORS:
            primary = None
        if not isinstance(primary, str):
            primary = None
        primary = primary or (session.names() or [session.origin])[0]
        run = _Run(self, session, detected, ctx, primary)
        try:
            return self._localized(run.execute())
        except DamagedInput as damage:
            session.damage = damage
            return self._localized(self._damaged(damage, detected))

    def _damaged(self, damage: DamagedInput, item_type: str) -> ValidationResult:
        entry = ValidationError(damage.name, self.message(damage.message_id, damage.args_))
        return ValidationResult(invalid_files=(entry,), item_type=item_type)


class _Run:
    """One validation: collects problems from every phase, then orders them."""

    def __init__(
        self, engine: Engine, session: Session, item_type: str, ctx: CheckContext, primary: str
    ) -> None:
        self.engine = engine
        self.registry = engine.registry
        self.session = session
        self.item_type = item_type
        self.ctx = ctx
        self.primary = primary
        self.problems: list[Finding] = []
        self._lock = threading.Lock()

    def _add(self, problems: Iterable[Finding]) -> None:
        with self._lock:
            self.problems.extend(problems)

    def _failure(self, order: tuple[Any, ...], name: str, failure: HookFailure) -> Finding:
        """A plugin's failure as a finding on ``name`` (the gateway's one mapping)."""
        message_id, args = failure.message()
        return Finding(name, message_id, args, order=order)

    def _session_hook(self, hook: str, phase: int, defer: list[Reporter] | None = None) -> None:
        """Call a session hook's implementations; ``defer``: keep their reporters there
        (their problems are added later) instead of adding the problems now."""
        kwargs = {"item_type": self.item_type, "session": self.session, "ctx": self.ctx}
        for index, impl in enumerate(self.registry.impls(hook)):
            report = Reporter((phase, index))  # each implementation reports on its own
            kwargs["report"] = report
            args = [kwargs[a] for a in impl.argnames]
            try:
                self.engine.bounded(impl.function, args, impl.plugin_name, hook)
            except PLUGIN_ERRORS as exc:
                report = Reporter((phase, index))  # a call given up on reports nothing else
                failure = HookFailure(impl.plugin_name, hook, describe(exc), exc)
                order = (phase, index, 1 << 30)
                report.problems.append(self._failure(order, self.primary, failure))
            if defer is not None:
                defer.append(report)
            else:
                self._add(report.problems)

    def execute(self) -> ValidationResult:
        """The phases in order.  A sequential session (an archive on a pipe) learns its
        members during the pass: its refused entries, and what prepare reports (a plugin
        may report into its prepare reporter until ``validator_check_session`` returns),
        are collected at the end, so that the verdict is the one of the same files at rest.
        """
        sequential = self.session.sequential
        prepared: list[Reporter] | None = [] if sequential else None
        if not sequential:
            self._rejected()
        self._session_hook("validator_prepare_session", PHASE_PREPARE, prepared)
        if sequential:
            # Read once, in stream order: the archive's members arrive one by one.
            self._process_sequential()
            self.engine.check_received(self.session)
            self._rejected()
        else:
            self._process_files()
        required = self._required()
        self._session_hook("validator_check_session", PHASE_SESSION)
        for report in prepared or ():
            self._add(report.problems)
        present = set(self.session.names())
        missing = tuple(sorted(n for n in required if n not in present))
        return self._result(missing)

    def _rejected(self) -> None:
        for i, rej in enumerate(self.session.rejected):
            self._add([Finding(rej.name, rej.message_id, rej.args, order=(PHASE_REJECTED, i))])

    def _required(self) -> set[str]:
        required: set[str] = set()
        kwargs = {"item_type": self.item_type, "session": self.session, "ctx": self.ctx}
        for index, reply in enumerate(
            self.engine.replies("validator_required_files", kwargs, accept=str)
        ):
            order = (PHASE_REQUIRED, index)
            self._add(self._failure(order, self.primary, f) for f in reply.failures)
            required.update(reply.values)
        return required

    # -- the file pass ----------------------------------------------------
    def _groups(self) -> list[list[tuple[int, SessionFile]]]:
        """Work units: the ordered groups plugins ask for, then every other file alone."""
        received = {
            f.name: (i, f) for i, f in enumerate(self.session.files) if f.source is not None
        }
        taken: set[str] = set()
        units: list[list[tuple[int, SessionFile]]] = []
        kwargs = {"item_type": self.item_type, "session": self.session, "ctx": self.ctx}
        for index, reply in enumerate(self.engine.replies("validator_file_groups", kwargs)):
            order = (PHASE_FILES, -1, index)
            self._add(self._failure(order, self.primary, f) for f in reply.failures)
            for group in reply.values:
                names = as_list(group)
                if not all(isinstance(n, str) for n in names):
                    bad = HookFailure(
                        reply.plugin, "validator_file_groups", "", None, type(group).__name__
                    )
                    self._add([self._failure(order, self.primary, bad)])
                    continue
                unit = [received[n] for n in names if n in received and n not in taken]
                taken.update(f.name for _, f in unit)
                if unit:
                    units.append(unit)
        units.extend([item] for name, item in received.items() if name not in taken)
        return units

    def _process_files(self) -> None:
        units = self._groups()
        threads = self.engine.limits.threads or (os.cpu_count() or 1)
        total = sum(f.stored_size or 0 for unit in units for _, f in unit)
        # Threads pay off for real data; a small bundle is read by one worker.
        if total < PARALLEL_MIN_BYTES:
            threads = 1
        # Biggest first, so that one large file does not start last.
        units.sort(key=lambda u: -sum(f.stored_size or 0 for _, f in u))
        jobs: list[Callable[[Slot], None]] = [partial(self._process_unit, u) for u in units]
        self._supervise(jobs, max(1, min(threads, len(units))))

    def _process_sequential(self) -> None:
        self._supervise([self._sequential_pass], 1)

    def _supervise(self, jobs: list[Callable[[Slot], None]], workers: int) -> None:
        """Run jobs on worker threads under the plugin time budget
        (:class:`validator.calls.Supervisor`): a call past it is reported
        (``validator.core.plugin.timeout``) and its worker given up on."""

        def timed_out(plugin: str, label: str, name: str) -> None:
            seconds = str(int(self.engine.limits.plugin_seconds))
            order = (PHASE_FILES, 1 << 30, name)
            finding = Finding(
                name, "validator.core.plugin.timeout", (plugin, label, seconds), order=order
            )
            self._add([finding])

        Supervisor(float(self.engine.limits.plugin_seconds), timed_out).run(jobs, workers)

    def _collect_checks(
        self, index: int, file: SessionFile, slot: Slot
    ) -> list[tuple[str, FileCheck]]:
        kwargs = {
            "item_type": self.item_type,
            "session": self.session,
            "file": file,
            "ctx": self.ctx,
        }
        checks: list[tuple[str, FileCheck]] = []
        for hook_index, impl in enumerate(self.registry.impls("validator_file_checks")):
            plugin = impl.plugin_name
            order = (PHASE_FILES, index, -1, hook_index)
            # Called in the worker's slot (the supervisor bounds it in time), checked as
            # the gateway checks every hook.
            try:
                with slot.guard(plugin, "validator_file_checks", file.name):
                    result = impl.function(*[kwargs[a] for a in impl.argnames])
                    results = as_list(result)  # a generator that raises while it is read
            except Abandoned:
                raise
            except PLUGIN_ERRORS as exc:
                failure = HookFailure(plugin, "validator_file_checks", describe(exc), exc)
                self._add([self._failure(order, file.name, failure)])
                continue
            for check in results:
                if isinstance(check, (StreamCheck, ReaderCheck)):
                    checks.append((plugin, check))
                else:
                    bad = HookFailure(
                        plugin, "validator_file_checks", "", None, type(check).__name__
                    )
                    self._add([self._failure(order, file.name, bad)])
        algs = self.ctx.requested_digests(file.name)
        if algs:
            import hashlib  # here: loading OpenSSL costs start-up time when nothing is hashed

            digests = _Digests(file.name, self.ctx)
            for alg in sorted(algs):
                try:
                    digests.hashers[alg] = hashlib.new(alg)
                except ValueError:
                    continue
            checks.append(("core", digests))
        return checks

    def _process_unit(self, unit: list[tuple[int, SessionFile]], slot: Slot) -> None:
        """Process files in order; a check shared by several files sees them as one stream.

        Each check is finished right after the last file of the unit that returned it.
        """
        plans = [(index, file, self._collect_checks(index, file, slot)) for index, file in unit]
        last: dict[int, int] = {}
        for pos, (_, _, checks) in enumerate(plans):
            for _, check in checks:
                last[id(check)] = pos
        state = _UnitState()
        for pos, (index, file, checks) in enumerate(plans):
            self._process_file(index, file, checks, state, slot)
            ending = [(p, c) for p, c in checks if last[id(c)] == pos]
            self._finish(file, ending, state, slot)
        self._add(p for r in state.reports.values() for p in r.problems)

    def _sequential_pass(self, slot: Slot) -> None:
        """A stream session: files arrive one by one; shared checks finish at the very end."""
        state = _UnitState()
        pending: dict[int, tuple[SessionFile, str, FileCheck]] = {}
        for index, file in enumerate(self.session.iter_sequential()):
            if file.source is None:
                continue
            checks = self._collect_checks(index, file, slot)
            self._process_file(index, file, checks, state, slot)
            for plugin, check in checks:
                if isinstance(check, _Digests):
                    self._finish(file, [(plugin, check)], state, slot)
                else:
                    pending.setdefault(id(check), (file, plugin, check))
        for file, plugin, check in pending.values():
            self._finish(file, [(plugin, check)], state, slot)
        self._add(p for r in state.reports.values() for p in r.problems)

    def _process_file(
        self,
        index: int,
        file: SessionFile,
        checks: list[tuple[str, FileCheck]],
        state: _UnitState,
        slot: Slot,
    ) -> None:
        if not checks or file.source is None:
            return
        streams: list[tuple[str, StreamCheck, Reporter]] = []
        for ci, (plugin, check) in enumerate(checks):
            report = state.report_for(check, (PHASE_FILES, index, ci))
            if id(check) in state.failed:
                continue
            if isinstance(check, ReaderCheck):
                try:
                    self._run_reader(file, plugin, check, report, slot)
                except OSError as exc:
                    self._read_error(file, exc, state)
                    return
            elif isinstance(check, StreamCheck):
                streams.append((plugin, check, report))
        if streams:
            try:
                self._stream(file, streams, state, slot)
            except OSError as exc:
                self._read_error(file, exc, state)

    def _read_error(self, file: SessionFile, exc: OSError, state: _UnitState) -> None:
        key = ("read", file.name)
        report = state.reports.setdefault(key, Reporter((PHASE_FILES, 1 << 30, file.name)))
        report.error(
            file.name, "validator.core.file.read_error", file.name, exc.strerror or describe(exc)
        )
        state.unreadable.add(file.name)

    def _finish(
        self,
        file: SessionFile,
        checks: list[tuple[str, FileCheck]],
        state: _UnitState,
        slot: Slot,
    ) -> None:
        for plugin, check in checks:
            if not isinstance(check, StreamCheck) or id(check) in state.failed:
                continue
            if file.name in state.unreadable:
                continue
            report = state.reports[id(check)]
            try:
                with slot.guard(plugin, check.label or type(check).__name__, file.name):
                    check.finish(report)
            except Abandoned:
                raise
            except PLUGIN_ERRORS as exc:
                self._check_failed(file, plugin, check, exc, report)

    def _check_failed(
        self, file: SessionFile, plugin: str, check: FileCheck, exc: BaseException, report: Reporter
    ) -> None:
        label = check.label or type(check).__name__
        message_id, args = calls.check_failure(plugin, label, exc)
        report.error(file.name, message_id, *args)

    def _run_reader(
        self, file: SessionFile, plugin: str, check: ReaderCheck, report: Reporter, slot: Slot
    ) -> None:
        assert file.source is not None
        label = check.label or type(check).__name__
        if not file.source.seekable:
            report.error(file.name, "validator.core.check.needs_seek", plugin, label)
            return
        with file.source.open() as fh:
            try:
                with slot.guard(plugin, label, file.name):
                    check.run(fh, file.source.size, report)
            except (Abandoned, OSError):
                raise
            except PLUGIN_ERRORS as exc:
                self._check_failed(file, plugin, check, exc, report)

    def _stream(
        self,
        file: SessionFile,
        streams: list[tuple[str, StreamCheck, Reporter]],
        state: _UnitState,
        slot: Slot,
    ) -> None:
        """The single read of a file: every chunk goes to every live stream check."""
        assert file.source is not None
        size = max(4096, self.engine.limits.read_chunk_bytes)
        live = [
            (plugin, check, report, check.label or type(check).__name__)
            for plugin, check, report in streams
        ]
        progress = self.engine.progress
        guard = slot.guard
        with self._chunks(file, size) as chunks:
            for chunk in chunks:
                for entry in list(live):
                    plugin, check, report, label = entry
                    try:
                        with guard(plugin, label, file.name):
                            check.update(chunk)
                    except Abandoned:
                        raise
                    except PLUGIN_ERRORS as exc:
                        self._check_failed(file, plugin, check, exc, report)
                        state.failed.add(id(check))
                        live.remove(entry)
                if progress is not None:
                    progress(len(chunk))
                if not live:
                    break

    @contextmanager
    def _chunks(self, file: SessionFile, size: int) -> Iterator[Iterable[memoryview]]:
        """The file's bytes in chunks of at most ``size``, read once.

        A small file a plugin already read whole (``ctx.read_small``: a
        descriptor, a manifest) is served from those bytes, so what was parsed
        is exactly what is hashed; another file that fits in one chunk is read
        in line; a larger one by a read-ahead thread.
        """
        assert file.source is not None
        cached = self.ctx.small_content(file.name)
        if cached is not None:
            view = memoryview(cached)
            yield (view[i : i + size] for i in range(0, len(view), size))
            return
        with file.source.open() as fh:
            if file.source.seekable and file.source.size < size:
                data = fh.read(size)
                yield [memoryview(data)] if data else []
                return
            reader = _ReadAhead(fh, size)
            try:
                yield reader
            finally:
                reader.close()

    # -- the result -------------------------------------------------------
    def _result(self, missing: tuple[str, ...]) -> ValidationResult:
        position = {name: i for i, name in enumerate(self.session.names())}
        far = len(position)

        def key(p: Finding) -> tuple[Any, ...]:
            return (position.get(p.name, far), p.name if p.name not in position else "", p.order)

        errors: list[ValidationError] = []
        warnings: list[ValidationError] = []
        seen: set[tuple[str, str, tuple[str, ...], bool]] = set()
        for p in sorted(self.problems, key=key):
            ident = (p.name, p.message_id, p.args, p.warning)
            if ident in seen:
                continue
            seen.add(ident)
            entry = ValidationError(p.name, self.engine.message(p.message_id, p.args))
            (warnings if p.warning else errors).append(entry)
        return ValidationResult(
            missing_files=missing,
            invalid_files=tuple(errors),
            warnings=tuple(warnings),
            item_type=self.item_type,
        )
