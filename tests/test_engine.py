"""The engine: phases, one read per file, groups, plugin isolation, deterministic order."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import pytest

from validator.checks import CheckContext, ItemType, ReaderCheck, Reporter, StreamCheck
from validator.engine import Engine
from validator.hookspecs import hookimpl
from validator.limits import Limits
from validator.results import NotAllowedInCurrentState
from validator.session import (
    PathSource,
    Session,
    SessionError,
    SessionFile,
    TransferStatus,
)


class CountingSource:
    """A byte source that counts how often it is opened and how many bytes are read."""

    def __init__(self, data: bytes, seekable: bool = True) -> None:
        self.data = data
        self.opens = 0
        self._seekable = seekable

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def seekable(self) -> bool:
        return self._seekable

    def open(self) -> BinaryIO:
        self.opens += 1
        return io.BytesIO(self.data)


class FakeType(ItemType):
    name = "testing"
    summary = "files for engine tests"

    def detect(self, session: Session) -> int:
        return 10 if any(n.endswith(".t") for n in session.names()) else 0


class Collect(StreamCheck):
    label = "collect"

    def __init__(self, name: str, sink: dict[str, bytes]) -> None:
        self.name = name
        self.sink = sink
        self.parts: list[bytes] = []
        self.finished = 0

    def update(self, data: memoryview) -> None:
        self.parts.append(bytes(data))

    def finish(self, report: Reporter) -> None:
        self.finished += 1
        self.sink[self.name] = b"".join(self.parts)
        if b"BAD" in self.sink[self.name]:
            report.error(self.name, "validator.core.file.read_error", self.name, "BAD inside")


class FakePlugin:
    """Declares item type ``testing``: requires ``need.t``, streams every file."""

    def __init__(self) -> None:
        self.seen: dict[str, bytes] = {}
        self.groups: list[list[str]] = []
        self.shared: Collect | None = None

    @hookimpl
    def validator_item_types(self) -> Iterable[ItemType]:
        return [FakeType()]

    @hookimpl
    def validator_required_files(self, item_type: str) -> Iterable[str] | None:
        return ["need.t", "a.t"] if item_type == "testing" else None

    @hookimpl
    def validator_file_groups(self, item_type: str) -> Iterable[list[str]] | None:
        return self.groups if item_type == "testing" else None

    @hookimpl
    def validator_file_checks(
        self, item_type: str, file: SessionFile, ctx: CheckContext
    ) -> Iterable[StreamCheck] | None:
        if item_type != "testing":
            return None
        ctx.request_digest(file.name, "sha256")
        if self.groups and any(file.name in g for g in self.groups):
            if self.shared is None:
                self.shared = Collect("group", self.seen)
            return [self.shared]
        return [Collect(file.name, self.seen)]


def mem_session(files: dict[str, bytes], **kw: object) -> Session:
    s = Session(origin="mem")
    for name, data in files.items():
        s.files.append(SessionFile(name=name, source=CountingSource(data), **kw))  # type: ignore[arg-type]
    return s


@pytest.fixture
def plugin(make_registry) -> FakePlugin:  # type: ignore[no-untyped-def]
    p = FakePlugin()
    make_registry(("testing", p))
    return p


def test_phases_produce_missing_and_invalid(plugin: FakePlugin) -> None:
    session = mem_session({"a.t": b"hello", "b.t": b"BAD data"})
    result = Engine().validate(session)
    assert result.item_type == "testing"
    assert result.missing_files == ("need.t",)
    assert [(e.name, e.error_message.id) for e in result.invalid_files] == [
        ("b.t", "validator.core.file.read_error")
    ]
    assert plugin.seen == {"a.t": b"hello", "b.t": b"BAD data"}


def test_each_file_is_opened_once_for_all_checks_and_digests(plugin: FakePlugin) -> None:
    data = b"x" * 3_000_000
    session = mem_session({"a.t": data})
    engine = Engine(limits=Limits(read_chunk_bytes=65536))
    ctx_digest: list[str] = []

    class Spy:
        @hookimpl
        def validator_check_session(self, ctx: CheckContext) -> None:
            ctx_digest.append(ctx.digest("a.t", "sha256") or "")

    engine.registry.pm.register(Spy(), name="spy")
    src = session.files[0].source
    assert isinstance(src, CountingSource)
    try:
        # Detection is not the file pass: the built-in `disk` type reads the head of a
        # session's only file to tell whether it is a disk image.  Counted from here.
        kind = engine.detect(session)
        src.opens = 0
        engine.validate(session, item_type=kind)
    finally:
        engine.registry.pm.unregister(name="spy")
    assert src.opens == 1
    assert ctx_digest == [hashlib.sha256(data).hexdigest()]


def test_group_is_one_stream_in_order(plugin: FakePlugin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("validator.engine.PARALLEL_MIN_BYTES", 0)
    plugin.groups = [["a.t.000000001", "a.t.000000000"][::-1]]
    session = mem_session({"a.t.000000001": b"world", "x.t": b"x", "a.t.000000000": b"hello "})
    Engine(limits=Limits(threads=4)).validate(session)
    assert plugin.seen["group"] == b"hello world"
    assert plugin.shared is not None and plugin.shared.finished == 1


def test_plugin_raising_is_reported_by_name_and_run_goes_on(
    plugin: FakePlugin, make_registry
) -> None:  # type: ignore[no-untyped-def]
    class Raising:
        @hookimpl
        def validator_prepare_session(self) -> None:
            raise ValueError("prepare broke")

        @hookimpl
        def validator_file_checks(self) -> None:
            raise KeyError("checks broke")

        @hookimpl
        def validator_required_files(self) -> object:
            return [42]

    make_registry(("testing", plugin), ("raising", Raising()))
    result = Engine().validate(mem_session({"a.t": b"ok"}))
    got = [(e.name, e.error_message.id, e.error_message.args) for e in result.invalid_files]
    assert (
        "a.t",
        "validator.core.plugin.failed",
        ("raising", "validator_prepare_session", "ValueError: prepare broke"),
    ) in got
    assert (
        "a.t",
        "validator.core.plugin.failed",
        ("raising", "validator_file_checks", "KeyError: 'checks broke'"),
    ) in got
    assert (
        "a.t",
        "validator.core.plugin.bad_result",
        ("raising", "validator_required_files", "int"),
    ) in got
    assert plugin.seen == {"a.t": b"ok"}  # the other plugin's check still ran
    assert result.missing_files == ("need.t",)


def test_check_raising_mid_stream_is_reported(make_registry) -> None:  # type: ignore[no-untyped-def]
    class Explodes(StreamCheck):
        label = "explodes"

        def update(self, data: memoryview) -> None:
            raise RuntimeError("bad chunk")

        def finish(self, report: Reporter) -> None:
            raise AssertionError("never called after a failure")

    class P(FakePlugin):
        @hookimpl
        def validator_file_checks(
            self,
            item_type: str,
            file: SessionFile,  # type: ignore[override]
            ctx: CheckContext,
        ) -> Iterable[StreamCheck]:
            return [Explodes()] if file.name == "a.t" else []

    make_registry(("p", P()))
    result = Engine().validate(mem_session({"a.t": b"data", "need.t": b""}))
    assert [(e.name, e.error_message.id, e.error_message.args) for e in result.invalid_files] == [
        ("a.t", "validator.core.check.failed", ("p", "explodes", "RuntimeError: bad chunk"))
    ]


def test_reader_check_runs_and_needs_seek(make_registry) -> None:  # type: ignore[no-untyped-def]
    class Head(ReaderCheck):
        label = "head"

        def run(self, stream: BinaryIO, size: int, report: Reporter) -> None:
            stream.seek(size - 2)
            if stream.read(2) != b"OK":
                report.error("a.t", "validator.core.file.read_error", "a.t", "no OK")

    class P(FakePlugin):
        @hookimpl
        def validator_file_checks(
            self,
            item_type: str,
            file: SessionFile,  # type: ignore[override]
            ctx: CheckContext,
        ) -> Iterable[ReaderCheck]:
            return [Head()] if file.name == "a.t" else []

    make_registry(("p", P()))
    good = mem_session({"a.t": b"....OK", "need.t": b""})
    assert not Engine().validate(good).has_errors
    assert good.files[0].source.opens == 1  # type: ignore[union-attr]
    bad = mem_session({"a.t": b"....NO", "need.t": b""})
    assert Engine().validate(bad).invalid_files[0].error_message.args == ("a.t", "no OK")
    stream = Session(
        origin="s",
        files=[
            SessionFile("a.t", source=CountingSource(b"..OK", seekable=False)),
            SessionFile("need.t", source=CountingSource(b"")),
        ],
    )
    res = Engine().validate(stream)
    assert res.invalid_files[0].error_message.id == "validator.core.check.needs_seek"


def test_not_received_file_is_not_allowed_in_current_state(plugin: FakePlugin) -> None:
    session = mem_session({"a.t": b"x"})
    session.files.append(SessionFile("need.t", status=TransferStatus.TRANSFERRING))
    with pytest.raises(NotAllowedInCurrentState) as err:
        Engine().validate(session)
    assert err.value.http_status == 400
    assert [m.id for m in err.value.messages] == ["validator.core.session.file_not_received"]
    assert err.value.messages[0].args == ("need.t", "TRANSFERRING")


def test_size_mismatch_is_not_received(plugin: FakePlugin) -> None:
    session = mem_session({"a.t": b"abc"})
    session.files[0].size = 10
    with pytest.raises(NotAllowedInCurrentState) as err:
        Engine().validate(session)
    assert err.value.messages[0].id == "validator.core.session.file_size_mismatch"
    assert err.value.messages[0].args == ("a.t", "10", "3")


def test_declared_checksum_is_checked_in_the_same_pass(plugin: FakePlugin) -> None:
    from validator.session import ChecksumAlgorithm, ChecksumInfo

    session = mem_session({"a.t": b"abc", "need.t": b""})
    session.files[0].checksum_info = ChecksumInfo(ChecksumAlgorithm.MD5, "0" * 32)
    result = Engine().validate(session)
    assert [e.error_message.id for e in result.invalid_files] == [
        "validator.core.file.checksum_mismatch"
    ]
    assert result.invalid_files[0].error_message.args[3] == hashlib.md5(b"abc").hexdigest()
    assert session.files[0].source.opens == 1  # type: ignore[union-attr]


def test_result_order_is_deterministic(plugin: FakePlugin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("validator.engine.PARALLEL_MIN_BYTES", 0)  # use the thread pool
    files = {f"f{i:02}.t": (b"BAD" if i % 3 == 0 else b"ok") for i in range(40)}
    first = Engine(limits=Limits(threads=8)).validate(mem_session(files))
    for _ in range(3):
        again = Engine(limits=Limits(threads=8)).validate(mem_session(files))
        assert again == first
    assert [e.name for e in first.invalid_files] == sorted(e.name for e in first.invalid_files)


def test_detection_errors(make_registry) -> None:  # type: ignore[no-untyped-def]
    make_registry()
    with pytest.raises(SessionError) as err:
        Engine().validate(mem_session({"a.unknown": b""}))
    assert err.value.message_id == "validator.core.input.no_type"
    with pytest.raises(SessionError) as err:
        Engine().validate(mem_session({"a.ovf": b""}), "nope")
    assert err.value.message_id == "validator.core.input.unknown_type"


def test_unreadable_file_is_reported(plugin: FakePlugin, tmp_path: Path) -> None:
    path = tmp_path / "a.t"
    path.write_bytes(b"abc")
    session = Session(
        origin="x",
        files=[
            SessionFile("a.t", source=PathSource(path, 3)),
            SessionFile("need.t", source=CountingSource(b"")),
        ],
    )
    path.unlink()
    path.symlink_to("/etc/hostname")  # swapped for a link after the session was built
    result = Engine().validate(session)
    assert [e.error_message.id for e in result.invalid_files] == ["validator.core.file.read_error"]


def test_plugin_past_its_time_budget_is_reported_and_run_completes(
    make_registry,  # type: ignore[no-untyped-def]
) -> None:
    import threading

    release = threading.Event()

    class Hangs(StreamCheck):
        label = "hangs"

        def update(self, data: memoryview) -> None:
            release.wait(30)

        def finish(self, report: Reporter) -> None:
            pass

    class Slow:
        @hookimpl
        def validator_prepare_session(self) -> None:
            release.wait(30)

        @hookimpl
        def validator_file_checks(self, file: SessionFile) -> Iterable[StreamCheck]:
            return [Hangs()] if file.name == "a.t" else []

    plugin = FakePlugin()
    make_registry(("testing", plugin), ("slow", Slow()))
    session = mem_session({"a.t": b"data", "b.t": b"BAD", "need.t": b""})
    try:
        result = Engine(limits=Limits(plugin_seconds=1)).validate(session)
    finally:
        release.set()
    got = [(e.name, e.error_message.id, e.error_message.args[:2]) for e in result.invalid_files]
    assert ("a.t", "validator.core.plugin.timeout", ("slow", "validator_prepare_session")) in got
    assert ("a.t", "validator.core.plugin.timeout", ("slow", "hangs")) in got
    # The other file was still checked by the well-behaved plugin.
    assert ("b.t", "validator.core.file.read_error", ("b.t", "BAD inside")) in got
    assert "b.t" in plugin.seen


def test_generator_raising_while_read_is_reported(make_registry) -> None:  # type: ignore[no-untyped-def]
    class Gen:
        @hookimpl
        def validator_file_checks(self) -> Iterable[StreamCheck]:
            yield from ()
            raise RuntimeError("lazy failure")

    make_registry(("testing", FakePlugin()), ("gen", Gen()))
    result = Engine().validate(mem_session({"a.t": b"x", "need.t": b""}))
    assert next(
        e.error_message.args
        for e in result.invalid_files
        if e.error_message.id == "validator.core.plugin.failed"
    )[0] == "gen"


def test_session_lookup_follows_appends_replacements_and_new_lists() -> None:
    """``Session.get`` is indexed (large sessions were quadratic) and stays exact."""
    from validator.session import Session, SessionFile

    s = Session(origin="t")
    assert s.get("a") is None
    a, b = SessionFile("a", None), SessionFile("b", None)
    s.files.append(a)  # adapters append directly
    assert s.get("a") is a and s.get("b") is None
    s.files.append(b)
    assert s.get("b") is b
    b2 = SessionFile("b", None)
    s.add(b2)  # re-adding a name replaces it in place
    assert s.get("b") is b2 and s.names() == ["a", "b"]
    s.files[0] = SessionFile("c", None)  # replaced in place under another name
    assert s.get("a") is None and s.get("c") is s.files[0]
    s.files.pop()
    assert s.get("b") is None
    s.files = [SessionFile("z", None)]
    assert s.get("c") is None and s.get("z") is s.files[0]
    dup = Session(origin="d", files=[SessionFile("x", None), SessionFile("x", None)])
    assert dup.get("x") is dup.files[0]  # the first of a name, as a scan finds it
