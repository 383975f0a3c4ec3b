"""Real servers for the remote-input tests: nginx (Debian's nginx-light) on a loopback port.

:func:`start_nginx` writes a temporary configuration and runs nginx in the
foreground (``daemon off``, ``master_process off``) as a child of the test
process, serving ``root`` with range requests on ``127.0.0.1:PORT``:

| location | what it does |
|---|---|
| ``/pkg/…`` | the files under ``root``, with ranges and folder listings (autoindex) |
| ``/norange/…`` | the same files, but every ``Range`` header is ignored (``max_ranges 0``) |
| ``/elsewhere/…`` | a redirect to ``localhost`` (another host) on the same port |
| ``/elsewhere-private/…`` | a redirect to ``localhost``'s ``/private/…`` |
| ``/moved/…`` | a redirect to ``/pkg/…`` on the same host |
| ``/short/…`` | the files through a proxy whose upstream stalls after 16 KiB: the body ends |
|  | before its ``Content-Length`` (nginx closes the connection after ``proxy_read_timeout``) |
| ``/forbidden/…`` | 403 |
| ``/slow/…`` | the files at 4 MiB/s (a long-running item for the batch tests) |
| ``/private/…`` | the files behind HTTP basic authentication: user :data:`USER`, password |
|  | :data:`PASSWORD` (its hash made by ``openssl passwd -apr1``) |
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


USER, PASSWORD = "reader", "s3cret-for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CONFIG = """\
daemon off;
master_process off;
worker_processes 1;
error_log {tmp}/error.log warn;
pid {tmp}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type application/octet-stream;
    sendfile on;
    server {{
        listen 127.0.0.1:{port};
        server_name 127.0.0.1 localhost;
        location /pkg/ {{ alias {root}/; autoindex on; }}
        location /norange/ {{ alias {root}/; max_ranges 0; }}
        location /forbidden/ {{ return 403; }}
        location /elsewhere/ {{
            rewrite ^/elsewhere/(.*)$ http://localhost:{port}/pkg/$1 redirect;
        }}
        location /elsewhere-private/ {{
            rewrite ^/elsewhere-private/(.*)$ http://localhost:{port}/private/$1 redirect;
        }}
        location /moved/ {{ rewrite ^/moved/(.*)$ /pkg/$1 permanent; }}
        location /slow/ {{ alias {root}/; limit_rate 4m; }}
        location /private/ {{
            alias {root}/;
            auth_basic "tests";
            auth_basic_user_file {tmp}/htpasswd;
        }}
        location /stall/ {{ alias {root}/; limit_rate_after 16k; limit_rate 1; }}
        location /short/ {{
            proxy_pass http://127.0.0.1:{port}/stall/;
            proxy_buffering off;
            proxy_read_timeout 1s;
        }}
    }}
}}
"""


@contextmanager
def start_nginx(root: Path, tmp: Path) -> Iterator[str]:
    """nginx serving ``root``; yields ``http://127.0.0.1:PORT``."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    hashed = subprocess.run(
        ["openssl", "passwd", "-apr1", PASSWORD], capture_output=True, text=True, check=True
    ).stdout.strip()
    (tmp / "htpasswd").write_text(f"{USER}:{hashed}\n", encoding="utf-8")
    conf = tmp / "nginx.conf"
    conf.write_text(CONFIG.format(tmp=tmp, port=port, root=root), encoding="utf-8")
    proc = subprocess.Popen(
        [NGINX, "-c", str(conf), "-p", str(tmp), "-e", str(tmp / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise RuntimeError(f"nginx did not start: {err}") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def nginx_available() -> bool:
    return os.path.exists(NGINX)
