"""``validator batch``: catalogs (folders, globs, lists, URLs), JSON Lines, resume, and the
isolation of items from each other on a local process pool and on a real Dask cluster
(``LocalCluster`` with worker processes), worker processes killed mid-item included."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from validator.batch import Item, Settings, list_items, unchanged, validate_item
from validator.limits import Limits

from .conftest import ROOT, SAMPLES
from .servers import nginx_available, start_nginx

SAMPLE = ("vm.ovf", "vm.mf", "vm-disk1.vmdk")


def batch(*args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LANG", "LC_ALL", "LC_MESSAGES")}
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    return subprocess.run(
        [sys.executable, "-m", "validator", "batch", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
        check=False,
    )


def records(text: str) -> dict[str, dict[str, Any]]:
    found = [json.loads(line) for line in text.splitlines() if line.strip()]
    return {Path(r["input"]).name if "://" not in r["input"] else r["input"]: r for r in found}


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    """Two good packages, an .ova, a package missing its disk, a file that is no archive
    (a finding), a YAML file that is no session manifest (an error), and a folder and a
    text file that are no items."""
    cat = tmp_path / "catalog"
    for name in ("good1", "good2"):
        (cat / name).mkdir(parents=True)
        for f in SAMPLE:
            shutil.copy(SAMPLES / f, cat / name / f)
    with tarfile.open(cat / "vm.ova", "w", format=tarfile.USTAR_FORMAT) as tar:
        for f in SAMPLE:
            tar.add(SAMPLES / f, arcname=f)
    shutil.copytree(SAMPLES / "broken" / "missing-disk", cat / "missing")
    (cat / "junk.ova").write_bytes(b"not a tar archive at all" * 100)
    (cat / "other.yaml").write_text("just: some yaml\n")  # not a session manifest: an error
    (cat / "notes").mkdir()
    (cat / "notes" / "readme.txt").write_text("not an item\n")
    (cat / "readme.txt").write_text("not an item either\n")
    for f in SAMPLE:
        shutil.copy(SAMPLES / f, cat / "good1" / f)
    return cat


def test_a_folder_catalog_gives_one_record_per_item(catalog: Path) -> None:
    proc = batch(str(catalog), "--workers", "2")
    assert proc.returncode == 2, proc.stderr  # other.yaml cannot be validated
    got = records(proc.stdout)
    assert sorted(got) == ["good1", "good2", "junk.ova", "missing", "other.yaml", "vm.ova"]
    assert got["good1"]["status"] == "valid"
    assert got["good1"]["value"] == {"has_errors": False, "invalid_files": [], "missing_files": []}
    assert got["good1"]["size"] == sum((SAMPLES / f).stat().st_size for f in SAMPLE)
    assert got["vm.ova"]["status"] == "valid" and got["vm.ova"]["item_type"] == "ovf"
    assert got["missing"]["status"] == "invalid"
    assert got["missing"]["value"]["missing_files"] == ["vm-disk2.vmdk"]
    # a damaged archive is a finding about it, as for the plain command (exit status 1)
    assert got["junk.ova"]["status"] == "invalid"
    junk = got["junk.ova"]["value"]["invalid_files"]
    assert [e["error_message"]["id"] for e in junk] == ["validator.ovf.ova.not_tar"]
    assert got["other.yaml"]["status"] == "error"
    assert got["other.yaml"]["error"]["id"] == "validator.core.manifest.not_manifest"
    assert all(r["duration"] >= 0 for r in got.values())
    summary = proc.stderr.strip().splitlines()[-1]
    assert summary.startswith("6 items: 3 valid, 2 invalid, 1 errors, 0 unchanged"), summary
    assert "MiB/s" in summary and "items/s" in summary
    assert "\r" not in proc.stderr  # no progress bar when standard error is not a terminal


def test_verdicts_are_the_plain_cli_ones(catalog: Path) -> None:
    proc = batch(str(catalog), "--workers", "0")
    for name, record in records(proc.stdout).items():
        single = subprocess.run(
            [sys.executable, "-m", "validator", "-f", "json", str(catalog / name)],
            capture_output=True, text=True, cwd=ROOT, check=False,
        )  # fmt: skip
        expected = {"valid": 0, "invalid": 1, "error": 2}[record["status"]]
        assert single.returncode == expected, name
        if record["status"] != "error":
            assert json.loads(single.stdout)["value"] == record["value"], name


def test_globs_and_list_files(catalog: Path, tmp_path: Path) -> None:
    got = records(batch(str(catalog / "*.ova"), "-w", "1").stdout)
    assert sorted(got) == ["junk.ova", "vm.ova"]
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"# two of them\n{catalog / 'good2'}\n\ncatalog/vm.ova\n")
    proc = batch(str(listing), "-w", "1")
    assert proc.returncode == 0, proc.stderr
    assert sorted(records(proc.stdout)) == ["good2", "vm.ova"]


def test_resume_skips_unchanged_items(catalog: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    first = batch(str(catalog), "-w", "2", "--output", str(out))
    assert first.stdout == ""
    before = records(out.read_text())
    time.sleep(0.01)
    (catalog / "good2" / "vm.mf").write_text("SHA256(vm.ovf)= 00\n")  # changed: re-validated
    again = tmp_path / "again.jsonl"
    second = batch(str(catalog), "-w", "2", "--resume", str(out), "--output", str(again))
    after = records(again.read_text())
    assert sorted(after) == sorted(before)
    # valid and invalid verdicts are kept as they were; the error and the change are redone
    for name in ("good1", "vm.ova", "missing", "junk.ova"):
        assert after[name] == before[name]
    assert after["good2"]["status"] == "invalid"
    summary = second.stderr.strip().splitlines()[-1]
    assert "4 unchanged" in summary, summary
    assert unchanged(Item("x", 3, 1.0), {"status": "valid", "size": 3, "mtime": 1.0})
    assert not unchanged(Item("x", 3, 2.0), {"status": "valid", "size": 3, "mtime": 1.0})
    assert not unchanged(Item("x", 3, None, "b"), {"status": "valid", "size": 3, "etag": "a"})
    assert not unchanged(Item("x", 3, 1.0), {"status": "error", "size": 3, "mtime": 1.0})


def test_a_crashing_plugin_is_one_items_result() -> None:
    """Every failure inside validate_item is that item's record (the task never raises)."""
    settings = Settings(Limits())
    record = validate_item(Item(str(SAMPLES / "nothing-here.ova")), settings)
    assert record["status"] == "error"
    assert record["error"]["id"] == "validator.core.input.unreadable"
    record = validate_item(Item(str(SAMPLES / "vm.ovf")), settings)
    assert record["status"] == "valid"


def test_per_item_overhead_in_one_process_is_small() -> None:
    settings = Settings(Limits())
    item = Item(str(SAMPLES / "vm.ovf"))
    validate_item(item, settings)
    runs = 50
    start = time.perf_counter()
    for _ in range(runs):
        assert validate_item(item, settings)["status"] == "valid"
    per_item = (time.perf_counter() - start) / runs
    assert per_item < 0.025, per_item  # 5 ms measured quiet (bench/bench.py); room for load


# -- slow items, killed workers ----------------------------------------------------------


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    if not nginx_available():
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    pytest.importorskip("aiohttp")
    root = tmp_path_factory.mktemp("www")
    data = os.urandom(12 << 20)  # 3 s at the /slow/ location's 4 MiB/s
    (root / "big.iso").write_bytes(data)  # not an ISO image: a verdict, after a full read
    (root / "session.yaml").write_text(
        "validator-session: 1\nitem_type: iso\nfiles:\n  - name: big.iso\n"
        f"    checksum_info: {{algorithm: SHA256, checksum: {hashlib.sha256(data).hexdigest()}}}\n"
    )
    for name in SAMPLE:
        shutil.copy(SAMPLES / name, root / name)
    with start_nginx(root, tmp_path_factory.mktemp("nginx")) as base:
        yield root, base


def test_a_remote_catalog(slow_server: tuple[Path, str]) -> None:
    _root, base = slow_server
    proc = batch(f"{base}/pkg/", "-w", "2")
    got = records(proc.stdout)
    assert sorted(got) == [f"{base}/pkg/{n}" for n in ("big.iso", "session.yaml", "vm.ovf")]
    assert got[f"{base}/pkg/big.iso"]["value"]["invalid_files"][0]["error_message"]["id"] == (
        "validator.iso.image.not_iso"
    )
    assert got[f"{base}/pkg/vm.ovf"]["status"] == "valid"
    assert got[f"{base}/pkg/vm.ovf"]["etag"]
    assert got[f"{base}/pkg/session.yaml"]["status"] == "invalid"  # random bytes


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent and int(entry) not in found:
                found.add(int(entry))
                frontier.append(int(entry))
    return found


def _pool_workers(pid: int) -> set[int]:
    """The pool's worker processes: the leaves under the batch process (forked directly,
    or the forkserver's children), never multiprocessing's resource tracker."""
    found = set()
    for child in _descendants(pid):
        if _descendants(child):
            continue
        try:
            with open(f"/proc/{child}/cmdline", "rb") as fh:
                if b"resource_tracker" in fh.read():
                    continue
        except OSError:
            continue
        found.add(child)
    return found


def _kill_workers_during(proc: subprocess.Popen[str], kills: int) -> None:
    for _ in range(kills):
        deadline = time.monotonic() + 20
        workers: set[int] = set()
        while time.monotonic() < deadline and not workers:
            time.sleep(0.3)
            workers = _pool_workers(proc.pid)
        time.sleep(1.0)  # the slow item is being read now (the quick ones are done)
        for pid in _pool_workers(proc.pid):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)


@pytest.mark.slow
@pytest.mark.parametrize("kills", [1, 2])
def test_a_worker_killed_mid_item_retries_it_once(
    slow_server: tuple[Path, str], tmp_path: Path, kills: int
) -> None:
    _root, base = slow_server
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"{base}/slow/session.yaml\n{base}/pkg/vm.ovf\n{SAMPLES / 'vm.ovf'}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "validator", "batch", str(listing), "-w", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    _kill_workers_during(proc, kills)
    out, err = proc.communicate(timeout=60)
    got = records(out)
    assert len(got) == 3, out + err
    slow = got[f"{base}/slow/session.yaml"]
    assert got[f"{base}/pkg/vm.ovf"]["status"] == "valid"
    if kills == 1:
        assert slow["status"] == "invalid", slow  # the verdict on its random bytes
        assert proc.returncode == 1
    else:
        assert slow["status"] == "error", slow
        assert slow["error"]["id"] == "validator.core.batch.worker_lost"
        assert proc.returncode == 2


# -- Dask -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    dask = pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    # A lost worker's task fails at once (our client retries it once): an item is
    # tried exactly twice, whatever the scheduler's default.
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as local,
        distributed.Client(local) as client,
    ):
        yield local, client


@pytest.mark.slow
def test_dask_cluster_gives_the_same_records(cluster: Any, catalog: Path) -> None:
    local, _client = cluster
    plain = records(batch(str(catalog), "-w", "1").stdout)
    proc = batch(str(catalog), "--scheduler", local.scheduler_address)
    got = records(proc.stdout)
    assert proc.returncode == 2, proc.stderr
    for name in plain:
        for key in ("status", "value", "error", "size", "item_type"):
            assert got[name].get(key) == plain[name].get(key), (name, key)
    env_proc = subprocess.run(
        [sys.executable, "-m", "validator", "batch", str(catalog / "good1")],
        capture_output=True, text=True, cwd=ROOT, check=False,
        env={**os.environ, "DASK_SCHEDULER_ADDRESS": local.scheduler_address},
    )  # fmt: skip
    assert env_proc.returncode == 0, env_proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("kills", [1, 2])
def test_dask_worker_killed_mid_item(
    cluster: Any, slow_server: tuple[Path, str], tmp_path: Path, kills: int
) -> None:
    local, client = cluster
    _root, base = slow_server
    listing = tmp_path / "inputs.txt"
    slow_url = f"{base}/slow/session.yaml"
    listing.write_text(f"{slow_url}\n{SAMPLES / 'vm.ovf'}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "validator", "batch", str(listing),
         "--scheduler", local.scheduler_address],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    killed = 0
    deadline = time.monotonic() + 60
    seen: set[str] = set()
    while killed < kills and time.monotonic() < deadline:
        time.sleep(0.2)
        processing = client.processing()
        pids = client.run(os.getpid)
        for worker, keys in processing.items():
            for key in keys:
                if key.startswith("validate-") and key.split("-")[2] == "0" and key not in seen:
                    time.sleep(0.8)  # mid-item
                    seen.add(key)
                    os.kill(pids[worker], signal.SIGKILL)
                    killed += 1
                    break
    out, err = proc.communicate(timeout=90)
    got = records(out)
    assert killed == kills
    assert len(got) == 2, out + err
    assert got["vm.ovf"]["status"] == "valid"
    if kills == 1:
        assert got[slow_url]["status"] == "invalid", got[slow_url]
    else:
        assert got[slow_url]["error"]["id"] == "validator.core.batch.worker_lost"
    client.wait_for_workers(2, timeout=60)


def test_list_items_of_a_folder(catalog: Path) -> None:
    names = [Path(i.input).name for i in list_items(str(catalog), {})]
    assert names == ["good1", "good2", "junk.ova", "missing", "other.yaml", "vm.ova"]


def test_progress_on_standard_error_when_asked(catalog: Path) -> None:
    proc = batch(str(catalog / "good1"), "-w", "0", "--progress", "always")
    assert proc.returncode == 0, proc.stderr
    # (text mode reads the terminal's \r as a line end)
    line = next(x for x in proc.stderr.splitlines() if "items," in x)
    assert "1/1 items" in line and "MiB/s" in line and "ETA 0:00" in line, proc.stderr
    assert proc.stdout.count("\n") == 1  # the records stay clean on standard output


def test_an_unreachable_scheduler_is_one_line(catalog: Path) -> None:
    pytest.importorskip("distributed")
    from .servers import free_port

    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"}
    proc = subprocess.run(
        [sys.executable, "-m", "validator", "batch", str(catalog / "good1"),
         "--scheduler", f"tcp://127.0.0.1:{free_port()}"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Cannot reach the Dask scheduler" in lines[0], proc.stderr


def test_a_forked_worker_does_not_wait_for_its_parents_hook_threads() -> None:
    """Hook threads are reused; a forked child must not hand calls to the parent's."""
    from validator.engine import Engine

    engine = Engine(limits=Limits().replace(plugin_seconds=5))
    engine.validate(engine.open(SAMPLES / "vm.ovf"))  # the parent now has idle helpers
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        os.close(read)
        started = time.monotonic()
        result = engine.validate(engine.open(SAMPLES / "vm.ovf"))
        os.write(write, f"{result.has_errors} {time.monotonic() - started:.3f}".encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    errors, seconds = os.read(read, 100).decode().split()
    os.close(read)
    assert errors == "False" and float(seconds) < 3, seconds


def test_listed_urls_on_forked_workers(slow_server: tuple[Path, str], tmp_path: Path) -> None:
    """A list of URLs: the batch process HEADs each (keeping the connection), then forks its
    workers, which open connections of their own (validator.remote forgets its clients in a
    forked child; a shared socket is not reliably visible here, since every answer's status
    and Content-Range are checked and a bad one retried, so this checks the verdicts)."""
    _root, base = slow_server
    listing = tmp_path / "inputs.txt"
    items = [f"{base}/pkg/vm.ovf?{i}\n{base}/pkg/session.yaml?{i}\n" for i in range(6)]
    listing.write_text("".join(items))
    proc = batch(str(listing), "-w", "2")
    found = {r["input"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert len(found) == 12, proc.stderr
    for url, record in found.items():
        expected = "valid" if "vm.ovf" in url else "invalid"  # random bytes named .iso
        assert record["status"] == expected, record
