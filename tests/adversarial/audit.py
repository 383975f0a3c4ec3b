"""An audit hook that records what the validator touches while a case runs.

``sys.addaudithook`` is installed once per process (hooks cannot be removed);
it records only while :func:`watching` is active.  Events recorded:

- ``open`` (``open()``, ``io.open_code`` and ``os.open``): the path, and whether
  it was opened for writing; ``os.scandir``/``os.listdir``: the folder listed;
- ``socket.*`` connections and name look-ups, ``subprocess.Popen``, ``os.system``,
  ``os.exec*``/``os.spawn*``/``os.posix_spawn``: any of these is a violation.

Files the interpreter itself opens while a case runs are allowed: the standard
library and site-packages (lazy imports), the repository's ``validator/`` and
``plugins/`` package folders (catalogs, lazy imports, byte-code caches),
``/dev/null`` and ``/proc/self``.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_ACTIVITY = (
    "socket.connect",
    "socket.bind",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "subprocess.Popen",
    "os.system",
    "os.exec",
    "os.spawn",
    "os.posix_spawn",
    "os.fork",
    "urllib.Request",
)


def _interpreter_dirs() -> tuple[str, ...]:
    dirs = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sysconfig.get_paths()["stdlib"],
        sysconfig.get_paths()["platstdlib"],
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
        str(ROOT / "validator"),
        str(ROOT / "plugins"),
    }
    try:
        dirs.update(site.getsitepackages())
        dirs.add(site.getusersitepackages())
    except AttributeError:  # pragma: no cover - virtualenv without site helpers
        pass
    return tuple(sorted(os.path.realpath(d) for d in dirs if d))


ALLOWED_DIRS = _interpreter_dirs()
ALLOWED_FILES = ("/dev/null", "/dev/urandom")
ALLOWED_PREFIXES = ("/proc/self/", "/proc/thread-self/", f"/proc/{os.getpid()}/")


@dataclass
class Recording:
    """What was seen while watching: ``opened`` (path, for_write) and other activity."""

    opened: list[tuple[str, bool]] = field(default_factory=list)
    activity: list[str] = field(default_factory=list)
    listed: list[str] = field(default_factory=list)

    def outside(self, folder: Path) -> list[str]:
        """Paths opened that are neither in ``folder`` nor interpreter files."""
        base = os.path.realpath(folder)
        bad = []
        for path, _write in self.opened:
            if _inside(path, base) or is_interpreter_file(path):
                continue
            bad.append(path)
        return bad

    def listed_outside(self, folder: Path) -> list[str]:
        """Folders listed (``os.scandir``, ``os.listdir``) outside ``folder``."""
        base = os.path.realpath(folder)
        # The import system lists a sys.path entry (the repository root, for one) when
        # a lazy import searches it and the folder changed since its cache was made:
        # other tests (or processes) writing there make that timing-dependent.
        imports = {os.path.realpath(p or os.getcwd()) for p in sys.path}
        return [
            p
            for p in self.listed
            if not _inside(p, base) and not is_interpreter_file(p) and p not in imports
        ]

    def writes(self) -> list[str]:
        """Paths opened for writing, byte-code caches of lazy imports aside."""
        return [p for p, w in self.opened if w and "__pycache__" not in p]


def _inside(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


def is_interpreter_file(path: str) -> bool:
    if path in ALLOWED_FILES or path.startswith(ALLOWED_PREFIXES):
        return True
    return any(_inside(path, d) for d in ALLOWED_DIRS)


_lock = threading.Lock()
_current: Recording | None = None
_installed = False


def _normalize(raw: Any, flags: int) -> str | None:
    """The file an open reaches: links resolved, except a final link opened with O_NOFOLLOW
    (which fails rather than being followed)."""
    if isinstance(raw, int):
        return None  # an already-open descriptor (os.fdopen): its open was recorded
    try:
        text = os.fsdecode(os.fspath(raw))
    except (TypeError, ValueError):
        return repr(raw)
    path = os.path.join(os.getcwd(), text)
    try:
        if flags & getattr(os, "O_NOFOLLOW", 0):
            head, tail = os.path.split(os.path.normpath(path))
            return os.path.join(os.path.realpath(head), tail)
        return os.path.realpath(path)
    except (OSError, ValueError):
        return os.path.normpath(path)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    rec = _current
    if rec is None:
        return
    if event == "open":
        mode = args[1] if len(args) > 1 else None
        flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        path = _normalize(args[0], flags) if args else None
        if path is None:
            return
        write = bool(flags & _WRITE_FLAGS) or (
            isinstance(mode, str) and any(c in mode for c in "wax+")
        )
        rec.opened.append((path, write))
    elif event in ("os.scandir", "os.listdir") and args:
        path = _normalize(args[0] if args[0] is not None else ".", 0)
        if path is not None:
            rec.listed.append(path)
    elif event.startswith(_ACTIVITY):
        rec.activity.append(f"{event} {args!r}"[:300])


def install() -> None:
    global _installed
    with _lock:
        if not _installed:
            sys.addaudithook(_hook)
            _installed = True


@contextmanager
def watching() -> Iterator[Recording]:
    """Record opens and network/process activity until the block ends (not re-entrant)."""
    global _current
    install()
    rec = Recording()
    with _lock:
        if _current is not None:
            raise RuntimeError("audit.watching() is not re-entrant")
        _current = rec
    try:
        yield rec
    finally:
        with _lock:
            _current = None


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry under ``folder`` (links not followed): (mode, size, mtime_ns)."""
    out: dict[str, tuple[int, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, folder)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out
