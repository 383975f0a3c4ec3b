"""Typed hand-offs: what the opener learned reaches the hooks as typed objects, not
string keys in ``session.meta`` or the plugins' ``ctx.store``."""

from __future__ import annotations

import tarfile
from pathlib import Path

from validator_plugins.ovf import descriptor_of
from validator_plugins.ovf.opened import ArchiveProblem, Opened

from validator.checks import CheckContext
from validator.engine import Engine
from validator.limits import Limits

from .conftest import SAMPLES, ids


def test_a_lone_descriptor_hands_its_parse_to_the_validation() -> None:
    engine = Engine()
    session = engine.open(SAMPLES / "vm.ovf")
    assert session.meta == {}
    note = session.noted(Opened)
    assert note is not None and note.source == "ovf" and note.parsed is not None
    ctx = CheckContext(item_type="ovf", limits=Limits())
    assert descriptor_of(session, ctx) is note.parsed.descriptor  # parsed once, reused
    assert list(ctx.store) == ["ovf.descriptor"]  # the engine's read cache is not in store
    assert ctx.small_content("vm.ovf") == note.parsed.data
    # Other limits: the parse is not reused.
    other = CheckContext(item_type="ovf", limits=Limits(references=5))
    assert descriptor_of(session, other) is not note.parsed.descriptor


def test_archive_problems_travel_as_typed_objects(tmp_path: Path) -> None:
    ova = tmp_path / "late.ova"
    with tarfile.open(ova, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name in ("vm-disk1.vmdk", "vm.ovf", "vm.mf"):
            tar.add(SAMPLES / name, arcname=name)
    engine = Engine()
    session = engine.open(ova)
    assert session.meta == {}
    note = session.noted(Opened)
    assert note is not None and note.source == "ova-file"
    late = ("vm.ovf", "vm-disk1.vmdk")
    assert note.problems == [
        ArchiveProblem("vm.ovf", "validator.ovf.ova.descriptor_not_first", late)
    ]
    result = engine.validate(session)
    assert "validator.ovf.ova.descriptor_not_first" in ids(result)
    assert note.problems == []  # reported once
