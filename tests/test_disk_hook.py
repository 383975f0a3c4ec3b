"""Disk formats are pluggable: a third-party plugin adds qcow2 checks (validator_disk_checks)."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from validator.checks import Reporter, StreamCheck
from validator.hookspecs import hookimpl
from validator.messages import CatalogSource
from validator.registry import Registry

from .conftest import ids, validate
from .disks import ovf_text

QCOW2 = "https://www.qemu.org/docs/master/interop/qcow2.html"
MiB = 1 << 20


class Qcow2Check(StreamCheck):
    """Magic, and no backing file (REFERENCE §5: a backing file is unsafe)."""

    label = "qcow2"

    def __init__(self, name: str) -> None:
        self.name = name
        self.head = bytearray()

    def update(self, data: memoryview) -> None:
        if len(self.head) < 72:
            self.head += data[: 72 - len(self.head)]

    def finish(self, report: Reporter) -> None:
        if self.head[:4] != b"QFI\xfb":
            report.error(self.name, "acme.qcow2.not_qcow2", self.name)
            return
        backing_offset = struct.unpack(">Q", bytes(self.head[8:16]))[0]
        if backing_offset:
            report.error(self.name, "acme.qcow2.backing_file", self.name)


class Qcow2Plugin:
    def __init__(self, catalogs: Path) -> None:
        self.catalogs = catalogs
        self.calls: list[tuple[str, str, int | None]] = []

    @hookimpl
    def validator_message_catalogs(self) -> Iterable[CatalogSource]:
        return [CatalogSource("acme.qcow2", self.catalogs)]

    @hookimpl
    def validator_disk_checks(
        self, name: str, disk_format: str, capacity: int | None
    ) -> Iterable[StreamCheck] | None:
        if disk_format != QCOW2:
            return None
        self.calls.append((name, disk_format, capacity))
        return [Qcow2Check(name)]


class Broken:
    @hookimpl
    def validator_disk_checks(self, disk_format: str) -> None:
        raise RuntimeError("boom")


@pytest.fixture
def plugin(tmp_path: Path) -> Qcow2Plugin:
    cats = tmp_path / "catalogs"
    cats.mkdir()
    (cats / "en.toml").write_text(
        '"acme.qcow2.not_qcow2" = "{0} is not a qcow2 image."\n'
        '"acme.qcow2.backing_file" = "{0} needs a backing file."\n',
        encoding="utf-8",
    )
    return Qcow2Plugin(cats)


def qcow2_bundle(folder: Path, backing: bool = False, disk_format: str = QCOW2) -> Path:
    folder.mkdir()
    head = bytearray(b"QFI\xfb" + struct.pack(">I", 3) + bytes(64))
    if backing:
        head[8:16] = struct.pack(">Q", 0x1000)
    data = bytes(head) + bytes(4096)
    (folder / "disk.qcow2").write_bytes(data)
    (folder / "vm.ovf").write_text(
        ovf_text("disk.qcow2", len(data), 1 * MiB, disk_format), encoding="utf-8"
    )
    return folder


def test_unknown_format_is_reported_not_guessed(tmp_path: Path) -> None:
    result = validate(qcow2_bundle(tmp_path / "b"))
    assert ids(result) == ["validator.ovf.disk.unsupported_format"]
    assert result.invalid_files[0].error_message.args == ("disk.qcow2", "vmdisk1", QCOW2)


def test_missing_format_is_a_warning_and_nothing_is_guessed(tmp_path: Path) -> None:
    folder = tmp_path / "b"
    folder.mkdir()
    (folder / "disk.raw").write_bytes(bytes(4096))
    (folder / "vm.ovf").write_text(ovf_text("disk.raw", 4096, 4096, None), encoding="utf-8")
    result = validate(folder)
    assert ids(result) == []
    assert [w.error_message.id for w in result.warnings] == ["validator.ovf.disk.no_format"]


def test_a_plugin_adds_qcow2(
    make_registry: Callable[..., Registry], plugin: Qcow2Plugin, tmp_path: Path
) -> None:
    reg = make_registry(("acme-qcow2", plugin))
    assert ids(validate(qcow2_bundle(tmp_path / "good"), registry=reg)) == []
    assert plugin.calls == [("disk.qcow2", QCOW2, 1 * MiB)]
    result = validate(qcow2_bundle(tmp_path / "bad", backing=True), registry=reg)
    assert ids(result) == ["acme.qcow2.backing_file"]
    assert result.invalid_files[0].error_message.default_message == (
        "disk.qcow2 needs a backing file."
    )


def test_the_plugin_leaves_vmdk_to_the_ovf_adapter(
    make_registry: Callable[..., Registry], plugin: Qcow2Plugin, tmp_path: Path
) -> None:
    from .conftest import SAMPLES

    reg = make_registry(("acme-qcow2", plugin))
    assert ids(validate(SAMPLES / "vm.ovf", registry=reg)) == []
    assert plugin.calls == []


def test_a_failing_plugin_is_reported_and_others_run(
    make_registry: Callable[..., Registry], plugin: Qcow2Plugin, tmp_path: Path
) -> None:
    reg = make_registry(("acme-qcow2", plugin), ("broken", Broken()))
    result = validate(qcow2_bundle(tmp_path / "bad", backing=True), registry=reg)
    assert sorted(ids(result)) == ["acme.qcow2.backing_file", "validator.core.plugin.failed"]


def test_the_hook_is_documented() -> None:
    from validator_plugins.ovf import hookspecs

    doc = hookspecs.validator_disk_checks.__doc__ or ""
    assert "disk_format" in doc and "content" in doc


def test_the_ovf_plugin_owns_the_hook(cli) -> None:  # type: ignore[no-untyped-def]
    """The spec is the OVF adapter's (validator_add_hookspecs), not the core's."""
    from validator import hookspecs as core
    from validator.registry import build_registry

    assert not hasattr(core, "validator_disk_checks")
    reg = build_registry(environ={"VALIDATOR_LOAD_PLUGINS": ""})
    spec = reg.pm.hook.validator_disk_checks.spec
    assert spec is not None and spec.namespace.__name__ == "validator_plugins.ovf.hookspecs"
    out = cli("hooks").out
    assert "validator_disk_checks(" in out and "[added by validator_plugins.ovf.hookspecs]" in out


class Exploding(StreamCheck):
    label = "exploding-qcow2"

    def update(self, data: memoryview) -> None:
        raise ValueError("bad luck")

    def finish(self, report: Reporter) -> None:
        raise AssertionError("never reached")


class ExplodingPlugin:
    @hookimpl
    def validator_disk_checks(self, disk_format: str) -> Iterable[StreamCheck] | None:
        return [Exploding()] if disk_format == QCOW2 else None


def test_a_failing_disk_check_is_reported_with_its_plugin_and_label(
    make_registry: Callable[..., Registry], tmp_path: Path
) -> None:
    reg = make_registry(("acme-boom", ExplodingPlugin()))
    result = validate(qcow2_bundle(tmp_path / "b"), registry=reg)
    assert ids(result) == ["validator.core.check.failed"]
    assert result.invalid_files[0].error_message.args == (
        "acme-boom",
        "exploding-qcow2",
        "ValueError: bad luck",
    )
