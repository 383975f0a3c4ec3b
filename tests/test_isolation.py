"""Faulty plugins: every hook that raises, hangs or returns garbage is reported by name,
the rest of the validation completes, and the CLI exits with its documented status.

tests/test_engine.py covers raising in prepare/file_checks, a bad required_files
item, a check raising in update, a generator raising, and timeouts in prepare and
update; this module covers every other hook and return type.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import pytest

from validator.checks import ItemType, ReaderCheck, Reporter, StreamCheck
from validator.engine import Engine
from validator.hookspecs import hookimpl
from validator.limits import Limits
from validator.registry import Registry
from validator.results import ValidationResult
from validator.session import Session, SessionError, SessionFile

from .conftest import CliResult

RELEASE = threading.Event()


@pytest.fixture(autouse=True)
def _release_hung_threads() -> Iterator[None]:
    RELEASE.clear()
    yield
    RELEASE.set()  # let threads abandoned by a timeout finish


def hang(*_: object) -> None:
    RELEASE.wait(30)


class Fine(ItemType):
    name = "testing"
    summary = "well-behaved type of these tests"

    def detect(self, session: Session) -> int:
        return 10 if any(n.endswith(".t") for n in session.names()) else 0


class Seen(StreamCheck):
    """A well-behaved check: proves the rest of the validation still ran."""

    label = "seen"
    files: set[str] = set()  # noqa: RUF012 - shared on purpose

    def __init__(self, name: str) -> None:
        self.name = name

    def update(self, data: memoryview) -> None:
        pass

    def finish(self, report: Reporter) -> None:
        Seen.files.add(self.name)


class Good:
    """The type's own plugin: declares ``testing`` and checks every file."""

    @hookimpl
    def validator_item_types(self) -> Iterable[ItemType]:
        return [Fine()]

    @hookimpl
    def validator_file_checks(self, item_type: str, file: SessionFile) -> Iterable[StreamCheck]:
        return [Seen(file.name)] if item_type == "testing" else []


def faulty(hook: str, fn: Callable[..., Any]) -> object:
    """A plugin object with one hook implementation ``fn``."""
    impl = hookimpl(specname=hook)(fn)
    return type("Faulty", (), {hook: staticmethod(impl)})()


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "a.t").write_bytes(b"alpha")
    (folder / "b.t").write_bytes(b"beta")
    return folder


def run(reg: Registry, path: Path, **limits: int) -> ValidationResult:
    engine = Engine(reg, limits=Limits().replace(**limits))
    return engine.validate(engine.open(path))


def entries(result: ValidationResult) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(e.name, e.error_message.id, e.error_message.args) for e in result.invalid_files]


def completed(result: ValidationResult) -> bool:
    """The well-behaved plugin's checks ran on every file."""
    return {"a.t", "b.t"} <= Seen.files and result.item_type == "testing"


@pytest.fixture(autouse=True)
def _reset_seen() -> None:
    Seen.files = set()


# -- garbage and failures from each hook, through the engine ------------------------------
GARBAGE: list[tuple[str, str, Callable[..., Any], str, tuple[str, ...]]] = [
    ("file_groups returns an int", "validator_file_groups", lambda: 42,
     "validator.core.plugin.bad_result", ("f", "validator_file_groups", "int")),
    ("file_groups returns a group of ints", "validator_file_groups", lambda: [[1, 2]],
     "validator.core.plugin.bad_result", ("f", "validator_file_groups", "list")),
    ("file_groups raises", "validator_file_groups", lambda: 1 / 0,
     "validator.core.plugin.failed",
     ("f", "validator_file_groups", "ZeroDivisionError: division by zero")),
    ("required_files returns an object", "validator_required_files", lambda: object(),
     "validator.core.plugin.bad_result", ("f", "validator_required_files", "object")),
    ("required_files raises", "validator_required_files", lambda: [][1],
     "validator.core.plugin.failed",
     ("f", "validator_required_files", "IndexError: list index out of range")),
    ("file_checks returns a string", "validator_file_checks", lambda: "not a check",
     "validator.core.plugin.bad_result", ("f", "validator_file_checks", "str")),
    ("file_checks returns a class", "validator_file_checks", lambda: [Seen],
     "validator.core.plugin.bad_result", ("f", "validator_file_checks", "ABCMeta")),
    ("check_session raises", "validator_check_session", lambda: {}["k"],
     "validator.core.plugin.failed", ("f", "validator_check_session", "KeyError: 'k'")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "hook", "fn", "message", "args"), GARBAGE, ids=[g[0] for g in GARBAGE]
)
def test_garbage_from_a_hook_is_reported_and_the_run_completes(
    make_registry: Callable[..., Registry],
    bundle: Path,
    what: str,
    hook: str,
    fn: Callable[..., Any],
    message: str,
    args: tuple[str, ...],
) -> None:
    reg = make_registry(("good", Good()), ("f", faulty(hook, fn)))
    result = run(reg, bundle)
    got = entries(result)
    assert any(m == message and a[: len(args)] == args for _, m, a in got), got
    assert all(m.startswith("validator.core.") for _, m, _ in got)
    assert completed(result)


class RaisingFinish(StreamCheck):
    label = "raises-at-finish"

    def update(self, data: memoryview) -> None:
        pass

    def finish(self, report: Reporter) -> None:
        raise RuntimeError("finish broke")


class RaisingReader(ReaderCheck):
    label = "raising-reader"

    def run(self, stream: BinaryIO, size: int, report: Reporter) -> None:
        stream.read(1)
        raise ValueError("reader broke")


class ReportsUnknownId(StreamCheck):
    label = "unknown-id"

    def update(self, data: memoryview) -> None:
        pass

    def finish(self, report: Reporter) -> None:
        report.error("nowhere.t", "acme.not.in.any.catalog", 1, None)


@pytest.mark.parametrize(
    ("check", "message", "args"),
    [
        (RaisingFinish(), "validator.core.check.failed",
         ("f", "raises-at-finish", "RuntimeError: finish broke")),
        (RaisingReader(), "validator.core.check.failed",
         ("f", "raising-reader", "ValueError: reader broke")),
        (ReportsUnknownId(), "acme.not.in.any.catalog", ("1", "None")),
    ],
    ids=["finish-raises", "reader-raises", "unknown-message-id"],
)  # fmt: skip
def test_faulty_checks(
    make_registry: Callable[..., Registry],
    bundle: Path,
    check: StreamCheck | ReaderCheck,
    message: str,
    args: tuple[str, ...],
) -> None:
    def checks(file: SessionFile) -> list[Any]:
        return [check] if file.name == "a.t" else []

    reg = make_registry(("good", Good()), ("f", faulty("validator_file_checks", checks)))
    result = run(reg, bundle)
    assert [(m, a) for _, m, a in entries(result)] == [(message, args)]
    assert completed(result)
    if message.startswith("acme."):
        # An id no catalog has still renders: the id and its arguments, never a crash.
        assert result.invalid_files[0].error_message.default_message.startswith(message)


# -- item types --------------------------------------------------------------------------
class Detects(ItemType):
    name = "odd"
    summary = "an item type whose detect misbehaves"

    def __init__(self, detect: Callable[[Session], Any], primary: Any = None) -> None:
        self._detect = detect
        self._primary = primary

    def detect(self, session: Session) -> int:
        return self._detect(session)  # type: ignore[no-any-return]

    def primary_file(self, session: Session) -> str | None:
        return self._primary  # type: ignore[no-any-return]


def types_plugin(*items: object) -> object:
    return faulty("validator_item_types", lambda: list(items))


@pytest.mark.parametrize(
    ("detect", "error"),
    [
        (lambda s: "very likely", "ValueError"),
        (lambda s: None, "TypeError"),
        (lambda s: 1 / 0, "ZeroDivisionError"),
        (lambda s: [], "TypeError"),
    ],
    ids=["returns-a-string", "returns-none", "raises", "returns-a-list"],
)
def test_detect_that_misbehaves_is_reported_and_others_still_detect(
    make_registry: Callable[..., Registry],
    bundle: Path,
    detect: Callable[[Session], Any],
    error: str,
) -> None:
    reg = make_registry(("good", Good()), ("odd", types_plugin(Detects(detect))))
    result = run(reg, bundle)
    assert completed(result) and not result.has_errors
    (problem,) = [p for p in reg.problems if p[0] == "validator.core.registry.detect_failed"]
    assert problem[1][:2] == ("odd", "odd") and problem[1][2].startswith(error)


def test_detect_past_the_time_budget_is_reported(
    make_registry: Callable[..., Registry], bundle: Path
) -> None:
    reg = make_registry(("good", Good()), ("odd", types_plugin(Detects(hang))))
    result = run(reg, bundle, plugin_seconds=1)
    assert completed(result)
    (problem,) = [p for p in reg.problems if p[0] == "validator.core.registry.detect_failed"]
    assert problem[1][2].startswith("PluginTimeout")


def test_primary_file_that_is_not_a_name_is_ignored(
    make_registry: Callable[..., Registry], bundle: Path
) -> None:
    odd = Detects(lambda s: 100, primary=12345)
    reg = make_registry(("odd", types_plugin(odd)), ("f", faulty("validator_prepare_session",
                                                                  lambda: 1 / 0)))  # fmt: skip
    result = run(reg, bundle)
    assert result.item_type == "odd"
    assert [n for n, _, _ in entries(result)] == ["a.t"]  # the first file, not 12345


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ((object(),), "validator.core.registry.bad_result"),
        ((Detects(lambda s: 0),), None),
        ((type("Bad", (Fine,), {"name": "Not A Name"})(),),
         "validator.core.registry.bad_type_name"),
        ((Fine(),), "validator.core.registry.duplicate_type"),
    ],
    ids=["not-an-item-type", "fine", "bad-name", "duplicate-name"],
)  # fmt: skip
def test_item_types_that_are_garbage_are_refused(
    make_registry: Callable[..., Registry], bundle: Path, items: tuple[object, ...],
    message: str | None,
) -> None:  # fmt: skip
    reg = make_registry(("good", Good()), ("odd", types_plugin(*items)))
    assert [p[0] for p in reg.problems if p[1][0] == "odd"] == ([message] if message else [])
    assert completed(run(reg, bundle))


def test_item_types_hook_that_raises_is_reported(
    make_registry: Callable[..., Registry], bundle: Path
) -> None:
    reg = make_registry(("good", Good()), ("odd", faulty("validator_item_types", lambda: 1 / 0)))
    assert ("validator.core.registry.hook_failed", ("odd", "validator_item_types",
            "ZeroDivisionError: division by zero")) in reg.problems  # fmt: skip
    assert completed(run(reg, bundle))


# -- catalogs ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda: 1 / 0, "validator.core.registry.hook_failed"),
        (lambda: ["not a source"], "validator.core.registry.bad_result"),
        (lambda: 7, "validator.core.registry.bad_result"),
    ],
    ids=["raises", "returns-strings", "returns-an-int"],
)
def test_message_catalogs_that_misbehave_leave_the_others_working(
    make_registry: Callable[..., Registry], bundle: Path, fn: Callable[[], Any], message: str
) -> None:
    reg = make_registry(
        ("good", Good()),
        ("cats", faulty("validator_message_catalogs", fn)),
        ("f", faulty("validator_check_session", lambda: 1 / 0)),
    )
    result = run(reg, bundle)
    assert message in [p[0] for p in reg.problems]
    failed = result.invalid_files[0].error_message
    assert failed.id == "validator.core.plugin.failed"
    assert failed.default_message.startswith("Plugin f failed in validator_check_session")


# -- opening inputs ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda: 1 / 0, "validator.core.input.plugin_failed"),
        (lambda: "a session, honestly", "validator.core.input.plugin_bad_result"),
        (lambda: [Session("x")], "validator.core.input.plugin_bad_result"),
        (hang, "validator.core.input.plugin_timeout"),
    ],
    ids=["raises", "returns-a-string", "returns-a-list", "hangs"],
)
def test_open_session_that_misbehaves_is_a_one_line_input_error(
    make_registry: Callable[..., Registry], bundle: Path, fn: Callable[..., Any], message: str,
) -> None:  # fmt: skip
    reg = make_registry(("good", Good()), ("opener", faulty("validator_open_session", fn)))
    engine = Engine(reg, limits=Limits(plugin_seconds=1))
    with pytest.raises(SessionError) as err:
        engine.open(bundle)
    assert err.value.message_id == message
    assert err.value.args_[1] == "opener"


# -- the CLI's exit status -----------------------------------------------------------------
CLI_CASES: list[tuple[str, str, Callable[..., Any], int, str]] = [
    ("open-session-raises", "validator_open_session", lambda: 1 / 0, 2,
     "plugin opener failed to open it"),
    ("open-session-garbage", "validator_open_session", lambda: 3, 2, "returned a int instead"),
    ("file-groups-garbage", "validator_file_groups", lambda: 42, 1,
     "validator.core.plugin.bad_result"),
    ("check-session-raises", "validator_check_session", lambda: 1 / 0, 1,
     "validator.core.plugin.failed"),
    ("catalogs-raise", "validator_message_catalogs", lambda: 1 / 0, 0,
     "Plugin opener failed in validator_message_catalogs"),
    # Its item types are lost: a load error, the run stops (issue 11).
    ("item-types-raise", "validator_item_types", lambda: 1 / 0, 2,
     "Plugin opener failed in validator_item_types"),
    ("prepare-hangs", "validator_prepare_session", hang, 1, "validator.core.plugin.timeout"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "hook", "fn", "status", "text"), CLI_CASES,
                         ids=[c[0] for c in CLI_CASES])  # fmt: skip
def test_cli_exit_status_with_a_faulty_plugin(
    make_registry: Callable[..., Registry],
    cli: Callable[..., CliResult],
    bundle: Path,
    what: str,
    hook: str,
    fn: Callable[..., Any],
    status: int,
    text: str,
) -> None:
    make_registry(("good", Good()), ("opener", faulty(hook, fn)))
    res = cli("--limit", "plugin_seconds=1", bundle)
    assert res.code == status, (res.out, res.err)
    assert "Traceback" not in res.err
    assert text in res.out + res.err
    if status == 2:
        assert res.err.count("\n") == 1 and res.err.startswith("validator: ")


# -- BaseException from plugin code ---------------------------------------------------------
class ExitsInUpdate(StreamCheck):
    label = "exits"

    def update(self, data: memoryview) -> None:
        raise SystemExit(0)

    def finish(self, report: Reporter) -> None:
        pass


def _raise(exc: BaseException) -> Callable[[], None]:
    def fn() -> None:
        raise exc

    return fn


@pytest.mark.parametrize(
    "exc", [SystemExit(0), GeneratorExit()], ids=["sys.exit(0)", "GeneratorExit"]
)
@pytest.mark.parametrize(
    "hook",
    ["validator_prepare_session", "validator_check_session", "validator_file_checks",
     "validator_required_files", "validator_file_groups"],
)  # fmt: skip
def test_plugin_calling_sys_exit_is_a_plugin_failure(
    make_registry: Callable[..., Registry],
    cli: Callable[..., CliResult],
    bundle: Path,
    hook: str,
    exc: BaseException,
) -> None:
    """Not a way out: before the engine guarded BaseException, sys.exit(0) in a plugin
    ended the CLI with exit status 0 and no output, a 'valid' verdict."""
    make_registry(("good", Good()), ("quitter", faulty(hook, _raise(exc))))
    res = cli("--format", "json", bundle)
    assert res.code == 1
    failed = [e for e in res.json()["value"]["invalid_files"]
              if e["error_message"]["id"] == "validator.core.plugin.failed"]  # fmt: skip
    assert failed and failed[0]["error_message"]["args"][:2] == ["quitter", hook]
    assert completed_names() == {"a.t", "b.t"}


def completed_names() -> set[str]:
    return set(Seen.files)


def test_check_calling_sys_exit_is_a_check_failure(
    make_registry: Callable[..., Registry], bundle: Path
) -> None:
    def checks(file: SessionFile) -> list[Any]:
        return [ExitsInUpdate()] if file.name == "a.t" else []

    reg = make_registry(("good", Good()), ("f", faulty("validator_file_checks", checks)))
    result = run(reg, bundle)
    assert [(m, a[:2]) for _, m, a in entries(result)] == [
        ("validator.core.check.failed", ("f", "exits"))
    ]
    assert completed(result)


# -- the ovf adapter's own hook: validator_disk_checks --------------------------------------
class DiskBoom(StreamCheck):
    label = "disk-boom"

    def __init__(self, where: str, exc: BaseException | None = None) -> None:
        self.where = where
        self.exc = exc if exc is not None else RuntimeError(f"{where} broke")

    def update(self, data: memoryview) -> None:
        if self.where == "update":
            raise self.exc

    def finish(self, report: Reporter) -> None:
        if self.where == "finish":
            raise self.exc


class DiskCount(StreamCheck):
    """A well-behaved disk check of another plugin: counts the bytes it is fed."""

    label = "disk-count"
    seen: ClassVar[list[int]] = []

    def __init__(self) -> None:
        self.count = 0

    def update(self, data: memoryview) -> None:
        self.count += len(data)

    def finish(self, report: Reporter) -> None:
        DiskCount.seen.append(self.count)


def _ovf_package(tmp_path: Path, compressed: bool) -> Path:
    import gzip

    from .adversarial.bundles import SAMPLE_DISK, descriptor, file_element, package

    folder = tmp_path / "pkg"
    folder.mkdir()
    if compressed:
        files = [file_element("file1", "vm-disk1.vmdk", ' ovf:compression="gzip"')]
        package(folder, descriptor(files), disk=gzip.compress(SAMPLE_DISK))
    else:
        package(folder)
    return folder


DISK_HOOK_CASES: list[tuple[str, Callable[..., Any], str, tuple[str, ...]]] = [
    ("raises", lambda: 1 / 0, "validator.core.plugin.failed",
     ("diskplug", "validator_disk_checks", "ZeroDivisionError: division by zero")),
    ("returns-a-string", lambda: "nope", "validator.core.plugin.bad_result",
     ("diskplug", "validator_disk_checks", "str")),
    ("returns-objects", lambda: [object()], "validator.core.plugin.bad_result",
     ("diskplug", "validator_disk_checks", "object")),
    ("sys-exit", _raise(SystemExit(0)), "validator.core.plugin.failed",
     ("diskplug", "validator_disk_checks", "SystemExit: 0")),
]  # fmt: skip


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize(("what", "fn", "message", "args"), DISK_HOOK_CASES,
                         ids=[c[0] for c in DISK_HOOK_CASES])  # fmt: skip
def test_disk_checks_hook_that_misbehaves_is_reported_by_name(
    make_registry: Callable[..., Registry],
    tmp_path: Path,
    compressed: bool,
    what: str,
    fn: Callable[..., Any],
    message: str,
    args: tuple[str, ...],
) -> None:
    reg = make_registry(("diskplug", faulty("validator_disk_checks", fn)))
    result = run(reg, _ovf_package(tmp_path, compressed))
    assert [(m, a) for _, m, a in entries(result)] == [(message, args)]


@pytest.mark.parametrize("where", ["update", "finish"])
@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_disk_check_that_raises_is_reported_with_its_plugin(
    make_registry: Callable[..., Registry], tmp_path: Path, compressed: bool, where: str
) -> None:
    reg = make_registry(("diskplug", faulty("validator_disk_checks", lambda: [DiskBoom(where)])))
    result = run(reg, _ovf_package(tmp_path, compressed))
    assert [(m, a) for _, m, a in entries(result)] == [
        ("validator.core.check.failed", ("diskplug", "disk-boom", f"RuntimeError: {where} broke"))
    ]


EXITS = [SystemExit(0), SystemExit("bye"), GeneratorExit()]


@pytest.mark.parametrize("exc", EXITS, ids=["sys.exit(0)", "sys.exit(str)", "GeneratorExit"])
@pytest.mark.parametrize("where", ["update", "finish"])
@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_disk_check_calling_sys_exit_is_reported_with_its_plugin(
    make_registry: Callable[..., Registry],
    tmp_path: Path,
    compressed: bool,
    where: str,
    exc: BaseException,
) -> None:
    """Not as the ovf adapter's ``ovf-stream`` check (which also ended the VMDK check and
    every other disk check of the file): as its own plugin's, like an Exception."""
    from validator.registry import describe

    from .adversarial.bundles import SAMPLE_DISK

    DiskCount.seen = []
    reg = make_registry(
        ("diskplug", faulty("validator_disk_checks", lambda: [DiskBoom(where, exc)])),
        ("counter", faulty("validator_disk_checks", lambda: [DiskCount()])),
    )
    result = run(reg, _ovf_package(tmp_path, compressed))
    assert [(m, a) for _, m, a in entries(result)] == [
        ("validator.core.check.failed", ("diskplug", "disk-boom", describe(exc)))
    ]
    assert DiskCount.seen == [len(SAMPLE_DISK)]


def _ova_on_a_pipe(reg: Registry) -> ValidationResult:
    import io
    import tarfile

    from validator_plugins.ovf.ova import open_stream

    from .adversarial.bundles import SAMPLE_DISK, SAMPLE_OVF

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in (("vm.ovf", SAMPLE_OVF), ("vm-disk1.vmdk", SAMPLE_DISK)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    engine = Engine(reg, limits=Limits())
    return engine.validate(open_stream(io.BytesIO(raw.getvalue()), "-", Limits()))


@pytest.mark.parametrize(
    "exc", [RuntimeError("broke"), *EXITS],
    ids=["RuntimeError", "sys.exit(0)", "sys.exit(str)", "GeneratorExit"],
)  # fmt: skip
@pytest.mark.parametrize("where", ["update", "finish"])
def test_disk_check_on_an_ova_from_a_pipe_is_reported_with_its_plugin(
    make_registry: Callable[..., Registry], where: str, exc: BaseException
) -> None:
    """``validator -``: the disk's checks are handed to the engine by the ovf adapter itself
    (its stored size was unknown when the streams were prepared); a failure was reported as
    the ``ovf`` plugin's."""
    from validator.registry import describe

    from .adversarial.bundles import SAMPLE_DISK

    DiskCount.seen = []
    reg = make_registry(
        ("diskplug", faulty("validator_disk_checks", lambda: [DiskBoom(where, exc)])),
        ("counter", faulty("validator_disk_checks", lambda: [DiskCount()])),
    )
    result = _ova_on_a_pipe(reg)
    assert [(m, a) for _, m, a in entries(result)] == [
        ("validator.core.check.failed", ("diskplug", "disk-boom", describe(exc)))
    ]
    assert DiskCount.seen == [len(SAMPLE_DISK)]


def test_disk_checks_hook_that_hangs_is_reported_by_name(
    make_registry: Callable[..., Registry], tmp_path: Path
) -> None:
    reg = make_registry(("diskplug", faulty("validator_disk_checks", hang)))
    result = run(reg, _ovf_package(tmp_path, False), plugin_seconds=1)
    (entry,) = entries(result)
    assert entry[1] == "validator.core.plugin.timeout"
    assert entry[2][0] == "diskplug", entry
