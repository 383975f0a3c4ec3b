"""An example deployment plugin for ``validator serve``: an audit log.

Every server hook appends one JSON line to the file named by the
environment variable ``VALIDATOR_AUDIT_LOG`` (nothing is written when it
is unset)::

    validator serve --plugin validator.server.example_plugin

Copy it as the starting point of your own: a hook implementation takes any
subset of the arguments of its spec (see :mod:`validator.server.hookspecs`).
``optionalhook=True`` lets the module also be an entry-point plugin: the
CLI loads the same entry points without the server's hook specifications.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from validator.hookspecs import hookimpl

ENV = "VALIDATOR_AUDIT_LOG"
_lock = threading.Lock()


def _write(event: str, **fields: Any) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    line = json.dumps({"time": time.time(), "event": event, **fields}, sort_keys=True)
    with _lock, open(path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


@hookimpl(optionalhook=True)
def validator_server_session_changed(
    session_id: str, user: str, old_state: str | None, new_state: str
) -> None:
    _write("session_changed", session=session_id, user=user, old=old_state, new=new_state)


@hookimpl(optionalhook=True)
def validator_server_file_received(
    session_id: str, name: str, status: str, bytes_transferred: int
) -> None:
    _write("file_received", session=session_id, name=name, status=status, bytes=bytes_transferred)


@hookimpl(optionalhook=True)
def validator_server_content_published(
    library_item_id: str, session_id: str, content_version: int, files: Sequence[str]
) -> None:
    _write(
        "content_published",
        item=library_item_id,
        session=session_id,
        version=content_version,
        files=list(files),
    )
