"""The one door for calls into plugin code: time budget, return types, failures.

Every call the validator makes into a plugin passes through here — the
registry's load hooks, the engine's phases, the checks it runs in its file
pass, and hooks a plugin calls itself (the ``ovf`` adapter's
``validator_disk_checks``) — so a plugin that raises, hangs or returns the
wrong type is treated the same way wherever it is called (as flake8 treats
its plugins' failures: named, reported, the rest goes on):

- :func:`call_bounded` runs one call on a daemon thread under a time budget
  (:class:`PluginTimeout` past it: Python cannot stop a thread, so a call past
  its budget is left running, reported, and its result ignored);
- :func:`call_each` calls every implementation of a hook on its own, in
  pluggy's order (or registration order), bounded when asked, and yields a
  :class:`Reply` per implementation: the values it returned that have the
  accepted type, and a :class:`HookFailure` for a raise, a timeout or each
  value of the wrong type;
- :meth:`HookFailure.message` maps a failure to its catalog message:
  ``validator.core.plugin.failed`` / ``.timeout`` / ``.bad_result`` naming the
  plugin and the hook (``validator.core.registry.hook_failed`` /
  ``.bad_result`` for the registry's own load hooks);
- :class:`Supervisor` runs the engine's file-pass jobs on worker threads and
  gives up on one whose plugin call runs past the budget
  (:meth:`Slot.guard` marks each call);
- :class:`IsolatedCheck` wraps a plugin's stream check that another plugin
  feeds (a disk check inside the OVF adapter's stream): a failure is reported
  as ``validator.core.check.failed`` with the check's own plugin and label.

A server calls :func:`call_each` for its own hooks exactly as the engine does.

Hook *wrappers* (pluggy's ``wrapper=True`` / ``hookwrapper=True``) are refused
when a plugin is registered (:func:`refuse_wrappers`,
``validator.core.registry.wrapper_refused``): every implementation here is
called on its own, isolated from the others, so a wrapper around the others
would never run — it is refused at load rather than silently ignored.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from validator.checks import Reporter, StreamCheck

if TYPE_CHECKING:
    import pluggy

#: What a call into plugin code may raise and still be only that plugin's failure:
#: a plugin that calls ``sys.exit()`` must not end the validation with a verdict.
#: ``KeyboardInterrupt`` still stops everything.
PLUGIN_ERRORS: tuple[type[BaseException], ...] = (Exception, SystemExit, GeneratorExit)


def describe(exc: BaseException) -> str:
    """One line for an exception: its type and message, never a traceback."""
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def as_list(value: Any) -> list[Any]:
    """A hook's return value as a list (``None``: empty; a single value — a string, a
    mapping such as ``validator_describe``'s facts, a non-iterable — one item)."""
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        return [value]
    return list(value)


class PluginTimeout(Exception):
    """A plugin call ran past its time budget (``limits.plugin_seconds``)."""

    def __init__(self, plugin: str, label: str, seconds: float) -> None:
        super().__init__(f"{plugin}: {label} ran longer than {seconds:g} s")
        self.plugin = plugin
        self.label = label
        self.seconds = seconds


class HookFailure(NamedTuple):
    """A hook implementation raised, ran past its budget, or returned a value of the
    wrong type (``bad_value``: that value's type name; the call's other values stand)."""

    plugin: str
    hook: str
    error: str
    exception: BaseException | None = None
    bad_value: str | None = None

    @property
    def timed_out(self) -> bool:
        return isinstance(self.exception, PluginTimeout)

    def message(self, *, registry: bool = False) -> tuple[str, tuple[str, ...]]:
        """The catalog message (id, args) of this failure, naming plugin and hook.

        ``registry``: a load hook's failure (``validator.core.registry.*``), reported
        by the registry rather than in a result.
        """
        if self.bad_value is not None:
            args = (self.plugin, self.hook, self.bad_value)
            if registry:
                return "validator.core.registry.bad_result", args
            return "validator.core.plugin.bad_result", args
        if registry:
            return "validator.core.registry.hook_failed", (self.plugin, self.hook, self.error)
        if isinstance(self.exception, PluginTimeout):
            seconds = f"{self.exception.seconds:g}"
            return "validator.core.plugin.timeout", (self.plugin, self.hook, seconds)
        return "validator.core.plugin.failed", (self.plugin, self.hook, self.error)


def check_failure(plugin: str, label: str, exc: BaseException) -> tuple[str, tuple[str, ...]]:
    """The catalog message of a check (a ``StreamCheck``/``ReaderCheck``) that raised:
    ``validator.core.check.failed`` naming the check's plugin and label."""
    return "validator.core.check.failed", (plugin, label, describe(exc))


class Reply:
    """One implementation's answer: its accepted ``values`` and its ``failures``;
    ``declined``: it returned ``None`` (the hook is not its business); ``raw``: what
    it returned, as it returned it (a ``firstresult`` hook's single value).

    A slotted class rather than a ``NamedTuple``: it is defined on every run.
    """

    __slots__ = ("declined", "failures", "plugin", "raw", "values")

    def __init__(
        self,
        plugin: str,
        values: list[Any],
        failures: list[HookFailure],
        declined: bool = False,
        raw: Any = None,
    ) -> None:
        self.plugin = plugin
        self.values = values
        self.failures = failures
        self.declined = declined
        self.raw = raw


def call_bounded(
    fn: Callable[..., Any], args: list[Any], seconds: float, plugin: str, label: str
) -> Any:
    """``fn(*args)`` on a daemon thread; :class:`PluginTimeout` past ``seconds``.

    The thread is an idle :class:`_HookThread` when there is one (a batch of small
    items makes dozens of calls per item); one whose call ran past its budget is
    left behind, never reused.
    """
    helper = _HookThread.take()
    box = helper.call(fn, args)
    if not box.done.wait(seconds):
        raise PluginTimeout(plugin, label, seconds)  # the helper is left behind
    _HookThread.give_back(helper)
    if box.error is not None:
        raise box.error
    return box.result


class _Call:
    """One plugin call handed to a :class:`_HookThread`, and how it ended."""

    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class _HookThread:
    """A daemon thread that runs plugin calls for :func:`call_bounded`, kept between calls.

    Starting a thread per hook call cost a validation of the sample package a
    dozen thread starts (most of its 3-8 ms in a batch of small items); an
    idle helper is reused instead.  A helper whose call ran past its budget is
    never given back: it is left to finish (or not) on its own.
    """

    _idle: ClassVar[list[_HookThread]] = []
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[tuple[Callable[..., Any], list[Any], _Call]] = (
            queue.SimpleQueue()
        )
        threading.Thread(target=self._run, daemon=True, name="validator-hook").start()

    @classmethod
    def take(cls) -> _HookThread:
        with cls._lock:
            if cls._idle:
                return cls._idle.pop()
        return cls()

    @classmethod
    def give_back(cls, helper: _HookThread) -> None:
        with cls._lock:
            if len(cls._idle) < 16:
                cls._idle.append(helper)

    def call(self, fn: Callable[..., Any], args: list[Any]) -> _Call:
        box = _Call()
        self._calls.put((fn, args, box))
        return box

    def _run(self) -> None:
        while True:
            fn, args, box = self._calls.get()
            try:
                box.result = fn(*args)
            except BaseException as exc:  # handed to the caller, raised there
                box.error = exc
            finally:
                del fn, args
                box.done.set()


def _forget_hook_threads() -> None:
    """In a forked child the helpers' threads do not exist: never hand a call to one."""
    _HookThread._idle = []
    _HookThread._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_hook_threads)


def implementations(pm: pluggy.PluginManager, hook: str) -> list[pluggy.HookImpl]:
    """A hook's implementations in pluggy's call order (tryfirst … trylast, last
    registered first).  Wrappers never get here: :func:`refuse_wrappers`."""
    caller = getattr(pm.hook, hook)
    return list(reversed(caller.get_hookimpls()))


def call_each(
    pm: pluggy.PluginManager,
    hook: str,
    kwargs: dict[str, Any],
    *,
    seconds: float | None = None,
    accept: type | tuple[type, ...] | None = None,
    registration_order: bool = False,
) -> Iterator[Reply]:
    """Call every implementation of ``hook`` on its own and check what it returns.

    ``kwargs`` holds every argument of the spec (each implementation receives the
    ones it names); ``seconds`` bounds each call in time (``None``: unbounded, for
    the registry's quick load hooks); ``accept`` is the type every returned value
    must have (the return value is taken as a list, ``None`` as nothing);
    ``registration_order`` calls the first registered plugin first (built-ins
    before third parties) instead of pluggy's last-registered-first.
    """
    impls = implementations(pm, hook)
    for impl in reversed(impls) if registration_order else impls:
        plugin = impl.plugin_name
        args = [kwargs[a] for a in impl.argnames]
        try:
            if seconds is None:
                result = impl.function(*args)
            else:
                result = call_bounded(impl.function, args, seconds, plugin, hook)
            # A generator that raises while it is read fails here; a single value
            # (``firstresult`` hooks) is one value.
            values = as_list(result)
        except PLUGIN_ERRORS as exc:
            yield Reply(plugin, [], [HookFailure(plugin, hook, describe(exc), exc)])
            continue
        if accept is None:
            yield Reply(plugin, values, [], result is None, result)
            continue
        good = [v for v in values if isinstance(v, accept)]
        bad = [
            HookFailure(plugin, hook, "", None, type(v).__name__)
            for v in values
            if not isinstance(v, accept)
        ]
        yield Reply(plugin, good, bad, result is None, result)


# -- hook wrappers ----------------------------------------------------------------


class WrapperRefused(Exception):
    """A plugin implements a hook as a wrapper (refused: see the module docstring)."""

    def __init__(self, hook: str) -> None:
        super().__init__(hook)
        self.hook = hook


def refuse_wrappers(pm: pluggy.PluginManager, plugin: object) -> None:
    """Raise :class:`WrapperRefused` if ``plugin`` (registered) implements a hook as a
    ``wrapper=True`` or ``hookwrapper=True`` implementation."""
    for caller in pm.get_hookcallers(plugin) or []:
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and (impl.wrapper or impl.hookwrapper):
                raise WrapperRefused(caller.name)


# -- the file pass: worker threads under the time budget ----------------------------


class Abandoned(BaseException):
    """Unwinds a worker whose plugin call ran past the time budget (never caught by
    plugins' ``except Exception``)."""


class Slot:
    """One worker thread: the plugin call it is in, and whether it was given up on."""

    __slots__ = ("abandoned", "crash", "current")

    def __init__(self) -> None:
        self.current: tuple[str, str, str, float] | None = None
        self.abandoned = False
        self.crash: BaseException | None = None

    @contextmanager
    def guard(self, plugin: str, label: str, name: str) -> Iterator[None]:
        """Around one call into ``plugin`` (``label``: its hook or check) on file ``name``."""
        self.current = (plugin, label, name, time.monotonic())
        try:
            yield
        finally:
            self.current = None
            if self.abandoned:
                raise Abandoned


class Supervisor:
    """Runs jobs on daemon worker threads under the plugin time budget.

    Python cannot stop a thread, so a plugin call (marked by :meth:`Slot.guard`)
    that runs past ``seconds`` is reported through ``on_timeout(plugin, label,
    name)`` and its worker abandoned: its job's other results are dropped, it
    stops at its next return from plugin code, and a fresh worker takes the rest.
    """

    def __init__(self, seconds: float, on_timeout: Callable[[str, str, str], None]) -> None:
        self.seconds = seconds
        self.on_timeout = on_timeout

    def run(self, jobs: list[Callable[[Slot], None]], workers: int) -> None:
        if not jobs:
            return
        budget = float(self.seconds)
        lock = threading.Lock()
        queue = list(reversed(jobs))
        left = [len(jobs)]
        done = threading.Event()
        slots: list[tuple[Slot, _HookThread, _Call]] = []

        def work(slot: Slot) -> None:
            while True:
                with lock:
                    if slot.abandoned or not queue:
                        return
                    job = queue.pop()
                try:
                    job(slot)
                except Abandoned:
                    return
                except BaseException as exc:  # a bug in the engine itself: keep it visible
                    slot.crash = exc
                with lock:
                    left[0] -= 1
                    if left[0] == 0:
                        done.set()

        def spawn() -> None:
            # On an idle hook thread when there is one (a thread start per worker and
            # run was most of the pass's overhead for a small package).
            slot = Slot()
            helper = _HookThread.take()
            slots.append((slot, helper, helper.call(work, [slot])))

        for _ in range(workers):
            spawn()
        while not done.wait(0.05 if budget < 5 else 0.25):
            now = time.monotonic()
            for slot, _helper, _box in list(slots):
                current = slot.current
                if current is None or slot.abandoned or now - current[3] <= budget:
                    continue
                plugin, label, name, _start = current
                slot.abandoned = True
                self.on_timeout(plugin, label, name)
                with lock:
                    left[0] -= 1
                    if left[0] == 0:
                        done.set()
                    more = bool(queue)
                if more:
                    spawn()
        for slot, helper, box in slots:
            # A worker given up on is left to itself; the others end at once (no job left).
            if not slot.abandoned and box.done.wait(budget):
                _HookThread.give_back(helper)
        for slot, _helper, _box in slots:
            if slot.crash is not None:
                raise slot.crash


# -- checks that one plugin feeds for another ---------------------------------------


class IsolatedCheck(StreamCheck):
    """Another plugin's :class:`StreamCheck`, fed by the plugin that asked for it.

    A check that raises is dropped (it gets no more bytes) and reported as the
    engine reports a failed check: ``validator.core.check.failed`` on ``name``,
    with the check's own plugin and label — not as the feeding plugin's failure.
    """

    def __init__(self, check: StreamCheck, plugin: str, name: str) -> None:
        self.check = check
        self.plugin = plugin
        self.name = name
        self.label = check.label or type(check).__name__
        self.failure: BaseException | None = None

    def update(self, data: memoryview) -> None:
        if self.failure is not None:
            return
        try:
            self.check.update(data)
        except PLUGIN_ERRORS as exc:
            self.failure = exc

    def finish(self, report: Reporter) -> None:
        if self.failure is None:
            try:
                self.check.finish(report)
            except PLUGIN_ERRORS as exc:
                self.failure = exc
        if self.failure is not None:
            message_id, args = check_failure(self.plugin, self.label, self.failure)
            report.error(self.name, message_id, *args)


__all__ = [
    "PLUGIN_ERRORS",
    "Abandoned",
    "HookFailure",
    "IsolatedCheck",
    "PluginTimeout",
    "Reply",
    "Slot",
    "Supervisor",
    "WrapperRefused",
    "as_list",
    "call_bounded",
    "call_each",
    "check_failure",
    "describe",
    "implementations",
    "refuse_wrappers",
]
