"""A compact run of bench/iso_compare.py: our verdict beside pycdlib's and oslo.utils'.

Every genuine image the installed tools make (genisoimage, xorriso, mkudffs)
must be valid for us, and pycdlib must open every one of them that has an
ISO 9660 volume (so the images really are genuine to a second reader).  On
the damaged copies we must never be more lenient than pycdlib: every one of
them is an error for us, whatever pycdlib says (it opens truncated ones, for
instance); appended padding is no damage.  xorriso is left to the script (it loops
on a directory loop until it is killed).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import ROOT


def load_compare() -> ModuleType:
    spec = importlib.util.spec_from_file_location("iso_compare", ROOT / "bench" / "iso_compare.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["iso_compare"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compare() -> ModuleType:
    return load_compare()


@pytest.fixture(scope="module")
def genuine(compare: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if shutil.which("genisoimage") is None and shutil.which("xorriso") is None:
        pytest.skip("neither genisoimage nor xorriso is installed")
    built: dict[str, Path] = compare.build_genuine(tmp_path_factory.mktemp("compare"))
    return built


def test_every_genuine_image_is_valid_and_pycdlib_agrees(
    compare: ModuleType, genuine: dict[str, Path]
) -> None:
    rows = {}
    for name, path in genuine.items():
        errors, warnings = compare.ours(path)
        pure_udf = name.startswith("udf-")
        rows[name] = (errors, warnings, compare.pycdlib_verdict(path))
        assert errors == [], (name, rows[name])
        # pycdlib needs an ISO 9660 primary descriptor: only a pure UDF image is refused.
        assert warnings == (["validator.iso.pycdlib.rejected"] if pure_udf else []), name
        assert (rows[name][2] == "opens") != pure_udf, (name, rows[name])


def test_oslo_format_inspector_sees_every_iso9660_image_whole(
    compare: ModuleType, genuine: dict[str, Path]
) -> None:
    """oslo.utils (a test extra): an ISO 9660 volume no larger than its file."""
    pytest.importorskip("oslo_utils.imageutils.format_inspector")
    from oslo_utils.imageutils import format_inspector as fi

    for name, path in genuine.items():
        inspector = fi.ISOInspector.from_file(str(path)) if not name.startswith("udf-") else None
        if inspector is None:
            # It looks for NSR02/NSR03 at byte 32768, where a pure UDF image has BEA01.
            assert compare.oslo_verdict(path) == "raw", name
            continue
        assert inspector.format_match, name
        assert 0 < inspector.virtual_size <= path.stat().st_size, name
        verdict = compare.oslo_verdict(path)
        assert verdict == "iso" or verdict.startswith("ImageFormatError: Multiple formats"), (
            name,
            verdict,
        )


def test_never_more_lenient_than_pycdlib_on_damaged_copies(
    compare: ModuleType, genuine: dict[str, Path], tmp_path: Path
) -> None:
    damaged: dict[str, Path] = compare.build_damaged(tmp_path, genuine)
    assert len(damaged) > 20
    for name, path in damaged.items():
        errors, _ = compare.ours(path)
        if name.endswith("~padded"):
            assert errors == [], name  # bytes after the volume are not damage
            continue
        # Every other copy is damaged: an error for us, whatever pycdlib says (it opens
        # truncated copies, a file beyond the volume, a broken GPT or MBR).
        assert errors, (name, compare.pycdlib_verdict(path))
