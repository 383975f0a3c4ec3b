"""Hook specifications: the plugin API of the validator.

A plugin is a module (or object) with functions named like the hooks below
and decorated with :data:`hookimpl`; it is found through the entry-point
group ``validator.plugins`` (see :mod:`validator.registry`).  A hook
implementation may accept any subset of the arguments of its spec.

Every implementation is called separately, through :mod:`validator.calls`
(the one gateway for plugin calls): one that raises, runs past
``limits.plugin_seconds`` or returns the wrong type is reported (with the
plugin's and the hook's name) as an ``invalid_files`` entry
``validator.core.plugin.failed`` / ``.timeout`` / ``.bad_result`` and the rest
of the validation goes on.  Hook wrappers (``wrapper=True``,
``hookwrapper=True``) are refused when the plugin is loaded.

When the registry is built: :func:`validator_item_types`; when it is used:
:func:`validator_message_catalogs` (lazily), :func:`validator_option_keys`
(when options are given), :func:`validator_renderers` (when the output format
is chosen).  A validation then calls, for a session of item type ``item_type``:

1. :func:`validator_open_session` – per input, the first result wins;
2. :func:`validator_prepare_session` – whole-session checks that need no
   file data beyond small metadata files (parse a descriptor); an item type
   calls its own hooks here (``ovf``: :func:`validator_disk_checks`);
3. :func:`validator_file_groups` – when the file pass starts: files to read
   in order as one stream (chunks);
4. :func:`validator_file_checks` – per file, in the pass, the checks to run
   on its bytes; all stream checks of a file share one read, files (and
   groups) are read in parallel;
5. :func:`validator_required_files` – after the pass: names the item needs
   (→ ``missing_files``);
6. :func:`validator_check_session` – whole-session checks that use what the
   file pass found (digests against a manifest).

The result holds message ids and arguments; a renderer
(:mod:`validator.render`) localizes and writes it after validation.

Plugins own their extensions: a plugin adds hook specifications of its own
with :func:`validator_add_hookspecs` (as pytest's ``pytest_addhooks``) and
calls them from its checks through ``ctx.registry`` and
:func:`validator.calls.call_each`.  The ``ovf`` adapter adds
``validator_disk_checks`` (disk formats; ``validator_plugins.ovf.hookspecs``).
``validator info PATH`` calls :func:`validator_describe` outside a validation.

These docstrings are the reference documentation (``validator hooks`` prints
them); a test checks that every hook is documented in the README.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from validator.checks import CheckContext, FileCheck, ItemType, Reporter
    from validator.limits import Limit, Limits
    from validator.messages import CatalogSource
    from validator.remote import RemoteLocation
    from validator.render import Renderer
    from validator.session import Session, SessionFile

PROJECT = "validator"
#: The entry-point group plugins (built-in adapters included) are found through.
ENTRY_POINT_GROUP = "validator.plugins"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def validator_item_types() -> Iterable[ItemType]:
    """Declare the item types this plugin adapts.

    :return: :class:`~validator.checks.ItemType` instances.  Called once when
        the registry is built.  Every name must be unique across plugins: a
        second declaration of a name is refused and reported with both
        plugins' names, and the first one stays.
    """


@hookspec
def validator_message_catalogs() -> Iterable[CatalogSource]:
    """Contribute message catalogs.

    :return: :class:`~validator.messages.CatalogSource` objects, each naming
        the id namespace the plugin owns (``acme.policy``) and a folder with
        one ``<locale>.toml`` per language (``en.toml`` is mandatory).  Every
        message id a plugin reports must be in its catalogs.
    """


@hookspec(firstresult=True)
def validator_open_session(path: Path, limits: Limits) -> Session | None:
    """Turn an input path (a command-line argument) into a session.

    :param path: the path as given (not resolved; it may not exist).
    :param limits: the resource limits in force.
    :return: a :class:`~validator.session.Session`, or ``None`` if this plugin
        does not handle such a path.  The first non-``None`` result wins;
        the built-in fallbacks (a folder, a session manifest, any single
        file) are registered ``trylast``.  Raise
        :class:`~validator.session.SessionError` with a one-line reason for
        an input that is unreadable; it is shown as it stands, exit status 2.
    """


@hookspec(firstresult=True)
def validator_open_remote(location: RemoteLocation, limits: Limits) -> Session | None:
    """Turn a remote input (a URL: ``https://…``, ``s3://…``) into a session, read in place.

    :param location: a :class:`~validator.remote.RemoteLocation`: ``url``,
        ``name``, ``suffix``, ``stat()`` (size, folder or not), ``source()``
        (a seekable :class:`~validator.remote.RemoteSource` of its bytes, read
        by range requests; ``.range(offset, length)`` for a part of it),
        ``sibling(name)`` (an object beside it, by plain name only: nothing
        outside the input's folder is reachable) and ``listdir()``.
    :param limits: the resource limits in force.
    :return: a session whose files have remote sources, or ``None``.  As for
        :func:`validator_open_session` the first result wins and the core
        plugin's fallbacks (a folder, a session manifest, any single object)
        come last; raise :class:`~validator.session.SessionError` for an input
        that cannot be read (``location.fail(oserror)`` makes one).
    """


@hookspec
def validator_prepare_session(
    item_type: str, session: Session, ctx: CheckContext, report: Reporter
) -> None:
    """Check the session as a whole before any file is read in full.

    Called for every session; return at once if ``item_type`` is not yours.
    Read small metadata files with ``ctx.read_small`` and keep what you parse
    in ``ctx.cached``; request the digests you will need with
    ``ctx.request_digest``.  Problems go to ``report.error(name, id, *args)``.
    """


@hookspec
def validator_required_files(
    item_type: str, session: Session, ctx: CheckContext
) -> Iterable[str] | None:
    """Name the files an item of ``item_type`` needs.

    :return: file names, or ``None`` if ``item_type`` is not yours.  The union
        over all plugins, less the files the session holds, is
        ``missing_files``.
    """


@hookspec
def validator_file_checks(
    item_type: str, session: Session, file: SessionFile, ctx: CheckContext
) -> Iterable[FileCheck] | None:
    """Give the checks to run over one received file's bytes.

    :return: :class:`~validator.checks.StreamCheck` and
        :class:`~validator.checks.ReaderCheck` instances, or ``None``.  All
        plugins' checks for a file run together: reader checks first, then
        one sequential read feeds every stream check.  Files are processed in
        parallel threads, so a check must not share mutable state with the
        checks of other files (except through ``ctx``, which is thread-safe).
    """


@hookspec
def validator_file_groups(
    item_type: str, session: Session, ctx: CheckContext
) -> Iterable[Sequence[str]] | None:
    """Name files that must be read one after another, in order, by one worker.

    :return: groups of file names (for example the chunks ``disk.vmdk.000000000``,
        ``…001`` of one chunked file), or ``None``.  A check object that
        ``validator_file_checks`` returns for several files of a group is fed
        their bytes as one stream and finished once, after the last of them;
        each file still gets its own digests.  A file named by two groups
        stays in the first.  Files of different groups, and files in no group,
        are read in parallel.
    """


@hookspec
def validator_check_session(
    item_type: str, session: Session, ctx: CheckContext, report: Reporter
) -> None:
    """Check the session as a whole after every file was read.

    Digests requested earlier are available from ``ctx.digest``; state kept
    in ``ctx.store`` by your file checks is complete.  Problems go to
    ``report``.
    """


@hookspec
def validator_option_keys() -> Iterable[str]:
    """Declare the plugin option keys this plugin reads from ``ctx.options``.

    Options are given on the command line as ``-o KEY=VALUE`` (for example
    ``-o ovf.trust_store=ca.pem``); name yours after your plugin
    (``acme.strict``).  The CLI refuses a key that no loaded plugin declares,
    listing the known ones, so a misspelled option (``ovf.trust_stor``) is an
    error rather than a check that silently does not happen.

    :return: the keys, as strings.  Called when options are given.
    """


@hookspec
def validator_renderers() -> Iterable[type[Renderer]]:
    """Contribute output formats (``--format NAME``).

    :return: :class:`~validator.render.Renderer` subclasses, each with a unique
        ``name``.  Called once, after validation, when output is written: the
        engine returns message ids and arguments, a renderer localizes and
        writes them.  The core plugin contributes ``text``, ``json``, ``xml``,
        ``junit`` and ``sarif``; a second renderer of a name already taken is
        refused and reported, the first one stays.
    """


@hookspec
def validator_limits() -> Iterable[Limit]:
    """Declare the resource limits your parsers are bounded by.

    :return: :class:`~validator.limits.Limit` objects (``name``, ``default``,
        ``doc``).  Called once when the registry is built; every declared
        limit is then an attribute of :class:`~validator.limits.Limits`
        (``ctx.limits.descriptor_bytes``), changeable with ``--limit
        NAME=VALUE`` and listed by ``validator limits`` under your plugin's
        name.  A name another plugin (or the engine) already declares is
        refused and reported; the first declaration stays.
    """


@hookspec(historic=True)
def validator_add_hookspecs(pluginmanager: pluggy.PluginManager) -> None:
    """Add hook specifications of your own (as pytest's ``pytest_addhooks``).

    Called once for each plugin as it is registered (a *historic* hook: a plugin
    registered later is called too), before its hooks are checked, so that
    other plugins registered after it may implement the new hooks::

        @hookimpl
        def validator_add_hookspecs(pluginmanager):
            from . import hookspecs
            pluginmanager.add_hookspecs(hookspecs)

    Built-in plugins register first, so third-party plugins can implement the
    hooks a built-in adds (``validator_disk_checks`` of the ``ovf`` adapter).
    Call your hooks through :func:`validator.calls.call_each`, which isolates,
    bounds in time and type-checks every implementation.
    """


@hookspec(firstresult=True)
def validator_describe(
    item_type: str, session: Session, ctx: CheckContext
) -> dict[str, Any] | None:
    """Describe an item for ``validator info PATH``, from its metadata only.

    Called once, outside a validation, with the item type the engine detected
    (or ``--type``); return at once with ``None`` if ``item_type`` is not
    yours.  The first non-``None`` result wins.  ``validator serve`` calls it
    too, after each ``validate`` of an update session, for the preview.

    :return: a JSON-serialisable ``dict`` of facts, nested mappings and lists
        allowed (for a disk image: ``format``, ``virtual_size``,
        ``cluster_size``, ``allocated_bytes``, ``risky_features``…; for an OVF
        package: ``content`` with its virtual systems and their ``hardware``,
        ``networks``, ``signature``…); ``validator info`` prints it as indented
        ``key: value`` lines (list items as ``- `` lines, a text of several
        lines as ``key: |`` and its lines), or as a JSON object with
        ``--format json``.  A signed item gives ``signature``: a mapping with
        ``subject`` and ``issuer`` (the signer's names, RFC 4514),
        ``self_signed``, ``signature_verifies`` and ``certificates`` (PEM
        texts, the signer's first); when ``signature_verifies`` is true, a
        server shows them as the preview's ``certificate_info`` and
        ``cert_chain``.
    """
