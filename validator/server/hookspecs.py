"""Hook specifications of the reference server (``validator serve``).

The server builds the same registry the CLI uses with these added
(``build_registry(extra_hookspecs=[...])``, before any plugin loads), so a
deployment can observe what happens without touching the server.  Implement
them in a module decorated with :data:`validator.hookspecs.hookimpl` and load
it with ``validator serve --plugin MODULE`` (or pass it to
:func:`validator.server.create_app`), or ship it as an entry-point plugin
(group ``validator.plugins``): then mark its server hooks
``@hookimpl(optionalhook=True)``, because the CLI, which loads the same
entry points, does not know these specifications.

Every implementation is called on its own, after the change is committed
to the server's database: one that raises is logged with its plugin's name
and the others still run; it never changes the answer the client gets.
Hooks are called from worker threads; an implementation must be
thread-safe and should return quickly (queue slow work).
"""

from __future__ import annotations

from collections.abc import Sequence

import pluggy

from validator.hookspecs import PROJECT

hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def validator_server_session_changed(
    session_id: str, user: str, library_item_id: str, old_state: str | None, new_state: str
) -> None:
    """An update session changed state.

    :param session_id: the update session's id.
    :param user: the user who owns the session.
    :param library_item_id: the item the session updates.
    :param old_state: ``None`` when the session was just created, else
        ``ACTIVE``, ``DONE``, ``ERROR`` or ``CANCELED``.
    :param new_state: the state it is in now (a session deleted is reported
        with ``new_state`` ``DELETED``).
    """


@hookspec
def validator_server_file_received(
    session_id: str, user: str, name: str, status: str, bytes_transferred: int
) -> None:
    """An upload to a session file ended.

    :param name: the file's name in the session.
    :param status: ``READY`` when every byte arrived (and the declared size
        and ``checksum_info`` matched), else ``ERROR``.
    :param bytes_transferred: bytes received by this upload.
    """


@hookspec
def validator_server_content_published(
    library_item_id: str,
    session_id: str,
    user: str,
    content_version: int,
    files: Sequence[str],
) -> None:
    """A ``complete`` published new content for an item.

    Called once the new content version is the item's current one (the
    database transaction committed).

    :param content_version: the item's new content version.
    :param files: names of the files the new version holds (metadata files
        such as an OVF manifest are checked but not kept, so they are not
        listed).
    """
