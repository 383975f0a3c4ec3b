"""``validator serve``: start the reference server, or hash a password for the users file."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

DESCRIPTION = """\
Run the reference update-session server (docs/server.md): the content
library's update sessions over /rest (legacy), /api and vAPI JSON-RPC, with
the validator's plugins as type adapters. State is kept in SQLite (or, for
several servers behind a load balancer, PostgreSQL) and files in the data
folder, both created on first start.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="validator serve", description=DESCRIPTION)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8443, help="port (default 8443; 0: any free port)")
    p.add_argument(
        "--data",
        type=Path,
        default=Path("validator-data"),
        help="data folder: database, uploads, content (default ./validator-data)",
    )
    p.add_argument(
        "--database",
        metavar="URL",
        help="sqlite:///PATH (default: DATA/state.sqlite3, one server per data folder) or "
        "postgresql://USER[:PASSWORD]@HOST[:PORT]/DB: several servers share the database "
        "and the data folder (on shared storage) behind a load balancer",
    )
    p.add_argument(
        "--users",
        type=Path,
        help="users file (NAME:HASH lines); default DATA/users, created with a user "
        "'admin' and a random password (printed once) when missing",
    )
    p.add_argument(
        "--session-timeout",
        type=float,
        default=300.0,
        help="seconds without keep-alive after which an ACTIVE session expires (default 300)",
    )
    p.add_argument(
        "--upload-idle-timeout",
        type=float,
        default=60.0,
        help="seconds an upload may go without receiving a byte before it ends ERROR "
        "(default 60); its session then expires as usual",
    )
    p.add_argument(
        "--max-upload-bytes",
        type=int,
        default=64 << 30,
        help="largest file accepted without a declared size (default 64 GiB)",
    )
    p.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE and register it as a plugin (server hooks); repeatable",
    )
    p.add_argument(
        "--hash-password",
        metavar="NAME",
        help="print a users-file line for NAME (password read from stdin or prompted) and exit",
    )
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return p


def main(argv: Sequence[str]) -> int:
    opts = _parser().parse_args(list(argv))
    from validator.server.auth import Users, create_default_users, hash_password, valid_user_name

    if opts.hash_password is not None:
        if not valid_user_name(opts.hash_password):
            print("validator serve: a user name is 1-128 of A-Z a-z 0-9 @ . _ -", file=sys.stderr)
            return 2
        if sys.stdin.isatty():
            password = getpass.getpass(f"password for {opts.hash_password}: ")
        else:
            password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            print("validator serve: empty password", file=sys.stderr)
            return 2
        print(f"{opts.hash_password}:{hash_password(password)}")
        return 0

    import uvicorn

    from validator.server import create_app, load_plugins
    from validator.server.service import ServerConfig

    data: Path = opts.data
    data.mkdir(parents=True, exist_ok=True)
    users_path: Path = opts.users if opts.users is not None else data / "users"
    if opts.users is None and not users_path.exists():
        password = create_default_users(users_path)
        print(
            f"validator serve: created {users_path} with user 'admin', password {password}",
            file=sys.stderr,
        )
    try:
        users = Users.load(users_path)
    except (OSError, ValueError) as exc:
        print(f"validator serve: cannot read users file: {exc}", file=sys.stderr)
        return 2
    try:
        plugins = load_plugins(opts.plugin)
    except ImportError as exc:
        print(f"validator serve: cannot import plugin: {exc}", file=sys.stderr)
        return 2
    config = ServerConfig(
        data_dir=data,
        session_timeout=opts.session_timeout,
        upload_idle_timeout=opts.upload_idle_timeout,
        database=opts.database,
        max_upload_bytes=opts.max_upload_bytes,
    )
    logging.basicConfig(level=opts.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    from sqlalchemy.exc import SQLAlchemyError

    from validator.server.service import DataFolderBusy

    try:
        app = create_app(config, users, plugins)
    except DataFolderBusy as exc:
        print(f"validator serve: another server uses the data folder {exc}", file=sys.stderr)
        return 2
    except (SQLAlchemyError, ValueError) as exc:
        text = " ".join(str(exc).split())[:300]
        print(f"validator serve: cannot open the database: {text}", file=sys.stderr)
        return 2
    print(
        f"validator serve: http://{opts.host}:{opts.port} data={data} pid={os.getpid()}",
        file=sys.stderr,
        flush=True,
    )
    from validator.server.protocol import vapi_protocol

    # A request uvicorn cannot parse (a header block over h11's 16 KiB …) gets a vAPI error too.
    bad = app.state.service.error(None, "invalid_argument", "validator.server.http.bad_request")
    uvicorn.run(
        app,
        host=opts.host,
        port=opts.port,
        log_level=opts.log_level,
        access_log=False,
        http=vapi_protocol(json.dumps(bad.to_api_dict()).encode()),
    )
    return 0
