"""Session manifests: a YAML or JSON file that describes an update session.

The format (version 1) is documented in ``docs/session-manifest.md``::

    validator-session: 1
    item_type: ovf                 # optional; detected when absent
    files:
      - name: vm.ovf               # the file's name in the session (a plain name)
        path: bundle/vm.ovf        # optional, default: name; relative to this manifest's folder
        size: 1234                 # optional declared size in bytes
        checksum_info: {algorithm: SHA256, checksum: 8f43…}
        status: READY              # optional TransferStatus, default READY

Every path stays inside the manifest's folder: absolute paths, ``..`` and
links that lead out are refused before anything is opened.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from validator.session import (
    ChecksumAlgorithm,
    ChecksumInfo,
    Rejected,
    Session,
    SessionError,
    SessionFile,
    TransferStatus,
    display_name,
    file_from_path,
    is_plain_name,
    open_regular_file,
)

if TYPE_CHECKING:
    from validator.remote import RemoteLocation

#: How a manifest entry's ``path`` becomes bytes: (the entry's file, its path) → the file
#: with its source, a refusal, or ``None`` (no such file there).
Resolver = Callable[[SessionFile, str], "SessionFile | Rejected | None"]

FORMAT_KEY = "validator-session"
SUFFIXES = (".yaml", ".yml", ".json")
_FILE_KEYS = {"name", "path", "size", "checksum_info", "status"}
#: Nesting of YAML collections a session manifest may use (it needs 4).
MAX_NESTING = 32


def looks_like_manifest(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES


def _load(path: Path, max_bytes: int) -> Any:
    try:
        with open_regular_file(path) as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise SessionError("validator.core.manifest.unreadable", path, exc.strerror or exc) from exc
    return _parse(raw, path, path.suffix, max_bytes)


def _parse(raw: bytes, path: object, suffix: str, max_bytes: int) -> Any:
    """The manifest's data from its bytes (``path`` names it in messages)."""
    if len(raw) > max_bytes:
        raise SessionError("validator.core.manifest.too_large", path, max_bytes)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SessionError("validator.core.manifest.not_utf8", path, exc.start) from exc
    if suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise SessionError(
                "validator.core.manifest.bad_json", path, exc.msg, exc.lineno
            ) from exc
        except RecursionError as exc:  # "[[[[…": the manifest itself is 4 levels deep
            raise SessionError(
                "validator.core.manifest.bad_json", path, "nested too deeply", 0
            ) from exc
    import yaml

    # A safe loader only (libyaml's when present): plain YAML types, no Python
    # tags, nothing constructed from the input's choice.  Nesting is checked
    # first (below); an alias is the same object again, never a copy, and the
    # entries are then checked one by one against max_files (tests/test_limits.py:
    # an alias bomb ends in exit 2 within 200 MiB).
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        _check_yaml_depth(yaml, text, loader, path)
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise SessionError("validator.core.manifest.bad_yaml", path, line) from exc


def _check_yaml_depth(yaml: Any, text: str, loader: Any, path: object) -> None:
    """Refuse nesting deeper than :data:`MAX_NESTING` before building any object.

    libyaml's composer recurses in C: ``files: [[[[…`` 50,000 levels deep
    crashed the process.  The parser's events are read iteratively here.
    """
    depth = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_NESTING:
                mark = event.start_mark
                raise SessionError(
                    "validator.core.manifest.bad_yaml", path, mark.line + 1 if mark else 0
                )
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def _inside(base: Path, rel: str) -> Path | None:
    """``base/rel`` if ``rel`` is relative, has no ``..`` and does not leave ``base`` by a link."""
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts or rel.startswith("~") or "\\" in rel or "\0" in rel:
        return None
    candidate = base / p
    try:
        real_parent = os.path.realpath(candidate.parent)
    except OSError:
        return None
    real_base = os.path.realpath(base)
    if os.path.commonpath([real_parent, real_base]) != real_base:
        return None
    return candidate


def session_from_manifest(path: Path, max_bytes: int, max_files: int) -> Session:
    data = _load(path, max_bytes)
    base = path.parent

    def resolve(file: SessionFile, rel: str) -> SessionFile | Rejected | None:
        target = _inside(base, rel)
        if target is None:
            return Rejected(file.name, "validator.core.file.outside_bundle", (display_name(rel),))
        if not os.path.lexists(target):
            return None
        found = file_from_path(target, file.name)
        if isinstance(found, Rejected):
            return found
        file.source = found.source
        return file

    return _session(data, str(path), max_files, resolve)


def session_from_remote_manifest(
    location: RemoteLocation, max_bytes: int, max_files: int
) -> Session:
    """A manifest at a URL: its paths are relative to the manifest's folder there.

    A path is plain names joined by ``/`` (no ``..``, nothing absolute); each is
    looked up with one request.
    """
    source = location.source()
    try:
        with source.open() as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise SessionError(
            "validator.core.manifest.unreadable", location.url, exc.strerror or exc
        ) from exc
    data = _parse(raw, location.url, location.suffix, max_bytes)

    def resolve(file: SessionFile, rel: str) -> SessionFile | Rejected | None:
        parts = rel.split("/")
        if not all(is_plain_name(p) for p in parts):
            return Rejected(file.name, "validator.core.file.outside_bundle", (display_name(rel),))
        target = location.sibling(parts[0])
        for part in parts[1:]:
            target = target.child(part)
        try:
            found = target.info()
        except OSError as exc:
            return Rejected(
                file.name, "validator.core.file.unreadable", (file.name, exc.strerror or str(exc))
            )
        if found is None or found.directory or found.size is None:
            return None
        file.source = target.source()
        return file

    return _session(data, location.url, max_files, resolve)


def _session(data: Any, where: str, max_files: int, resolve: Resolver) -> Session:
    if not isinstance(data, dict) or FORMAT_KEY not in data:
        raise SessionError("validator.core.manifest.not_manifest", where, FORMAT_KEY)
    if data[FORMAT_KEY] != 1:
        raise SessionError("validator.core.manifest.bad_version", where, data[FORMAT_KEY])
    unknown = set(data) - {FORMAT_KEY, "item_type", "files"}
    if unknown:
        raise SessionError(
            "validator.core.manifest.unknown_keys", where, ", ".join(sorted(map(str, unknown)))
        )
    item_type = data.get("item_type")
    if item_type is not None and not isinstance(item_type, str):
        raise SessionError("validator.core.manifest.bad_item_type", where)
    files = data.get("files")
    if not isinstance(files, list):
        raise SessionError("validator.core.manifest.bad_files", where)
    if len(files) > max_files:
        raise SessionError("validator.core.input.too_many_files", where, max_files)
    session = Session(origin=where, item_type=item_type)
    seen: set[str] = set()
    for i, entry in enumerate(files, 1):
        ctx = f"{where}: files[{i}]"
        if not isinstance(entry, dict):
            raise SessionError("validator.core.manifest.bad_file_entry", ctx)
        bad = set(entry) - _FILE_KEYS
        if bad:
            raise SessionError(
                "validator.core.manifest.unknown_keys", ctx, ", ".join(sorted(map(str, bad)))
            )
        name = entry.get("name")
        if not isinstance(name, str) or not is_plain_name(name):
            shown = display_name(name) if isinstance(name, str) else name
            raise SessionError("validator.core.manifest.bad_name", ctx, shown)
        if name in seen:
            raise SessionError("validator.core.manifest.duplicate_name", ctx, name)
        seen.add(name)
        try:
            status = TransferStatus(entry.get("status", "READY"))
        except ValueError:
            raise SessionError(
                "validator.core.manifest.bad_status",
                ctx,
                entry.get("status"),
                ", ".join(s.value for s in TransferStatus),
            ) from None
        size = entry.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise SessionError("validator.core.manifest.bad_size", ctx, size)
        checksum = None
        ci = entry.get("checksum_info")
        if ci is not None:
            if not isinstance(ci, dict) or set(ci) - {"algorithm", "checksum"}:
                raise SessionError("validator.core.manifest.bad_checksum_info", ctx)
            try:
                alg = ChecksumAlgorithm(str(ci.get("algorithm", "SHA256")).upper())
            except ValueError:
                raise SessionError(
                    "validator.core.manifest.bad_algorithm",
                    ctx,
                    ci.get("algorithm"),
                    ", ".join(a.value for a in ChecksumAlgorithm),
                ) from None
            value = ci.get("checksum")
            if not isinstance(value, str) or not value:
                raise SessionError("validator.core.manifest.bad_checksum", ctx)
            checksum = ChecksumInfo(alg, value.strip().lower())
        rel = entry.get("path", name)
        if not isinstance(rel, str):
            raise SessionError("validator.core.manifest.bad_path", ctx, rel)
        file = SessionFile(name=name, status=status, size=size, checksum_info=checksum)
        found = resolve(file, rel)
        if isinstance(found, Rejected):
            session.rejected.append(found)
            continue
        if found is None and "path" in entry and status is TransferStatus.READY:
            raise SessionError("validator.core.manifest.path_not_found", ctx, display_name(rel))
        session.files.append(file)
    return session
