"""A 1 GiB image: validated by reading metadata only, and read exactly once for a checksum."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from validator_plugins.iso.check import inspect
from validator_plugins.iso.image import Image

from validator.engine import Engine

from .conftest import ids

GIB = 1 << 30


@pytest.fixture(scope="module")
def big_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """genisoimage over a sparse 1 GiB file; its SHA-256 computed here once."""
    if shutil.which("genisoimage") is None:
        pytest.skip("genisoimage is not installed (apt-get install genisoimage)")
    base = tmp_path_factory.mktemp("big")
    src = base / "src"
    src.mkdir()
    with (src / "disk.bin").open("wb") as fh:
        fh.truncate(GIB)
    (src / "readme.txt").write_text("a large image\n")
    path = base / "big.iso"
    subprocess.run(["genisoimage", "-quiet", "-o", str(path), str(src)], check=True, timeout=120)
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(8 << 20):
            digest.update(chunk)
    yield path, digest.hexdigest()
    shutil.rmtree(base, ignore_errors=True)


class Counter:
    def __init__(self) -> None:
        self.total = 0
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, n: int) -> None:
        with self._lock:
            self.total += n
            self.calls += 1


def test_without_a_checksum_only_metadata_is_read(big_image: tuple[Path, str]) -> None:
    path, _ = big_image
    with path.open("rb") as fh:
        image = Image(fh, path.stat().st_size)
        findings = inspect(image, 1_000_000)
    assert findings.ok
    assert image.bytes_read < 1 << 20  # under 1 MiB of a 1 GiB image
    counter = Counter()
    engine = Engine(progress=counter)
    result = engine.validate(engine.open(path))
    assert ids(result) == []
    assert counter.total == 0  # no stream pass at all


def test_a_declared_checksum_reads_the_image_exactly_once(big_image: tuple[Path, str]) -> None:
    path, sha256 = big_image
    manifest = path.parent / "session.yaml"
    manifest.write_text(
        "validator-session: 1\nfiles:\n"
        f"  - name: {path.name}\n"
        f"    checksum_info: {{algorithm: SHA256, checksum: '{sha256}'}}\n"
    )
    counter = Counter()
    engine = Engine(progress=counter)
    result = engine.validate(engine.open(manifest))
    assert ids(result) == []
    assert result.item_type == "iso"
    assert counter.total == path.stat().st_size  # every byte once, in one pass
