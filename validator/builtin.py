"""The engine's own plugin (registered as ``core``): generic inputs and session checksums.

- ``validator_open_session`` (``trylast``): a folder (its regular files), a
  session manifest (``.yaml``/``.yml``/``.json``), or any other single file;
  ``validator_open_remote`` (``trylast``): the same for a URL.
- Where a session declares ``checksum_info`` for a file, the digest is
  computed in the engine's single pass and compared (any item type).
"""

from __future__ import annotations

import hmac
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from validator.checks import CheckContext, Reporter
from validator.hookspecs import hookimpl
from validator.limits import Limits
from validator.messages import CatalogSource
from validator.session import (
    Session,
    SessionError,
    file_from_path,
    session_from_directory,
)

if TYPE_CHECKING:
    from validator.remote import RemoteLocation
    from validator.render import Renderer


@hookimpl
def validator_message_catalogs() -> Iterable[CatalogSource]:
    # A plain path (not importlib.resources.files): importing importlib.resources
    # costs 20 ms of start-up, and the package is always installed unzipped.
    return [CatalogSource("validator.core", Path(__file__).parent / "catalogs")]


@hookimpl
def validator_renderers() -> Iterable[type[Renderer]]:
    """The built-in output formats: text, json, xml, junit, sarif."""
    from validator.render import BUILTIN

    return BUILTIN


@hookimpl(trylast=True)
def validator_open_session(path: Path, limits: Limits) -> Session | None:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise SessionError("validator.core.input.unreadable", path, exc.strerror or exc) from exc
    if stat.S_ISDIR(st.st_mode):
        return session_from_directory(path, limits.max_files)
    from validator.session_manifest import looks_like_manifest, session_from_manifest

    if looks_like_manifest(path):
        return session_from_manifest(path, limits.manifest_bytes, limits.max_files)
    if not stat.S_ISREG(st.st_mode):
        raise SessionError("validator.core.input.not_regular", path)
    # A single file given by the user: a link is followed here, on purpose,
    # because the user named it; inside a bundle links are never followed.
    session = Session(origin=str(path))
    session.offer(file_from_path(Path(os.path.realpath(path)), path.name))
    return session


@hookimpl
def validator_option_keys() -> Iterable[str]:
    """How URL inputs are read (:class:`validator.remote.RemoteOptions`)."""
    return ["remote.retries", "remote.timeout", "remote.follow_redirects"]


@hookimpl(trylast=True)
def validator_open_remote(location: RemoteLocation, limits: Limits) -> Session | None:
    """A remote folder, session manifest or single object (:mod:`validator.remote`)."""
    from validator.remote import open_generic

    return open_generic(location, limits)


@hookimpl
def validator_prepare_session(session: Session, ctx: CheckContext) -> None:
    for f in session.files:
        if f.checksum_info is not None and f.source is not None:
            ctx.request_digest(f.name, f.checksum_info.algorithm.hashlib_name)


@hookimpl
def validator_check_session(session: Session, ctx: CheckContext, report: Reporter) -> None:
    for f in session.files:
        info = f.checksum_info
        if info is None or f.source is None:
            continue
        actual = ctx.digest(f.name, info.algorithm.hashlib_name)
        if actual is None:
            continue
        if not hmac.compare_digest(actual, info.checksum.lower()):
            report.error(
                f.name,
                "validator.core.file.checksum_mismatch",
                f.name,
                info.algorithm.value,
                info.checksum,
                actual,
            )
