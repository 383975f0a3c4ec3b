"""A run of bench/disk_compare.py: our verdict on every image it builds.

Every genuine image qemu-img makes in a format we accept is valid (no
``validator.disk.*`` problem; a VMDK gets exactly what the ``ovf`` adapter's
own VMDK checker says of the same bytes, the one implementation both share);
every unsafe image and every damaged copy gets the problem its row expects.
oslo.utils and qemu-img are left to the script (docs/disk.md has the table).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import ROOT
from .disks import qemu_img


def load_compare() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "disk_compare", ROOT / "bench" / "disk_compare.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["disk_compare"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compare() -> ModuleType:
    return load_compare()


@pytest.fixture(scope="module")
def images(compare: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    qemu_img()
    base = tmp_path_factory.mktemp("disk-compare")
    genuine: dict[str, Path] = compare.build_genuine(base)
    return genuine | compare.build_damaged(base, genuine)


def vmdk_checker_ids(path: Path) -> list[str]:
    from validator_plugins.ovf.vmdk import VmdkChecker

    checker = VmdkChecker(path.name)
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            checker.feed(chunk)
    return [message_id for message_id, _ in checker.close()]


def test_every_format_qemu_img_makes_is_built(images: dict[str, Path]) -> None:
    wanted = {
        "qcow2-v2", "qcow2-v3", "qcow2-lazy", "qcow2-extl2", "qcow2-zlib", "qcow2-snap",
        "qcow2-backing", "qcow2-datafile", "qcow2-luks", "vpc-dynamic", "vpc-fixed",
        "vhdx-dynamic", "vhdx-fixed", "vdi-dynamic", "vdi-static", "vmdk-stream",
        "vmdk-sparse", "vmdk-flat", "vmdk-2gb", "raw", "raw-gpt", "luks", "qed",
    }  # fmt: skip
    assert wanted <= set(images)


def test_our_column(compare: ModuleType, images: dict[str, Path]) -> None:
    wrong = {}
    for name, path in images.items():
        ids = compare.ours(path)
        ours = [i.removeprefix("validator.disk.") for i in ids if i.startswith("validator.disk.")]
        expect = compare.expected(name)
        if name in ("vmdk-stream", "vmdk-sparse"):
            ok = not ours and ids == vmdk_checker_ids(path)
        elif expect == ("*",):
            ok = bool(ids)
        elif not expect:
            ok = not ids
        else:
            ok = any(e in ours for e in expect)
        if not ok:
            wrong[name] = (ids, expect)
    assert not wrong


def test_the_name_of_a_damaged_image_is_its_own(compare: ModuleType) -> None:
    names = [d.name + b for d in compare.DAMAGES for b in d.bases]
    assert len(names) == len(set(names))
