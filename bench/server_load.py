"""Server load: update sessions per second on SQLite, and on PostgreSQL with 1 and 3 servers.

    python bench/server_load.py [--sessions N] [--clients N] [--json]

One run measures three set-ups on this machine, one after the other, over loopback:

- ``sqlite``: one ``validator serve`` with its default database (SQLite in the data folder);
- ``postgresql-1``: one server on a PostgreSQL database;
- ``postgresql-3``: three servers on that database and one data folder, each client
  sending its requests to the three in turn (as a round-robin load balancer would).

PostgreSQL is a throw-away cluster (``initdb`` + ``pg_ctl``, Debian's ``postgresql``) with
its default, durable settings (fsync on). Each set-up runs ``--sessions`` sessions (default
60) from ``--clients`` concurrent clients (default 6); a session is create → add →
upload of a 2 MiB ISO image (made once with ``genisoimage``) → validate → complete, on an
item of its own. It prints sessions per second (sessions / wall time) and p50/p95 of each
operation. Loops are bounded; nothing but loopback is used.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_server_live import Live  # noqa: E402
from tests.test_server_support import PostgresCluster, basic  # noqa: E402

API_US = "/api/content/library/item/update-session"
OPS = ("create", "add", "upload", "validate", "complete")


def make_iso(folder: Path, mib: int = 2) -> bytes:
    src = folder / "iso-src"
    src.mkdir()
    # Leaves room for the ISO 9660 metadata so that the image is about ``mib`` MiB.
    (src / "payload.bin").write_bytes(os.urandom(mib * (1 << 20) - 340 * 1024))
    image = folder / "image.iso"
    subprocess.run(["genisoimage", "-quiet", "-o", str(image), str(src)], check=True)
    return image.read_bytes()


class Worker:
    def __init__(self, urls: list[str], offset: int) -> None:
        self.http = [httpx.Client(base_url=u, timeout=120) for u in urls]
        self.turn = offset
        r = self.http[0].post("/api/session", headers=basic("alice"))
        r.raise_for_status()
        self.h = {"vmware-api-session-id": r.json()}
        self.times: dict[str, list[float]] = {op: [] for op in OPS}

    def req(self, op: str, method: str, url: str, **kw: Any) -> httpx.Response:
        self.turn += 1
        client = self.http[self.turn % len(self.http)]
        t = time.perf_counter()
        r = client.request(method, url, headers=self.h, **kw)
        if op:
            self.times[op].append(time.perf_counter() - t)
        if r.status_code >= 300:
            raise RuntimeError(f"{method} {url}: {r.status_code} {r.text[:300]}")
        return r

    def item(self, lib: str, i: int) -> str:
        body = {"library_id": lib, "name": f"iso-{i}", "type": "iso"}
        return str(self.req("", "POST", "/api/content/library/item", json=body).json())

    def session(self, item: str, image: bytes) -> None:
        sid = self.req("create", "POST", API_US, json={"library_item_id": item}).json()
        add = {"name": "image.iso", "size": len(image)}
        info = self.req("add", "POST", f"{API_US}/{sid}/file", json=add).json()
        path = "/" + info["upload_endpoint"]["uri"].split("/", 3)[3]
        assert self.req("upload", "PUT", path, content=image).json()["status"] == "READY"
        result = self.req("validate", "POST", f"{API_US}/{sid}/file?action=validate").json()
        assert result["has_errors"] is False, result
        self.req("complete", "POST", f"{API_US}/{sid}?action=complete")

    def close(self) -> None:
        for h in self.http:
            h.close()


def run_setup(
    name: str,
    work: Path,
    database: str | None,
    n_servers: int,
    sessions: int,
    clients: int,
    image: bytes,
) -> dict[str, Any]:
    base = work / name
    servers: list[Live] = []
    for i in range(n_servers):
        (base / f"s{i}").mkdir(parents=True)
        first = servers[0] if servers else None
        servers.append(
            Live(
                base / f"s{i}",
                database=database,
                data=first.data if first else None,
                users=first.users if first else None,
            )
        )
    for s in servers:
        s.start()
    try:
        urls = [s.url for s in servers]
        workers = [Worker(urls, i) for i in range(clients)]
        lib = workers[0].req("", "POST", "/api/content/local-library", json={"name": name}).json()
        items = [workers[i % clients].item(lib, i) for i in range(sessions)]
        todo = list(enumerate(items))
        lock = threading.Lock()

        def loop(w: Worker) -> None:
            while True:
                with lock:
                    if not todo:
                        return
                    _, item = todo.pop()
                w.session(item, image)

        t = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            for f in [pool.submit(loop, w) for w in workers]:
                f.result()
        wall = time.perf_counter() - t
        out: dict[str, Any] = {
            "setup": name,
            "servers": n_servers,
            "sessions": sessions,
            "clients": clients,
            "seconds": round(wall, 2),
            "sessions_per_s": round(sessions / wall, 2),
        }
        for op in OPS:
            values = sorted(v for w in workers for v in w.times[op])
            out[op] = {
                "p50_ms": round(statistics.median(values) * 1000, 1),
                "p95_ms": round(values[min(len(values) - 1, int(len(values) * 0.95))] * 1000, 1),
            }
        for w in workers:
            w.close()
        return out
    finally:
        for s in servers:
            s.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=60)
    p.add_argument("--clients", type=int, default=6)
    p.add_argument("--json", action="store_true")
    opts = p.parse_args()
    if not 1 <= opts.sessions <= 1000 or not 1 <= opts.clients <= 64:
        p.error("--sessions 1..1000, --clients 1..64")
    work = Path(tempfile.mkdtemp(prefix="validator-load-"))
    cluster = PostgresCluster(durable=True)
    try:
        image = make_iso(work)
        results = [
            run_setup("sqlite", work, None, 1, opts.sessions, opts.clients, image),
            run_setup(
                "postgresql-1", work, cluster.new_database(), 1, opts.sessions, opts.clients, image
            ),
            run_setup(
                "postgresql-3", work, cluster.new_database(), 3, opts.sessions, opts.clients, image
            ),
        ]
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    if opts.json:
        print(json.dumps(results, indent=1))
        return 0
    print(
        f"load average {os.getloadavg()[0]:.2f}; {len(image) / (1 << 20):.2f} MiB image; "
        f"{opts.sessions} sessions, {opts.clients} clients per set-up"
    )
    head = "| set-up | servers | sessions/s | " + " | ".join(f"{op} p50 / p95 ms" for op in OPS)
    print(head + " |")
    print("|---|---:|---:|" + "---:|" * len(OPS))
    for r in results:
        cells = " | ".join(f"{r[op]['p50_ms']} / {r[op]['p95_ms']}" for op in OPS)
        print(f"| {r['setup']} | {r['servers']} | {r['sessions_per_s']} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
