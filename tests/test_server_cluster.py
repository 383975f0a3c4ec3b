"""Several servers on one PostgreSQL database and one data folder (a load-balanced deployment).

Three ``validator serve`` processes share the database and the data folder; 30
concurrent clients spread each session's operations over all three (a different
server for nearly every request), while one server is killed with SIGKILL in the
middle of uploads and of completes, then started again. No session may be lost, no
item may show partial content, and every published file's bytes are checked.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_server_live import SLOW_ENV, Live
from tests.test_server_support import SAMPLES, PostgresCluster, basic, postgres

__all__ = ["postgres"]

API_US = "/api/content/library/item/update-session"
BUNDLE = {name: (SAMPLES / name).read_bytes() for name in ("vm.mf", "vm.ovf", "vm-disk1.vmdk")}
KEPT = ("vm-disk1.vmdk", "vm.ovf")  # the manifest is checked, not kept
N_CLIENTS = 30


class Cluster:
    """Three servers on one database and one data folder; requests are routed by the
    caller, as a load balancer would, and a dead server's requests go to the next one."""

    def __init__(self, tmp: Path, url: str) -> None:
        for i in range(3):
            (tmp / f"s{i}").mkdir()
        first = Live(tmp / "s0", database=url, extra_args=["--upload-idle-timeout", "2"])
        self.servers = [first]
        for i in (1, 2):
            self.servers.append(
                Live(
                    tmp / f"s{i}",
                    {SLOW_ENV: "1"} if i == 2 else None,  # completes there take a while
                    ["--upload-idle-timeout", "2"],
                    database=url,
                    data=first.data,
                    users=first.users,
                )
            )
        self.in_flight = [{"upload": 0, "complete": 0} for _ in self.servers]
        self.lock = threading.Lock()
        self.transport_errors = 0

    def start(self) -> None:
        self.servers[0].start()  # creates the schema; the others find it current
        for s in self.servers[1:]:
            s.start("tests.test_server_live")


class Client:
    def __init__(self, cluster: Cluster, index: int) -> None:
        self.cluster = cluster
        self.index = index
        self.step = index
        self.http = [httpx.Client(base_url=s.url, timeout=60) for s in cluster.servers]
        r = self.request("POST", "/api/session", headers=basic("alice" if index % 2 else "bob"))
        self.token = r.json()
        self.h = {"vmware-api-session-id": self.token}

    def request(self, method: str, url: str, kind: str = "", **kw: Any) -> httpx.Response:
        """One request, on the next server in turn; on a dead server, the next one."""
        for _attempt in range(30):
            self.step += 1
            i = self.step % len(self.http)
            if kind:
                with self.cluster.lock:
                    self.cluster.in_flight[i][kind] += 1
            try:
                return self.http[i].request(method, url, **kw)
            except httpx.TransportError:
                with self.cluster.lock:
                    self.cluster.transport_errors += 1
                time.sleep(0.2)
            finally:
                if kind:
                    with self.cluster.lock:
                        self.cluster.in_flight[i][kind] -= 1
        raise AssertionError(f"no server answered {method} {url}")

    def api(self, method: str, url: str, kind: str = "", **kw: Any) -> httpx.Response:
        return self.request(method, url, kind, headers={**self.h, **kw.pop("headers", {})}, **kw)

    def upload(self, sid: str, name: str, data: bytes) -> None:
        info = self.api("POST", f"{API_US}/{sid}/file", json={"name": name, "size": len(data)})
        assert info.status_code == 200, info.text
        path = "/" + info.json()["upload_endpoint"]["uri"].split("/", 3)[3]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:

            def body() -> Iterator[bytes]:
                step = max(1, len(data) // 8)
                for i in range(0, len(data), step):
                    time.sleep(0.05)
                    yield data[i : i + step]

            r = self.api("PUT", path, "upload", content=body())
            if r.status_code == 200 and r.json()["status"] == "READY":
                return
            # Cut off (a server died under it): wait until a live server has ended the
            # upload nobody feeds any more, then send it again.
            while True:
                got = self.api("GET", f"{API_US}/{sid}/file/{name}").json()
                if got["status"] == "READY":
                    return
                if got["status"] != "TRANSFERRING":
                    break
                time.sleep(0.3)
        raise AssertionError(f"{name} never arrived")

    def run(self) -> tuple[str, str]:
        """One whole session; the item and session ids."""
        tag = f"c{self.index}"
        lib = self.api(
            "POST", "/api/content/local-library", json={"name": tag}, headers={"Client-Token": tag}
        ).json()
        item = self.api(
            "POST",
            "/api/content/library/item",
            json={"library_id": lib, "name": tag, "type": "ovf"},
            headers={"Client-Token": tag},
        ).json()
        r = self.api("POST", API_US, json={"library_item_id": item}, headers={"Client-Token": tag})
        assert r.status_code == 201, r.text
        sid = r.json()
        for name, data in BUNDLE.items():
            self.upload(sid, name, data)
        r = self.api("POST", f"{API_US}/{sid}/file?action=validate")
        assert r.status_code == 200 and r.json()["has_errors"] is False, r.text
        while True:
            r = self.api("POST", f"{API_US}/{sid}?action=complete", "complete")
            state = self.api("GET", f"{API_US}/{sid}").json()["state"]
            if state == "DONE":
                return item, sid
            # Cut off before its commit (the session is still ACTIVE): complete again.
            assert state == "ACTIVE" and r.status_code in (204, 400, 500, 502), (state, r.text)

    def close(self) -> None:
        for h in self.http:
            h.close()


@pytest.mark.slow
def test_three_servers_one_database_with_kills(tmp_path: Path, postgres: PostgresCluster) -> None:
    cluster = Cluster(tmp_path, postgres.new_database())
    cluster.start()
    victim = cluster.servers[2]
    try:
        clients = [Client(cluster, i) for i in range(N_CLIENTS)]
        with concurrent.futures.ThreadPoolExecutor(N_CLIENTS) as pool:
            futures = [pool.submit(c.run) for c in clients]
            kills = {"upload": False, "complete": False}
            deadline = time.monotonic() + 60
            # Kill the third server while it receives an upload, then again while it
            # completes a session (a restart in between).
            while not all(kills.values()) and time.monotonic() < deadline:
                for kind in ("upload", "complete"):
                    if not kills[kind] and cluster.in_flight[2][kind] > 0:
                        time.sleep(random.uniform(0.0, 0.2))
                        victim.kill()
                        kills[kind] = True
                        time.sleep(0.3)
                        victim.start("tests.test_server_live")
                        break
                time.sleep(0.01)
            results = [f.result(timeout=300) for f in futures]
        assert all(kills.values()), kills
        assert cluster.transport_errors > 0  # the kills did cut requests off
        print(f"cluster: {N_CLIENTS} sessions, {cluster.transport_errors} requests cut off")
        # Every session is DONE and every item holds exactly the bundle, byte for byte,
        # read through any server and from the shared data folder.
        check = clients[0]
        digests = {n: hashlib.sha256(BUNDLE[n]).hexdigest() for n in KEPT}
        for item, _sid in results:
            files = check.api("GET", f"/api/content/library/item/{item}/file").json()
            assert {f["name"]: f["checksum_info"]["checksum"] for f in files} == digests
            assert {f["version"] for f in files} == {"2"}
            folders = list((cluster.servers[0].data / "content" / item).iterdir())
            assert len(folders) == 1, folders
            for name in KEPT:
                assert (folders[0] / name).read_bytes() == BUNDLE[name]
        assert len({sid for _, sid in results}) == N_CLIENTS
        for c in clients:
            c.close()
    finally:
        for s in cluster.servers:
            s.stop()
    service = cluster.servers[0].service()
    try:
        service.recover()
        assert service.check_consistency() == []
        sessions = service._query("SELECT state, COUNT(*) AS n FROM sessions GROUP BY state")
        assert {r["state"]: r["n"] for r in sessions} == {"DONE": N_CLIENTS}
    finally:
        service.close()
