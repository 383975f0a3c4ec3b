"""Bad input never raises: random damage to the metadata of real images ends as messages."""

from __future__ import annotations

import io
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from validator_plugins.iso.check import inspect
from validator_plugins.iso.image import SECTOR, Image

from .conftest import ids, validate


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    if shutil.which("genisoimage") is None:
        pytest.skip("genisoimage is not installed (apt-get install genisoimage)")
    base = tmp_path_factory.mktemp("fuzz")
    src = base / "src"
    (src / "d1" / "d2").mkdir(parents=True)
    for i in range(12):
        (src / f"file{i}.txt").write_text(str(i))
    (src / "d1" / "d2" / "x.bin").write_bytes(bytes(5000))
    (src / "boot.img").write_bytes(bytes(2048))
    out = {}
    for name, opts in {
        "jr": ["-J", "-R"],
        "udf": ["-udf", "-J", "-R"],
        "boot": ["-R", "-b", "boot.img", "-no-emul-boot"],
    }.items():
        path = base / f"{name}.iso"
        subprocess.run(
            ["genisoimage", "-quiet", *opts, "-o", str(path), str(src)], check=True, timeout=60
        )
        out[name] = path.read_bytes()
    return out


def metadata_offsets(data: bytes) -> list[int]:
    """Byte offsets of sectors that hold metadata (non-zero sectors before the file data)."""
    sectors = [s for s in range(len(data) // SECTOR) if any(data[s * SECTOR : (s + 1) * SECTOR])]
    return [s * SECTOR for s in sectors if s < 300]


@pytest.mark.parametrize("name", ["jr", "udf", "boot"])
def test_random_damage_never_raises(originals: dict[str, bytes], name: str) -> None:
    rng = random.Random(f"iso-{name}")
    data = originals[name]
    sectors = metadata_offsets(data)
    found: set[str] = set()
    for _ in range(150):
        copy = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            at = rng.choice(sectors) + rng.randrange(SECTOR)
            copy[at] = rng.randrange(256)
        if rng.random() < 0.2:
            copy = copy[: rng.randrange(len(copy))]
        image = Image(io.BytesIO(bytes(copy)), len(copy))
        findings = inspect(image, 10_000)  # must not raise
        found.update(m for m, _ in findings.problems)
        assert image.bytes_read < 2 << 20
    assert found  # the damage was noticed at least sometimes


def test_engine_reports_no_plugin_failure(originals: dict[str, bytes], tmp_path: Path) -> None:
    rng = random.Random("engine")
    data = originals["udf"]
    sectors = metadata_offsets(data)
    for i in range(15):
        copy = bytearray(data)
        for _ in range(4):
            copy[rng.choice(sectors) + rng.randrange(SECTOR)] = rng.randrange(256)
        path = tmp_path / f"damaged{i}.iso"
        path.write_bytes(bytes(copy))
        found = ids(validate(path))
        assert not [m for m in found if m.startswith("validator.core.")], found
