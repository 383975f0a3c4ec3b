"""Build OVF packages for the integrity tests: the sample descriptor with other References,
real files, manifests written with hashlib, and a compact view of a validation result."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from validator.engine import Engine
from validator.limits import Limits

from .conftest import SAMPLES

SAMPLE_FILE = '<File ovf:id="file1" ovf:href="vm-disk1.vmdk" ovf:size="65536"/>'
DISK = "vm-disk1.vmdk"
DISK_BYTES = (SAMPLES / DISK).read_bytes()


def file_xml(
    href: str = DISK,
    fid: str = "file1",
    size: int | None = None,
    chunk: int | None = None,
    compression: str | None = None,
) -> str:
    attrs = [f'ovf:id="{fid}"', f'ovf:href="{href}"']
    if size is not None:
        attrs.append(f'ovf:size="{size}"')
    if chunk is not None:
        attrs.append(f'ovf:chunkSize="{chunk}"')
    if compression is not None:
        attrs.append(f'ovf:compression="{compression}"')
    return f"<File {' '.join(attrs)}/>"


def write_ovf(dest: Path, *files: str) -> None:
    """The sample descriptor with References holding ``files`` (``file_xml`` strings)."""
    text = (SAMPLES / "vm.ovf").read_text(encoding="utf-8")
    assert SAMPLE_FILE in text
    (dest / "vm.ovf").write_text(text.replace(SAMPLE_FILE, "\n    ".join(files)), "utf-8")


def manifest_text(dest: Path, names: list[str], alg: str = "SHA256") -> str:
    lines = []
    for name in names:
        digest = hashlib.new(alg.lower(), (dest / name).read_bytes()).hexdigest()
        lines.append(f"{alg}({name})= {digest}\n")
    return "".join(lines)


def write_manifest(dest: Path, names: list[str] | None = None, alg: str = "SHA256") -> None:
    """``vm.mf`` listing ``names`` (default: every file of the folder but .mf/.cert)."""
    if names is None:
        names = sorted(
            p.name for p in dest.iterdir() if p.is_file() and p.suffix not in (".mf", ".cert")
        )
    (dest / "vm.mf").write_text(manifest_text(dest, names, alg), "utf-8")


def sample_package(dest: Path, manifest: bool = True) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLES / "vm.ovf", dest / "vm.ovf")
    shutil.copy(SAMPLES / DISK, dest / DISK)
    if manifest:
        shutil.copy(SAMPLES / "vm.mf", dest / "vm.mf")
    return dest


@dataclass
class Outcome:
    errors: list[tuple[str, str]]  # (file name, message id)
    missing: list[str]
    warnings: list[tuple[str, str]]
    result: Any

    @property
    def ids(self) -> list[str]:
        return [i for _, i in self.errors]

    @property
    def warning_ids(self) -> list[str]:
        return [i for _, i in self.warnings]

    def args(self, message_id: str) -> list[tuple[str, ...]]:
        return [
            e.error_message.args
            for e in (*self.result.invalid_files, *self.result.warnings)
            if e.error_message.id == message_id
        ]


def check(
    path: Path, limits: Limits | None = None, options: dict[str, str] | None = None
) -> Outcome:
    engine = Engine(limits=limits, options=options)
    result = engine.validate(engine.open(path))
    return Outcome(
        errors=[(e.name, e.error_message.id) for e in result.invalid_files],
        missing=list(result.missing_files),
        warnings=[(w.name, w.error_message.id) for w in result.warnings],
        result=result,
    )
